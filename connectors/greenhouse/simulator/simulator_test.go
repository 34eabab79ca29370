package simulator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse/simulator"
)

// clock is a settable clock for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// roomy are limits no test meets unless it means to.
func roomy(c *clock) simulator.Options {
	o := simulator.Options{HarvestLimit: 1 << 20, AuditLimit: 1 << 20, AuditPagedLimit: 1 << 20, TokenLimit: 1 << 20}
	if c != nil {
		o.Now = c.Now
	}
	return o
}

type harness struct {
	t     *testing.T
	sim   *simulator.Server
	srv   *httptest.Server
	org   *simulator.Org
	clock *clock
	token string
}

func newHarness(t *testing.T, opts simulator.Options, spec simulator.OrgSpec) *harness {
	t.Helper()
	c := newClock()
	if opts.Now == nil {
		opts.Now = c.Now
	}
	sim := simulator.New(opts)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	org, err := sim.AddOrg(spec)
	require.NoError(t, err)
	h := &harness{t: t, sim: sim, srv: srv, org: org, clock: c}
	h.token = h.mint(org.Credentials().AdminUserID)
	return h
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) json(t *testing.T, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(r.body, v), "body: %.300s", r.body)
}

func (h *harness) tokenReq(id, secret, form string) reply {
	req, err := http.NewRequest(http.MethodPost, h.srv.URL+"/token", strings.NewReader(form))
	require.NoError(h.t, err)
	if id != "" {
		req.SetBasicAuth(id, secret)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return h.do(req)
}

func (h *harness) mint(sub int64) string {
	h.t.Helper()
	c := h.org.Credentials()
	r := h.tokenReq(c.ClientID, c.ClientSecret, "grant_type=client_credentials&sub="+strconv.FormatInt(sub, 10))
	require.Equal(h.t, http.StatusOK, r.status, "%s", r.body)
	var tok struct {
		TokenType   string `json:"token_type"`
		AccessToken string `json:"access_token"`
	}
	r.json(h.t, &tok)
	require.Equal(h.t, "Bearer", tok.TokenType)
	require.NotEmpty(h.t, tok.AccessToken)
	return tok.AccessToken
}

func (h *harness) do(req *http.Request) reply {
	h.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(h.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(h.t, err)
	return reply{resp.StatusCode, resp.Header, b}
}

// get sends a GET with the harness token; hdr are extra headers as name, value pairs.
func (h *harness) get(target string, hdr ...string) reply {
	h.t.Helper()
	if !strings.HasPrefix(target, "http") {
		target = h.srv.URL + target
	}
	req, err := http.NewRequest(http.MethodGet, target, nil)
	require.NoError(h.t, err)
	req.Header.Set("Authorization", "Bearer "+h.token)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return h.do(req)
}

var nextRe = regexp.MustCompile(`^<([^>]+)>; rel="next"$`)

// listIDs follows a Harvest listing to its end and returns the ids in served order.
func (h *harness) listIDs(first string) []int64 {
	h.t.Helper()
	var ids []int64
	for target, pages := first, 0; target != ""; pages++ {
		require.Less(h.t, pages, 10_000)
		r := h.get(target)
		require.Equal(h.t, http.StatusOK, r.status, "%s: %s", target, r.body)
		var items []struct {
			ID int64 `json:"id"`
		}
		r.json(h.t, &items)
		for _, it := range items {
			ids = append(ids, it.ID)
		}
		target = ""
		if l := r.header.Get("Link"); l != "" {
			m := nextRe.FindStringSubmatch(l)
			require.NotNil(h.t, m, "link %q", l)
			require.True(h.t, strings.HasPrefix(m[1], h.srv.URL+"/v3/"), "link %q on the request's own host", l)
			target = m[1]
		}
	}
	return ids
}

func truthUsers(tr simulator.Truth, keep func(simulator.TruthUser) bool) []int64 {
	var out []int64
	for _, u := range tr.Users {
		if keep(u) {
			out = append(out, u.ID)
		}
	}
	slices.Reverse(out)
	return out
}

func TestAddOrgValidatesAndGeneratesARealisticOrg(t *testing.T) {
	c := newClock()
	sim := simulator.New(roomy(c))
	for _, n := range []int{0, -1, 50001} {
		_, err := sim.AddOrg(simulator.OrgSpec{Name: "bad", Users: n})
		assert.Error(t, err, "users %d", n)
	}
	org, err := sim.AddOrg(simulator.OrgSpec{Name: "Acme Corp", Seed: 42, Users: 3000})
	require.NoError(t, err)
	cred := org.Credentials()
	assert.Regexp(t, `^[0-9a-f]{24}-[0-9]+$`, cred.ClientID)
	assert.NotContains(t, cred.String(), cred.ClientSecret, "String masks the secret")

	tr := org.Truth()
	require.Len(t, tr.Users, 3000)
	assert.Equal(t, 3000*40, tr.Events, "default events are users*40, all within retention")
	frac := func(keep func(simulator.TruthUser) bool) float64 {
		return float64(len(truthUsers(tr, keep))) / float64(len(tr.Users))
	}
	now := c.Now()
	assert.InDelta(t, 0.03, frac(func(u simulator.TruthUser) bool { return u.SiteAdmin }), 0.015, "site admins")
	assert.InDelta(t, 0.02, frac(func(u simulator.TruthUser) bool { return u.ServiceAccount }), 0.01, "service accounts")
	assert.InDelta(t, 0.08, frac(func(u simulator.TruthUser) bool { return u.Status == "deactivated" }), 0.02, "deactivated")
	assert.InDelta(t, 0.29, frac(func(u simulator.TruthUser) bool { return u.LicenseType == "job_admin" }), 0.05, "job admins")
	assert.InDelta(t, 0.05, frac(func(u simulator.TruthUser) bool { return now.Sub(u.CreatedAt) < 20*24*time.Hour }), 0.02, "new users")
	assert.InDelta(t, 0.0, frac(func(u simulator.TruthUser) bool { return now.Sub(u.CreatedAt) > 3*366*24*time.Hour }), 0, "at most 3 years old")
	var active, idle int
	for i, u := range tr.Users {
		if i > 0 {
			require.Greater(t, u.ID, tr.Users[i-1].ID, "truth users sorted by id")
		}
		assert.False(t, u.UpdatedAt.Before(u.CreatedAt))
		assert.False(t, u.UpdatedAt.After(now))
		if u.ServiceAccount {
			assert.Empty(t, u.Email)
			assert.Nil(t, u.LastActivityAt, "service accounts do not act")
		}
		if u.Status == "active" && !u.ServiceAccount {
			active++
			if u.LastActivityAt == nil {
				idle++
			}
		}
		if u.ID == cred.AdminUserID {
			assert.True(t, u.SiteAdmin && !u.ServiceAccount && u.Status == "active", "the admin is an active Site Admin")
		}
	}
	assert.InDelta(t, 0.25, float64(idle)/float64(active), 0.05, "a quarter of active users are idle")
	assert.InDelta(t, 0.9, float64(tr.UserEvents)/float64(tr.Events), 0.02, "a tenth are api key events")

	// Deterministic from the seed (credentials apart).
	again, err := simulator.New(roomy(c)).AddOrg(simulator.OrgSpec{Name: "Acme Corp", Seed: 42, Users: 3000})
	require.NoError(t, err)
	assert.Equal(t, tr, again.Truth())
	assert.NotEqual(t, cred.ClientID, again.Credentials().ClientID)
}

func TestUsersCursorPagination(t *testing.T) {
	h := newHarness(t, roomy(nil), simulator.OrgSpec{Name: "acme", Seed: 1, Users: 1234, Events: 10})
	visible := truthUsers(h.org.Truth(), func(u simulator.TruthUser) bool { return !u.ServiceAccount })
	for _, tc := range []struct {
		name  string
		query string
		pages int
	}{
		{"default 100 per page", "", (len(visible) + 99) / 100},
		{"500 per page", "?per_page=500", (len(visible) + 499) / 500},
		{"7 per page", "?per_page=7", (len(visible) + 6) / 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := h.org.Stats().HarvestRequests
			ids := h.listIDs("/v3/users" + tc.query)
			assert.Equal(t, visible, ids, "every visible user once, id descending")
			assert.Equal(t, int64(tc.pages), h.org.Stats().HarvestRequests-before, "one request per page")
		})
	}
	t.Run("a single page has no link", func(t *testing.T) {
		r := h.get("/v3/users?per_page=500&ids=" + strconv.FormatInt(visible[0], 10))
		require.Equal(t, http.StatusOK, r.status)
		assert.Empty(t, r.header.Get("Link"))
	})
	t.Run("an empty page is []", func(t *testing.T) {
		r := h.get("/v3/users?ids=1")
		require.Equal(t, http.StatusOK, r.status)
		assert.Equal(t, "[]", strings.TrimSpace(string(r.body)))
	})
	first := h.get("/v3/users?per_page=2")
	link := nextRe.FindStringSubmatch(first.header.Get("Link"))
	require.NotNil(t, link)
	for _, tc := range []struct {
		name, target, body string
	}{
		{"cursor with per_page", link[1] + "&per_page=5", `{"errors":["When passing a cursor, do not include other query params."]}`},
		{"cursor with a filter", link[1] + "&deactivated=true", `{"errors":["When passing a cursor, do not include other query params."]}`},
		{"garbage cursor", "/v3/users?cursor=!!not-base64!!", ""},
		{"per_page 0", "/v3/users?per_page=0", ""},
		{"per_page 501", "/v3/users?per_page=501", ""},
		{"per_page text", "/v3/users?per_page=many", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.get(tc.target)
			assert.Equal(t, http.StatusUnprocessableEntity, r.status, "%s", r.body)
			if tc.body != "" {
				assert.JSONEq(t, tc.body, string(r.body))
			}
		})
	}
}

