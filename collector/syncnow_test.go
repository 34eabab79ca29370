package collector_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse/simulator"
	"github.com/seatwatch/greenhouse-collector/events"
	"github.com/seatwatch/greenhouse-collector/storage/storagetest"
)

// TestSyncRequestedDuringRun asks for a sync while a scheduled one (which started without the
// request) is under way: the request is served by a run of its own right after, not at the
// next scheduled interval (an hour away here).
func TestSyncRequestedDuringRun(t *testing.T) {
	t.Parallel()
	sim := fastSim()
	simSrv := httptest.NewServer(sim)
	defer simSrv.Close()
	org, err := sim.AddOrg(simulator.OrgSpec{Name: "busy", Seed: 41, Users: 150, Events: 3000})
	require.NoError(t, err)
	// Slow answers keep the first sync under way for a few seconds.
	org.SetFaults(simulator.Faults{Latency: 150 * time.Millisecond})

	e := startEnv(t, testConfig(t, storagetest.Database(t)))
	require.Equal(t, 200, e.call(http.MethodPut, "/v1/tenants/busy/connections/greenhouse", connectBody(org, simSrv.URL), nil))
	// Wait for the first sync to be under way (past the connect checks' own requests), then ask.
	checks := org.Stats().HarvestRequests
	deadline := time.Now().Add(20 * time.Second)
	for org.Stats().HarvestRequests == checks && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	require.Greater(t, org.Stats().HarvestRequests, checks, "the first sync did not start")
	var run map[string]string
	require.Equal(t, 202, e.call(http.MethodPost, "/v1/tenants/busy/connections/greenhouse/sync", nil, &run))
	require.NotEmpty(t, run["run_id"])

	doc := e.waitConnection("busy", 40*time.Second, func(c events.Connection) bool {
		return c.LastSync != nil && c.LastSync.RunID == run["run_id"] && c.LastSync.Kind == "audit"
	})
	assert.Equal(t, "succeeded", doc.LastSync.Status)

	// The request is cleared: a new one gets a new run id.
	var again map[string]string
	require.Equal(t, 202, e.call(http.MethodPost, "/v1/tenants/busy/connections/greenhouse/sync", nil, &again))
	assert.NotEqual(t, run["run_id"], again["run_id"])
}
