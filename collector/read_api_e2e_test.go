package collector_test

import (
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/collector"
	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse/simulator"
	"github.com/seatwatch/greenhouse-collector/events"
	"github.com/seatwatch/greenhouse-collector/storage/storagetest"
)

// readEnv is a collector with one synced tenant for the read API's end-to-end tests.
type readEnv struct {
	*env
	sim    *simulator.Server
	simURL string
	org    *simulator.Org
	tenant string
}

// Tokens of the tokens file of the read API's tests.
const (
	readerToken    = "reader-token-0123456789abcdef"
	connectorToken = "connector-token-0123456789abcdef"
)

func startReadEnv(t *testing.T) *readEnv {
	t.Helper()
	sim := fastSim()
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	org, err := sim.AddOrg(simulator.OrgSpec{Name: "reads", Seed: 21, Users: 300, Events: 9000})
	require.NoError(t, err)
	cfg := testConfig(t, storagetest.Database(t))
	cfg.APITokensFile = filepath.Join(t.TempDir(), "tokens")
	require.NoError(t, os.WriteFile(cfg.APITokensFile, []byte(
		"reader read "+readerToken+"\nconnector connect "+connectorToken+"\n"), 0o600))
	e := startEnv(t, cfg)
	r := &readEnv{env: e, sim: sim, simURL: srv.URL, org: org, tenant: "reads"}
	require.Equal(t, 200, e.call(http.MethodPut, "/v1/tenants/reads/connections/greenhouse", connectBody(org, srv.URL), nil))
	e.waitConnection("reads", 2*time.Minute, func(c events.Connection) bool {
		return c.Freshness.UsersSyncedAt != nil && c.Freshness.AuditSyncedThrough != nil && c.LastSync != nil && c.LastSync.Kind == "audit"
	})
	return r
}

// syncNow asks for a sync and waits until its audit run has ended.
func (r *readEnv) syncNow() {
	r.t.Helper()
	var run map[string]string
	require.Equal(r.t, 202, r.call(http.MethodPost, "/v1/tenants/"+r.tenant+"/connections/greenhouse/sync", nil, &run))
	r.waitConnection(r.tenant, time.Minute, func(c events.Connection) bool {
		return c.LastSync != nil && c.LastSync.RunID == run["run_id"] && c.LastSync.Kind == "audit"
	})
}

// walk reads every page of a users list and returns the rows and the total of each page.
func (r *readEnv) walk(query url.Values, between func(page int)) ([]collector.ListedUser, []int) {
	r.t.Helper()
	var (
		rows   []collector.ListedUser
		totals []int
		cursor string
	)
	for page := 0; ; page++ {
		q := url.Values{}
		for k, v := range query {
			q[k] = v
		}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var p collector.UsersPage
		require.Equal(r.t, 200, r.call(http.MethodGet, "/v1/tenants/"+r.tenant+"/users?"+q.Encode(), nil, &p))
		rows = append(rows, p.Users...)
		totals = append(totals, p.Total)
		if p.NextCursor == "" {
			return rows, totals
		}
		require.Less(r.t, page, 1000, "the walk does not end")
		cursor = p.NextCursor
		if between != nil {
			between(page)
		}
	}
}

func ids(rows []collector.ListedUser) []int64 {
	out := make([]int64, len(rows))
	for i, u := range rows {
		out[i] = u.UserID
	}
	return out
}

// truthUsage is the usage of a truth user now: "" without a license.
func truthUsage(u simulator.TruthUser, now time.Time) string {
	if u.Status != "active" || u.ServiceAccount {
		return ""
	}
	threshold := now.Add(-30 * 24 * time.Hour)
	switch {
	case u.LastActivityAt != nil && !u.LastActivityAt.Before(threshold):
		return "active"
	case u.CreatedAt.Before(threshold):
		return "inactive"
	}
	return "unknown"
}