func TestUserShapeAndFilters(t *testing.T) {
	h := newHarness(t, roomy(nil), simulator.OrgSpec{Name: "acme", Seed: 2, Users: 600, Events: 10})
	tr := h.org.Truth()
	r := h.get("/v3/users?per_page=1")
	var raw []map[string]any
	r.json(t, &raw)
	require.Len(t, raw, 1)
	for _, k := range []string{"id", "created_at", "updated_at", "first_name", "last_name", "name", "primary_email", "emails",
		"job_title", "agency_id", "deactivated", "site_admin", "employee_id", "linked_candidate_ids", "office_ids",
		"department_ids", "interviewer_tags", "custom_fields"} {
		assert.Contains(t, raw[0], k)
	}
	assert.Regexp(t, `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`, raw[0]["created_at"])

	mid := tr.Users[len(tr.Users)/2]
	cut := mid.UpdatedAt.Format(time.RFC3339Nano)
	ccut := mid.CreatedAt.Format(time.RFC3339Nano)
	var someIDs []string
	for _, u := range tr.Users[:3] {
		someIDs = append(someIDs, strconv.FormatInt(u.ID, 10))
	}
	many := make([]string, 51)
	for i := range many {
		many[i] = strconv.Itoa(i + 1)
	}
	plain := func(u simulator.TruthUser) bool { return !u.ServiceAccount }
	for _, tc := range []struct {
		name  string
		query string
		keep  func(simulator.TruthUser) bool
	}{
		{"ids", "ids=" + strings.Join(someIDs, ","), func(u simulator.TruthUser) bool {
			return plain(u) && slices.Contains(someIDs, strconv.FormatInt(u.ID, 10))
		}},
		{"updated_at gte", "updated_at=gte|" + cut, func(u simulator.TruthUser) bool { return plain(u) && !u.UpdatedAt.Before(mid.UpdatedAt) }},
		{"updated_at gt and lte", "updated_at=gt|" + cut + "|lte|2100-01-01T00:00:00Z", func(u simulator.TruthUser) bool {
			return plain(u) && u.UpdatedAt.After(mid.UpdatedAt)
		}},
		{"created_at lt", "created_at=lt|" + ccut, func(u simulator.TruthUser) bool { return plain(u) && u.CreatedAt.Before(mid.CreatedAt) }},
		{"deactivated", "deactivated=true", func(u simulator.TruthUser) bool { return plain(u) && u.Status == "deactivated" }},
		{"active only", "deactivated=false", func(u simulator.TruthUser) bool { return plain(u) && u.Status == "active" }},
		{"service accounts shown", "show_service_accounts=true", func(simulator.TruthUser) bool { return true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ids := h.listIDs("/v3/users?per_page=100&" + strings.ReplaceAll(tc.query, "|", "%7C"))
			want := truthUsers(tr, tc.keep)
			require.NotEmpty(t, want)
			assert.Equal(t, want, ids)
		})
	}
	t.Run("service accounts have an empty primary email", func(t *testing.T) {
		r := h.get("/v3/users?per_page=500&show_service_accounts=true")
		var us []struct {
			ID           int64  `json:"id"`
			PrimaryEmail string `json:"primary_email"`
		}
		r.json(t, &us)
		svc := truthUsers(tr, func(u simulator.TruthUser) bool { return u.ServiceAccount })
		require.NotEmpty(t, svc)
		for _, u := range us {
			assert.Equal(t, slices.Contains(svc, u.ID), u.PrimaryEmail == "", "user %d", u.ID)
		}
	})
	for _, tc := range []struct{ name, query string }{
		{"51 ids", "ids=" + strings.Join(many, ",")},
		{"both date fields", "updated_at=gte%7C" + cut + "&created_at=gte%7C" + cut},
		{"unknown operator", "updated_at=after%7C" + cut},
		{"odd pipe parts", "updated_at=gte"},
		{"bad time", "created_at=gte%7Cyesterday"},
		{"bad bool", "deactivated=maybe"},
	} {
		t.Run("422 "+tc.name, func(t *testing.T) {
			r := h.get("/v3/users?" + tc.query)
			assert.Equal(t, http.StatusUnprocessableEntity, r.status, "%s", r.body)
			assert.Contains(t, string(r.body), `"errors"`)
		})
	}
}

func TestRolesAndPermissions(t *testing.T) {
	h := newHarness(t, roomy(nil), simulator.OrgSpec{Name: "acme", Seed: 3, Users: 900, Events: 10})
	tr := h.org.Truth()
	var roles []struct {
		ID       int64  `json:"id"`
		Name     string `json:"name"`
		RoleType string `json:"role_type"`
	}
	h.get("/v3/user_roles").json(t, &roles)
	types := map[string]int{}
	roleType := map[int64]string{}
	for _, r := range roles {
		types[r.RoleType]++
		roleType[r.ID] = r.RoleType
	}
	assert.Equal(t, map[string]int{"job_admin": 3, "deprecated_interviewer": 1, "site_admin": 1}, types)

	type permItem struct {
		ID     int64 `json:"id"`
		UserID int64 `json:"user_id"`
		JobID  int64 `json:"job_id"`
		RoleID int64 `json:"role_id"`
	}
	all := func(path string) []permItem {
		var out []permItem
		for target := path; target != ""; {
			r := h.get(target)
			require.Equal(t, http.StatusOK, r.status, "%s", r.body)
			var page []permItem
			r.json(t, &page)
			out = append(out, page...)
			target = ""
			if m := nextRe.FindStringSubmatch(r.header.Get("Link")); m != nil {
				target = m[1]
			}
		}
		return out
	}
	jobs := all("/v3/user_job_permissions?per_page=500")
	future := all("/v3/future_job_permissions?per_page=500")
	require.NotEmpty(t, jobs)
	require.NotEmpty(t, future)
	holders := map[int64]bool{}
	onlyFuture := map[int64]bool{}
	interviewer := 0
	for i, p := range append(slices.Clone(jobs), future...) {
		holders[p.UserID] = true
		assert.Contains(t, roleType, p.RoleID)
		if roleType[p.RoleID] == "deprecated_interviewer" {
			interviewer++
		}
		if i > 0 && i != len(jobs) {
			prev := append(slices.Clone(jobs), future...)[i-1]
			assert.Less(t, p.ID, prev.ID, "id descending")
		}
	}
	for _, p := range future {
		onlyFuture[p.UserID] = true
	}
	for _, p := range jobs {
		delete(onlyFuture, p.UserID)
	}
	assert.NotEmpty(t, onlyFuture, "some job admins hold only future permissions")
	assert.Positive(t, interviewer, "some permissions carry the Interviewer role")
	for _, u := range tr.Users {
		switch {
		case u.SiteAdmin:
			assert.False(t, holders[u.ID], "site admins never appear in permissions")
			assert.Equal(t, "site_admin", u.LicenseType)
		case holders[u.ID]:
			assert.Equal(t, "job_admin", u.LicenseType, "user %d", u.ID)
		default:
			assert.Equal(t, "basic", u.LicenseType, "user %d", u.ID)
		}
	}

	u0, job0 := jobs[0].UserID, jobs[0].JobID
	for _, tc := range []struct {
		name, query string
		keep        func(permItem) bool
	}{
		{"user_ids", "user_ids=" + strconv.FormatInt(u0, 10), func(p permItem) bool { return p.UserID == u0 }},
		{"job_ids", "job_ids=" + strconv.FormatInt(job0, 10), func(p permItem) bool { return p.JobID == job0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := all("/v3/user_job_permissions?" + tc.query)
			var want []permItem
			for _, p := range jobs {
				if tc.keep(p) {
					want = append(want, p)
				}
			}
			assert.Equal(t, want, got)
		})
	}
	many := strings.Repeat("1,", 50) + "1"
	assert.Equal(t, http.StatusUnprocessableEntity, h.get("/v3/user_job_permissions?job_ids="+many).status)
	assert.Equal(t, http.StatusUnprocessableEntity, h.get("/v3/future_job_permissions?user_ids="+many).status)
}

// generous is roomy in the generous profile, for the tests of its answers.
func generous(c *clock) simulator.Options {
	o := roomy(c)
	o.Profile = simulator.ProfileGenerous
	return o
}

func TestTokenEndpoint(t *testing.T) {
	h := newHarness(t, generous(nil), simulator.OrgSpec{Name: "acme", Seed: 4, Users: 200, Events: 10})
	c := h.org.Credentials()
	var deactivated int64
	for _, u := range h.org.Truth().Users {
		if u.Status == "deactivated" {
			deactivated = u.ID
			break
		}
	}
	require.NotZero(t, deactivated)
	for _, tc := range []struct {
		name, id, secret, form string
		status                 int
		body                   string
	}{
		{"no credentials", "", "", "grant_type=client_credentials", 401, `"message":"Unauthorized"`},
		{"unknown client", "0123456789abcdef01234567-1", "x", "grant_type=client_credentials", 401, `{"error":"invalid_client"}`},
		{"wrong secret", c.ClientID, "nope", "grant_type=client_credentials", 401, `{"error":"invalid_client"}`},
		{"no grant type", c.ClientID, c.ClientSecret, "sub=1", 400, `"error":"invalid_request"`},
		{"unknown sub", c.ClientID, c.ClientSecret, "grant_type=client_credentials&sub=1", 400, `"error":"invalid_grant"`},
		{"deactivated sub", c.ClientID, c.ClientSecret, "grant_type=client_credentials&sub=" + strconv.FormatInt(deactivated, 10), 400, `"error":"invalid_grant"`},
		{"ok", c.ClientID, c.ClientSecret, "grant_type=client_credentials&sub=" + strconv.FormatInt(c.AdminUserID, 10), 200, `"expires_in":3600`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.tokenReq(tc.id, tc.secret, tc.form)
			assert.Equal(t, tc.status, r.status, "%s", r.body)
			assert.Contains(t, string(r.body), tc.body)
			if tc.status == 200 {
				var tok map[string]any
				r.json(t, &tok)
				exp, err := time.Parse(time.RFC3339, tok["expires_at"].(string))
				require.NoError(t, err)
				assert.Equal(t, h.clock.Now().Add(time.Hour), exp)
				assert.Contains(t, tok["scope"], "harvest:users:list")
			}
		})
	}

	t.Run("expired and unknown tokens get 401", func(t *testing.T) {
		require.Equal(t, http.StatusOK, h.get("/v3/user_roles").status)
		h.clock.Advance(time.Hour)
		r := h.get("/v3/user_roles")
		assert.Equal(t, http.StatusUnauthorized, r.status)
		assert.Contains(t, string(r.body), "Token could not be decoded")
		h.token = "garbage"
		assert.Equal(t, http.StatusUnauthorized, h.get("/events").status)
		h.token = h.mint(c.AdminUserID)
		assert.Equal(t, http.StatusOK, h.get("/v3/user_roles").status, "a fresh token works")
	})

	t.Run("a sub that is not a site admin is refused everywhere", func(t *testing.T) {
		var basic int64
		for _, u := range h.org.Truth().Users {
			if u.Status == "active" && !u.SiteAdmin && !u.ServiceAccount {
				basic = u.ID
				break
			}
		}
		h.token = h.mint(basic)
		t.Cleanup(func() { h.token = h.mint(c.AdminUserID) })
		for _, p := range []string{"/v3/users", "/v3/user_roles", "/v3/user_job_permissions", "/v3/future_job_permissions", "/events"} {
			r := h.get(p)
			assert.Equal(t, http.StatusForbidden, r.status, p)
			assert.Contains(t, string(r.body), "must be a Site Admin", p)
		}
	})
}

