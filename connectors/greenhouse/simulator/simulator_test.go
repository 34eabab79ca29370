package simulator_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse/simulator"
)

type harness struct {
	t     *testing.T
	srv   *httptest.Server
	org   *simulator.Org
	token string
}

func newHarness(t *testing.T, opts simulator.Options, spec simulator.OrgSpec) *harness {
	sim := simulator.New(opts)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	org, err := sim.AddOrg(spec)
	require.NoError(t, err)
	h := &harness{t: t, srv: srv, org: org}
	h.token = h.mint(org.Credentials().AdminUserID)
	return h
}

func (h *harness) mint(sub int64) string {
	c := h.org.Credentials()
	req, _ := http.NewRequest("POST", h.srv.URL+"/token", strings.NewReader("grant_type=client_credentials&sub="+strconv.FormatInt(sub, 10)))
	req.SetBasicAuth(c.ClientID, c.ClientSecret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(h.t, err)
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresAt   string `json:"expires_at"`
		ExpiresIn   int    `json:"expires_in"`
	}
	require.Equal(h.t, 200, resp.StatusCode)
	require.NoError(h.t, json.NewDecoder(resp.Body).Decode(&tok))
	require.NotEmpty(h.t, tok.ExpiresAt)
	require.Positive(h.t, tok.ExpiresIn)
	return tok.AccessToken
}

