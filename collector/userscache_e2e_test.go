package collector_test

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse/simulator"
	"github.com/seatwatch/greenhouse-collector/events"
	"github.com/seatwatch/greenhouse-collector/storage/storagetest"
)

// A tenant synced every minute has its users synced from the users cache (what the last
// sync stored) rather than read back from ClickHouse: the runs served so see every change
// (a deactivation, a removal, a new user, new activity) once, and what they store matches
// the simulator's truth each time; a replica restarted on the same data reads ClickHouse
// again and repeats nothing.
func TestUsersCacheServesSyncs(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	g := startSim(t, nil)
	org := g.addOrg(t, simulator.OrgSpec{Name: "often", Seed: 31, Users: 60, Events: 600})
	cfg := testConfig(t, storagetest.Database(t))
	e := startEnv(t, cfg)
	body := connectBody(org, g.URL)
	body["settings"] = map[string]any{"users_interval": "1m", "audit_interval": "5m"}
	require.Equal(t, http.StatusOK, e.call(http.MethodPut, "/v1/tenants/often/connections/greenhouse", body, nil))
	e.waitConnection("often", time.Minute, func(c events.Connection) bool {
		return c.Freshness.UsersSyncedAt != nil && c.Freshness.AuditSyncedThrough != nil
	})
	syncNow := func(e *env) {
		t.Helper()
		var run map[string]string
		require.Equal(t, http.StatusAccepted, e.call(http.MethodPost, "/v1/tenants/often/connections/greenhouse/sync", nil, &run))
		e.waitConnection("often", time.Minute, func(c events.Connection) bool {
			return c.LastSync != nil && c.LastSync.RunID == run["run_id"] && c.LastSync.Kind == "audit"
		})
	}
	assertMatchesTruth(t, e.app.Store, "often", org.Truth(), true)

	truth := org.Truth()
	var active []int64
	for _, u := range truth.Users {
		if u.Status == "active" && !u.SiteAdmin && !u.ServiceAccount {
			active = append(active, u.ID)
		}
	}
	require.GreaterOrEqual(t, len(active), 3)
	require.NoError(t, org.DeactivateUser(active[0]))
	require.NoError(t, org.RemoveUser(active[1]))
	require.NoError(t, org.AddUserEvent(active[2], time.Now().Add(-time.Second), "action"))
	added := org.AddUser(simulator.NewUser{Name: "New Hire", Email: "new.hire@example.com"})
	syncNow(e)
	assertMatchesTruth(t, e.app.Store, "often", org.Truth(), true)
	syncNow(e)
	assertMatchesTruth(t, e.app.Store, "often", org.Truth(), true)

	changed := func(e *env, user int64) int {
		n := 0
		for _, ev := range decodeAll(t, streamMessages(t, e.app)) {
			if ev.Type == string(events.TypeUserChanged) && ev.Subject == fmt.Sprintf("users/%d", user) {
				n++
			}
		}
		return n
	}
	assert.Equal(t, 2, changed(e, active[0]), "listed, then deactivated: once")
	assert.Equal(t, 2, changed(e, active[1]), "listed, then removed: once")
	assert.Equal(t, 1, changed(e, added), "new: once")
	assert.Equal(t, 1, changed(e, active[2]), "new activity changes no user field")
	reads := usersReadsOf(t, e)
	assert.GreaterOrEqual(t, reads["cache"], 2, "the two requested users syncs at least were served by the cache: %v", reads)

	all := len(decodeAll(t, streamMessages(t, e.app)))
	e.stop()
	e2 := startEnv(t, cfg)
	syncNow(e2)
	assertMatchesTruth(t, e2.app.Store, "often", org.Truth(), true)
	assert.Positive(t, usersReadsOf(t, e2)["clickhouse"], "a new replica reads ClickHouse")
	for _, ev := range decodeAll(t, streamMessages(t, e2.app))[all:] {
		assert.NotEqual(t, string(events.TypeUserChanged), ev.Type, "nothing changed since: %s", ev.ID)
	}
}

// A tenant on the hourly default keeps nothing in the users cache, but its first job's
// backfill applies its activity to the users its users sync stored without reading them back;
// and that first users sync reads nothing either: nothing of the tenant is stored yet
// (firstUsersOf).
func TestFirstJobCarriesItsUsers(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	ct := connectTenant(t, simulator.OrgSpec{Name: "hourly", Seed: 32, Users: 40, Events: 400}, nil)
	ct.waitConnection("hourly", time.Minute, func(c events.Connection) bool {
		return c.Freshness.UsersSyncedAt != nil && c.Freshness.AuditSyncedThrough != nil
	})
	assert.Equal(t, map[string]int{"cache": 1}, usersReadsOf(t, ct.env), "neither the first users sync nor the backfill's activity pass reads ClickHouse")
	assertMatchesTruth(t, ct.app.Store, "hourly", ct.org.Truth(), true)
}

// usersReadsOf is collector_users_reads_total by source, from the metrics page.
func usersReadsOf(t *testing.T, e *env) map[string]int {
	t.Helper()
	seen := e.responses.String()
	require.Equal(t, http.StatusOK, e.call(http.MethodGet, "/metrics", nil, nil))
	page := e.responses.String()[len(seen):]
	out := map[string]int{}
	for _, m := range regexp.MustCompile(`collector_users_reads_total\{source="(\w+)"\} (\d+)`).FindAllStringSubmatch(page, -1) {
		n, err := strconv.Atoi(m[2])
		require.NoError(t, err)
		out[m[1]] = n
	}
	return out
}