func TestRateLimits(t *testing.T) {
	c := newClock()
	c.Advance(2 * time.Second) // 12:00:02, inside the windows starting at 12:00:00
	opts := simulator.Options{Now: c.Now, HarvestLimit: 3, HarvestWindow: 30 * time.Second, AuditLimit: 2,
		AuditWindow: 10 * time.Second, AuditPagedLimit: 1, AuditPagedWindow: 30 * time.Second, TokenLimit: 3, TokenWindow: time.Minute,
		Profile: simulator.ProfileGenerous}
	h := newHarness(t, opts, simulator.OrgSpec{Name: "acme", Seed: 5, Users: 20, Events: 300})
	windowEnd := func(d time.Duration) string {
		return strconv.FormatInt(c.Now().Truncate(d).Add(d).Unix(), 10)
	}

	t.Run("harvest", func(t *testing.T) {
		for i := range 3 {
			r := h.get("/v3/user_roles")
			require.Equal(t, http.StatusOK, r.status)
			assert.Equal(t, "3", r.header.Get("X-RateLimit-Limit"))
			assert.Equal(t, strconv.Itoa(2-i), r.header.Get("X-RateLimit-Remaining"))
			assert.Equal(t, windowEnd(30*time.Second), r.header.Get("X-RateLimit-Reset"))
		}
		r := h.get("/v3/users")
		assert.Equal(t, http.StatusTooManyRequests, r.status)
		assert.JSONEq(t, `{"message":"Rate limit exceeded"}`, string(r.body))
		assert.Equal(t, "28", r.header.Get("Retry-After"), "seconds to the window's end")
		assert.Equal(t, "0", r.header.Get("X-RateLimit-Remaining"))
		assert.Equal(t, "3", r.header.Get("X-RateLimit-Limit"))
		c.Advance(28 * time.Second)
		assert.Equal(t, http.StatusOK, h.get("/v3/users").status, "a new window")
	})

	t.Run("audit", func(t *testing.T) {
		for range 2 {
			r := h.get("/events")
			require.Equal(t, http.StatusOK, r.status, "%s", r.body)
			assert.Equal(t, "2", r.header.Get("X-RateLimit-Limit"))
		}
		r := h.get("/events")
		assert.Equal(t, http.StatusTooManyRequests, r.status)
		assert.Empty(t, r.header.Get("X-RateLimit-Limit"), "omitted on a 429")
		assert.Empty(t, r.header.Get("X-RateLimit-Remaining"), "omitted on a 429")
		assert.NotEmpty(t, r.header.Get("Retry-After"))
		c.Advance(10 * time.Second)
		require.Equal(t, http.StatusOK, h.get("/events?paging=true").status)
		r = h.get("/events?paging=true")
		assert.Equal(t, http.StatusTooManyRequests, r.status, "one paginated request per 30 s")
		ra, err := strconv.Atoi(r.header.Get("Retry-After"))
		require.NoError(t, err)
		assert.Greater(t, ra, 10, "the paginated window's wait")
		assert.Equal(t, http.StatusOK, h.get("/events").status, "unpaginated requests still pass")
	})

	t.Run("token", func(t *testing.T) {
		cred := h.org.Credentials()
		c.Advance(time.Minute)
		form := "grant_type=client_credentials&sub=" + strconv.FormatInt(cred.AdminUserID, 10)
		for range 3 {
			require.Equal(t, http.StatusOK, h.tokenReq(cred.ClientID, cred.ClientSecret, form).status)
		}
		r := h.tokenReq(cred.ClientID, cred.ClientSecret, form)
		assert.Equal(t, http.StatusTooManyRequests, r.status)
		assert.NotEmpty(t, r.header.Get("Retry-After"))
	})

	st := h.org.Stats()
	assert.Equal(t, int64(4), st.Throttled, "every 429 counted")
	assert.Equal(t, int64(5), st.TokenRequests)
	assert.Equal(t, int64(5), st.HarvestRequests)
	assert.Equal(t, int64(6), st.AuditRequests)
	assert.Equal(t, int64(2), st.AuditPaged)
	assert.Equal(t, st.TokenRequests+st.HarvestRequests+st.AuditRequests, st.Requests)
	assert.Equal(t, st, h.sim.Stats(), "one org: the server's totals are its")
}

type eventsPage struct {
	Hits    int               `json:"hits"`
	Results []json.RawMessage `json:"results"`
	Paging  *struct {
		PitID string          `json:"pit_id"`
		Size  int             `json:"size"`
		Next  json.RawMessage `json:"next_search_after"`
	} `json:"paging"`
}

type wireEvent struct {
	Request struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	} `json:"request"`
	Performer struct {
		Meta map[string]any `json:"meta"`
		ID   any            `json:"id"`
		Type string         `json:"type"`
	} `json:"performer"`
	OrganizationID int64 `json:"organization_id"`
	Event          struct {
		Type       string `json:"type"`
		TargetType string `json:"target_type"`
	} `json:"event"`
	EventTime string `json:"event_time"`
}

func decodeEvents(t *testing.T, p eventsPage) []wireEvent {
	t.Helper()
	out := make([]wireEvent, len(p.Results))
	for i, raw := range p.Results {
		require.NoError(t, json.Unmarshal(raw, &out[i]))
	}
	return out
}