// sortTruth orders truth users as the list does for sort and order.
func sortTruth(users []simulator.TruthUser, key string, desc bool) []int64 {
	cmp := func(a, b simulator.TruthUser) int {
		switch key {
		case "email":
			return strings.Compare(strings.ToLower(a.Email)+"\x00"+a.Email, strings.ToLower(b.Email)+"\x00"+b.Email)
		case "created_at":
			return a.CreatedAt.Truncate(time.Second).Compare(b.CreatedAt.Truncate(time.Second))
		case "last_activity_at":
			at := func(u simulator.TruthUser) time.Time {
				if u.LastActivityAt == nil {
					return time.Unix(0, 0)
				}
				return *u.LastActivityAt
			}
			return at(a).Compare(at(b))
		}
		return strings.Compare(strings.ToLower(a.Name)+"\x00"+a.Name, strings.ToLower(b.Name)+"\x00"+b.Name)
	}
	sorted := append([]simulator.TruthUser{}, users...)
	sort.SliceStable(sorted, func(i, j int) bool {
		c := cmp(sorted[i], sorted[j])
		if c == 0 {
			c = int(sorted[i].ID - sorted[j].ID)
		}
		if desc {
			return c > 0
		}
		return c < 0
	})
	out := make([]int64, len(sorted))
	for i, u := range sorted {
		out[i] = u.ID
	}
	return out
}

