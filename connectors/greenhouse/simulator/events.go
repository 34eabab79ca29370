package simulator

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// pit is a point in time: a snapshot of one query, as the events created before it.
type pit struct {
	from, to int64 // [from, to) in Unix ms
	filter   evFilter
	maxSeq   uint32 // events with a lower seq belong to the snapshot
	hits     int
	expires  time.Time
	conts    int // continuation pages served
}

// evFilter is the performer_types and event_types filter of a query.
type evFilter struct {
	users, keys bool       // performer types; both true when unfiltered
	types       *[256]bool // nil: every type
}

func (f evFilter) match(e event) bool {
	if e.perf > 0 && !f.users || e.perf <= 0 && !f.keys {
		return false
	}
	return f.types == nil || f.types[e.typ]
}

func (f evFilter) all() bool { return f.users && f.keys && f.types == nil }

// saKey is a Search-After position: events strictly older than (at, seq) follow it. A
// one-part Search-After names the event by seq alone (bySeq, at unknown until resolved).
type saKey struct {
	at    int64
	seq   uint32
	bySeq bool
}

// parseSearchAfter reads the two-part Search-After "<epoch ms>,<seq>", the only form the
// generous profile and Faults.SearchAfterTwoPartsOnly take.
func parseSearchAfter(v string) (saKey, error) {
	parts := strings.Split(v, ",")
	if len(parts) != 2 {
		return saKey{}, fmt.Errorf("Search-After must be two comma-separated values")
	}
	return parseParts(v, parts)
}

// parseSearchAfterAny reads every form the documented profile issues: "<seq>",
// "<epoch ms>,<seq>" and "<epoch ms>,<seq>,<16-hex request id>" (the third part is checked
// and otherwise ignored).
func parseSearchAfterAny(v string) (saKey, error) {
	parts := strings.Split(v, ",")
	switch len(parts) {
	case 1:
		seq, err := strconv.ParseUint(strings.TrimSpace(parts[0]), 10, 32)
		if err != nil {
			return saKey{}, fmt.Errorf("Search-After %q is invalid", v)
		}
		return saKey{seq: uint32(seq), bySeq: true}, nil
	case 2:
		return parseParts(v, parts)
	case 3:
		rid := strings.TrimSpace(parts[2])
		if _, err := strconv.ParseUint(rid, 16, 64); err != nil || len(rid) != 16 {
			return saKey{}, fmt.Errorf("Search-After %q is invalid", v)
		}
		return parseParts(v, parts[:2])
	}
	return saKey{}, fmt.Errorf("Search-After must be one to three comma-separated values")
}

// parseParts reads "<epoch ms>", "<seq>" of the Search-After v.
func parseParts(v string, parts []string) (saKey, error) {
	at, err1 := strconv.ParseInt(strings.TrimSpace(parts[0]), 10, 64)
	seq, err2 := strconv.ParseUint(strings.TrimSpace(parts[1]), 10, 32)
	if err1 != nil || err2 != nil {
		return saKey{}, fmt.Errorf("Search-After %q is invalid", v)
	}
	return saKey{at: at, seq: uint32(seq)}, nil
}

// resolve gives a one-part Search-After the time of the event it names; false when no event
// has that seq. Events are never deleted, so every value the server issued resolves. The scan
// is linear, but only one-part values need it. The caller holds o.mu.
func (o *Org) resolve(k *saKey) bool {
	if !k.bySeq {
		return true
	}
	for _, e := range o.events {
		if e.seq == k.seq {
			k.at, k.bySeq = e.at, false
			return true
		}
	}
	return false
}

// nextSearchAfter is the next_search_after of a page that ended with last; seq is the
// request's quirk counter, which rotates the forms.
func (s *Server) nextSearchAfter(last event, f Faults, seq int) any {
	two := fmt.Sprintf("%d,%d", last.at, last.seq)
	three := fmt.Sprintf("%d,%d,%016x", last.at, last.seq, last.rid)
	switch {
	case f.SearchAfterTwoPartsOnly:
		return three
	case s.documented():
		return [3]string{strconv.FormatUint(uint64(last.seq), 10), two, three}[seq%3]
	case f.SearchAfterQuirk:
		if seq%2 == 0 {
			return three
		}
		return []any{last.at, last.seq}
	}
	return two
}