func (h *harness) get(target string, hdr map[string]string) (*http.Response, []byte) {
	if !strings.HasPrefix(target, "http") {
		target = h.srv.URL + target
	}
	req, _ := http.NewRequest("GET", target, nil)
	req.Header.Set("Authorization", "Bearer "+h.token)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(h.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(h.t, err)
	return resp, b
}

var nextRe = regexp.MustCompile(`<([^>]+)>; rel="next"`)

func TestCursorPaginationIsDescendingAndStrict(t *testing.T) {
	h := newHarness(t, simulator.Options{}, simulator.OrgSpec{Name: "acme", Seed: 1, Users: 230, Events: 10})
	var ids []int64
	next := "/v3/users?per_page=100&show_service_accounts=true"
	pages := 0
	for next != "" {
		resp, body := h.get(next, nil)
		require.Equal(t, 200, resp.StatusCode, string(body))
		for _, k := range []string{"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} {
			assert.NotEmpty(t, resp.Header.Get(k), k)
		}
		var page []struct{ ID int64 }
		require.NoError(t, json.Unmarshal(body, &page))
		for _, u := range page {
			ids = append(ids, u.ID)
		}
		pages++
		next = ""
		if m := nextRe.FindStringSubmatch(resp.Header.Get("Link")); m != nil {
			next = m[1]
			u, _ := url.Parse(next)
			assert.Equal(t, []string{"cursor"}, keys(u.Query()), "a next link carries only the cursor")
		}
	}
	assert.Equal(t, 3, pages)
	require.Len(t, ids, 230)
	for i := 1; i < len(ids); i++ {
		assert.Less(t, ids[i], ids[i-1])
	}
	// A cursor with another parameter: 422.
	resp, body := h.get("/v3/users?per_page=100", nil)
	m := nextRe.FindStringSubmatch(resp.Header.Get("Link"))
	require.NotNil(t, m, string(body))
	resp, body = h.get(m[1]+"&per_page=5", nil)
	assert.Equal(t, 422, resp.StatusCode)
	assert.Contains(t, string(body), "When passing a cursor, do not include other query params.")
	resp, _ = h.get("/v3/users?per_page=501", nil)
	assert.Equal(t, 422, resp.StatusCode)
}

func keys(v url.Values) []string {
	var out []string
	for k := range v {
		out = append(out, k)
	}
	return out
}

func TestUserFilters(t *testing.T) {
	h := newHarness(t, simulator.Options{}, simulator.OrgSpec{Name: "acme", Seed: 2, Users: 300, Events: 10})
	truth := h.org.Truth()
	count := func(q string) int {
		resp, body := h.get("/v3/users?per_page=500&"+q, nil)
		require.Equal(t, 200, resp.StatusCode, string(body))
		var page []json.RawMessage
		require.NoError(t, json.Unmarshal(body, &page))
		return len(page)
	}
	services, deactivated := 0, 0
	for _, u := range truth.Users {
		if u.ServiceAccount {
			services++
		}
		if u.Status == "deactivated" {
			deactivated++
		}
	}
	require.Positive(t, services)
	assert.Equal(t, 300, count("show_service_accounts=true"))
	assert.Equal(t, 300-services, count(""), "service accounts hidden by default")
	assert.Equal(t, deactivated, count("show_service_accounts=true&deactivated=true"))
	assert.Equal(t, 2, count("ids="+strconv.FormatInt(truth.Users[0].ID, 10)+","+strconv.FormatInt(truth.Users[1].ID, 10)+"&show_service_accounts=true"))
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	assert.Equal(t, 0, count("updated_at=gte|"+future))
	assert.Equal(t, 300, count("show_service_accounts=true&updated_at=lte|"+future))
	resp, _ := h.get("/v3/users?created_at=gte|2020-01-01T00:00:00Z&updated_at=gte|2020-01-01T00:00:00Z", nil)
	assert.Equal(t, 422, resp.StatusCode, "created_at and updated_at together")
}

func TestRateLimitAnd429(t *testing.T) {
	h := newHarness(t, simulator.Options{HarvestLimit: 2, HarvestWindow: 10 * time.Second}, simulator.OrgSpec{Name: "acme", Seed: 3, Users: 5, Events: 10})
	r1, _ := h.get("/v3/user_roles", nil)
	r2, _ := h.get("/v3/user_roles", nil)
	r3, body := h.get("/v3/user_roles", nil)
	assert.Equal(t, "1", r1.Header.Get("X-RateLimit-Remaining"))
	assert.Equal(t, "0", r2.Header.Get("X-RateLimit-Remaining"))
	assert.Equal(t, 429, r3.StatusCode)
	assert.JSONEq(t, `{"message":"Rate limit exceeded"}`, string(body))
	ra, err := strconv.Atoi(r3.Header.Get("Retry-After"))
	require.NoError(t, err)
	assert.True(t, ra >= 1 && ra <= 10, "Retry-After %d", ra)
	assert.Equal(t, int64(1), h.org.Stats().Throttled)
}

func TestTokenErrorsAndExpiry(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	h := newHarness(t, simulator.Options{Now: clock, TokenTTL: time.Minute}, simulator.OrgSpec{Name: "acme", Seed: 4, Users: 5, Events: 10})
	resp, _ := h.get("/v3/user_roles", nil)
	assert.Equal(t, 200, resp.StatusCode)
	now = now.Add(2 * time.Minute)
	resp, body := h.get("/v3/user_roles", nil)
	assert.Equal(t, 401, resp.StatusCode, "expired token")
	assert.Contains(t, string(body), "Token could not be decoded")

	req, _ := http.NewRequest("POST", h.srv.URL+"/token", strings.NewReader("grant_type=client_credentials"))
	req.SetBasicAuth(h.org.Credentials().ClientID, "wrong")
	r, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	assert.Equal(t, 401, r.StatusCode)
	assert.JSONEq(t, `{"error":"invalid_client"}`, string(b))
}

func TestNonAdminSubIsForbidden(t *testing.T) {
	h := newHarness(t, simulator.Options{}, simulator.OrgSpec{Name: "acme", Seed: 5, Users: 200, Events: 10})
	var basic int64
	for _, u := range h.org.Truth().Users {
		if u.Status == "active" && !u.SiteAdmin && !u.ServiceAccount {
			basic = u.ID
			break
		}
	}
	h.token = h.mint(basic)
	resp, body := h.get("/v3/users", nil)
	assert.Equal(t, 403, resp.StatusCode)
	assert.Contains(t, string(body), "Site Admin")
}

func TestEventsWindowsAndPointInTime(t *testing.T) {
	h := newHarness(t, simulator.Options{AuditPagedLimit: 10}, simulator.OrgSpec{Name: "acme", Seed: 6, Users: 100, Events: 1200})
	truth := h.org.Truth()
	after := time.Now().Add(-40 * 24 * time.Hour).UTC().Format("2006-01-02T15:04:05Z")
	resp, body := h.get("/events?size=500&after_time="+after, nil)
	require.Equal(t, 200, resp.StatusCode, string(body))
	var plain struct {
		Hits    int               `json:"hits"`
		Results []json.RawMessage `json:"results"`
	}
	require.NoError(t, json.Unmarshal(body, &plain))
	assert.Equal(t, truth.Events, plain.Hits, "retention: only the last 30 days")
	assert.Len(t, plain.Results, 500)

	resp, _ = h.get("/events?after_time=2026-01-01T00:00:00.000Z", nil)
	assert.Equal(t, 422, resp.StatusCode, "fractions are refused")
	resp, _ = h.get("/events?size=50", nil)
	assert.Equal(t, 422, resp.StatusCode, "size below 100")

	// Point in time: pages until next_search_after is null and results are empty.
	type page struct {
		Paging struct {
			PitID string  `json:"pit_id"`
			Next  *string `json:"next_search_after"`
		} `json:"paging"`
		Hits    int `json:"hits"`
		Results []struct {
			EventTime string `json:"event_time"`
		} `json:"results"`
	}
	var p page
	resp, body = h.get("/events?paging=true", map[string]string{"Size": "500"})
	require.Equal(t, 200, resp.StatusCode, string(body))
	require.NoError(t, json.Unmarshal(body, &p))
	got := len(p.Results)
	pages := 1
	prev := ""
	for p.Paging.Next != nil {
		for _, r := range p.Results {
			if prev != "" {
				assert.LessOrEqual(t, r.EventTime, prev, "newest first")
			}
			prev = r.EventTime
		}
		assert.Len(t, strings.Split(*p.Paging.Next, ","), 2)
		resp, body = h.get("/events?paging=true", map[string]string{"Size": "500", "Pit-Id": p.Paging.PitID, "Search-After": *p.Paging.Next})
		require.Equal(t, 200, resp.StatusCode, string(body))
		p = page{}
		require.NoError(t, json.Unmarshal(body, &p))
		got += len(p.Results)
		pages++
	}
	assert.Empty(t, p.Results, "the last page is empty")
	assert.Equal(t, truth.Events, got)
	assert.Equal(t, 4, pages, "3 full pages and the empty last one")
	assert.Equal(t, int64(4), h.org.Stats().AuditPaged)

	h.org.SetFaults(simulator.Faults{AuditLogDisabled: true})
	resp, body = h.get("/events", nil)
	assert.Equal(t, 403, resp.StatusCode)
	assert.Contains(t, string(body), "not enabled")
}

func TestTruthFollowsMutations(t *testing.T) {
	h := newHarness(t, simulator.Options{}, simulator.OrgSpec{Name: "acme", Seed: 7, Users: 50, Events: 100})
	truth := h.org.Truth()
	victim := truth.Users[5].ID
	require.NoError(t, h.org.RemoveUser(victim))
	id := h.org.AddUser(simulator.NewUser{Name: "New Person", Email: "new@acme.example"})
	require.NoError(t, h.org.GrantJobPermission(id, 1))
	at := time.Now().Add(-time.Minute).Truncate(time.Second)
	require.NoError(t, h.org.AddUserEvent(id, at, "action"))
	after := h.org.Truth()
	byID := map[int64]simulator.TruthUser{}
	for _, u := range after.Users {
		byID[u.ID] = u
	}
	assert.Equal(t, "removed", byID[victim].Status)
	assert.Equal(t, "job_admin", byID[id].LicenseType)
	require.NotNil(t, byID[id].LastActivityAt)
	assert.True(t, at.Equal(*byID[id].LastActivityAt))
	assert.Equal(t, truth.Events+1, after.Events)
	resp, body := h.get("/v3/users?per_page=500&show_service_accounts=true", nil)
	require.Equal(t, 200, resp.StatusCode)
	assert.NotContains(t, string(body), `"id":`+strconv.FormatInt(victim, 10)+`,`, "a removed user is gone from listings")
	assert.Contains(t, string(body), `"id":`+strconv.FormatInt(id, 10)+`,`)
}
