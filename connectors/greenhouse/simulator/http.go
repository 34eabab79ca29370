package simulator

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// window is a fixed rate-limit window.
type window struct {
	start time.Time
	used  int
}

// limit is one rate-limit class of an organisation.
type limit struct {
	class  string
	max    int
	length time.Duration
}

// room tells whether a request fits a class's current window, without counting it.
func (o *Org) room(l limit, now time.Time) (ok bool, reset time.Time) {
	w := o.limits[l.class]
	if w == nil || !now.Before(w.start.Add(l.length)) {
		w = &window{start: now.Truncate(l.length)}
		o.limits[l.class] = w
	}
	return w.used < l.max, w.start.Add(l.length)
}

// take counts a request in a class's window and returns the remaining budget.
func (o *Org) take(l limit) int {
	w := o.limits[l.class]
	w.used++
	return l.max - w.used
}

// resetSeconds is a window end in epoch seconds, rounded up: never before the real end.
func resetSeconds(t time.Time) int64 {
	s := t.Unix()
	if t.Nanosecond() > 0 {
		s++
	}
	return s
}

// retryAfter is the whole seconds until reset, at least 1.
func retryAfter(reset, now time.Time) int {
	d := reset.Sub(now)
	return max(1, int((d+time.Second-1)/time.Second))
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"message":"Internal Server Error"}`)
	}
	writeBody(w, code, b)
}

func writeBody(w http.ResponseWriter, code int, b []byte) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

func msg(m string) map[string]string { return map[string]string{"message": m} }

func forbidden(reason string) map[string]any {
	return map[string]any{"message": "Forbidden", "errors": []string{reason}}
}

const siteAdminReason = "The user authorizing this request must be a Site Admin."

func validation(field, m string) map[string]any {
	return map[string]any{"message": "Validation error", "errors": []map[string]string{{"message": m, "field": field}}}
}

// countStray records a request no organisation can be charged with.
func (s *Server) countStray(kind string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stray.Requests++
	switch kind {
	case "token":
		s.stray.TokenRequests++
	case "harvest":
		s.stray.HarvestRequests++
	default:
		s.stray.AuditRequests++
	}
}

// delay waits an organisation's latency fault; false when the request was cancelled.
func delay(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

// fail5xx consumes one injected server error; the caller holds o.mu.
func (o *Org) fail5xx() bool {
	if o.faults.Fail5xx > 0 {
		o.faults.Fail5xx--
		return true
	}
	return false
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	id, secret, ok := r.BasicAuth()
	if !ok {
		s.countStray("token")
		writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "Unauthorized", "errorId": "err-" + randHex(6)})
		return
	}
	s.mu.Lock()
	o := s.byClient[id]
	s.mu.Unlock()
	if o == nil {
		s.countStray("token")
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		return
	}
	now := s.opts.Now().UTC()
	lim := limit{"token", s.opts.TokenLimit, s.opts.TokenWindow}
	o.mu.Lock()
	o.stats.Requests++
	o.stats.TokenRequests++
	f := o.faults
	failed := o.fail5xx()
	fits, reset := o.room(lim, now)
	remaining := 0
	if !failed {
		if fits {
			remaining = o.take(lim)
		} else {
			o.stats.Throttled++
		}
	}
	o.mu.Unlock()
	if !delay(r, f.Latency) {
		return
	}
	if failed {
		writeJSON(w, http.StatusServiceUnavailable, msg("Service Unavailable"))
		return
	}
	if !s.documented() { // the token endpoint documents no X-RateLimit-Reset
		w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(resetSeconds(reset), 10))
	}
	if !fits {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter(reset, now)))
		writeJSON(w, http.StatusTooManyRequests, msg("Rate limit exceeded"))
		return
	}
	w.Header().Set("X-RateLimit-Limit", strconv.Itoa(lim.max))
	w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
	if f.InvalidClient || secret != o.cred.ClientSecret {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		return
	}
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request",
			"error_description": "Must include grant_type in the form-encoded request body."})
		return
	}
	if g := r.PostForm.Get("grant_type"); g != "client_credentials" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type",
			"error_description": "grant_type " + strconv.Quote(g) + " is not supported for this client."})
		return
	}
	var sub int64
	if v := r.PostForm.Get("sub"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		o.mu.Lock()
		u := o.byID[n]
		active := err == nil && u != nil && !u.Removed && !u.Deactivated
		o.mu.Unlock()
		if !active {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant",
				"error_description": fmt.Sprintf("sub %s is not an active user of this organization.", strconv.Quote(v))})
			return
		}
		sub = n
	}
	tok := randHex(32)
	exp := now.Add(s.opts.TokenTTL)
	var scopes []string
	for _, sc := range allScopes {
		if !slices.Contains(f.MissingScopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	s.mu.Lock()
	s.tokens[tok] = tokenInfo{org: o, sub: sub, expires: exp}
	form := s.issued
	s.issued++
	if s.issued%1024 == 0 { // forget expired tokens now and then
		for k, ti := range s.tokens {
			if !now.Before(ti.expires) {
				delete(s.tokens, k)
			}
		}
	}
	s.mu.Unlock()
	body := map[string]any{"token_type": "Bearer", "access_token": tok, "scope": strings.Join(scopes, " ")}
	if s.documented() {
		body["expires_at"] = expiresAt(exp, form)
	} else {
		body["expires_at"], body["expires_in"] = exp.Format(time.RFC3339), int(s.opts.TokenTTL/time.Second)
	}
	writeJSON(w, http.StatusOK, body)
}

// minus5 is the offset of the third expires_at form.
var minus5 = time.FixedZone("-0500", -5*3600)

// expiresAt renders a token's expiry in the documented profile's n-th form (n modulo 4): RFC
// 3339 UTC with milliseconds, RFC 3339 UTC in whole seconds, milliseconds at a -0500 offset
// (no colon), epoch seconds as a JSON number. Each form rounds down to its precision, so a
// client never believes a token lives longer than it does.
func expiresAt(exp time.Time, n int) any {
	switch n % 4 {
	case 0:
		return exp.UTC().Format(tsLayout)
	case 1:
		return exp.UTC().Format("2006-01-02T15:04:05Z")
	case 2:
		return exp.In(minus5).Format("2006-01-02T15:04:05.000-0700")
	}
	return exp.Unix()
}

// authorize resolves a request's bearer token to its organisation; ok is false when the token
// is unknown (org nil) or expired.
func (s *Server) authorize(r *http.Request) (ti tokenInfo, ok bool) {
	tok, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !found || tok == "" {
		return tokenInfo{}, false
	}
	s.mu.Lock()
	ti, known := s.tokens[strings.TrimSpace(tok)]
	s.mu.Unlock()
	if !known {
		return tokenInfo{}, false
	}
	return ti, s.opts.Now().Before(ti.expires)
}

func unauthorized(w http.ResponseWriter) {
	writeJSON(w, http.StatusUnauthorized, map[string]any{"message": "Unauthorized",
		"errors": []string{"Token could not be decoded. Please ensure your token is from a trusted source."}})
}

// admitted is what front hands a handler once a request passed auth, faults and limits.
type admitted struct {
	org *Org
	sub int64
	f   Faults
	now time.Time
	seq int // the organisation's quirk counter at admission, to alternate fault shapes
}

// front runs what every Harvest and Audit Log request goes through: auth, statistics, faults,
// rate limits (headers on every answer, as the profile has them) and the Site Admin rule. It
// answers itself and returns false when the request stops here.
func (s *Server) front(w http.ResponseWriter, r *http.Request, kind, scope string, paged bool) (admitted, bool) {
	ti, ok := s.authorize(r)
	if ti.org == nil {
		s.countStray(kind)
		unauthorized(w)
		return admitted{}, false
	}
	o := ti.org
	now := s.opts.Now().UTC()
	lim := limit{kind, s.opts.HarvestLimit, s.opts.HarvestWindow}
	if kind == "audit" {
		lim = limit{kind, s.opts.AuditLimit, s.opts.AuditWindow}
	}
	pagedLim := limit{"audit-paged", s.opts.AuditPagedLimit, s.opts.AuditPagedWindow}

	o.mu.Lock()
	o.stats.Requests++
	if kind == "harvest" {
		o.stats.HarvestRequests++
	} else {
		o.stats.AuditRequests++
		if paged {
			o.stats.AuditPaged++
		}
	}
	f := o.faults
	f.MissingScopes = slices.Clone(f.MissingScopes)
	failed := ok && o.fail5xx()
	fits, reset := o.room(lim, now)
	remaining := 0
	throttled := false
	if ok && !failed {
		if fits && paged {
			var pReset time.Time
			if fits, pReset = o.room(pagedLim, now); !fits {
				reset = pReset
			}
		}
		throttled = !fits || f.Malformed == "absurd_retry_after"
		if fits {
			remaining = o.take(lim)
			if paged {
				o.take(pagedLim)
			}
		}
		if throttled {
			o.stats.Throttled++
		}
	}
	o.quirk++
	a := admitted{org: o, sub: ti.sub, f: f, now: now, seq: o.quirk}
	o.mu.Unlock()

	if !delay(r, f.Latency) {
		return a, false
	}
	if !ok {
		unauthorized(w)
		return a, false
	}
	if failed {
		writeJSON(w, http.StatusServiceUnavailable, msg("Service Unavailable"))
		return a, false
	}
	h := w.Header()
	// The generous profile sends X-RateLimit-Reset on every answer; the documented one only on
	// a Harvest 429.
	if !s.documented() || throttled && kind == "harvest" {
		h.Set("X-RateLimit-Reset", strconv.FormatInt(resetSeconds(reset), 10))
	}
	if throttled {
		h.Set("Retry-After", strconv.Itoa(retryAfter(reset, now)))
		if f.Malformed == "absurd_retry_after" {
			h.Set("Retry-After", "99999999999")
		}
		if kind == "harvest" { // the Audit Log omits limit and remaining on a 429
			h.Set("X-RateLimit-Limit", strconv.Itoa(lim.max))
			h.Set("X-RateLimit-Remaining", "0")
		}
		writeJSON(w, http.StatusTooManyRequests, msg("Rate limit exceeded"))
		return a, false
	}
	h.Set("X-RateLimit-Limit", strconv.Itoa(lim.max))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
	if slices.Contains(f.MissingScopes, scope) {
		writeJSON(w, http.StatusForbidden, forbidden("Missing required scope: "+scope))
		return a, false
	}
	o.mu.Lock()
	u := o.byID[ti.sub]
	notAdmin := f.AdminNotSiteAdmin || (ti.sub != 0 && (u == nil || u.Removed || u.Deactivated || !u.SiteAdmin))
	o.mu.Unlock()
	if notAdmin {
		writeJSON(w, http.StatusForbidden, forbidden(siteAdminReason))
		return a, false
	}
	return a, true
}

// listFunc lists one page of a Harvest collection in id-descending order: items with an id
// below before (0: from the top) that match q, at most per of them; more tells whether
// another matching item follows.
type listFunc func(o *Org, q url.Values, before int64, per int) (items []any, more bool, err error)

// fieldError is a 422 on a query parameter.
type fieldError struct{ field, msg string }

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

const cursorOnly = "When passing a cursor, do not include other query params."

// harvest wraps a list with auth, limits, cursor rules, pagination and faults; target indexes
// harvestTargets, the target_type of the harvest_access event a 200 records in the documented
// profile.
func (s *Server) harvest(scope string, target int, list listFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a, ok := s.front(w, r, "harvest", scope, false)
		if !ok {
			return
		}
		q := r.URL.Query()
		var before int64
		if q.Has("cursor") {
			if len(q) > 1 || len(q["cursor"]) > 1 {
				writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"errors": []string{cursorOnly}})
				return
			}
			cq, b, err := decodeCursor(q.Get("cursor"))
			if err != nil {
				writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"errors": []string{"Invalid cursor."}})
				return
			}
			q, before = cq, b
		}
		per := 100
		if v := q.Get("per_page"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 500 {
				writeJSON(w, http.StatusUnprocessableEntity, validation("per_page", "must be an integer between 1 and 500"))
				return
			}
			per = n
		}
		a.org.mu.Lock()
		items, more, err := list(a.org, q, before, per)
		if err == nil && a.sub != 0 && s.documented() {
			// Every answer from here on is a 200: the sub's own traffic enters its Audit Log.
			a.org.recordHarvestAccess(a.sub, a.now, target, requestTarget(r))
		}
		a.org.mu.Unlock()
		var fe *fieldError
		if errors.As(err, &fe) {
			writeJSON(w, http.StatusUnprocessableEntity, validation(fe.field, fe.msg))
			return
		}
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, msg("Internal Server Error"))
			return
		}
		if items == nil {
			items = []any{} // an empty page is [], never null
		}
		if more {
			last := lastID(items[len(items)-1])
			w.Header().Set("Link", fmt.Sprintf(`<%s%s?cursor=%s>; rel="next"`, origin(r), r.URL.Path, encodeCursor(q, last)))
		}
		if a.f.Malformed != "" && breakBody(w, a, items, wrongType(a.seq)) {
			return
		}
		writeJSON(w, http.StatusOK, items)
	}
}

// requestTarget is the request's path and query as sent.
func requestTarget(r *http.Request) string {
	if r.RequestURI != "" {
		return r.RequestURI
	}
	return r.URL.RequestURI()
}

// origin is the scheme and host the request reached, so links work behind httptest.
func origin(r *http.Request) string {
	if r.TLS != nil {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}

func lastID(item any) int64 {
	switch v := item.(type) {
	case userJSON:
		return v.ID
	case roleJSON:
		return v.ID
	case jobPermJSON:
		return v.ID
	case futurePermJSON:
		return v.ID
	}
	return 0
}

// A cursor is opaque URL-safe base64 of the first request's query plus the last id served.
func encodeCursor(q url.Values, last int64) string {
	c := url.Values{}
	for k, v := range q {
		c[k] = v
	}
	c.Set("_before", strconv.FormatInt(last, 10))
	return base64.RawURLEncoding.EncodeToString([]byte(c.Encode()))
}

func decodeCursor(c string) (url.Values, int64, error) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return nil, 0, err
	}
	q, err := url.ParseQuery(string(raw))
	if err != nil {
		return nil, 0, err
	}
	before, err := strconv.ParseInt(q.Get("_before"), 10, 64)
	if err != nil || before <= 0 {
		return nil, 0, errors.New("cursor without position")
	}
	q.Del("_before")
	return q, before, nil
}

// breakBody writes a malformed answer for the organisation's Malformed fault; false when the
// fault leaves this answer alone.
func breakBody(w http.ResponseWriter, a admitted, good, wrong any) bool {
	switch a.f.Malformed {
	case "wrong_type":
		writeJSON(w, http.StatusOK, wrong)
		return true
	case "html":
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("<!DOCTYPE html><html><head><title>Greenhouse</title></head><body><h1>We'll be right back</h1></body></html>"))
		return true
	case "truncated":
		b, _ := json.Marshal(good)
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(b[:len(b)/2])
		return true
	case "hostile_link":
		links := []string{
			`<https://evil.example/v3/users?cursor=abc>; rel="next"`,
			`<javascript:alert(document.cookie)>; rel="next"`,
			`<<<garbage>>>;;; rel=next; <`,
			`<http://169.254.169.254/latest/meta-data/>; rel="next"`,
		}
		w.Header().Set("Link", links[a.seq%len(links)])
		return false
	case "huge":
		writeHuge(w)
		return true
	}
	return false
}