// auditTime parses after_time and before_time: YYYY-MM-DDTHH:MM:SSZ only.
func auditTime(v string) (int64, error) {
	t, err := time.Parse("2006-01-02T15:04:05Z", v)
	if err != nil || len(v) != len("2006-01-02T15:04:05Z") {
		return 0, fmt.Errorf("invalid time %q: use YYYY-MM-DDTHH:MM:SSZ", v)
	}
	return t.UnixMilli(), nil
}

// scan returns up to size events of [from, to) newest first, older than after when given,
// created before maxSeq and matching fl; with count it also counts every such event of the
// window (ignoring after). The caller holds o.mu.
func (o *Org) scan(from, to int64, fl evFilter, maxSeq uint32, after *saKey, size int, count bool) (res []event, hits int) {
	evs := o.events
	lo := sort.Search(len(evs), func(i int) bool { return evs[i].at >= from })
	hi := sort.Search(len(evs), func(i int) bool { return evs[i].at >= to })
	if hi < lo {
		hi = lo
	}
	if count {
		if fl.all() && maxSeq >= o.nextSeq {
			hits = hi - lo
		} else {
			for _, e := range evs[lo:hi] {
				if e.seq < maxSeq && fl.match(e) {
					hits++
				}
			}
		}
	}
	start := hi
	if after != nil {
		k := sort.Search(len(evs), func(i int) bool {
			return evs[i].at > after.at || evs[i].at == after.at && evs[i].seq >= after.seq
		})
		start = min(start, k)
	}
	for i := start - 1; i >= lo && len(res) < size; i-- {
		if e := evs[i]; e.seq < maxSeq && fl.match(e) {
			res = append(res, e)
		}
	}
	return res, hits
}

type eventJSON struct {
	Request struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	} `json:"request"`
	Performer      performerJSON `json:"performer"`
	OrganizationID int64         `json:"organization_id"`
	Event          eventBodyJSON `json:"event"`
	EventTime      string        `json:"event_time"`
}

type performerJSON struct {
	Meta      any    `json:"meta"`
	ID        any    `json:"id"`
	IPAddress string `json:"ip_address"`
	Type      string `json:"type"`
}

type eventBodyJSON struct {
	Meta       any    `json:"meta"`
	TargetType string `json:"target_type"`
	TargetID   *int64 `json:"target_id"`
	Type       string `json:"type"`
}

// render turns an event into its wire shape; the caller holds o.mu. The same event always
// renders to the same JSON, so a client's content-derived event id is stable.
func (o *Org) render(e event) eventJSON {
	var j eventJSON
	j.Request.ID = fmt.Sprintf("%016x", e.rid)
	j.OrganizationID = o.orgID
	j.EventTime = time.UnixMilli(e.at).UTC().Format(tsLayout)
	j.Event.Type = o.types[e.typ]
	if e.perf <= 0 {
		k := int(-e.perf-1) % len(apiKeyNames)
		tt := targetTypes[int(e.tgt)%len(targetTypes)]
		path := "/v3/" + strings.ToLower(tt) + "s"
		j.Performer = performerJSON{Meta: map[string]string{"api_key_type": "harvest"}, ID: apiKeyNames[k],
			IPAddress: fmt.Sprintf("203.0.113.%d", 10+k), Type: "api_key"}
		j.Event.TargetType = tt
		j.Event.Meta = map[string]string{"endpoint": path}
		j.Request.Type = "GET " + path
		return j
	}
	name, email := "", ""
	if u := o.byID[e.perf]; u != nil {
		name, email = u.name(), u.Email
	}
	j.Performer = performerJSON{Meta: map[string]string{"name": name, "username": email}, ID: e.perf,
		IPAddress: fmt.Sprintf("10.%d.%d.%d", e.perf>>16&255, e.perf>>8&255, e.perf&255), Type: "user"}
	j.Request.Type = o.requestType(e)
	switch {
	case e.ownReq && e.typ == typeHarvest: // the user's own Harvest request
		j.Event.TargetType = harvestTargets[int(e.tgt)%len(harvestTargets)]
		return j
	case e.typ == typeAction:
		an := actionNames[int(e.tgt)%len(actionNames)]
		j.Event.TargetType = an
		j.Event.Meta = map[string]string{"action": an}
		return j
	}
	j.Event.TargetType = targetTypes[int(e.tgt)%len(targetTypes)]
	if !e.ownReq {
		tid := e.target
		j.Event.TargetID = &tid
	}
	switch e.typ {
	case typeUpdate:
		f := changeFields[e.rid%uint64(len(changeFields))]
		j.Event.Meta = map[string][]string{f: {"v" + strconv.FormatUint(e.rid>>8%97, 10), "v" + strconv.FormatUint(e.rid>>16%97, 10)}}
	case typeCreate:
		j.Event.Meta = map[string]string{"source": "web"}
	}
	return j
}

