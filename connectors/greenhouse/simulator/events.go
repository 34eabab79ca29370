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

// appendNextSearchAfter appends the next_search_after of a page that ended with last: the
// string "<seq>", "<epoch ms>,<seq>" or "<epoch ms>,<seq>,<16-hex request id>", or the list
// [<epoch ms>,<seq>]; seq is the request's quirk counter, which rotates the forms.
func (s *Server) appendNextSearchAfter(b []byte, last event, f Faults, seq int) []byte {
	parts := 2
	switch {
	case f.SearchAfterTwoPartsOnly:
		parts = 3
	case s.documented():
		parts = seq%3 + 1
	case f.SearchAfterQuirk && seq%2 == 0:
		parts = 3
	case f.SearchAfterQuirk:
		b = appendInt(b, "[", last.at)
		b = appendInt(b, ",", int64(last.seq))
		return append(b, ']')
	}
	b = append(b, '"')
	if parts > 1 {
		b = strconv.AppendInt(b, last.at, 10)
		b = append(b, ',')
	}
	b = strconv.AppendUint(b, uint64(last.seq), 10)
	if parts == 3 {
		b = append(b, ',')
		b = appendHex16(b, last.rid)
	}
	return append(b, '"')
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
	res = make([]event, 0, min(size, max(start-lo, 0)))
	for i := start - 1; i >= lo && len(res) < size; i-- {
		if e := evs[i]; e.seq < maxSeq && fl.match(e) {
			res = append(res, e)
		}
	}
	return res, hits
}

// appendEvent appends an event's wire JSON (request, performer, organization_id, event,
// event_time); the caller holds o.mu. The same event always renders to the same JSON, so a
// client's content-derived event id is stable.
func (o *Org) appendEvent(b []byte, e event) []byte {
	b = append(b, `{"request":{"id":"`...)
	b = appendHex16(b, e.rid)
	if e.perf <= 0 {
		return o.appendAPIKeyEvent(b, e)
	}
	b = append(b, `","type":`...)
	b = appendString(b, o.requestType(e))
	name, email := "", ""
	if u := o.byID[e.perf]; u != nil {
		name, email = strings.TrimSpace(u.First+" "+u.Last), u.Email // u.name(), on the stack when short
	}
	b = append(b, `},"performer":{"meta":{"name":`...)
	b = appendString(b, name)
	b = append(b, `,"username":`...)
	b = appendString(b, email)
	b = appendInt(b, `},"id":`, e.perf)
	b = appendInt(b, `,"ip_address":"10.`, e.perf>>16&255)
	b = appendInt(b, ".", e.perf>>8&255)
	b = appendInt(b, ".", e.perf&255)
	b = appendInt(b, `","type":"user"},"organization_id":`, o.orgID)
	b = append(b, `,"event":{"meta":`...)
	b = o.appendUserEventBody(b, e)
	b = append(b, `,"type":`...)
	b = appendString(b, o.types[e.typ])
	b = append(b, `},"event_time":`...)
	b = appendTime(b, time.UnixMilli(e.at))
	return append(b, '}')
}

// appendUserEventBody appends a user's event's meta, target_type and target_id.
func (o *Org) appendUserEventBody(b []byte, e event) []byte {
	switch {
	case e.ownReq && e.typ == typeHarvest: // the user's own Harvest request
		b = append(b, `null,"target_type":`...)
		b = appendString(b, harvestTargets[int(e.tgt)%len(harvestTargets)])
		return append(b, `,"target_id":null`...)
	case e.typ == typeAction:
		an := actionNames[int(e.tgt)%len(actionNames)]
		b = append(b, `{"action":`...)
		b = appendString(b, an)
		b = append(b, `},"target_type":`...)
		b = appendString(b, an)
		return append(b, `,"target_id":null`...)
	}
	switch e.typ {
	case typeUpdate:
		b = append(b, '{')
		b = appendString(b, changeFields[e.rid%uint64(len(changeFields))])
		b = append(b, `:["v`...)
		b = strconv.AppendUint(b, e.rid>>8%97, 10)
		b = append(b, `","v`...)
		b = strconv.AppendUint(b, e.rid>>16%97, 10)
		b = append(b, `"]}`...)
	case typeCreate:
		b = append(b, `{"source":"web"}`...)
	default:
		b = append(b, "null"...)
	}
	b = append(b, `,"target_type":`...)
	b = appendString(b, targetTypes[int(e.tgt)%len(targetTypes)])
	if e.ownReq {
		return append(b, `,"target_id":null`...)
	}
	return appendInt(b, `,"target_id":`, e.target)
}

