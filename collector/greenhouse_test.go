package collector_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse/simulator"
	"github.com/seatwatch/greenhouse-collector/events"
	"github.com/seatwatch/greenhouse-collector/storage"
	"github.com/seatwatch/greenhouse-collector/storage/storagetest"
)

// TestOwnAPITrafficIsNotUse: a token minted with the admin user as sub acts as that user, so
// the collector's own Harvest reads appear in the Audit Log as the admin's harvest_access
// events, and changes an integration makes through the API as the user's data changes. None
// of it is a person's use of a seat (docs/events.md, "What counts as use"): an admin who did
// nothing else stays without activity.
func TestOwnAPITrafficIsNotUse(t *testing.T) {
	t.Parallel()
	g := startSim(t, simulator.New(simulator.Options{Profile: simulator.ProfileDocumented,
		HarvestLimit: 75, HarvestWindow: 300 * time.Millisecond, AuditLimit: 50, AuditWindow: 100 * time.Millisecond,
		AuditPagedLimit: 3, AuditPagedWindow: 300 * time.Millisecond, TokenLimit: 30, TokenWindow: 600 * time.Millisecond}))
	org := g.addOrg(t, simulator.OrgSpec{Name: "quiet", Seed: 77, Users: 60, Events: 1})
	admin := org.Credentials().AdminUserID
	// An integration's change through the API, recorded as the admin's.
	require.NoError(t, org.AddAPIUserEvent(admin, time.Now().Add(-time.Hour), "data_change_update", "/v3/users/12"))

	e := startEnv(t, testConfig(t, storagetest.Database(t)))
	e.connect("quiet", g, org, http.StatusOK)
	e.waitConnection("quiet", 60*time.Second, func(c events.Connection) bool { return c.LastSync != nil && c.LastSync.Kind == "audit" })
	// A second run reads the Audit Log after the first users sync's Harvest reads.
	var run map[string]string
	require.Equal(t, 202, e.call(http.MethodPost, "/v1/tenants/quiet/connections/greenhouse/sync", nil, &run))
	e.waitConnection("quiet", 60*time.Second, func(c events.Connection) bool {
		return c.LastSync != nil && c.LastSync.RunID == run["run_id"] && c.LastSync.Kind == "audit"
	})

	truth := org.Truth()
	require.Greater(t, truth.UserEvents, truth.SeatUseEvents+10, "the admin's own API traffic is in the Audit Log")
	last := map[int64]*time.Time{}
	for _, u := range truth.Users {
		last[u.ID] = u.LastActivityAt
	}
	require.Nil(t, last[admin], "the admin did nothing but the collector's reads")
	n, err := e.app.Store.CountAuditEvents(t.Context(), "quiet")
	require.NoError(t, err)
	assert.Greater(t, n, uint64(10), "the collector stored the admin's API traffic")
	var adminRow *storage.UserRow
	require.NoError(t, e.app.Store.CurrentUsers(t.Context(), "quiet", "greenhouse", func(r storage.UserRow) error {
		if r.UserID == admin {
			adminRow = &r
		}
		if want := last[r.UserID]; want == nil {
			assert.Nil(t, r.LastActivityAt, "user %d has no activity", r.UserID)
		} else if assert.NotNil(t, r.LastActivityAt, "user %d", r.UserID) {
			assert.True(t, want.Equal(*r.LastActivityAt), "user %d", r.UserID)
		}
		return nil
	}))
	require.NotNil(t, adminRow)
	var licenses struct {
		Licenses []struct {
			UserID int64  `json:"user_id"`
			Usage  string `json:"usage"`
		} `json:"licenses"`
	}
	require.Equal(t, 200, e.call(http.MethodGet, "/v1/tenants/quiet/licenses", nil, &licenses))
	for _, l := range licenses.Licenses {
		if l.UserID == admin {
			assert.NotEqual(t, "active", l.Usage, "the admin's own API traffic is not use")
		}
	}
}

// TestReconnectReusesToken: connecting again with the credential a tenant already uses runs
// the checks on the tenant's client, with the token it holds: a new token could cut short the
// running sync's, should Greenhouse keep one live token per credential.
func TestReconnectReusesToken(t *testing.T) {
	t.Parallel()
	ct := connectTenant(t, simulator.OrgSpec{Name: "again", Seed: 78, Users: 40, Events: 200}, nil)
	e, org := ct.env, ct.org
	e.waitConnection("again", 60*time.Second, func(c events.Connection) bool { return c.LastSync != nil && c.LastSync.Kind == "audit" })
	tokens := org.Stats().TokenRequests
	e.connect("again", ct.sim, org, http.StatusOK)
	assert.Equal(t, tokens, org.Stats().TokenRequests, "the reconnect minted no token")

	// Another secret is another credential: its checks mint a token of their own.
	body := connectBody(org, ct.sim.URL)
	body["client_secret"] = "wrong-secret-value"
	assert.Equal(t, 422, e.call(http.MethodPut, "/v1/tenants/again/connections/greenhouse", body, nil))
	assert.Greater(t, org.Stats().TokenRequests, tokens)
}