// TestReadAPI drives the read API against the simulator and a real ClickHouse: filters and
// sorts against the simulator's truth, cursor walks (one while a users sync changes rows),
// CSV equal to JSON, a user's history and activity, trends against the truth, sync runs,
// token scopes, and the OpenAPI contract.
func TestReadAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	r := startReadEnv(t)
	// A second users sync: its snapshot is judged with the backfill's activity applied.
	r.syncNow()
	truth := r.org.Truth()
	now := time.Now()

	t.Run("filters and sorts", func(t *testing.T) {
		type filter struct {
			query url.Values
			keep  func(simulator.TruthUser) bool
		}
		someName := ""
		for _, u := range truth.Users { // three letters from inside a first name, in capitals
			if first := strings.Fields(u.Name)[0]; len(first) >= 4 {
				someName = strings.ToUpper(first[1:4])
				break
			}
		}
		filters := map[string]filter{
			"all":      {url.Values{}, func(simulator.TruthUser) bool { return true }},
			"inactive": {url.Values{"usage": {"inactive"}}, func(u simulator.TruthUser) bool { return truthUsage(u, now) == "inactive" }},
			"active,unknown": {url.Values{"usage": {"active,unknown"}}, func(u simulator.TruthUser) bool {
				return truthUsage(u, now) == "active" || truthUsage(u, now) == "unknown"
			}},
			"job admins":       {url.Values{"license_type": {"job_admin"}}, func(u simulator.TruthUser) bool { return u.LicenseType == "job_admin" }},
			"deactivated":      {url.Values{"status": {"deactivated"}}, func(u simulator.TruthUser) bool { return u.Status == "deactivated" }},
			"service accounts": {url.Values{"service_account": {"true"}}, func(u simulator.TruthUser) bool { return u.ServiceAccount }},
			"licensed basic": {url.Values{"licensed": {"true"}, "license_type": {"basic"}}, func(u simulator.TruthUser) bool {
				return truthUsage(u, now) != "" && u.LicenseType == "basic"
			}},
			"q": {url.Values{"q": {someName}}, func(u simulator.TruthUser) bool {
				return strings.Contains(strings.ToLower(u.Name), strings.ToLower(someName)) || strings.Contains(strings.ToLower(u.Email), strings.ToLower(someName))
			}},
		}
		for name, f := range filters {
			var want []simulator.TruthUser
			for _, u := range truth.Users {
				if f.keep(u) {
					want = append(want, u)
				}
			}
			require.NotEmpty(t, want, name)
			for _, key := range []string{"name", "email", "created_at", "last_activity_at"} {
				for _, order := range []string{"asc", "desc"} {
					q := url.Values{"sort": {key}, "order": {order}, "limit": {"40"}}
					for k, v := range f.query {
						q[k] = v
					}
					rows, totals := r.walk(q, nil)
					assert.Equal(t, sortTruth(want, key, order == "desc"), ids(rows), "%s by %s %s", name, key, order)
					assert.Equal(t, len(want), totals[0], "%s: total", name)
				}
			}
		}
	})

	t.Run("rows", func(t *testing.T) {
		rows, _ := r.walk(url.Values{"limit": {"1000"}}, nil)
		byID := map[int64]collector.ListedUser{}
		for _, u := range rows {
			byID[u.UserID] = u
		}
		active := map[int64]int{}
		for _, d := range truth.Daily {
			if !d.Day.Before(now.UTC().Truncate(24*time.Hour).AddDate(0, 0, -29)) {
				active[d.UserID]++
			}
		}
		for _, u := range truth.Users {
			got := byID[u.ID]
			assert.Equal(t, truthUsage(u, now), got.Usage, "usage of %d", u.ID)
			assert.Equal(t, active[u.ID], got.ActiveDays30, "active days of %d", u.ID)
			if u.LastActivityAt == nil {
				assert.Nil(t, got.DaysSinceActivity)
			} else if assert.NotNil(t, got.DaysSinceActivity) {
				assert.InDelta(t, int(now.Sub(*u.LastActivityAt)/(24*time.Hour)), *got.DaysSinceActivity, 1, "days since activity of %d", u.ID)
			}
		}
	})

	t.Run("trends against the truth", func(t *testing.T) {
		var tr collector.Trends
		require.Equal(t, 200, r.call(http.MethodGet, "/v1/tenants/reads/trends?bucket=day&from="+now.AddDate(0, 0, -2).Format(time.DateOnly), nil, &tr))
		require.Len(t, tr.Buckets, 3)
		last := tr.Buckets[len(tr.Buckets)-1]
		require.NotNil(t, last.SnapshotAt, "today has a users sync")
		byType := map[string]int{}
		counts := map[string]int{}
		users := 0
		for _, u := range truth.Users {
			if u.Status != "removed" {
				users++
			}
			if use := truthUsage(u, now); use != "" {
				byType[u.LicenseType]++
				counts[use]++
			}
		}
		assert.Equal(t, users, *last.Users)
		assert.Equal(t, byType, last.LicensesByType)
		assert.Equal(t, counts["active"], *last.Active)
		assert.Equal(t, counts["inactive"], *last.Inactive)
		assert.Equal(t, counts["unknown"], *last.Unknown)
		assert.InDelta(t, float64(counts["active"])/float64(*last.Licenses), *last.Utilisation, 1e-9)
		assert.Nil(t, tr.Buckets[0].SnapshotAt, "no sync two days ago")
		for _, b := range []string{"week", "month"} {
			require.Equal(t, 200, r.call(http.MethodGet, "/v1/tenants/reads/trends?bucket="+b, nil, &tr))
			lb := tr.Buckets[len(tr.Buckets)-1]
			require.NotNil(t, lb.SnapshotAt, b)
			assert.Equal(t, byType, lb.LicensesByType, b)
		}
	})

	t.Run("CSV equals JSON", func(t *testing.T) {
		q := url.Values{"usage": {"inactive,active"}, "sort": {"email"}, "order": {"desc"}}
		rows, _ := r.walk(url.Values{"usage": q["usage"], "sort": q["sort"], "order": q["order"], "limit": {"17"}}, nil)
		records := r.csv("/v1/tenants/reads/users?" + q.Encode())
		header := records[0]
		require.Len(t, records, len(rows)+1)
		col := map[string]int{}
		for i, h := range header {
			col[h] = i
		}
		for i, u := range rows {
			rec := records[i+1]
			days := ""
			if u.DaysSinceActivity != nil {
				days = strconv.Itoa(*u.DaysSinceActivity)
			}
			last := ""
			if u.LastActivityAt != nil {
				last = u.LastActivityAt.Format(time.RFC3339)
			}
			for name, want := range map[string]string{
				"user_id": strconv.FormatInt(u.UserID, 10), "name": u.Name, "email": u.Email, "status": u.Status,
				"licensed": strconv.FormatBool(u.Licensed), "license_type": u.LicenseType, "usage": u.Usage, "reason": u.Reason,
				"days_since_activity": days, "active_days_30": strconv.Itoa(u.ActiveDays30), "last_activity_at": last,
				"created_at": u.CreatedAt.Format(time.RFC3339), "service_account": strconv.FormatBool(u.ServiceAccount),
			} {
				assert.Equal(t, want, rec[col[name]], "row %d, %s", i, name)
			}
		}
		// Sync runs too.
		var page collector.SyncRunsPage
		require.Equal(t, 200, r.call(http.MethodGet, "/v1/tenants/reads/sync-runs?limit=1000", nil, &page))
		runs := r.csv("/v1/tenants/reads/sync-runs")
		require.Len(t, runs, len(page.Runs)+1)
		for i, run := range page.Runs {
			assert.Equal(t, []string{run.RunID, string(run.Kind), run.StartedAt.Format(time.RFC3339)}, runs[i+1][:3])
		}
		// Paging parameters are the JSON answer's.
		assert.Equal(t, 400, r.status("/v1/tenants/reads/users?limit=5", "text/csv", testToken))
	})

	t.Run("sync runs paged", func(t *testing.T) {
		var all collector.SyncRunsPage
		require.Equal(t, 200, r.call(http.MethodGet, "/v1/tenants/reads/sync-runs", nil, &all))
		kinds := map[string]int{}
		for _, run := range all.Runs {
			kinds[string(run.Kind)]++
		}
		// An asked-for sync's users and audit runs share a run id; sync_runs (keyed by start
		// and run id) keeps one of the two when both start within the same second.
		require.GreaterOrEqual(t, len(all.Runs), 3)
		require.Positive(t, kinds["users"])
		require.Positive(t, kinds["audit"])
		var got []events.SyncSummary
		cursor := ""
		for {
			var p collector.SyncRunsPage
			path := "/v1/tenants/reads/sync-runs?limit=1"
			if cursor != "" {
				path += "&cursor=" + url.QueryEscape(cursor)
			}
			require.Equal(t, 200, r.call(http.MethodGet, path, nil, &p))
			got = append(got, p.Runs...)
			if cursor = p.NextCursor; cursor == "" {
				break
			}
		}
		assert.Equal(t, all.Runs, got)
		var audit collector.SyncRunsPage
		require.Equal(t, 200, r.call(http.MethodGet, "/v1/tenants/reads/sync-runs?kind=audit", nil, &audit))
		for _, run := range audit.Runs {
			assert.Equal(t, events.RunAudit, run.Kind)
			assert.Equal(t, events.RunSucceeded, run.Status)
		}
	})

	t.Run("token scopes", func(t *testing.T) {
		for _, c := range []struct {
			path, token string
			code        int
		}{
			{"/v1/tenants/reads/users?limit=1", readerToken, 200},
			{"/v1/tenants/reads/trends", readerToken, 200},
			{"/v1/tenants/reads/connections/greenhouse", readerToken, 403},
			{"/v1/tenants/reads/users?limit=1", connectorToken, 403},
			{"/v1/tenants/reads/connections/greenhouse", connectorToken, 200},
			{"/metrics", connectorToken, 403},
			{"/v1/tenants/reads/users?limit=1", testToken, 200},
			{"/v1/tenants/reads/connections/greenhouse", testToken, 200},
			{"/v1/tenants/reads/users?limit=1", "nope-nope-nope-nope", 401},
		} {
			assert.Equal(t, c.code, r.status(c.path, "", c.token), "%s with %s", c.path, c.token)
		}
	})

	t.Run("bad requests", func(t *testing.T) {
		for path, code := range map[string]int{
			"/v1/tenants/reads/users?exempt=maybe":          400,
			"/v1/tenants/reads/users?sort=password":         400,
			"/v1/tenants/reads/users?usage=sometimes":       400,
			"/v1/tenants/reads/users?limit=1001":            400,
			"/v1/tenants/reads/users?cursor=k1.AAAA":        400,
			"/v1/tenants/reads/users?limit=1&limit=2":       400,
			"/v1/tenants/reads/users/abc":                   400,
			"/v1/tenants/reads/users/999999999":             404,
			"/v1/tenants/nobody/users":                      404,
			"/v1/tenants/reads/trends?bucket=year":          400,
			"/v1/tenants/reads/trends?from=2000-01-01":      400,
			"/v1/tenants/reads/trends?from=2030-01-01":      400,
			"/v1/tenants/reads/sync-runs?kind=everything":   400,
			"/v1/tenants/reads/licenses?usage=all&extra=1":  400,
			"/v1/connections?limit=5&sort=name":             400,
			"/v1/tenants/reads/users/1?from=2020-01-01":     400,
			"/v1/tenants/reads/sync-runs?cursor=not-a-real": 400,
		} {
			assert.Equal(t, code, r.status(path, "", testToken), path)
		}
		// A cursor of one list is refused by another, and by the same list with other filters.
		var p collector.UsersPage
		require.Equal(t, 200, r.call(http.MethodGet, "/v1/tenants/reads/users?limit=5&sort=email", nil, &p))
		require.NotEmpty(t, p.NextCursor)
		assert.Equal(t, 400, r.status("/v1/tenants/reads/users?limit=5&cursor="+url.QueryEscape(p.NextCursor), "", testToken))
		assert.Equal(t, 400, r.status("/v1/tenants/reads/sync-runs?cursor="+url.QueryEscape(p.NextCursor), "", testToken))
		assert.Equal(t, 200, r.status("/v1/tenants/reads/users?limit=7&sort=email&cursor="+url.QueryEscape(p.NextCursor), "", testToken))
	})

	t.Run("OpenAPI conformance", func(t *testing.T) {
		checkOpenAPI(t, r)
	})

	t.Run("walk while a users sync changes rows, and history", func(t *testing.T) {
		// The walk in order of last activity, oldest first: new activity moves a user to the
		// end, deactivation and removal change rows, new users appear.
		before := r.org.Truth()
		q := url.Values{"sort": {"last_activity_at"}, "limit": {"20"}}
		want := sortTruth(before.Users, "last_activity_at", false)
		var (
			moved, deactivated, removed, promoted int64
			added                                 []int64
		)
		rows, totals := r.walk(q, func(page int) {
			if page != 1 {
				return
			}
			// After the second page: users ahead and behind the position change.
			byID := map[int64]simulator.TruthUser{}
			for _, u := range before.Users {
				byID[u.ID] = u
			}
			pick := func(from int, ok func(simulator.TruthUser) bool) int64 {
				for _, id := range want[from:] {
					if u := byID[id]; u.Status == "active" && !u.ServiceAccount && ok(u) {
						return id
					}
				}
				t.Fatalf("no user after position %d", from)
				return 0
			}
			moved = want[5]
			deactivated = pick(100, func(simulator.TruthUser) bool { return true })
			removed = pick(150, func(u simulator.TruthUser) bool { return u.ID != deactivated })
			promoted = pick(200, func(u simulator.TruthUser) bool { return u.LicenseType == "basic" && u.ID != want[250] })
			require.NoError(t, r.org.AddUserEvent(want[250], time.Now().Add(-time.Second), "action")) // ahead: moves to the end
			require.NoError(t, r.org.AddUserEvent(moved, time.Now().Add(-time.Second), "action"))     // behind: moves ahead
			require.NoError(t, r.org.DeactivateUser(deactivated))
			require.NoError(t, r.org.RemoveUser(removed))
			require.NoError(t, r.org.GrantJobPermission(promoted, 1))
			for i := 0; i < 3; i++ {
				added = append(added, r.org.AddUser(simulator.NewUser{Name: fmt.Sprintf("Aaron New%d", i), Email: fmt.Sprintf("new%d@reads.example", i)}))
			}
			r.syncNow()
			// The users table changed under the walk.
			var now collector.UsersPage
			require.Equal(t, 200, r.call(http.MethodGet, "/v1/tenants/reads/users?limit=1&sort=last_activity_at&order=desc", nil, &now))
			require.Equal(t, len(before.Users)+3, now.Total)
		})
		got := ids(rows)
		assert.Equal(t, want, got, "the walk is the list at its first page: no user repeated or skipped")
		for _, tot := range totals {
			assert.Equal(t, len(before.Users), tot)
		}
		seen := map[int64]bool{}
		for _, id := range got {
			assert.False(t, seen[id], "user %d twice", id)
			seen[id] = true
		}
		for _, id := range added {
			assert.False(t, seen[id], "a user created during the walk is not in it")
		}
		byID := map[int64]collector.ListedUser{}
		for _, u := range rows {
			byID[u.UserID] = u
		}
		assert.Equal(t, "deactivated", byID[deactivated].Status, "rows read after the sync show it")
		assert.Equal(t, "removed", byID[removed].Status)
		var sum collector.Summary
		require.Equal(t, 200, r.call(http.MethodGet, "/v1/tenants/reads/usage/summary", nil, &sum))
		byStatus := 0
		for _, n := range sum.UsersByStatus {
			byStatus += n
		}
		assert.Positive(t, sum.UsersByStatus["removed"])
		assert.Equal(t, byStatus, sum.Users, "the summary's users count every stored user, the removed ones included (docs/api.md)")

		// A new walk sees the new order and members.
		after := r.org.Truth()
		rows, _ = r.walk(q, nil)
		assert.Equal(t, sortTruth(after.Users, "last_activity_at", false), ids(rows))

		// The promoted user's history: created, then license_type; the activity is the truth's.
		var d collector.UserDetail
		require.Equal(t, 200, r.call(http.MethodGet, fmt.Sprintf("/v1/tenants/reads/users/%d?from=%s", moved, time.Now().AddDate(0, 0, -40).Format(time.DateOnly)), nil, &d))
		wantDays := map[string]int{}
		for _, a := range after.Daily {
			if a.UserID == moved {
				wantDays[a.Day.Format(time.DateOnly)] = a.Events
			}
		}
		gotDays := map[string]int{}
		for _, a := range d.Activity.Days {
			gotDays[a.Day] = a.Events
		}
		assert.Equal(t, wantDays, gotDays, "daily activity of %d", moved)
		require.Equal(t, 200, r.call(http.MethodGet, fmt.Sprintf("/v1/tenants/reads/users/%d", promoted), nil, &d))
		var changes [][]string
		for _, h := range d.History {
			changes = append(changes, h.Changed)
		}
		require.Len(t, d.History, 2, "%+v", d.History)
		assert.Equal(t, [][]string{{"created"}, {"license_type"}}, changes)
		assert.Equal(t, "job_admin", d.History[1].LicenseType)
		assert.Equal(t, "job_admin", d.User.LicenseType)
		assert.False(t, d.History[1].ChangedAt.Before(d.History[0].ChangedAt))
		require.Equal(t, 200, r.call(http.MethodGet, fmt.Sprintf("/v1/tenants/reads/users/%d", removed), nil, &d))
		assert.Equal(t, "removed", d.History[len(d.History)-1].Status)
	})
}

// status sends a GET with a token and an Accept header and returns the status.
func (r *readEnv) status(path, accept, token string) int {
	r.t.Helper()
	req, err := http.NewRequest(http.MethodGet, r.api+path, nil)
	require.NoError(r.t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(r.t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// csv reads a CSV export.
func (r *readEnv) csv(path string) [][]string {
	r.t.Helper()
	req, err := http.NewRequest(http.MethodGet, r.api+path, nil)
	require.NoError(r.t, err)
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Accept", "text/csv")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(r.t, err)
	defer resp.Body.Close()
	require.Equal(r.t, 200, resp.StatusCode)
	require.Equal(r.t, "text/csv; charset=utf-8", resp.Header.Get("Content-Type"))
	records, err := csv.NewReader(resp.Body).ReadAll()
	require.NoError(r.t, err)
	return records
}