// requestType is an event's request.type; the caller holds o.mu.
func (o *Org) requestType(e event) string {
	switch {
	case e.ownReq:
		return o.requests[e.target]
	case e.perf <= 0:
		return apiKeyRequests[int(e.tgt)%len(targetTypes)]
	case e.typ == typeAction:
		return actionRequests[int(e.tgt)%len(actionNames)]
	case e.typ == typeCreate || e.typ == typeDestroy:
		return changeRequests[e.typ][int(e.tgt)%len(targetTypes)]
	}
	return changeRequests[typeUpdate][int(e.tgt)%len(targetTypes)]
}

// events serves GET /events: the front checks (host, token, scope, limits), the query, then
// a page without paging, the first page of a new point in time, or a continuation of one.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	pitID := r.Header.Get("Pit-Id")
	paged := r.URL.Query().Get("paging") == "true" || pitID != ""
	if s.wrongHost(w, r) {
		return
	}
	a, ok := s.front(w, r, "audit", scopeAudit, paged)
	if !ok {
		return
	}
	if a.f.AuditLogDisabled {
		m := "The Audit Log add-on is not enabled for this organization."
		if s.documented() {
			m = "You do not have access to that record." // the only 403 the Audit Log documents
		}
		writeJSON(w, http.StatusForbidden, msg(m))
		return
	}
	eq, ok := s.eventsQuery(w, r, a)
	if !ok {
		return
	}
	pg, ok := s.eventsPage(w, a, eq, pitID, paged)
	if !ok {
		return
	}
	var body any = map[string]any{"hits": pg.hits, "results": pg.out}
	if paged {
		var next any // null on the last, empty page
		if len(pg.res) > 0 {
			next = s.nextSearchAfter(pg.res[len(pg.res)-1], a.f, a.seq)
		}
		var sa any
		if eq.searchAfter != "" {
			sa = eq.searchAfter
		}
		body = map[string]any{"paging": map[string]any{"pit_id": pg.pitID, "search_after": sa, "size": eq.size, "next_search_after": next},
			"hits": pg.hits, "results": pg.out}
	}
	if a.f.Malformed != "" && breakBody(w, a, body, wrongEvents(a.seq)) {
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// eventsQuery is what a GET /events asks for.
type eventsQuery struct {
	q           url.Values
	size        int
	from, to    int64  // Unix milliseconds
	after       *saKey // Search-After, or nil
	searchAfter string // as sent
}

// eventsQuery reads a GET /events' size, time range and Search-After, answering 422 or 400
// itself when one is wrong.
func (s *Server) eventsQuery(w http.ResponseWriter, r *http.Request, a admitted) (eventsQuery, bool) {
	q := r.URL.Query()
	eq := eventsQuery{q: q, size: 100, searchAfter: r.Header.Get("Search-After")}
	sz := q.Get("size")
	if sz == "" {
		sz = r.Header.Get("Size")
	}
	if sz != "" {
		n, err := strconv.Atoi(sz)
		if err != nil || n < 100 || n > 500 {
			writeJSON(w, http.StatusUnprocessableEntity, msg("size must be an integer between 100 and 500"))
			return eq, false
		}
		eq.size = n
	}
	nowMs := a.now.UnixMilli()
	eq.from, eq.to = nowMs-s.opts.Retention.Milliseconds(), nowMs+1
	for _, p := range []struct {
		name  string
		bound *int64
		after bool
	}{{"after_time", &eq.from, true}, {"before_time", &eq.to, false}} {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		t, err := auditTime(v)
		if err != nil {
			writeJSON(w, http.StatusUnprocessableEntity, msg(p.name+": "+err.Error()))
			return eq, false
		}
		if p.after && t > *p.bound || !p.after && t < *p.bound {
			*p.bound = t
		}
	}
	if eq.searchAfter != "" {
		parse := parseSearchAfter
		if s.documented() && !a.f.SearchAfterTwoPartsOnly {
			parse = parseSearchAfterAny
		}
		k, err := parse(eq.searchAfter)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, msg(err.Error()))
			return eq, false
		}
		eq.after = &k
	}
	return eq, true
}

// eventsPage is a page of GET /events as rendered.
type eventsPage struct {
	res   []event
	out   []eventJSON
	hits  int
	pitID string
}