func at(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

func TestEventsWithoutPaging(t *testing.T) {
	h := newHarness(t, roomy(nil), simulator.OrgSpec{Name: "acme", Seed: 6, Users: 300, Events: 12000})
	tr := h.org.Truth()
	now := h.clock.Now()
	var p eventsPage
	r := h.get("/events?size=500")
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	r.json(t, &p)
	assert.Equal(t, tr.Events, p.Hits, "every retained event")
	assert.Nil(t, p.Paging)
	evs := decodeEvents(t, p)
	require.Len(t, evs, 500)
	for i, e := range evs {
		assert.Regexp(t, `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`, e.EventTime)
		if i > 0 {
			assert.LessOrEqual(t, e.EventTime, evs[i-1].EventTime, "newest first")
		}
		switch e.Performer.Type {
		case "user":
			assert.IsType(t, float64(0), e.Performer.ID)
			assert.Contains(t, e.Performer.Meta, "username")
		case "api_key":
			assert.IsType(t, "", e.Performer.ID)
			assert.Equal(t, map[string]any{"api_key_type": "harvest"}, e.Performer.Meta)
			assert.Equal(t, "harvest_access", e.Event.Type)
		default:
			t.Fatalf("performer type %q", e.Performer.Type)
		}
	}
	assert.Len(t, decodeEventsAt(t, h, "/events"), 100, "default size")
	assert.Len(t, decodeEventsAt(t, h, "/events", "Size", "250"), 250, "size header")

	// after_time is inclusive, before_time exclusive: adjacent windows add up.
	a, m, b := now.Add(-10*24*time.Hour), now.Add(-7*24*time.Hour), now.Add(-5*24*time.Hour)
	hits := func(from, to time.Time) int {
		var p eventsPage
		h.get("/events?after_time="+at(from)+"&before_time="+at(to)).json(t, &p)
		return p.Hits
	}
	whole := hits(a, b)
	assert.Positive(t, whole)
	assert.Equal(t, whole, hits(a, m)+hits(m, b))
	assert.Less(t, whole, tr.Events)

	t.Run("filters", func(t *testing.T) {
		var keys, users eventsPage
		h.get("/events?size=500&performer_types=api_key").json(t, &keys)
		h.get("/events?performer_types=user").json(t, &users)
		assert.Equal(t, tr.Events, keys.Hits+users.Hits)
		assert.Equal(t, tr.UserEvents, users.Hits)
		for _, e := range decodeEvents(t, keys) {
			assert.Equal(t, "api_key", e.Performer.Type)
		}
		var acts eventsPage
		h.get("/events?size=500&event_types=action,data_change_destroy").json(t, &acts)
		assert.Positive(t, acts.Hits)
		for _, e := range decodeEvents(t, acts) {
			assert.Contains(t, []string{"action", "data_change_destroy"}, e.Event.Type)
		}
	})
	for _, tc := range []struct{ name, query string }{
		{"size 99", "size=99"},
		{"size 501", "size=501"},
		{"fractional seconds", "after_time=2026-11-01T00:00:00.000Z"},
		{"offset", "before_time=2026-11-01T00:00:00%2B01:00"},
		{"date only", "after_time=2026-11-01"},
	} {
		t.Run("422 "+tc.name, func(t *testing.T) {
			assert.Equal(t, http.StatusUnprocessableEntity, h.get("/events?"+tc.query).status)
		})
	}
	assert.Equal(t, http.StatusOK, h.get("/events/").status, "the trailing-slash path is served too")
}

func decodeEventsAt(t *testing.T, h *harness, target string, hdr ...string) []wireEvent {
	t.Helper()
	r := h.get(target, hdr...)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	var p eventsPage
	r.json(t, &p)
	return decodeEvents(t, p)
}

// pitRead reads a window with point-in-time pagination; it returns the events and the status
// that ended it.
func pitRead(t *testing.T, h *harness, query string, max int) (ids []string, status int, body string) {
	t.Helper()
	pitID, next := "", ""
	for range max {
		var r reply
		if pitID == "" {
			hdr := []string{}
			if next != "" {
				hdr = []string{"Search-After", next}
			}
			r = h.get("/events?paging=true&size=500&"+query, hdr...)
		} else {
			r = h.get("/events?paging=true&size=500&"+query, "Pit-Id", pitID, "Search-After", next)
		}
		if r.status != http.StatusOK {
			return ids, r.status, string(r.body)
		}
		var p eventsPage
		r.json(t, &p)
		require.NotNil(t, p.Paging)
		for _, e := range decodeEvents(t, p) {
			ids = append(ids, e.Request.ID)
		}
		if string(p.Paging.Next) == "null" {
			assert.Empty(t, p.Results, "the last page is empty")
			return ids, 200, ""
		}
		next = normalize(t, p.Paging.Next)
		pitID = p.Paging.PitID
	}
	return ids, 0, "too many pages"
}

// normalize trims next_search_after to at most its two leading parts and joins a list, as a
// client does; a one-part value passes as it is.
func normalize(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var parts []string
	var s string
	if json.Unmarshal(raw, &s) == nil {
		parts = strings.Split(s, ",")
	} else {
		var list []json.Number
		require.NoError(t, json.Unmarshal(raw, &list), "next_search_after %s", raw)
		for _, n := range list {
			parts = append(parts, n.String())
		}
	}
	require.NotEmpty(t, parts[0], "next_search_after %s", raw)
	return strings.Join(parts[:min(2, len(parts))], ",")
}

func TestPointInTimePagination(t *testing.T) {
	h := newHarness(t, generous(nil), simulator.OrgSpec{Name: "acme", Seed: 7, Users: 50, Events: 100})
	burst := h.clock.Now().Add(-time.Hour).Truncate(time.Second)
	h.org.AddEvents(1300, burst, burst.Add(999*time.Millisecond))
	window := "after_time=" + at(burst) + "&before_time=" + at(burst.Add(time.Second))

	t.Run("pages to an empty last page, each event once", func(t *testing.T) {
		before := h.org.Stats().AuditPaged
		ids, status, body := pitRead(t, h, window, 10)
		require.Equal(t, 200, status, body)
		assert.Len(t, ids, 1300)
		assert.Len(t, uniq(ids), 1300)
		assert.Equal(t, int64(4), h.org.Stats().AuditPaged-before, "500, 500, 300, then the empty page")
	})

	t.Run("a point in time is a snapshot", func(t *testing.T) {
		r := h.get("/events?paging=true&size=500&" + window)
		var p eventsPage
		r.json(t, &p)
		require.Equal(t, 1300, p.Hits)
		h.org.AddEvents(50, burst, burst.Add(999*time.Millisecond))
		seen := len(p.Results)
		next := normalize(t, p.Paging.Next)
		for {
			var q eventsPage
			rr := h.get("/events?paging=true&size=500&"+window, "Pit-Id", p.Paging.PitID, "Search-After", next)
			require.Equal(t, http.StatusOK, rr.status, "%s", rr.body)
			rr.json(t, &q)
			assert.Equal(t, 1300, q.Hits)
			seen += len(q.Results)
			if string(q.Paging.Next) == "null" {
				break
			}
			next = normalize(t, q.Paging.Next)
		}
		assert.Equal(t, 1300, seen, "events added after the point in time are not in it")
		var fresh eventsPage
		h.get("/events?"+window).json(t, &fresh)
		assert.Equal(t, 1350, fresh.Hits)
	})

	t.Run("search_after quirks", func(t *testing.T) {
		h.org.SetFaults(simulator.Faults{SearchAfterQuirk: true})
		defer h.org.SetFaults(simulator.Faults{})
		shapes := map[byte]bool{}
		for range 2 {
			var p eventsPage
			h.get("/events?paging=true&size=500&"+window).json(t, &p)
			shapes[p.Paging.Next[0]] = true
			if p.Paging.Next[0] == '"' {
				var s string
				require.NoError(t, json.Unmarshal(p.Paging.Next, &s))
				assert.Len(t, strings.Split(s, ","), 3)
			}
		}
		assert.Equal(t, map[byte]bool{'"': true, '[': true}, shapes, "a three-part string and a list, alternately")
		ids, status, body := pitRead(t, h, window, 10)
		require.Equal(t, 200, status, body)
		assert.Len(t, uniq(ids), 1350)
	})

	t.Run("expiry by lifetime", func(t *testing.T) {
		var p eventsPage
		h.get("/events?paging=true&size=500&"+window).json(t, &p)
		h.clock.Advance(5*time.Minute + time.Second)
		r := h.get("/events?paging=true&size=500&"+window, "Pit-Id", p.Paging.PitID, "Search-After", normalize(t, p.Paging.Next))
		assert.Equal(t, http.StatusBadRequest, r.status)
		assert.Regexp(t, `^\{"message":"Pit_Id \S+ has expired"\}$`, string(r.body))
		r = h.get("/events?paging=true&"+window, "Pit-Id", "unknown", "Search-After", "1,1")
		assert.Equal(t, http.StatusBadRequest, r.status)
		assert.Contains(t, string(r.body), "Pit_Id")
	})

	t.Run("ExpirePIT expires every point in time after its first continuation", func(t *testing.T) {
		h.org.SetFaults(simulator.Faults{ExpirePIT: true})
		defer h.org.SetFaults(simulator.Faults{})
		ids, status, body := pitRead(t, h, window, 10)
		assert.Equal(t, http.StatusBadRequest, status)
		assert.Contains(t, body, "has expired")
		assert.Len(t, ids, 1000, "the opening page and one continuation")
		// A client can resume: a new point in time opened with Search-After continues there.
		var all []string
		next := ""
		for range 10 {
			hdr := []string{}
			if next != "" {
				hdr = []string{"Search-After", next}
			}
			var p eventsPage
			r := h.get("/events?paging=true&size=500&"+window, hdr...)
			require.Equal(t, http.StatusOK, r.status, "%s", r.body)
			r.json(t, &p)
			for _, e := range decodeEvents(t, p) {
				all = append(all, e.Request.ID)
			}
			if string(p.Paging.Next) == "null" {
				break
			}
			next = normalize(t, p.Paging.Next)
		}
		assert.Len(t, uniq(all), 1350)
		assert.True(t, h.org.Faults().ExpirePIT, "the fault stays until cleared")
	})

	assert.Equal(t, http.StatusBadRequest, h.get("/events?paging=true", "Search-After", "garbage").status)
}

func uniq(ids []string) map[string]bool {
	m := map[string]bool{}
	for _, id := range ids {
		m[id] = true
	}
	return m
}

// crawl reads every retained event with point-in-time pagination and returns them.
func crawl(t *testing.T, h *harness) []wireEvent {
	t.Helper()
	var out []wireEvent
	pitID, next := "", ""
	for range 10_000 {
		hdr := []string{}
		if pitID != "" {
			hdr = []string{"Pit-Id", pitID, "Search-After", next}
		}
		r := h.get("/events?paging=true&size=500", hdr...)
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		var p eventsPage
		r.json(t, &p)
		out = append(out, decodeEvents(t, p)...)
		if string(p.Paging.Next) == "null" {
			return out
		}
		pitID, next = p.Paging.PitID, normalize(t, p.Paging.Next)
	}
	t.Fatal("endless crawl")
	return nil
}

func TestTruthMatchesWhatIsServed(t *testing.T) {
	for _, profile := range []string{simulator.ProfileDocumented, simulator.ProfileGenerous} {
		t.Run(profile, func(t *testing.T) { testTruthMatchesWhatIsServed(t, profile) })
	}
}

// testTruthMatchesWhatIsServed crawls the Audit Log and rebuilds the truth from what it served,
// after the admin's own Harvest traffic and a user's API change (not seat use).
func testTruthMatchesWhatIsServed(t *testing.T, profile string) {
	opts := roomy(nil)
	opts.Profile = profile
	h := newHarness(t, opts, simulator.OrgSpec{Name: "acme", Seed: 8, Users: 120, Events: 6000})
	admin := h.org.Credentials().AdminUserID
	h.listIDs("/v3/users?per_page=50")
	h.listIDs("/v3/user_roles")
	require.NoError(t, h.org.AddAPIUserEvent(admin, h.clock.Now().Add(-time.Hour), "data_change_update", "/v3/users/123"))
	check := func(t *testing.T) {
		tr := h.org.Truth()
		evs := crawl(t, h)
		require.Len(t, evs, tr.Events)
		last := map[int64]time.Time{}
		type key struct {
			id  int64
			day time.Time
		}
		daily := map[key]*simulator.DailyActivity{}
		users, seatUse := 0, 0
		for _, e := range evs {
			if e.Performer.Type == "user" {
				users++
			}
			if !simulator.SeatUse(e.Performer.Type, e.Event.Type, e.Request.Type) {
				continue
			}
			seatUse++
			id := int64(e.Performer.ID.(float64))
			ts, err := time.Parse(time.RFC3339Nano, e.EventTime)
			require.NoError(t, err)
			ts = ts.Truncate(time.Second)
			if ts.After(last[id]) {
				last[id] = ts
			}
			k := key{id, ts.Truncate(24 * time.Hour)}
			if daily[k] == nil {
				daily[k] = &simulator.DailyActivity{UserID: id, Day: k.day}
			}
			daily[k].Events++
			if ts.After(daily[k].LastEventAt) {
				daily[k].LastEventAt = ts
			}
		}
		assert.Equal(t, tr.UserEvents, users)
		assert.Equal(t, tr.SeatUseEvents, seatUse)
		wantExcluded := 1 // the API change
		if profile == simulator.ProfileDocumented {
			wantExcluded += 3 + 1 // three pages of users and one of roles, as the admin
		}
		assert.Equal(t, wantExcluded, tr.UserEvents-tr.SeatUseEvents, "user events that are no seat use")
		var want []simulator.DailyActivity
		for _, d := range daily {
			want = append(want, *d)
		}
		slices.SortFunc(want, func(a, b simulator.DailyActivity) int {
			if a.UserID != b.UserID {
				return int(a.UserID - b.UserID)
			}
			return a.Day.Compare(b.Day)
		})
		assert.Equal(t, want, tr.Daily)
		for _, u := range tr.Users {
			if l, ok := last[u.ID]; ok {
				require.NotNil(t, u.LastActivityAt, "user %d", u.ID)
				assert.False(t, u.LastActivityAt.Before(l), "user %d", u.ID)
			}
		}
	}
	t.Run("fresh", check)
	t.Run("after two days of retention ageing", func(t *testing.T) {
		before := h.org.Truth()
		h.clock.Advance(2 * 24 * time.Hour)
		h.token = h.mint(h.org.Credentials().AdminUserID)
		after := h.org.Truth()
		assert.Less(t, after.Events, before.Events, "old events aged out")
		for i, u := range after.Users {
			assert.Equal(t, before.Users[i].LastActivityAt, u.LastActivityAt, "last activity is kept beyond retention")
		}
		check(t)
	})
}

func TestMutations(t *testing.T) {
	h := newHarness(t, roomy(nil), simulator.OrgSpec{Name: "acme", Seed: 9, Users: 100, Events: 500})
	tr := h.org.Truth()
	byID := func(id int64) simulator.TruthUser {
		for _, u := range h.org.Truth().Users {
			if u.ID == id {
				return u
			}
		}
		t.Fatalf("no user %d", id)
		return simulator.TruthUser{}
	}
	var basic, holder int64
	for _, u := range tr.Users {
		if u.Status == "active" && !u.ServiceAccount && u.LicenseType == "basic" && basic == 0 {
			basic = u.ID
		}
		if u.Status == "active" && u.LicenseType == "job_admin" && holder == 0 {
			holder = u.ID
		}
	}
	require.NotZero(t, basic)
	require.NotZero(t, holder)
	h.clock.Advance(time.Minute)
	now := h.clock.Now()
	listed := func(query string) []int64 { return h.listIDs("/v3/users?per_page=500&" + query) }

	require.NoError(t, h.org.DeactivateUser(basic))
	assert.Equal(t, "deactivated", byID(basic).Status)
	assert.Equal(t, now, byID(basic).UpdatedAt, "updated_at bumped")
	assert.Contains(t, listed("deactivated=true"), basic)
	assert.Equal(t, []int64{basic}, listed("updated_at=gte%7C"+now.Format(time.RFC3339)))
	require.NoError(t, h.org.ActivateUser(basic))
	assert.Equal(t, "active", byID(basic).Status)

	require.NoError(t, h.org.GrantJobPermission(basic, 123))
	assert.Equal(t, "job_admin", byID(basic).LicenseType)
	assert.Len(t, h.listIDs("/v3/user_job_permissions?user_ids="+strconv.FormatInt(basic, 10)), 1)

	require.NoError(t, h.org.RemoveUser(holder))
	assert.Equal(t, "removed", byID(holder).Status)
	assert.NotContains(t, listed("show_service_accounts=true"), holder)
	assert.Empty(t, h.listIDs("/v3/user_job_permissions?user_ids="+strconv.FormatInt(holder, 10)), "a removed user's permissions go too")
	assert.Error(t, h.org.RemoveUser(holder))
	assert.Error(t, h.org.DeactivateUser(1))
	assert.Error(t, h.org.GrantJobPermission(1, 1))
	assert.Error(t, h.org.AddUserEvent(1, now, "action"))

	nu := h.org.AddUser(simulator.NewUser{Name: "New Person", Email: "new@acme.example"})
	assert.Greater(t, nu, tr.Users[len(tr.Users)-1].ID)
	assert.Equal(t, nu, listed("")[0], "the newest user comes first")
	svc := h.org.AddUser(simulator.NewUser{Name: "Bot", Email: "bot@x", ServiceAccount: true})
	assert.NotContains(t, listed(""), svc)
	assert.Empty(t, byID(svc).Email)
	assert.Equal(t, "New Person", byID(nu).Name)
	assert.Nil(t, byID(nu).LastActivityAt)

	when := now.Add(-90 * time.Minute).Add(123 * time.Millisecond)
	require.NoError(t, h.org.AddUserEvent(nu, when, "action"))
	require.NoError(t, h.org.AddUserEvent(nu, when.Add(-time.Hour), "custom_event"))
	require.NotNil(t, byID(nu).LastActivityAt)
	assert.Equal(t, when.Truncate(time.Second), *byID(nu).LastActivityAt)
	var mine []simulator.DailyActivity
	for _, d := range h.org.Truth().Daily {
		if d.UserID == nu {
			mine = append(mine, d)
		}
	}
	assert.Equal(t, []simulator.DailyActivity{{UserID: nu, Day: now.Truncate(24 * time.Hour), Events: 2, LastEventAt: when.Truncate(time.Second)}}, mine)
	evs := decodeEventsAt(t, h, "/events?event_types=custom_event")
	require.Len(t, evs, 1)
	assert.Equal(t, float64(nu), evs[0].Performer.ID)

	before := h.org.Truth()
	h.org.AddEvents(1000, now.Add(-time.Hour), now)
	after := h.org.Truth()
	assert.Equal(t, before.Events+1000, after.Events)
	assert.InDelta(t, 900, after.UserEvents-before.UserEvents, 60, "about a tenth by api keys")
}

func TestFaults(t *testing.T) {
	h := newHarness(t, generous(nil), simulator.OrgSpec{Name: "acme", Seed: 10, Users: 700, Events: 2000})
	cred := h.org.Credentials()
	form := "grant_type=client_credentials&sub=" + strconv.FormatInt(cred.AdminUserID, 10)
	for _, tc := range []struct {
		name   string
		faults simulator.Faults
		path   string
		status int
		body   string
	}{
		{"audit log disabled", simulator.Faults{AuditLogDisabled: true}, "/events", 403, `{"message":"The Audit Log add-on is not enabled for this organization."}`},
		{"audit log disabled leaves harvest", simulator.Faults{AuditLogDisabled: true}, "/v3/users", 200, ""},
		{"missing users scope", simulator.Faults{MissingScopes: []string{"harvest:users:list"}}, "/v3/users", 403, `{"message":"Forbidden","errors":["Missing required scope: harvest:users:list"]}`},
		{"missing users scope leaves roles", simulator.Faults{MissingScopes: []string{"harvest:users:list"}}, "/v3/user_roles", 200, ""},
		{"missing permissions scope", simulator.Faults{MissingScopes: []string{"harvest:user_job_permissions:list"}}, "/v3/user_job_permissions", 403, "Missing required scope"},
		{"missing future scope", simulator.Faults{MissingScopes: []string{"harvest:future_job_permissions:list"}}, "/v3/future_job_permissions", 403, "Missing required scope"},
		{"missing roles scope", simulator.Faults{MissingScopes: []string{"harvest:user_roles:list"}}, "/v3/user_roles", 403, "Missing required scope"},
		{"missing audit scope", simulator.Faults{MissingScopes: []string{"audit_log:events:list"}}, "/events", 403, "Missing required scope: audit_log:events:list"},
		{"not a site admin: lists", simulator.Faults{AdminNotSiteAdmin: true}, "/v3/user_roles", 403, `{"message":"Forbidden","errors":["The user authorizing this request must be a Site Admin."]}`},
		{"not a site admin: events", simulator.Faults{AdminNotSiteAdmin: true}, "/events", 403, "must be a Site Admin"},
		{"html", simulator.Faults{Malformed: "html"}, "/v3/users", 200, "<html>"},
		{"html events", simulator.Faults{Malformed: "html"}, "/events", 200, "<html>"},
		{"absurd retry after", simulator.Faults{Malformed: "absurd_retry_after"}, "/v3/users", 429, "Rate limit exceeded"},
		{"absurd retry after events", simulator.Faults{Malformed: "absurd_retry_after"}, "/events", 429, "Rate limit exceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.org.SetFaults(tc.faults)
			defer h.org.SetFaults(simulator.Faults{})
			r := h.get(tc.path)
			assert.Equal(t, tc.status, r.status, "%s", r.body)
			switch {
			case strings.HasPrefix(tc.body, "{"):
				assert.JSONEq(t, tc.body, string(r.body))
			default:
				assert.Contains(t, string(r.body), tc.body)
			}
			if tc.faults.Malformed == "html" {
				assert.Contains(t, r.header.Get("Content-Type"), "text/html")
			}
			if tc.faults.Malformed == "absurd_retry_after" {
				assert.Equal(t, "99999999999", r.header.Get("Retry-After"))
			}
			if tc.status != 429 {
				assert.NotEmpty(t, r.header.Get("X-RateLimit-Remaining"), "limit headers on every answer")
			}
		})
	}

	t.Run("invalid client", func(t *testing.T) {
		h.org.SetFaults(simulator.Faults{InvalidClient: true})
		defer h.org.SetFaults(simulator.Faults{})
		r := h.tokenReq(cred.ClientID, cred.ClientSecret, form)
		assert.Equal(t, http.StatusUnauthorized, r.status)
		assert.JSONEq(t, `{"error":"invalid_client"}`, string(r.body))
	})

	t.Run("missing scopes are left out of new tokens", func(t *testing.T) {
		h.org.SetFaults(simulator.Faults{MissingScopes: []string{"audit_log:events:list"}})
		defer h.org.SetFaults(simulator.Faults{})
		r := h.tokenReq(cred.ClientID, cred.ClientSecret, form)
		require.Equal(t, http.StatusOK, r.status)
		assert.NotContains(t, string(r.body), "audit_log:events:list")
	})

	t.Run("5xx counts down", func(t *testing.T) {
		h.org.SetFaults(simulator.Faults{Fail5xx: 3})
		defer h.org.SetFaults(simulator.Faults{})
		for _, p := range []string{"/v3/users", "/events"} {
			r := h.get(p)
			assert.Equal(t, http.StatusServiceUnavailable, r.status)
			assert.JSONEq(t, `{"message":"Service Unavailable"}`, string(r.body))
		}
		assert.Equal(t, http.StatusServiceUnavailable, h.tokenReq(cred.ClientID, cred.ClientSecret, form).status)
		assert.Zero(t, h.org.Faults().Fail5xx)
		assert.Equal(t, http.StatusOK, h.get("/v3/users").status)
	})

	t.Run("truncated and wrong types do not decode", func(t *testing.T) {
		for _, fault := range []string{"truncated", "wrong_type"} {
			h.org.SetFaults(simulator.Faults{Malformed: fault})
			for range 2 { // wrong_type alternates two shapes
				var users []struct {
					ID   int64  `json:"id"`
					Name string `json:"name"`
				}
				r := h.get("/v3/users")
				require.Equal(t, http.StatusOK, r.status)
				assert.Error(t, json.Unmarshal(r.body, &users), "%s: %s", fault, r.body)
				var p struct {
					Hits    int `json:"hits"`
					Results []struct {
						EventTime string `json:"event_time"`
					} `json:"results"`
				}
				r = h.get("/events")
				require.Equal(t, http.StatusOK, r.status)
				assert.Error(t, json.Unmarshal(r.body, &p), "%s: %.200s", fault, r.body)
			}
		}
		h.org.SetFaults(simulator.Faults{})
	})

	t.Run("hostile links point elsewhere", func(t *testing.T) {
		h.org.SetFaults(simulator.Faults{Malformed: "hostile_link"})
		defer h.org.SetFaults(simulator.Faults{})
		seen := map[string]bool{}
		for range 4 {
			r := h.get("/v3/users?ids=1")
			require.Equal(t, http.StatusOK, r.status)
			l := r.header.Get("Link")
			require.NotEmpty(t, l, "even a single page")
			assert.NotContains(t, l, h.srv.URL)
			seen[l] = true
		}
		assert.Len(t, seen, 4, "another host, javascript:, garbage, metadata address")
	})

	t.Run("huge body", func(t *testing.T) {
		h.org.SetFaults(simulator.Faults{Malformed: "huge"})
		defer h.org.SetFaults(simulator.Faults{})
		req, err := http.NewRequest(http.MethodGet, h.srv.URL+"/v3/users", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+h.token)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		require.NoError(t, err)
		assert.Greater(t, n, int64(64<<20))
	})

	t.Run("latency respects cancellation", func(t *testing.T) {
		h.org.SetFaults(simulator.Faults{Latency: 300 * time.Millisecond})
		defer h.org.SetFaults(simulator.Faults{})
		start := time.Now()
		assert.Equal(t, http.StatusOK, h.get("/v3/user_roles").status)
		assert.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.srv.URL+"/events", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+h.token)
		_, err = http.DefaultClient.Do(req)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
	})
}