// hugeSize is above the 64 MiB a client is expected to accept.
const hugeSize = 72 << 20

// writeHuge streams a syntactically valid JSON array of hugeSize bytes, stopping when the
// client goes away.
func writeHuge(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	chunk := []byte(strings.Repeat("x", 64<<10))
	if _, err := w.Write([]byte(`[{"id":1,"name":"`)); err != nil {
		return
	}
	for n := 0; n < hugeSize; n += len(chunk) {
		if _, err := w.Write(chunk); err != nil {
			return
		}
	}
	_, _ = w.Write([]byte(`"}]`))
}

// wrongType is a page whose ids are strings or objects, alternately.
func wrongType(seq int) []any {
	if seq%2 == 0 {
		return []any{map[string]any{"id": "4080123", "deactivated": "no", "site_admin": "yes", "created_at": 12}}
	}
	return []any{map[string]any{"id": map[string]int{"value": 4080123}, "name": []string{"x"}}}
}

const tsLayout = "2006-01-02T15:04:05.000Z"

func ts(t time.Time) string { return t.UTC().Format(tsLayout) }

type userJSON struct {
	ID                 int64          `json:"id"`
	CreatedAt          string         `json:"created_at"`
	UpdatedAt          string         `json:"updated_at"`
	FirstName          string         `json:"first_name"`
	LastName           string         `json:"last_name"`
	Name               string         `json:"name"`
	PrimaryEmail       string         `json:"primary_email"`
	Emails             []string       `json:"emails"`
	JobTitle           *string        `json:"job_title"`
	AgencyID           *int64         `json:"agency_id"`
	Deactivated        bool           `json:"deactivated"`
	SiteAdmin          bool           `json:"site_admin"`
	EmployeeID         *string        `json:"employee_id"`
	LinkedCandidateIDs []int64        `json:"linked_candidate_ids"`
	OfficeIDs          []int64        `json:"office_ids"`
	DepartmentIDs      []int64        `json:"department_ids"`
	InterviewerTags    []any          `json:"interviewer_tags"`
	CustomFields       map[string]any `json:"custom_fields"`
}

