package simulator

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// window is a fixed rate-limit window.
type window struct {
	start time.Time
	used  int
}

// allow counts one request against a fixed window and tells whether it fits, the remaining
// budget and when the window resets.
func (o *Org) allow(class string, limit int, length time.Duration, now time.Time) (ok bool, remaining int, reset time.Time) {
	w := o.limits[class]
	if w == nil || !now.Before(w.start.Add(length)) {
		start := now.Truncate(length)
		w = &window{start: start}
		o.limits[class] = w
	}
	reset = w.start.Add(length)
	if w.used >= limit {
		return false, 0, reset
	}
	w.used++
	return true, limit - w.used, reset
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	id, secret, ok := r.BasicAuth()
	if !ok {
		writeJSON(w, 401, map[string]string{"message": "Unauthorized", "errorId": "err-" + randHex(4)})
		return
	}
	s.mu.Lock()
	o := s.byClient[id]
	s.mu.Unlock()
	if o == nil || o.cred.ClientSecret != secret {
		writeJSON(w, 401, map[string]string{"error": "invalid_client"})
		return
	}
	now := s.opts.Now().UTC()
	o.mu.Lock()
	o.stats.Requests++
	o.stats.TokenRequests++
	f := o.faults
	okRate, _, reset := o.allow("token", s.opts.TokenLimit, s.opts.TokenWindow, now)
	if !okRate {
		o.stats.Throttled++
	}
	o.mu.Unlock()
	if f.Latency > 0 {
		select {
		case <-time.After(f.Latency):
		case <-r.Context().Done():
			return
		}
	}
	if f.InvalidClient {
		writeJSON(w, 401, map[string]string{"error": "invalid_client"})
		return
	}
	if !okRate {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter(reset, now)))
		writeJSON(w, 429, map[string]string{"message": "Rate limit exceeded"})
		return
	}
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") == "" {
		writeJSON(w, 400, map[string]string{"error": "invalid_request", "error_description": "Must include grant_type"})
		return
	}
	if r.PostForm.Get("grant_type") != "client_credentials" {
		writeJSON(w, 400, map[string]string{"error": "unsupported_grant_type", "error_description": "grant_type must be one of authorization_code, refresh_token, client_credentials, urn:ietf:params:oauth:grant-type:token-exchange"})
		return
	}
	var sub int64
	if v := r.PostForm.Get("sub"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		o.mu.Lock()
		u := o.byID[n]
		o.mu.Unlock()
		if err != nil || u == nil || u.Removed || u.Deactivated {
			writeJSON(w, 400, map[string]string{"error": "invalid_grant", "error_description": fmt.Sprintf("sub %q is not an active user of this organization", v)})
			return
		}
		sub = n
	}
	tok := randHex(24)
	exp := now.Add(s.opts.TokenTTL)
	s.mu.Lock()
	s.tokens[tok] = tokenInfo{org: o, sub: sub, expires: exp}
	s.mu.Unlock()
	writeJSON(w, 200, map[string]any{"token_type": "Bearer", "access_token": tok, "expires_at": exp.Format(time.RFC3339), "expires_in": int(s.opts.TokenTTL / time.Second)})
}

func retryAfter(reset, now time.Time) int {
	return max(1, int(reset.Sub(now).Seconds()+0.999))
}

// authorize resolves the bearer token of a request; it answers 401 itself.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) (tokenInfo, bool) {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	s.mu.Lock()
	ti, known := s.tokens[tok]
	s.mu.Unlock()
	if !ok || !known || !s.opts.Now().Before(ti.expires) {
		writeJSON(w, 401, map[string]any{"message": "Unauthorized", "errors": []string{"Token could not be decoded. Please ensure your token is from a trusted source."}})
		return ti, false
	}
	return ti, true
}

func hasScope(f Faults, scope string) bool {
	for _, m := range f.MissingScopes {
		if m == scope {
			return false
		}
	}
	return true
}

