package collector_test

import (
	"encoding/base64"
	"io"
	"net/http"
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

// waitBusy waits until the simulator serves requests beyond those counted now: a sync is under
// way.
func waitBusy(t *testing.T, org *simulator.Org) {
	t.Helper()
	before := org.Stats().Requests
	deadline := time.Now().Add(20 * time.Second)
	for org.Stats().Requests == before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	require.Greater(t, org.Stats().Requests, before, "no sync started")
}

// TestSyncRequests asks for syncs while runs are under way: asked during a scheduled run (which
// started without the request), the request is served by a run of its own right after, not at
// the next scheduled interval (an hour away here); asked during a requested run, it gets a new
// run id rather than joining the run already past its users listing. Every requested run id
// runs exactly once.
func TestSyncRequests(t *testing.T) {
	t.Parallel()
	g := startSim(t, nil)
	org := g.addOrg(t, simulator.OrgSpec{Name: "busy", Seed: 41, Users: 150, Events: 3000})
	// Slow answers keep each sync under way for a few seconds.
	org.SetFaults(simulator.Faults{Latency: 150 * time.Millisecond})

	runs := &runLog{}
	e := startEnvWith(t, testConfig(t, storagetest.Database(t)), collector.Options{RunObserver: runs.add})
	e.connect("busy", g, org, http.StatusOK)
	waitBusy(t, org) // the first, scheduled sync (past the connect checks' own requests)

	post := func() string {
		var run map[string]string
		require.Equal(t, 202, e.call(http.MethodPost, "/v1/tenants/busy/connections/greenhouse/sync", nil, &run))
		require.NotEmpty(t, run["run_id"])
		return run["run_id"]
	}
	finished := func(id string) {
		doc := e.waitConnection("busy", 40*time.Second, func(c events.Connection) bool {
			return c.LastSync != nil && c.LastSync.RunID == id && c.LastSync.Kind == "audit"
		})
		assert.Equal(t, events.RunSucceeded, doc.LastSync.Status)
	}

	r1 := post()
	assert.Equal(t, r1, post(), "asked again before it started: the same run")
	finished(r1)

	r2 := post()
	waitBusy(t, org) // r2 under way
	r3 := post()
	assert.NotEqual(t, r2, r3, "asked while r2 runs: a run of its own")
	finished(r3)

	time.Sleep(500 * time.Millisecond) // a repeated run would have started by now
	count := map[string]int{}
	for _, r := range runs.snapshot() {
		if r.Kind == "audit" {
			count[r.RunID]++
		}
	}
	for _, id := range []string{r1, r2, r3} {
		assert.Equal(t, 1, count[id], "audit runs of requested run %s", id)
	}
	r4 := post()
	assert.NotContains(t, []string{r1, r2, r3}, r4, "served requests are cleared")
}

// TestSyncWithoutSealingKey restarts a replica without the key that sealed a tenant's secret:
// the tenant's runs fail with client_unavailable, shown in last_sync and on a requested run
// id, not silently in a log line.
func TestSyncWithoutSealingKey(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, storagetest.Database(t))
	e := connectTenant(t, simulator.OrgSpec{Name: "keyless", Seed: 42, Users: 40, Events: 300}, &cfg).env
	e.waitConnection("keyless", 40*time.Second, syncedAndConnected)
	e.stop()

	cfg.SecretKeys = "k2:" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("z", 32)))
	e2 := startEnv(t, cfg)
	var run map[string]string
	require.Equal(t, 202, e2.call(http.MethodPost, "/v1/tenants/keyless/connections/greenhouse/sync", nil, &run))
	doc := e2.waitConnection("keyless", 40*time.Second, func(c events.Connection) bool {
		return c.LastSync != nil && c.LastSync.RunID == run["run_id"]
	})
	assert.Equal(t, events.RunFailed, doc.LastSync.Status)
	assert.Equal(t, "client_unavailable", doc.LastSync.ErrorCode)
	assert.NotContains(t, doc.LastSync.ErrorMessage, "k1", "the cause stays in the operator's log")
	assert.Contains(t, e2.logs.String(), `key id \"k1\": sealed with an unknown key id`, "the operator's log names the cause")
}

// TestShutdownAbandonsRuns stops a replica in the middle of a slow first sync: the run is
// abandoned, not recorded or logged as a failure of ClickHouse, NATS or Greenhouse.
func TestShutdownAbandonsRuns(t *testing.T) {
	t.Parallel()
	g := startSim(t, nil)
	org := g.addOrg(t, simulator.OrgSpec{Name: "leaving", Seed: 43, Users: 150, Events: 3000})
	org.SetFaults(simulator.Faults{Latency: 150 * time.Millisecond})

	e := startEnv(t, testConfig(t, storagetest.Database(t)))
	e.connect("leaving", g, org, http.StatusOK)
	waitBusy(t, org)
	e.stop()

	logs := e.logs.String()
	assert.Contains(t, logs, "sync abandoned at shutdown")
	assert.NotContains(t, logs, `"message":"sync finished"`, "no run recorded while shutting down")
	for _, code := range []string{"storage_unavailable", "nats_unavailable", "greenhouse_unavailable"} {
		assert.NotContains(t, logs, code)
	}
}

// TestDebugListener: the profiling listener is off unless debug-addr is set, and serves Go's
// profiles on its own address when it is.
func TestDebugListener(t *testing.T) {
	cfg := testConfig(t, storagetest.Database(t))
	e := startEnv(t, cfg)
	assert.Empty(t, e.app.DebugAddr())
	resp, err := http.Get(e.api + "/debug/pprof/heap")
	require.NoError(t, err)
	resp.Body.Close()
	assert.NotEqual(t, http.StatusOK, resp.StatusCode, "the API does not serve profiles")
	e.stop()

	cfg = testConfig(t, storagetest.Database(t))
	cfg.DebugAddr = "127.0.0.1:0"
	e = startEnv(t, cfg)
	require.NotEmpty(t, e.app.DebugAddr())
	resp, err = http.Get("http://" + e.app.DebugAddr() + "/debug/pprof/heap?debug=1")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(body), "heap profile")
}
