package simulator

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The token endpoint, POST /token: client credentials with sub, its own rate limit, and the
// expiry in the profile's forms.

// token serves POST /token: the client, its limit and faults, then the grant.
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
	f, ok := s.tokenGate(w, r, o, now)
	if !ok {
		return
	}
	if f.InvalidClient || secret != o.cred.ClientSecret {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		return
	}
	sub, ok := grant(w, r, o)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, s.issue(o, sub, f, now))
}

// tokenGate counts a token request of o and applies its faults and the token limit, with the
// profile's rate-limit headers; it answers 503 or 429 itself and returns false then.
func (s *Server) tokenGate(w http.ResponseWriter, r *http.Request, o *Org, now time.Time) (Faults, bool) {
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
		return f, false
	}
	if failed {
		writeJSON(w, http.StatusServiceUnavailable, msg("Service Unavailable"))
		return f, false
	}
	if !s.documented() { // the token endpoint documents no X-RateLimit-Reset
		w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(resetSeconds(reset), 10))
	}
	if !fits {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter(reset, now)))
		writeJSON(w, http.StatusTooManyRequests, msg("Rate limit exceeded"))
		return f, false
	}
	if !s.documented() { // no Greenhouse doc shows rate-limit headers on the token endpoint
		w.Header().Set("X-RateLimit-Limit", strconv.Itoa(lim.max))
		w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
	}
	return f, true
}

// grant reads the client-credentials grant and its sub, which must name an active user of o
// (0 without sub); it answers 400 itself and returns false when the grant is refused.
func grant(w http.ResponseWriter, r *http.Request, o *Org) (int64, bool) {
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request",
			"error_description": "Must include grant_type in the form-encoded request body."})
		return 0, false
	}
	if g := r.PostForm.Get("grant_type"); g != "client_credentials" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type",
			"error_description": "grant_type " + strconv.Quote(g) + " is not supported for this client."})
		return 0, false
	}
	v := r.PostForm.Get("sub")
	if v == "" {
		return 0, true
	}
	n, err := strconv.ParseInt(v, 10, 64)
	o.mu.Lock()
	u := o.byID[n]
	active := err == nil && u != nil && !u.Removed && !u.Deactivated
	o.mu.Unlock()
	if !active {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant",
			"error_description": fmt.Sprintf("sub %s is not an active user of this organization.", strconv.Quote(v))})
		return 0, false
	}
	return n, true
}

// issue mints a token of o acting as sub, with the scopes faults leave, and returns the body
// of its answer.
func (s *Server) issue(o *Org, sub int64, f Faults, now time.Time) map[string]any {
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
	return body
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
