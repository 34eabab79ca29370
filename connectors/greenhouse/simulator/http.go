package simulator

import (
	"encoding/json"
	"net/http"
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
	g := s.gate(ti, ok, kind, paged)
	a := g.a
	if !delay(r, a.f.Latency) {
		return a, false
	}
	if !ok {
		unauthorized(w)
		return a, false
	}
	if g.failed {
		writeJSON(w, http.StatusServiceUnavailable, msg("Service Unavailable"))
		return a, false
	}
	if !s.rateHeaders(w, kind, g) {
		return a, false
	}
	if slices.Contains(a.f.MissingScopes, scope) {
		writeJSON(w, http.StatusForbidden, forbidden("Missing required scope: "+scope))
		return a, false
	}
	o := a.org
	o.mu.Lock()
	u := o.byID[ti.sub]
	notAdmin := a.f.AdminNotSiteAdmin || (ti.sub != 0 && (u == nil || u.Removed || u.Deactivated || !u.SiteAdmin))
	o.mu.Unlock()
	if notAdmin {
		writeJSON(w, http.StatusForbidden, forbidden(siteAdminReason))
		return a, false
	}
	return a, true
}

// gated is a request's pass through its organisation's faults and limits.
type gated struct {
	a         admitted
	lim       limit
	failed    bool // an injected 5xx
	throttled bool
	reset     time.Time
	remaining int
}

// gate counts a request of kind and applies the organisation's faults and its limit of kind
// (and the paginated Audit Log's, when paged); a request with an expired token (ok false) is
// counted and nothing more.
func (s *Server) gate(ti tokenInfo, ok bool, kind string, paged bool) gated {
	o := ti.org
	now := s.opts.Now().UTC()
	g := gated{lim: limit{kind, s.opts.HarvestLimit, s.opts.HarvestWindow}}
	if kind == "audit" {
		g.lim = limit{kind, s.opts.AuditLimit, s.opts.AuditWindow}
	}
	pagedLim := limit{"audit-paged", s.opts.AuditPagedLimit, s.opts.AuditPagedWindow}
	o.mu.Lock()
	defer o.mu.Unlock()
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
	g.failed = ok && o.fail5xx()
	fits, reset := o.room(g.lim, now)
	g.reset = reset
	if ok && !g.failed {
		if fits && paged {
			var pReset time.Time
			if fits, pReset = o.room(pagedLim, now); !fits {
				g.reset = pReset
			}
		}
		g.throttled = !fits || f.Malformed == "absurd_retry_after"
		if fits {
			g.remaining = o.take(g.lim)
			if paged {
				o.take(pagedLim)
			}
		}
		if g.throttled {
			o.stats.Throttled++
		}
	}
	o.quirk++
	g.a = admitted{org: o, sub: ti.sub, f: f, now: now, seq: o.quirk}
	return g
}

// rateHeaders sets the rate-limit headers of an answer as the profile has them, and answers
// 429 itself (returning false) when the request was throttled.
func (s *Server) rateHeaders(w http.ResponseWriter, kind string, g gated) bool {
	h := w.Header()
	// The generous profile sends X-RateLimit-Reset on every answer; the documented one only on
	// a Harvest 429.
	if !s.documented() || g.throttled && kind == "harvest" {
		h.Set("X-RateLimit-Reset", strconv.FormatInt(resetSeconds(g.reset), 10))
	}
	if g.throttled {
		h.Set("Retry-After", strconv.Itoa(retryAfter(g.reset, g.a.now)))
		if g.a.f.Malformed == "absurd_retry_after" {
			h.Set("Retry-After", "99999999999")
		}
		if kind == "harvest" { // the Audit Log omits limit and remaining on a 429
			h.Set("X-RateLimit-Limit", strconv.Itoa(g.lim.max))
			h.Set("X-RateLimit-Remaining", "0")
		}
		writeJSON(w, http.StatusTooManyRequests, msg("Rate limit exceeded"))
		return false
	}
	h.Set("X-RateLimit-Limit", strconv.Itoa(g.lim.max))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(g.remaining))
	return true
}

// breakBody writes a malformed answer for the organisation's Malformed fault instead of the
// good body; false when the fault leaves this answer alone.
func breakBody(w http.ResponseWriter, a admitted, good []byte, wrong any) bool {
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
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(good[:len(good)/2])
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