func TestManyOrgsAreIsolated(t *testing.T) {
	c := newClock()
	sim := simulator.New(roomy(c))
	srv := httptest.NewServer(sim)
	defer srv.Close()
	const n = 300
	for i := range n {
		_, err := sim.AddOrg(simulator.OrgSpec{Name: fmt.Sprintf("t%d", i), Seed: int64(i), Users: 5, Events: 20})
		require.NoError(t, err)
	}
	orgs := sim.Orgs()
	require.Len(t, orgs, n)
	clients := map[string]bool{}
	for _, o := range orgs[:20] {
		cred := o.Credentials()
		clients[cred.ClientID] = true
		h := &harness{t: t, sim: sim, srv: srv, org: o, clock: c}
		h.token = h.mint(cred.AdminUserID)
		want := truthUsers(o.Truth(), func(u simulator.TruthUser) bool { return !u.ServiceAccount })
		assert.Equal(t, want, h.listIDs("/v3/users"), "an org sees its own users only")
		var p eventsPage
		h.get("/events").json(t, &p)
		assert.Equal(t, o.Truth().Events, p.Hits)
		assert.Equal(t, int64(3), o.Stats().Requests, "token, users, events")
	}
	assert.Len(t, clients, 20)
	// A stray request is counted by the server.
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v3/users", nil)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Equal(t, int64(20*3+1), sim.Stats().Requests)
}