// eventsPage reads a page under the organisation's lock: a continuation of the point in time
// pitID, the first page of a new one (paged), or a page without paging. It answers the
// errors of a point in time itself.
func (s *Server) eventsPage(w http.ResponseWriter, a admitted, eq eventsQuery, pitID string, paged bool) (eventsPage, bool) {
	o := a.org
	o.mu.Lock()
	defer o.mu.Unlock()
	if eq.after != nil && !o.resolve(eq.after) {
		writeJSON(w, http.StatusBadRequest, msg(fmt.Sprintf("Search-After %q names no event", eq.searchAfter)))
		return eventsPage{}, false
	}
	pg := eventsPage{pitID: pitID}
	switch {
	case pitID != "":
		p := o.pits[pitID]
		if p != nil && (a.now.After(p.expires) || a.f.ExpirePIT && p.conts >= 1) {
			delete(o.pits, pitID)
			p = nil
		}
		switch {
		case p == nil && s.documented(): // the documented words; 400 and 404 alternately
			writeJSON(w, [2]int{http.StatusBadRequest, http.StatusNotFound}[a.seq%2], msg("The Pit_Id has expired"))
			return pg, false
		case p == nil:
			writeJSON(w, http.StatusBadRequest, msg("Pit_Id "+pitID+" has expired"))
			return pg, false
		case eq.after == nil:
			writeJSON(w, http.StatusBadRequest, msg("Search-After is required with Pit-Id"))
			return pg, false
		}
		p.conts++
		p.expires = a.now.Add(s.opts.PITLifetime) // each use keeps the point in time alive
		pg.res, _ = o.scan(p.from, p.to, p.filter, p.maxSeq, eq.after, eq.size, false)
		pg.hits = p.hits
	case paged:
		for id, old := range o.pits {
			if a.now.After(old.expires) {
				delete(o.pits, id)
			}
		}
		pg.pitID = randHex(16)
		p := &pit{from: eq.from, to: eq.to, filter: o.filter(eq.q), maxSeq: o.nextSeq, expires: a.now.Add(s.opts.PITLifetime)}
		pg.res, p.hits = o.scan(eq.from, eq.to, p.filter, p.maxSeq, eq.after, eq.size, true)
		pg.hits = p.hits
		o.pits[pg.pitID] = p
	default:
		pg.res, pg.hits = o.scan(eq.from, eq.to, o.filter(eq.q), o.nextSeq, nil, eq.size, true)
	}
	pg.out = make([]eventJSON, len(pg.res))
	for i, e := range pg.res {
		pg.out[i] = o.render(e)
	}
	return pg, true
}

// wrongHost answers 404 {"message":"Resource not found"} for an organisation with
// Faults.AuditLogWrongHost, before auth and limits (an expired token is enough to find the
// organisation); false when the request goes on.
func (s *Server) wrongHost(w http.ResponseWriter, r *http.Request) bool {
	ti, _ := s.authorize(r)
	o := ti.org
	if o == nil {
		return false
	}
	o.mu.Lock()
	f := o.faults
	if f.AuditLogWrongHost {
		o.stats.Requests++
		o.stats.AuditRequests++
	}
	o.mu.Unlock()
	if !f.AuditLogWrongHost {
		return false
	}
	if delay(r, f.Latency) {
		writeJSON(w, http.StatusNotFound, msg("Resource not found"))
	}
	return true
}

// filter reads performer_types and event_types; the caller holds o.mu.
func (o *Org) filter(q url.Values) evFilter {
	fl := evFilter{users: true, keys: true}
	if v := q.Get("performer_types"); v != "" {
		fl.users, fl.keys = false, false
		for _, t := range strings.Split(v, ",") {
			switch strings.TrimSpace(t) {
			case "user":
				fl.users = true
			case "api_key":
				fl.keys = true
			}
		}
	}
	if v := q.Get("event_types"); v != "" {
		fl.types = new([256]bool)
		for _, t := range strings.Split(v, ",") {
			for i, name := range o.types {
				if name == strings.TrimSpace(t) {
					fl.types[i] = true
				}
			}
		}
	}
	return fl
}

// wrongEvents is an /events answer with the wrong types, two shapes alternately.
func wrongEvents(seq int) any {
	if seq%2 == 0 {
		return map[string]any{"hits": "many", "results": map[string]any{"id": map[string]int{"value": 1}}}
	}
	return map[string]any{"hits": 1, "results": []any{map[string]any{"event_time": 1700000000, "event": "data_change_update",
		"performer": map[string]any{"id": map[string]int{"value": 1}, "type": 7}}}}
}