// front runs what every harvest and audit request goes through: auth, faults, limits.
func (s *Server) front(w http.ResponseWriter, r *http.Request, class string, limit int, length time.Duration, paged bool) (*Org, Faults, bool) {
	ti, ok := s.authorize(w, r)
	if !ok {
		return nil, Faults{}, false
	}
	o := ti.org
	now := s.opts.Now().UTC()
	o.mu.Lock()
	o.stats.Requests++
	if class == "harvest" {
		o.stats.HarvestRequests++
	} else {
		o.stats.AuditRequests++
	}
	f := o.faults
	if o.faults.Fail5xx > 0 {
		o.faults.Fail5xx--
	}
	okRate, remaining, reset := o.allow(class, limit, length, now)
	okPaged := true
	var pagedReset time.Time
	if okRate && paged {
		o.stats.AuditPaged++
		okPaged, _, pagedReset = o.allow("audit-paged", s.opts.AuditPagedLimit, s.opts.AuditPagedWindow, now)
	}
	if !okRate || !okPaged {
		o.stats.Throttled++
	}
	o.mu.Unlock()
	if f.Latency > 0 {
		select {
		case <-time.After(f.Latency):
		case <-r.Context().Done():
			return nil, f, false
		}
	}
	if f.Fail5xx > 0 {
		writeJSON(w, 503, map[string]string{"message": "Service Unavailable"})
		return nil, f, false
	}
	if !okRate || !okPaged {
		if !okPaged {
			reset = pagedReset
		}
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter(reset, now)))
		w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
		if f.Malformed == "absurd_retry_after" {
			w.Header().Set("Retry-After", "99999999999")
		}
		writeJSON(w, 429, map[string]string{"message": "Rate limit exceeded"})
		return nil, f, false
	}
	w.Header().Set("X-RateLimit-Limit", strconv.Itoa(limit))
	w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
	w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
	if f.AdminNotSiteAdmin {
		writeJSON(w, 403, map[string]any{"message": "Forbidden", "errors": []string{"The user authorizing this request must be a Site Admin."}})
		return nil, f, false
	}
	o.mu.Lock()
	sub := o.byID[ti.sub]
	o.mu.Unlock()
	if sub != nil && !sub.SiteAdmin {
		writeJSON(w, 403, map[string]any{"message": "Forbidden", "errors": []string{"The user authorizing this request must be a Site Admin."}})
		return nil, f, false
	}
	return o, f, true
}

// harvest wraps a list handler with auth, scope, limits, cursor rules and pagination.
func (s *Server) harvest(scope string, list func(o *Org, q url.Values) ([]any, int, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		o, f, ok := s.front(w, r, "harvest", s.opts.HarvestLimit, s.opts.HarvestWindow, false)
		if !ok {
			return
		}
		if !hasScope(f, scope) {
			writeJSON(w, 403, map[string]any{"message": "Forbidden", "errors": []string{"Missing required scope: " + scope}})
			return
		}
		q := r.URL.Query()
		offset := 0
		if c := q.Get("cursor"); c != "" {
			if len(q) > 1 {
				writeJSON(w, 422, map[string]any{"errors": []string{"When passing a cursor, do not include other query params."}})
				return
			}
			raw, err := base64.RawURLEncoding.DecodeString(c)
			if err != nil {
				writeJSON(w, 422, map[string]any{"errors": []string{"Invalid cursor."}})
				return
			}
			cq, err := url.ParseQuery(string(raw))
			if err != nil {
				writeJSON(w, 422, map[string]any{"errors": []string{"Invalid cursor."}})
				return
			}
			offset, _ = strconv.Atoi(cq.Get("_offset"))
			cq.Del("_offset")
			q = cq
		}
		per := 100
		if v := q.Get("per_page"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 500 {
				writeJSON(w, 422, map[string]any{"errors": []map[string]string{{"message": "must be between 1 and 500", "field": "per_page"}}})
				return
			}
			per = n
		}
		items, status, err := list(o, q)
		if err != nil {
			writeJSON(w, status, map[string]any{"errors": []map[string]string{{"message": err.Error()}}})
			return
		}
		end := min(offset+per, len(items))
		if offset > len(items) {
			offset = end
		}
		page := items[offset:end]
		if page == nil {
			page = []any{} // Greenhouse answers an empty page with [], never null
		}
		if end < len(items) {
			next := url.Values{}
			for k, v := range q {
				next[k] = v
			}
			next.Set("_offset", strconv.Itoa(end))
			scheme := "http"
			if r.TLS != nil {
				scheme = "https"
			}
			link := fmt.Sprintf("%s://%s%s?cursor=%s", scheme, r.Host, r.URL.Path, base64.RawURLEncoding.EncodeToString([]byte(next.Encode())))
			switch f.Malformed {
			case "hostile_link":
				link = "https://evil.example/steal?cursor=x"
			}
			w.Header().Set("Link", fmt.Sprintf("<%s>; rel=\"next\"", link))
		}
		switch f.Malformed {
		case "html":
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(200)
			_, _ = w.Write([]byte("<html><body>Maintenance</body></html>"))
			return
		case "truncated":
			b, _ := json.Marshal(page)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(200)
			_, _ = w.Write(b[:len(b)/2])
			return
		case "wrong_type":
			writeJSON(w, 200, []map[string]any{{"id": "not-a-number", "deactivated": "maybe"}})
			return
		}
		writeJSON(w, 200, page)
	}
}