// TestScaleOrg is the benchmark's shape: a 5,000-user, 200,000-event organisation stays
// compact and answers windows fast.
func TestScaleOrg(t *testing.T) {
	if testing.Short() {
		t.Skip("scale")
	}
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	start := time.Now()
	h := newHarness(t, roomy(nil), simulator.OrgSpec{Name: "big", Seed: 11, Users: 5000, Events: 200_000})
	gen := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&m1)
	perEvent := float64(m1.HeapAlloc-m0.HeapAlloc) / 200_000
	t.Logf("generated in %v, %.0f heap bytes per event (users included)", gen, perEvent)
	assert.Less(t, perEvent, 100.0)
	assert.Less(t, gen, 5*time.Second)

	now := h.clock.Now()
	start = time.Now()
	const reqs = 200
	for i := range reqs {
		from := now.Add(-time.Duration(i+1) * 3 * time.Hour)
		r := h.get("/events?size=500&after_time=" + at(from) + "&before_time=" + at(from.Add(3*time.Hour)))
		require.Equal(t, http.StatusOK, r.status)
	}
	per := time.Since(start) / reqs
	t.Logf("%v per 3-hour window request", per)
	assert.Less(t, per, 20*time.Millisecond)
	start = time.Now()
	ids := h.listIDs("/v3/users?per_page=500&show_service_accounts=true")
	assert.Len(t, ids, 5000)
	t.Logf("%v to list 5,000 users", time.Since(start))
}