func (u *user) json() userJSON {
	emails := []string{}
	if u.Email != "" {
		emails = append(emails, u.Email)
	}
	return userJSON{ID: u.ID, CreatedAt: ts(u.CreatedAt), UpdatedAt: ts(u.UpdatedAt), FirstName: u.First, LastName: u.Last,
		Name: u.name(), PrimaryEmail: u.Email, Emails: emails, Deactivated: u.Deactivated, SiteAdmin: u.SiteAdmin,
		LinkedCandidateIDs: []int64{}, OfficeIDs: []int64{}, DepartmentIDs: []int64{}, InterviewerTags: []any{},
		CustomFields: map[string]any{}}
}

type roleJSON struct {
	ID        int64  `json:"id"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
	RoleType  string `json:"role_type"`
	Name      string `json:"name"`
}

type jobPermJSON struct {
	ID        int64  `json:"id"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
	JobID     int64  `json:"job_id"`
	UserID    int64  `json:"user_id"`
	RoleID    int64  `json:"role_id"`
	Automated bool   `json:"automated"`
}

type futurePermJSON struct {
	ID           int64  `json:"id"`
	CreatedAt    string `json:"created_at"`
	UpdatedAt    string `json:"updated_at"`
	UserID       int64  `json:"user_id"`
	RoleID       int64  `json:"role_id"`
	DepartmentID *int64 `json:"department_id"`
	OfficeID     *int64 `json:"office_id"`
}