func (u *user) json() map[string]any {
	emails := []string{}
	if u.Email != "" {
		emails = append(emails, u.Email)
	}
	return map[string]any{
		"id": u.ID, "created_at": u.CreatedAt.Format("2006-01-02T15:04:05.000Z"), "updated_at": u.UpdatedAt.Format("2006-01-02T15:04:05.000Z"),
		"first_name": u.First, "last_name": u.Last, "name": u.name(), "primary_email": u.Email, "emails": emails,
		"job_title": nil, "agency_id": nil, "deactivated": u.Deactivated, "site_admin": u.SiteAdmin, "employee_id": nil,
		"linked_candidate_ids": []int64{}, "office_ids": []int64{}, "department_ids": []int64{}, "interviewer_tags": []any{}, "custom_fields": map[string]any{},
	}
}

// pipeFilter parses "gte|t|lte|t" into bounds.
func pipeFilter(v string) (func(time.Time) bool, error) {
	parts := strings.Split(v, "|")
	if len(parts)%2 != 0 {
		return nil, fmt.Errorf("invalid date filter %q", v)
	}
	var checks []func(time.Time) bool
	for i := 0; i < len(parts); i += 2 {
		t, err := time.Parse(time.RFC3339, parts[i+1])
		if err != nil {
			return nil, fmt.Errorf("invalid date %q", parts[i+1])
		}
		switch parts[i] {
		case "gte":
			checks = append(checks, func(x time.Time) bool { return !x.Before(t) })
		case "gt":
			checks = append(checks, func(x time.Time) bool { return x.After(t) })
		case "lte":
			checks = append(checks, func(x time.Time) bool { return !x.After(t) })
		case "lt":
			checks = append(checks, func(x time.Time) bool { return x.Before(t) })
		default:
			return nil, fmt.Errorf("invalid operator %q", parts[i])
		}
	}
	return func(x time.Time) bool {
		for _, c := range checks {
			if !c(x) {
				return false
			}
		}
		return true
	}, nil
}

func idSet(v string) (map[int64]bool, error) {
	if v == "" {
		return nil, nil
	}
	parts := strings.Split(v, ",")
	if len(parts) > 50 {
		return nil, fmt.Errorf("at most 50 ids")
	}
	out := map[int64]bool{}
	for _, p := range parts {
		n, err := strconv.ParseInt(strings.TrimSpace(p), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("invalid id %q", p)
		}
		out[n] = true
	}
	return out, nil
}

func (s *Server) listUsers(o *Org, q url.Values) ([]any, int, error) {
	ids, err := idSet(q.Get("ids"))
	if err != nil {
		return nil, 422, err
	}
	if q.Get("created_at") != "" && q.Get("updated_at") != "" {
		return nil, 422, fmt.Errorf("do not send created_at and updated_at together")
	}
	var created, updated func(time.Time) bool
	if v := q.Get("created_at"); v != "" {
		if created, err = pipeFilter(v); err != nil {
			return nil, 422, err
		}
	}
	if v := q.Get("updated_at"); v != "" {
		if updated, err = pipeFilter(v); err != nil {
			return nil, 422, err
		}
	}
	showService := q.Get("show_service_accounts") == "true"
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []any
	for i := len(o.users) - 1; i >= 0; i-- { // id descending
		u := o.users[i]
		if u.Removed || (u.Service && !showService) || (ids != nil && !ids[u.ID]) {
			continue
		}
		if d := q.Get("deactivated"); d != "" && strconv.FormatBool(u.Deactivated) != d {
			continue
		}
		if created != nil && !created(u.CreatedAt) || updated != nil && !updated(u.UpdatedAt) {
			continue
		}
		out = append(out, u.json())
	}
	return out, 200, nil
}