func BenchmarkEventsWindow(b *testing.B) {
	c := newClock()
	sim := simulator.New(roomy(c))
	org, err := sim.AddOrg(simulator.OrgSpec{Name: "big", Seed: 12, Users: 5000, Events: 200_000})
	require.NoError(b, err)
	srv := httptest.NewServer(sim)
	defer srv.Close()
	h := &harness{t: &testing.T{}, sim: sim, srv: srv, org: org, clock: c}
	h.token = h.mint(org.Credentials().AdminUserID)
	from := c.Now().Add(-24 * time.Hour)
	target := srv.URL + "/events?size=500&after_time=" + at(from) + "&before_time=" + at(from.Add(3*time.Hour))
	b.ResetTimer()
	for range b.N {
		req, _ := http.NewRequest(http.MethodGet, target, nil)
		req.Header.Set("Authorization", "Bearer "+h.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// The documented profile (the default): what differs from the generous one.

func TestProfiles(t *testing.T) {
	assert.PanicsWithValue(t, `simulator: unknown profile "strict" (want "documented" or "generous")`, func() {
		simulator.New(simulator.Options{Profile: "strict"})
	})
	for _, tc := range []struct {
		env, want string
		fails     bool
	}{
		{"", simulator.ProfileDocumented, false},
		{"documented", simulator.ProfileDocumented, false},
		{"generous", simulator.ProfileGenerous, false},
		{"Generous", "", true},
		{"kind", "", true},
	} {
		t.Setenv("GREENHOUSE_SIM_PROFILE", tc.env)
		p, err := simulator.ProfileFromEnv()
		if tc.fails {
			assert.ErrorContains(t, err, "GREENHOUSE_SIM_PROFILE", "env %q", tc.env)
			continue
		}
		require.NoError(t, err, "env %q", tc.env)
		assert.Equal(t, tc.want, p, "env %q", tc.env)
	}
	for _, p := range []string{"", simulator.ProfileDocumented} {
		opts := roomy(nil)
		opts.Profile = p
		h := newHarness(t, opts, simulator.OrgSpec{Name: "acme", Seed: 13, Users: 20, Events: 10})
		assert.Empty(t, h.get("/v3/user_roles").header.Get("X-RateLimit-Reset"), "profile %q is the documented one", p)
	}
}

func TestDocumentedRateLimitHeaders(t *testing.T) {
	c := newClock()
	c.Advance(2 * time.Second) // 12:00:02, inside the windows starting at 12:00:00
	opts := simulator.Options{Now: c.Now, HarvestLimit: 3, HarvestWindow: 30 * time.Second, AuditLimit: 2,
		AuditWindow: 10 * time.Second, AuditPagedLimit: 1, AuditPagedWindow: 30 * time.Second, TokenLimit: 3, TokenWindow: time.Minute}
	h := newHarness(t, opts, simulator.OrgSpec{Name: "acme", Seed: 14, Users: 20, Events: 300})
	onlyRetryAfter := func(t *testing.T, r reply) {
		t.Helper()
		assert.Equal(t, http.StatusTooManyRequests, r.status, "%s", r.body)
		assert.NotEmpty(t, r.header.Get("Retry-After"))
		for _, k := range []string{"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} {
			assert.Empty(t, r.header.Get(k), k)
		}
	}
	limitAndRemaining := func(t *testing.T, r reply, limit, remaining string) {
		t.Helper()
		assert.Equal(t, limit, r.header.Get("X-RateLimit-Limit"))
		assert.Equal(t, remaining, r.header.Get("X-RateLimit-Remaining"))
		assert.Empty(t, r.header.Get("X-RateLimit-Reset"), "no reset outside a Harvest 429")
		assert.Empty(t, r.header.Get("Retry-After"))
	}

	t.Run("harvest", func(t *testing.T) {
		h.org.SetFaults(simulator.Faults{MissingScopes: []string{"harvest:users:list"}})
		r := h.get("/v3/users")
		h.org.SetFaults(simulator.Faults{})
		require.Equal(t, http.StatusForbidden, r.status)
		limitAndRemaining(t, r, "3", "2")
		for i := range 2 {
			r := h.get("/v3/user_roles")
			require.Equal(t, http.StatusOK, r.status)
			limitAndRemaining(t, r, "3", strconv.Itoa(1-i))
		}
		r = h.get("/v3/users")
		assert.Equal(t, http.StatusTooManyRequests, r.status)
		assert.Equal(t, "3", r.header.Get("X-RateLimit-Limit"))
		assert.Equal(t, "0", r.header.Get("X-RateLimit-Remaining"))
		assert.Equal(t, strconv.FormatInt(c.Now().Truncate(30*time.Second).Add(30*time.Second).Unix(), 10),
			r.header.Get("X-RateLimit-Reset"), "the window's end in epoch seconds")
		assert.Equal(t, "28", r.header.Get("Retry-After"))
	})

	t.Run("audit", func(t *testing.T) {
		for i := range 2 {
			r := h.get("/events")
			require.Equal(t, http.StatusOK, r.status, "%s", r.body)
			limitAndRemaining(t, r, "2", strconv.Itoa(1-i))
		}
		onlyRetryAfter(t, h.get("/events"))
		c.Advance(10 * time.Second)
		r := h.get("/events?paging=true")
		require.Equal(t, http.StatusOK, r.status)
		limitAndRemaining(t, r, "2", "1")
		onlyRetryAfter(t, h.get("/events?paging=true"))
	})

	t.Run("token", func(t *testing.T) {
		cred := h.org.Credentials()
		c.Advance(time.Minute)
		form := "grant_type=client_credentials&sub=" + strconv.FormatInt(cred.AdminUserID, 10)
		for i := range 3 {
			r := h.tokenReq(cred.ClientID, cred.ClientSecret, form)
			require.Equal(t, http.StatusOK, r.status, "token %d", i)
			for _, name := range []string{"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} {
				assert.Empty(t, r.header.Get(name), "no doc shows %s on the token endpoint", name)
			}
		}
		onlyRetryAfter(t, h.tokenReq(cred.ClientID, cred.ClientSecret, form))
	})
}

// expiryForms match the documented profile's expires_at forms, in rotation order.
var expiryForms = []*regexp.Regexp{
	regexp.MustCompile(`^"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"$`),
	regexp.MustCompile(`^"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"$`),
	regexp.MustCompile(`^"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d{4}"$`),
	regexp.MustCompile(`^\d+$`),
}

// parseExpiresAt reads any documented expires_at form and says which it is.
func parseExpiresAt(t *testing.T, raw json.RawMessage) (time.Time, int) {
	t.Helper()
	for i, re := range expiryForms {
		if !re.Match(raw) {
			continue
		}
		if i == 3 {
			n, err := strconv.ParseInt(string(raw), 10, 64)
			require.NoError(t, err)
			return time.Unix(n, 0).UTC(), i
		}
		var s string
		require.NoError(t, json.Unmarshal(raw, &s))
		at, err := time.Parse([]string{time.RFC3339, time.RFC3339, "2006-01-02T15:04:05.000-0700"}[i], s)
		require.NoError(t, err)
		return at.UTC(), i
	}
	t.Fatalf("expires_at %s has no documented form", raw)
	return time.Time{}, 0
}

func TestDocumentedTokenExpiry(t *testing.T) {
	h := newHarness(t, roomy(nil), simulator.OrgSpec{Name: "acme", Seed: 15, Users: 20, Events: 10})
	cred := h.org.Credentials()
	form := "grant_type=client_credentials&sub=" + strconv.FormatInt(cred.AdminUserID, 10)
	mint := func() (string, json.RawMessage) {
		r := h.tokenReq(cred.ClientID, cred.ClientSecret, form)
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		var tok map[string]json.RawMessage
		r.json(t, &tok)
		assert.NotContains(t, tok, "expires_in")
		assert.JSONEq(t, `"Bearer"`, string(tok["token_type"]))
		var access string
		require.NoError(t, json.Unmarshal(tok["access_token"], &access))
		return access, tok["expires_at"]
	}

	t.Run("four forms in turn, one instant", func(t *testing.T) {
		want := h.clock.Now().Add(time.Hour)
		var forms []int
		for range 8 {
			_, raw := mint()
			exp, f := parseExpiresAt(t, raw)
			assert.Equal(t, want, exp, "%s", raw)
			forms = append(forms, f)
		}
		for i := range forms {
			assert.Equal(t, (forms[0]+i)%4, forms[i], "round robin: %v", forms)
		}
		assert.Contains(t, forms, 2)
	})

	t.Run("rounded down: the token lives at least as long as written", func(t *testing.T) {
		h.clock.Advance(987654321 * time.Nanosecond)
		exp := h.clock.Now().Add(time.Hour)
		type minted struct {
			token   string
			written time.Time
		}
		var toks []minted
		for range 4 {
			tok, raw := mint()
			written, f := parseExpiresAt(t, raw)
			precision := time.Millisecond
			if f == 1 || f == 3 {
				precision = time.Second
			}
			assert.Equal(t, exp.Truncate(precision), written, "%s", raw)
			toks = append(toks, minted{tok, written})
		}
		h.clock.Advance(exp.Truncate(time.Millisecond).Sub(h.clock.Now()))
		for _, m := range toks {
			h.token = m.token
			assert.Equal(t, http.StatusOK, h.get("/v3/user_roles").status, "valid at %v, the instant written or later", m.written)
		}
		h.clock.Advance(exp.Sub(h.clock.Now()))
		assert.Equal(t, http.StatusUnauthorized, h.get("/v3/user_roles").status, "expired at the real expiry")
	})
}

// pagesWithForms reads a window with point-in-time pagination, size 100, and returns each
// page's events (by request id) and the next_search_after that followed it.
func pagesWithForms(t *testing.T, h *harness, window string) (pages [][]string, nexts []string) {
	t.Helper()
	pitID, next := "", ""
	for range 100 {
		hdr := []string{}
		if pitID != "" {
			hdr = []string{"Pit-Id", pitID, "Search-After", next}
		}
		r := h.get("/events?paging=true&size=100&"+window, hdr...)
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		var p eventsPage
		r.json(t, &p)
		var ids []string
		for _, e := range decodeEvents(t, p) {
			ids = append(ids, e.Request.ID)
		}
		if string(p.Paging.Next) == "null" {
			require.Empty(t, ids, "the last page is empty")
			return pages, nexts
		}
		require.NoError(t, json.Unmarshal(p.Paging.Next, &next), "a string: %s", p.Paging.Next)
		pages, nexts = append(pages, ids), append(nexts, next)
		pitID = p.Paging.PitID
	}
	t.Fatal("endless pagination")
	return nil, nil
}

func TestDocumentedSearchAfterForms(t *testing.T) {
	h := newHarness(t, roomy(nil), simulator.OrgSpec{Name: "acme", Seed: 16, Users: 50, Events: 100})
	burst := h.clock.Now().Add(-time.Hour).Truncate(time.Second)
	h.org.AddEvents(1300, burst, burst.Add(5*time.Millisecond)) // some 260 events per millisecond
	window := "after_time=" + at(burst) + "&before_time=" + at(burst.Add(time.Second))
	pages, nexts := pagesWithForms(t, h, window)

	var all []string
	forms := map[int]int{}
	for i, n := range nexts {
		parts := strings.Split(n, ",")
		forms[len(parts)]++
		switch len(parts) {
		case 1:
			assert.Regexp(t, `^\d+$`, n)
		case 2:
			assert.Regexp(t, `^\d{13},\d+$`, n)
		case 3:
			assert.Regexp(t, `^\d{13},\d+,[0-9a-f]{16}$`, n)
		}
		all = append(all, pages[i]...)
	}
	assert.Len(t, all, 1300)
	assert.Len(t, uniq(all), 1300, "no event skipped or repeated")
	assert.Len(t, nexts, 13)
	assert.Len(t, forms, 3, "every form: %v", forms)
	for i := 1; i < len(nexts); i++ {
		prev := len(strings.Split(nexts[i-1], ","))
		assert.Equal(t, prev%3+1, len(strings.Split(nexts[i], ",")), "one, two, three parts in turn: %q", nexts)
	}

	// Every value resumes exactly where its page ended, with a new point in time too, and a
	// three-part value trimmed to two parts resumes at the same place.
	for i, n := range nexts {
		values := []string{n}
		if parts := strings.Split(n, ","); len(parts) == 3 {
			values = append(values, strings.Join(parts[:2], ","))
		}
		var want []string
		if i+1 < len(pages) {
			want = pages[i+1]
		}
		for _, v := range values {
			var p eventsPage
			r := h.get("/events?paging=true&size=100&"+window, "Search-After", v)
			require.Equal(t, http.StatusOK, r.status, "%s: %s", v, r.body)
			r.json(t, &p)
			var got []string
			for _, e := range decodeEvents(t, p) {
				got = append(got, e.Request.ID)
			}
			assert.Equal(t, want, got, "resuming after page %d with %q", i, v)
		}
	}

	for _, v := range []string{"garbage", "1,2,3,4", "1,x", "x", "1,2,nothex", "1,2,abc", "4000000000", "99999999"} {
		r := h.get("/events?paging=true&"+window, "Search-After", v)
		assert.Equal(t, http.StatusBadRequest, r.status, "%q: %s", v, r.body)
		assert.Contains(t, string(r.body), "Search-After", v)
	}
}

func TestSearchAfterTwoPartsOnly(t *testing.T) {
	for _, profile := range []string{simulator.ProfileDocumented, simulator.ProfileGenerous} {
		t.Run(profile, func(t *testing.T) {
			opts := roomy(nil)
			opts.Profile = profile
			h := newHarness(t, opts, simulator.OrgSpec{Name: "acme", Seed: 17, Users: 50, Events: 100})
			burst := h.clock.Now().Add(-time.Hour).Truncate(time.Second)
			h.org.AddEvents(1300, burst, burst.Add(5*time.Millisecond))
			window := "after_time=" + at(burst) + "&before_time=" + at(burst.Add(time.Second))
			h.org.SetFaults(simulator.Faults{SearchAfterTwoPartsOnly: true, SearchAfterQuirk: true})

			var p eventsPage
			h.get("/events?paging=true&size=500&"+window).json(t, &p)
			var next string
			require.NoError(t, json.Unmarshal(p.Paging.Next, &next), "%s", p.Paging.Next)
			parts := strings.Split(next, ",")
			require.Len(t, parts, 3, "issued with three parts")
			for _, v := range []string{next, parts[1], "1,2,3,4"} {
				r := h.get("/events?paging=true&size=500&"+window, "Pit-Id", p.Paging.PitID, "Search-After", v)
				assert.Equal(t, http.StatusBadRequest, r.status, "%q", v)
				assert.JSONEq(t, `{"message":"Search-After must be two comma-separated values"}`, string(r.body), "%q", v)
			}
			ids, status, body := pitRead(t, h, window, 10)
			require.Equal(t, 200, status, body)
			assert.Len(t, uniq(ids), 1300, "trimmed values page through")
		})
	}
}

func TestDocumentedPointInTimeExpiry(t *testing.T) {
	h := newHarness(t, roomy(nil), simulator.OrgSpec{Name: "acme", Seed: 18, Users: 50, Events: 100})
	burst := h.clock.Now().Add(-time.Hour).Truncate(time.Second)
	h.org.AddEvents(1300, burst, burst.Add(999*time.Millisecond))
	window := "after_time=" + at(burst) + "&before_time=" + at(burst.Add(time.Second))
	const expired = `{"message":"The Pit_Id has expired"}`

	t.Run("lifetime: 400 and 404 alternately", func(t *testing.T) {
		var p eventsPage
		h.get("/events?paging=true&size=500&"+window).json(t, &p)
		h.clock.Advance(5*time.Minute + time.Second)
		var statuses []int
		for _, pit := range []string{p.Paging.PitID, p.Paging.PitID, "unknown", "unknown"} {
			r := h.get("/events?paging=true&size=500&"+window, "Pit-Id", pit, "Search-After", normalize(t, p.Paging.Next))
			assert.JSONEq(t, expired, string(r.body))
			statuses = append(statuses, r.status)
		}
		assert.Contains(t, [][]int{{400, 404, 400, 404}, {404, 400, 404, 400}}, statuses)
	})

	t.Run("ExpirePIT", func(t *testing.T) {
		h.org.SetFaults(simulator.Faults{ExpirePIT: true})
		defer h.org.SetFaults(simulator.Faults{})
		statuses := map[int]bool{}
		for range 2 {
			ids, status, body := pitRead(t, h, window, 10)
			assert.JSONEq(t, expired, body)
			assert.Len(t, ids, 1000, "the opening page and one continuation")
			statuses[status] = true
		}
		// Each read takes three requests: the two expiries land on both statuses.
		assert.Equal(t, map[int]bool{400: true, 404: true}, statuses)
	})
}

func TestAuditLogErrors(t *testing.T) {
	for _, profile := range []string{simulator.ProfileDocumented, simulator.ProfileGenerous} {
		t.Run(profile, func(t *testing.T) {
			opts := roomy(nil)
			opts.Profile = profile
			h := newHarness(t, opts, simulator.OrgSpec{Name: "acme", Seed: 19, Users: 20, Events: 100})

			h.org.SetFaults(simulator.Faults{AuditLogDisabled: true})
			r := h.get("/events")
			assert.Equal(t, http.StatusForbidden, r.status)
			want := `{"message":"You do not have access to that record."}`
			if profile == simulator.ProfileGenerous {
				want = `{"message":"The Audit Log add-on is not enabled for this organization."}`
			}
			assert.JSONEq(t, want, string(r.body))

			// The wrong host answers before auth, faults and limits.
			h.org.SetFaults(simulator.Faults{AuditLogWrongHost: true, Fail5xx: 1, AdminNotSiteAdmin: true})
			before := h.org.Stats()
			for _, target := range []string{"/events", "/events?paging=true", "/events/"} {
				r = h.get(target)
				assert.Equal(t, http.StatusNotFound, r.status, target)
				assert.JSONEq(t, `{"message":"Resource not found"}`, string(r.body), target)
				assert.Empty(t, r.header.Get("X-RateLimit-Limit"), target)
			}
			h.clock.Advance(2 * time.Hour) // the token expired: still the wrong host
			assert.Equal(t, http.StatusNotFound, h.get("/events").status)
			after := h.org.Stats()
			assert.Equal(t, before.AuditRequests+4, after.AuditRequests)
			assert.Equal(t, before.Requests+4, after.Requests)
			assert.Equal(t, 1, h.org.Faults().Fail5xx, "untouched by the wrong host")
			h.org.SetFaults(simulator.Faults{})
			h.token = h.mint(h.org.Credentials().AdminUserID)
			h.org.SetFaults(simulator.Faults{AuditLogWrongHost: true})
			assert.Equal(t, http.StatusOK, h.get("/v3/user_roles").status, "Harvest is on its own host")
		})
	}
}

func TestAdminHarvestAccessEvents(t *testing.T) {
	h := newHarness(t, roomy(nil), simulator.OrgSpec{Name: "acme", Seed: 20, Users: 300, Events: 3000})
	admin := h.org.Credentials().AdminUserID
	before := h.org.Truth()
	var adminUser simulator.TruthUser
	for _, u := range before.Users {
		if u.ID == admin {
			adminUser = u
		}
	}
	require.NotNil(t, adminUser.LastActivityAt, "the admin has activity of its own")

	h.clock.Advance(time.Minute + 123*time.Millisecond)
	now := h.clock.Now()
	lists := []struct{ target, targetType string }{
		{"/v3/users?per_page=500&show_service_accounts=true", "User"},
		{"/v3/user_roles", "UserRole"},
		{"/v3/user_job_permissions?per_page=500", "UserJobPermission"},
		{"/v3/future_job_permissions", "FutureJobPermission"},
	}
	for _, l := range lists {
		require.Equal(t, http.StatusOK, h.get(l.target).status, l.target)
	}
	// Neither a refused request nor a token without sub records anything.
	require.Equal(t, http.StatusUnprocessableEntity, h.get("/v3/users?per_page=0").status)
	cred := h.org.Credentials()
	r := h.tokenReq(cred.ClientID, cred.ClientSecret, "grant_type=client_credentials")
	require.Equal(t, http.StatusOK, r.status)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	r.json(t, &tok)
	adminToken := h.token
	h.token = tok.AccessToken
	require.Equal(t, http.StatusOK, h.get("/v3/user_roles").status)
	h.token = adminToken

	query := "/events?size=500&event_types=harvest_access&performer_types=user"
	first := h.get(query)
	require.Equal(t, http.StatusOK, first.status)
	assert.Equal(t, string(first.body), string(h.get(query).body), "rendered the same every time")
	var p struct {
		Hits    int              `json:"hits"`
		Results []map[string]any `json:"results"`
	}
	first.json(t, &p)
	require.Equal(t, len(lists), p.Hits)
	for i, e := range p.Results {
		l := lists[len(lists)-1-i] // newest first; one millisecond apart at most, ties by creation
		assert.Equal(t, map[string]any{"type": "user", "id": float64(admin), "ip_address": e["performer"].(map[string]any)["ip_address"],
			"meta": map[string]any{"name": adminUser.Name, "username": adminUser.Email}}, e["performer"])
		assert.Equal(t, l.target, e["request"].(map[string]any)["type"])
		assert.Regexp(t, `^[0-9a-f]{16}$`, e["request"].(map[string]any)["id"])
		assert.Equal(t, map[string]any{"type": "harvest_access", "target_type": l.targetType, "target_id": nil, "meta": nil}, e["event"])
		assert.Equal(t, now.Format("2006-01-02T15:04:05.000Z"), e["event_time"])
	}

	after := h.org.Truth()
	assert.Equal(t, before.Events+len(lists), after.Events, "retrievable events include them")
	assert.Equal(t, before.UserEvents+len(lists), after.UserEvents, "performed by a user")
	assert.Equal(t, before.SeatUseEvents, after.SeatUseEvents, "but no one's seat use")
	assert.Equal(t, before.Daily, after.Daily)
	assert.Equal(t, before.Users, after.Users, "the admin's last activity stays")

	t.Run("a user's API change", func(t *testing.T) {
		when := now.Add(-time.Minute)
		require.NoError(t, h.org.AddAPIUserEvent(admin, when, "data_change_update", "/v3/users/123"))
		require.NoError(t, h.org.AddAPIUserEvent(admin, when, "data_change_create", "POST https://harvest.greenhouse.io/v3/users"))
		assert.Error(t, h.org.AddAPIUserEvent(1, when, "data_change_update", "/v3/users/1"))
		evs := decodeEventsAt(t, h, "/events?size=500&event_types=data_change_update,data_change_create&after_time="+
			at(when.Truncate(time.Second))+"&before_time="+at(when.Truncate(time.Second).Add(time.Second)))
		var types []string
		for _, e := range evs {
			if e.Performer.ID == float64(admin) {
				types = append(types, e.Request.Type)
			}
		}
		assert.ElementsMatch(t, []string{"/v3/users/123", "POST https://harvest.greenhouse.io/v3/users"}, types)
		tr := h.org.Truth()
		assert.Equal(t, after.SeatUseEvents, tr.SeatUseEvents)
		assert.Equal(t, after.UserEvents+2, tr.UserEvents)
		assert.Equal(t, after.Daily, tr.Daily)
		assert.Equal(t, after.Users, tr.Users)

		require.NoError(t, h.org.AddAPIUserEvent(admin, when, "data_change_update", "users#update"), "not an API request")
		tr = h.org.Truth()
		assert.Equal(t, after.SeatUseEvents+1, tr.SeatUseEvents)
		for _, u := range tr.Users {
			if u.ID == admin {
				require.NotNil(t, u.LastActivityAt)
				assert.Equal(t, when.Truncate(time.Second), *u.LastActivityAt)
			}
		}
	})

	t.Run("generous records nothing", func(t *testing.T) {
		g := newHarness(t, generous(nil), simulator.OrgSpec{Name: "acme", Seed: 20, Users: 300, Events: 3000})
		before := g.org.Truth()
		for _, l := range lists {
			require.Equal(t, http.StatusOK, g.get(l.target).status, l.target)
		}
		assert.Equal(t, before, g.org.Truth())
	})
}

func TestSeatUse(t *testing.T) {
	for _, tc := range []struct {
		performer, event, request string
		use                       bool
	}{
		{"user", "data_change_update", "applications#update", true},
		{"user", "data_change_create", "candidates#create", true},
		{"user", "action", "report_viewed#create", true},
		{"user", "data_change_update", "", true},
		{"user", "data_change_update", "get /v3/users", true}, // a method is in capitals
		{"user", "data_change_update", "GET candidates#show", true},
		{"user", "harvest_access", "/v3/users?per_page=500", false},
		{"user", "harvest_access", "candidates#show", false},
		{"user", "data_change_update", "/v3/users/123", false},
		{"user", "data_change_update", "https://harvest.greenhouse.io/v1/users/1", false},
		{"user", "data_change_update", "http://harvest.greenhouse.io/v1/users/1", false},
		{"user", "data_change_create", "POST /v3/users", false},
		{"user", "data_change_update", "PATCH https://harvest.greenhouse.io/v3/users/1", false},
		{"api_key", "harvest_access", "GET /v3/users", false},
		{"api_key", "data_change_update", "applications#update", false},
		{"greenhouse_internal", "data_change_update", "applications#update", false},
		{"oauth", "mcp_tool_call", "list_offices", false},
	} {
		assert.Equal(t, tc.use, simulator.SeatUse(tc.performer, tc.event, tc.request), "%+v", tc)
	}
}