// pipeFilter parses "gte|t|lte|t" (operators gte, lte, gt, lt) into a predicate.
func pipeFilter(field, v string) (func(time.Time) bool, error) {
	parts := strings.Split(v, "|")
	if len(parts)%2 != 0 || len(parts) == 0 {
		return nil, &fieldError{field, "must be operator|time pairs, e.g. gte|2024-01-01T00:00:00Z"}
	}
	type bound struct {
		op string
		t  time.Time
	}
	var bs []bound
	for i := 0; i < len(parts); i += 2 {
		t, err := time.Parse(time.RFC3339Nano, parts[i+1])
		if err != nil {
			return nil, &fieldError{field, fmt.Sprintf("invalid time %q", parts[i+1])}
		}
		switch parts[i] {
		case "gte", "gt", "lte", "lt":
		default:
			return nil, &fieldError{field, fmt.Sprintf("invalid operator %q: use gte, gt, lte or lt", parts[i])}
		}
		bs = append(bs, bound{parts[i], t})
	}
	return func(x time.Time) bool {
		for _, b := range bs {
			c := x.Compare(b.t)
			if b.op == "gte" && c < 0 || b.op == "gt" && c <= 0 || b.op == "lte" && c > 0 || b.op == "lt" && c >= 0 {
				return false
			}
		}
		return true
	}, nil
}