func (s *Server) listRoles(o *Org, q url.Values) ([]any, int, error) {
	ts := "2020-01-01T00:00:00.000Z"
	roles := []any{
		map[string]any{"id": 4, "created_at": ts, "updated_at": ts, "role_type": "site_admin", "name": "Site Admin"},
		map[string]any{"id": 3, "created_at": ts, "updated_at": ts, "role_type": "deprecated_interviewer", "name": "Interviewer"},
		map[string]any{"id": 2, "created_at": ts, "updated_at": ts, "role_type": "job_admin", "name": "Private"},
		map[string]any{"id": 1, "created_at": ts, "updated_at": ts, "role_type": "job_admin", "name": "Standard"},
	}
	return roles, 200, nil
}

func (s *Server) listPerms(o *Org, q url.Values, future bool) ([]any, int, error) {
	users, err := idSet(q.Get("user_ids"))
	if err != nil {
		return nil, 422, err
	}
	jobs, err := idSet(q.Get("job_ids"))
	if err != nil {
		return nil, 422, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	ts := "2024-01-01T00:00:00.000Z"
	var out []any
	for i := len(o.perms) - 1; i >= 0; i-- {
		p := o.perms[i]
		if p.Future != future || (users != nil && !users[p.UserID]) || (jobs != nil && !jobs[p.JobID]) {
			continue
		}
		if u := o.byID[p.UserID]; u == nil || u.Removed {
			continue
		}
		if future {
			out = append(out, map[string]any{"id": p.ID, "created_at": ts, "updated_at": ts, "user_id": p.UserID, "role_id": p.RoleID, "department_id": nil, "office_id": nil})
		} else {
			out = append(out, map[string]any{"id": p.ID, "created_at": ts, "updated_at": ts, "job_id": p.JobID, "user_id": p.UserID, "role_id": p.RoleID, "automated": false})
		}
	}
	return out, 200, nil
}

func (s *Server) listJobPerms(o *Org, q url.Values) ([]any, int, error) {
	return s.listPerms(o, q, false)
}
func (s *Server) listFuturePerms(o *Org, q url.Values) ([]any, int, error) {
	return s.listPerms(o, q, true)
}

// pit is a point-in-time snapshot of a query's results.
type pit struct {
	events  []event // newest first
	expires time.Time
	pages   int
}

func auditTime(v string) (time.Time, error) {
	t, err := time.Parse("2006-01-02T15:04:05Z", v)
	if err != nil || len(v) != len("2006-01-02T15:04:05Z") { // no fractions, no offsets
		return t, fmt.Errorf("invalid time %q: use YYYY-MM-DDTHH:MM:SSZ", v)
	}
	return t, nil
}

func (e event) json(orgID int) map[string]any {
	perf := map[string]any{"ip_address": "192.0.2.10", "type": "user"}
	if e.Performer != 0 {
		perf["id"] = e.Performer
		perf["meta"] = map[string]any{"name": "User " + strconv.FormatInt(e.Performer, 10), "username": fmt.Sprintf("user%d@org.example", e.Performer)}
	} else {
		perf["id"] = e.Key
		perf["type"] = "api_key"
		perf["meta"] = map[string]any{"api_key_type": "harvest"}
	}
	ev := map[string]any{"meta": nil, "target_type": e.Target, "type": e.Type}
	if e.TargetID != 0 {
		ev["target_id"] = e.TargetID
	}
	if e.Type == "data_change_update" {
		ev["meta"] = map[string]any{"status": []string{"active", "hired"}}
	}
	return map[string]any{
		"request": map[string]any{"id": e.RequestID, "type": e.Request}, "performer": perf, "organization_id": orgID,
		"event": ev, "event_time": e.At.UTC().Format("2006-01-02T15:04:05.000Z"),
	}
}

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	paged := q.Get("paging") == "true" || r.Header.Get("Pit-Id") != ""
	o, f, ok := s.front(w, r, "audit", s.opts.AuditLimit, s.opts.AuditWindow, paged)
	if !ok {
		return
	}
	if f.AuditLogDisabled {
		writeJSON(w, 403, map[string]string{"message": "The Audit Log add-on is not enabled for this organization."})
		return
	}
	if !hasScope(f, "audit_log:events:list") {
		writeJSON(w, 403, map[string]any{"message": "Forbidden", "errors": []string{"Missing required scope: audit_log:events:list"}})
		return
	}
	size := 100
	sz := q.Get("size")
	if sz == "" {
		sz = r.Header.Get("Size")
	}
	if sz != "" {
		n, err := strconv.Atoi(sz)
		if err != nil || n < 100 || n > 500 {
			writeJSON(w, 422, map[string]string{"message": "size must be between 100 and 500"})
			return
		}
		size = n
	}
	now := s.opts.Now().UTC()
	from, to := now.Add(-s.opts.Retention), now.Add(time.Second)
	if v := q.Get("after_time"); v != "" {
		t, err := auditTime(v)
		if err != nil {
			writeJSON(w, 422, map[string]string{"message": err.Error()})
			return
		}
		if t.After(from) {
			from = t
		}
	}
	if v := q.Get("before_time"); v != "" {
		t, err := auditTime(v)
		if err != nil {
			writeJSON(w, 422, map[string]string{"message": err.Error()})
			return
		}
		if t.Before(to) {
			to = t
		}
	}
	ptypes := q.Get("performer_types")
	etypes := q.Get("event_types")
	match := func(e event) bool {
		if ptypes != "" {
			pt := "user"
			if e.Performer == 0 {
				pt = "api_key"
			}
			if !strings.Contains(","+ptypes+",", ","+pt+",") {
				return false
			}
		}
		return etypes == "" || strings.Contains(","+etypes+",", ","+e.Type+",")
	}
	orgID := int(o.spec.Seed)

	if pitID := r.Header.Get("Pit-Id"); pitID != "" {
		o.mu.Lock()
		p := o.pits[pitID]
		if p != nil && o.faults.ExpirePIT {
			// One-shot: this point in time expires now; the next one lives normally.
			o.faults.ExpirePIT = false
			delete(o.pits, pitID)
			p = nil
		}
		if p != nil && now.After(p.expires) {
			delete(o.pits, pitID)
			p = nil
		}
		o.mu.Unlock()
		if p == nil {
			writeJSON(w, 400, map[string]string{"message": "Pit_Id " + pitID + " has expired or is invalid"})
			return
		}
		sa := r.Header.Get("Search-After")
		parts := strings.Split(sa, ",")
		if len(parts) != 2 {
			writeJSON(w, 422, map[string]string{"message": "Search-After must have two comma-separated parts"})
			return
		}
		off, err := strconv.Atoi(parts[1])
		if err != nil || off < 0 || off > len(p.events) {
			writeJSON(w, 422, map[string]string{"message": "invalid Search-After"})
			return
		}
		o.mu.Lock()
		p.pages++
		o.mu.Unlock()
		s.writePage(w, p, pitID, off, size, orgID, f)
		return
	}

	o.mu.Lock()
	lo := sort.Search(len(o.events), func(i int) bool { return !o.events[i].At.Before(from) })
	hi := sort.Search(len(o.events), func(i int) bool { return !o.events[i].At.Before(to) })
	var hits []event
	for i := hi - 1; i >= lo; i-- {
		if match(o.events[i]) {
			hits = append(hits, o.events[i])
		}
	}
	o.mu.Unlock()

	if !paged {
		n := min(size, len(hits))
		res := make([]any, n)
		for i := 0; i < n; i++ {
			res[i] = hits[i].json(orgID)
		}
		writeJSON(w, 200, map[string]any{"hits": len(hits), "results": res})
		return
	}
	pitID := randHex(12)
	p := &pit{events: hits, expires: now.Add(s.opts.PITLifetime)}
	o.mu.Lock()
	o.pits[pitID] = p
	o.mu.Unlock()
	s.writePage(w, p, pitID, 0, size, orgID, f)
}

func (s *Server) writePage(w http.ResponseWriter, p *pit, pitID string, off, size, orgID int, f Faults) {
	end := min(off+size, len(p.events))
	res := make([]any, 0, end-off)
	for i := off; i < end; i++ {
		res = append(res, p.events[i].json(orgID))
	}
	var next any
	if off < len(p.events) {
		last := p.events[end-1]
		na := fmt.Sprintf("%d,%d", last.At.UnixMilli(), end)
		next = na
		if f.SearchAfterQuirk {
			if end%2 == 0 {
				next = na + ",extra"
			} else {
				next = []any{last.At.UnixMilli(), strconv.Itoa(end)}
			}
		}
	}
	writeJSON(w, 200, map[string]any{
		"paging": map[string]any{"pit_id": pitID, "search_after": nil, "size": strconv.Itoa(size), "next_search_after": next},
		"hits":   len(p.events), "results": res,
	})
}