// appendAPIKeyEvent appends the rest of an API key's event, after its request id.
func (o *Org) appendAPIKeyEvent(b []byte, e event) []byte {
	k := int(-e.perf-1) % len(apiKeyNames)
	rt := apiKeyRequests[int(e.tgt)%len(targetTypes)] // "GET " + the endpoint
	b = append(b, `","type":`...)
	b = appendString(b, rt)
	b = append(b, `},"performer":{"meta":{"api_key_type":"harvest"},"id":`...)
	b = appendString(b, apiKeyNames[k])
	b = appendInt(b, `,"ip_address":"203.0.113.`, int64(10+k))
	b = appendInt(b, `","type":"api_key"},"organization_id":`, o.orgID)
	b = append(b, `,"event":{"meta":{"endpoint":`...)
	b = appendString(b, rt[len("GET "):])
	b = append(b, `},"target_type":`...)
	b = appendString(b, targetTypes[int(e.tgt)%len(targetTypes)])
	b = append(b, `,"target_id":null,"type":`...)
	b = appendString(b, o.types[e.typ])
	b = append(b, `},"event_time":`...)
	b = appendTime(b, time.UnixMilli(e.at))
	return append(b, '}')
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
	q := r.URL.Query()
	paged := q.Get("paging") == "true" || pitID != ""
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
	eq, ok := s.eventsQuery(w, r, q, a)
	if !ok {
		return
	}
	bp := getBuffer()
	body, ok := s.eventsPage(w, a, eq, pitID, paged, *bp)
	if !ok || a.f.Malformed != "" && breakBody(w, a, body, wrongEvents(a.seq)) {
		putBuffer(bp, body)
		return
	}
	writeRendered(w, http.StatusOK, bp, body)
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
func (s *Server) eventsQuery(w http.ResponseWriter, r *http.Request, q url.Values, a admitted) (eventsQuery, bool) {
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

// eventsPage is a page of GET /events.
type eventsPage struct {
	res   []event
	hits  int
	pitID string
}

// eventsPage reads a page under the organisation's lock and appends its answer to b: a
// continuation of the point in time pitID, the first page of a new one (paged), or a page
// without paging. It answers the errors of a point in time itself (false).
func (s *Server) eventsPage(w http.ResponseWriter, a admitted, eq eventsQuery, pitID string, paged bool, b []byte) ([]byte, bool) {
	o := a.org
	o.mu.Lock()
	defer o.mu.Unlock()
	if eq.after != nil && !o.resolve(eq.after) {
		writeJSON(w, http.StatusBadRequest, msg(fmt.Sprintf("Search-After %q names no event", eq.searchAfter)))
		return b, false
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
			return b, false
		case p == nil:
			writeJSON(w, http.StatusBadRequest, msg("Pit_Id "+pitID+" has expired"))
			return b, false
		case eq.after == nil:
			writeJSON(w, http.StatusBadRequest, msg("Search-After is required with Pit-Id"))
			return b, false
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
	return s.appendEventsBody(b, a, eq, pg, paged), true
}

// appendEventsBody appends the answer of a page: hits, the paging object when paged, the
// results (keys in encoding/json's sorted order). The caller holds o.mu.
func (s *Server) appendEventsBody(b []byte, a admitted, eq eventsQuery, pg eventsPage, paged bool) []byte {
	b = appendInt(b, `{"hits":`, int64(pg.hits))
	if paged {
		b = append(b, `,"paging":{"next_search_after":`...)
		if len(pg.res) > 0 {
			b = s.appendNextSearchAfter(b, pg.res[len(pg.res)-1], a.f, a.seq)
		} else {
			b = append(b, "null"...) // on the last, empty page
		}
		b = append(b, `,"pit_id":`...)
		b = appendString(b, pg.pitID)
		b = append(b, `,"search_after":`...)
		if eq.searchAfter != "" {
			b = appendString(b, eq.searchAfter)
		} else {
			b = append(b, "null"...)
		}
		b = appendInt(b, `,"size":`, int64(eq.size))
		b = append(b, '}')
	}
	b = append(b, `,"results":[`...)
	for i, e := range pg.res {
		if i > 0 {
			b = append(b, ',')
		}
		b = a.org.appendEvent(b, e)
	}
	return append(b, "]}"...)
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