// idSet parses a comma-separated list of at most 50 ids; nil when absent.
func idSet(field, v string) (map[int64]bool, error) {
	if v == "" {
		return nil, nil
	}
	parts := strings.Split(v, ",")
	if len(parts) > 50 {
		return nil, &fieldError{field, "at most 50 ids"}
	}
	out := make(map[int64]bool, len(parts))
	for _, p := range parts {
		n, err := strconv.ParseInt(strings.TrimSpace(p), 10, 64)
		if err != nil {
			return nil, &fieldError{field, fmt.Sprintf("invalid id %q", p)}
		}
		out[n] = true
	}
	return out, nil
}

func boolParam(q url.Values, field string) (*bool, error) {
	v := q.Get(field)
	if v == "" {
		return nil, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return nil, &fieldError{field, "must be true or false"}
	}
	return &b, nil
}

// startBelow is the index of the first element (counting down) with id below before.
func startBelow(n int, id func(int) int64, before int64) int {
	if before == 0 {
		return n - 1
	}
	lo, hi := 0, n // first index with id >= before
	for lo < hi {
		m := (lo + hi) / 2
		if id(m) < before {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo - 1
}

func listUsers(o *Org, q url.Values, before int64, per int) ([]any, bool, error) {
	ids, err := idSet("ids", q.Get("ids"))
	if err != nil {
		return nil, false, err
	}
	if q.Get("created_at") != "" && q.Get("updated_at") != "" {
		return nil, false, &fieldError{"updated_at", "do not send created_at and updated_at together"}
	}
	var created, updated func(time.Time) bool
	if v := q.Get("created_at"); v != "" {
		if created, err = pipeFilter("created_at", v); err != nil {
			return nil, false, err
		}
	}
	if v := q.Get("updated_at"); v != "" {
		if updated, err = pipeFilter("updated_at", v); err != nil {
			return nil, false, err
		}
	}
	deact, err := boolParam(q, "deactivated")
	if err != nil {
		return nil, false, err
	}
	show, err := boolParam(q, "show_service_accounts")
	if err != nil {
		return nil, false, err
	}
	email := q.Get("primary_email")
	var out []any
	for i := startBelow(len(o.users), func(i int) int64 { return o.users[i].ID }, before); i >= 0; i-- {
		u := o.users[i]
		switch {
		case u.Removed, u.Service && (show == nil || !*show), ids != nil && !ids[u.ID],
			deact != nil && u.Deactivated != *deact, created != nil && !created(u.CreatedAt),
			updated != nil && !updated(u.UpdatedAt), email != "" && !strings.EqualFold(email, u.Email):
			continue
		}
		if len(out) == per {
			return out, true, nil
		}
		out = append(out, u.json())
	}
	return out, false, nil
}

func listRoles(o *Org, _ url.Values, before int64, per int) ([]any, bool, error) {
	created := ts(time.Date(2019, 3, 4, 10, 0, 0, 0, time.UTC))
	var out []any
	for i := startBelow(len(o.roles), func(i int) int64 { return o.roles[i].ID }, before); i >= 0; i-- {
		if len(out) == per {
			return out, true, nil
		}
		rl := o.roles[i]
		out = append(out, roleJSON{ID: rl.ID, CreatedAt: created, UpdatedAt: created, RoleType: rl.Type, Name: rl.Name})
	}
	return out, false, nil
}

func listPerms(o *Org, q url.Values, before int64, per int, ps []perm, future bool) ([]any, bool, error) {
	users, err := idSet("user_ids", q.Get("user_ids"))
	if err != nil {
		return nil, false, err
	}
	var jobs map[int64]bool
	if !future {
		if jobs, err = idSet("job_ids", q.Get("job_ids")); err != nil {
			return nil, false, err
		}
	}
	var out []any
	for i := startBelow(len(ps), func(i int) int64 { return ps[i].ID }, before); i >= 0; i-- {
		p := ps[i]
		if users != nil && !users[p.UserID] || jobs != nil && !jobs[p.JobID] {
			continue
		}
		if u := o.byID[p.UserID]; u == nil || u.Removed {
			continue
		}
		if len(out) == per {
			return out, true, nil
		}
		if future {
			fp := futurePermJSON{ID: p.ID, CreatedAt: ts(p.CreatedAt), UpdatedAt: ts(p.UpdatedAt), UserID: p.UserID, RoleID: p.RoleID}
			if p.DepartmentID != 0 {
				fp.DepartmentID = &p.DepartmentID
			}
			if p.OfficeID != 0 {
				fp.OfficeID = &p.OfficeID
			}
			out = append(out, fp)
			continue
		}
		out = append(out, jobPermJSON{ID: p.ID, CreatedAt: ts(p.CreatedAt), UpdatedAt: ts(p.UpdatedAt), JobID: p.JobID,
			UserID: p.UserID, RoleID: p.RoleID, Automated: p.Automated})
	}
	return out, false, nil
}

func listJobPerms(o *Org, q url.Values, before int64, per int) ([]any, bool, error) {
	return listPerms(o, q, before, per, o.jobPerms, false)
}

func listFuturePerms(o *Org, q url.Values, before int64, per int) ([]any, bool, error) {
	return listPerms(o, q, before, per, o.futurePerms, true)
}
