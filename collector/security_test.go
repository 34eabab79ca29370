package collector_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse/simulator"
	"github.com/seatwatch/greenhouse-collector/events"
	"github.com/seatwatch/greenhouse-collector/storage/storagetest"
)

// rewriteStored changes a tenant's stored connection the way a process with write access to
// the connections bucket can: the raw JSON, then a compare-and-set.
func rewriteStored(t *testing.T, e *env, tenant string, change func(sc map[string]any)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := e.app.Bus.JetStream().KeyValue(ctx, events.DefaultKVPrefix+"_"+events.BucketConnections)
	require.NoError(t, err)
	entry, err := kv.Get(ctx, "greenhouse."+tenant)
	require.NoError(t, err)
	var sc map[string]any
	require.NoError(t, json.Unmarshal(entry.Value(), &sc))
	change(sc)
	raw, err := json.Marshal(sc)
	require.NoError(t, err)
	_, err = kv.Update(ctx, "greenhouse."+tenant, raw, entry.Revision())
	require.NoError(t, err)
}

// requestSync asks for a sync and waits for its outcome.
func (e *env) requestSync(tenant string) events.Connection {
	e.t.Helper()
	var run map[string]string
	require.Equal(e.t, 202, e.call(http.MethodPost, "/v1/tenants/"+tenant+"/connections/greenhouse/sync", nil, &run))
	return e.waitConnection(tenant, 40*time.Second, func(c events.Connection) bool {
		return c.LastSync != nil && c.LastSync.RunID == run["run_id"]
	})
}

// TestNATSRewriteDoesNotLeakSecret replays the attack of issue 16 on the state store: the
// stored endpoints of a connected tenant are rewritten to a listener of the attacker's (every
// copy of them) and the generation bumped, and a sync is asked for. The collector must not
// send the secret there: the secret is bound to the endpoints it was sealed with, so the
// connection shows sealed_secret_mismatch and is not used. A rewritten client id is refused
// the same way. The rewritten endpoints are what GET shows: one copy.
func TestNATSRewriteDoesNotLeakSecret(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	var leaked atomic.Value
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if _, secret, ok := r.BasicAuth(); ok {
			leaked.Store(secret)
		}
		_, _ = w.Write([]byte(`{"access_token":"t","token_type":"Bearer","expires_in":3600}`))
	}))
	defer attacker.Close()

	ct := connectTenant(t, simulator.OrgSpec{Name: "victim", Seed: 51, Users: 30, Events: 200}, nil)
	e, org := ct.env, ct.org
	e.waitConnection("victim", 40*time.Second, syncedAndConnected)

	evil := map[string]any{"auth": attacker.URL, "harvest": attacker.URL, "audit_log": attacker.URL}
	rewriteStored(t, e, "victim", func(sc map[string]any) {
		sc["doc"].(map[string]any)["endpoints"] = evil
		sc["endpoints"] = evil // the second copy earlier versions kept
		sc["generation"] = sc["generation"].(float64) + 1
	})
	doc := e.requestSync("victim")
	assert.Zero(t, hits.Load(), "no request reached the rewritten endpoint")
	assert.Nil(t, leaked.Load(), "the secret did not leave")
	assert.Equal(t, "error", doc.State)
	assert.Equal(t, "failed:sealed_secret_mismatch", checkCodes(doc)["credentials"])
	assert.Equal(t, events.RunFailed, doc.LastSync.Status)
	assert.Equal(t, "sealed_secret_mismatch", doc.LastSync.ErrorCode)
	require.NotNil(t, doc.Endpoints, "GET shows the endpoints a sync would use")
	assert.Equal(t, attacker.URL, doc.Endpoints.Auth)

	// Back to the real endpoints, with another client id: refused too, and Greenhouse (the
	// simulator) is not asked either.
	requests := org.Stats().Requests
	rewriteStored(t, e, "victim", func(sc map[string]any) {
		d := sc["doc"].(map[string]any)
		d["endpoints"] = map[string]any{"auth": ct.sim.URL, "harvest": ct.sim.URL, "audit_log": ct.sim.URL}
		d["client_id"] = "someone-else"
		delete(sc, "endpoints")
		sc["generation"] = sc["generation"].(float64) + 1
	})
	doc = e.requestSync("victim")
	assert.Equal(t, "sealed_secret_mismatch", doc.LastSync.ErrorCode)
	assert.Equal(t, requests, org.Stats().Requests, "no request with the rewritten connection")
	assert.Zero(t, hits.Load())
	assert.Contains(t, e.logs.String(), "sealed value failed authentication", "the operator's log names the cause")
	assertNoSecrets(t, e, "", "victim", []string{org.Credentials().ClientSecret})
}

// TestStoredEndpointsRevalidated: a connection stored with overrides that the configuration
// allowed is not used once a restarted replica's configuration refuses them (here the
// allowed hosts no longer include the simulator's address): endpoint_not_allowed, and no
// request leaves.
func TestStoredEndpointsRevalidated(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, storagetest.Database(t))
	ct := connectTenant(t, simulator.OrgSpec{Name: "moved", Seed: 52, Users: 30, Events: 200}, &cfg)
	e, org := ct.env, ct.org
	e.waitConnection("moved", 40*time.Second, syncedAndConnected)
	e.stop()

	cases := []struct {
		name string
		mut  func(*bool, *string)
	}{
		{"host no longer allowed", func(_ *bool, hosts *string) { *hosts = "greenhouse.io" }},
		{"loopback no longer allowed", func(loopback *bool, _ *string) { *loopback = false }},
	}
	for _, c := range cases {
		cfg2 := cfg
		c.mut(&cfg2.UnsafeAllowLoopbackEndpointsForTests, &cfg2.AllowedEndpointHosts)
		requests := org.Stats().Requests
		e2 := startEnv(t, cfg2)
		doc := e2.requestSync("moved")
		assert.Equal(t, "endpoint_not_allowed", doc.LastSync.ErrorCode, c.name)
		assert.Equal(t, "failed:endpoint_not_allowed", checkCodes(doc)["credentials"], c.name)
		assert.Equal(t, "error", doc.State, c.name)
		assert.Equal(t, requests, org.Stats().Requests, "%s: no request to the refused endpoint", c.name)
		e2.stop()
	}
}

// TestEmbeddedNATSClosedToNetwork: the embedded NATS server takes no network client unless
// nats-listen asks it to, and then only clients with the token (the given one or, without
// one, a random one nobody else knows).
func TestEmbeddedNATSClosedToNetwork(t *testing.T) {
	t.Parallel()
	e := startEnv(t, testConfig(t, storagetest.Database(t)))
	assert.Nil(t, e.app.NATS.Addr(), "no client port")
	e.stop()

	cfg := testConfig(t, storagetest.Database(t))
	cfg.NATSListen = true
	e = startEnv(t, cfg)
	require.NotNil(t, e.app.NATS.Addr())
	url := "nats://" + e.app.NATS.Addr().String()
	_, err := nats.Connect(url, nats.Timeout(2*time.Second))
	assert.Error(t, err, "a generated token: nobody else connects")
	e.stop()

	cfg = testConfig(t, storagetest.Database(t))
	cfg.NATSListen = true
	cfg.NATSToken = "a-token-for-the-test-tools-0123"
	e = startEnv(t, cfg)
	url = "nats://" + e.app.NATS.Addr().String()
	_, err = nats.Connect(url, nats.Timeout(2*time.Second))
	assert.Error(t, err, "no token")
	nc, err := nats.Connect(url, nats.Token(cfg.NATSToken), nats.Timeout(2*time.Second))
	require.NoError(t, err, "the given token")
	nc.Close()
	assert.NotContains(t, e.logs.String(), cfg.NATSToken, "the token is not logged")
}

// TestOverrideRepliesNotEchoed: what an overridden endpoint answers never reaches the API
// caller, neither in the connect flow's checks nor in a failed sync's last_sync, so an
// override cannot be used to read what a host answers.
func TestOverrideRepliesNotEchoed(t *testing.T) {
	t.Parallel()
	const banner = "SSH-2.0-OpenSSH_9.6 internal-banner-4711"
	g := startSim(t, nil)
	org := g.addOrg(t, simulator.OrgSpec{Name: "echo", Seed: 53, Users: 30, Events: 200})
	simURL, _ := url.Parse(g.URL)
	proxy := httputil.NewSingleHostReverseProxy(simURL)
	var mode atomic.Value
	mode.Store("")
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case mode.Load() == "token" && r.URL.Path == "/token":
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"unexpected","error_description":"` + banner + `"}`))
		case mode.Load() == "roles" && strings.HasPrefix(r.URL.Path, "/v3/user_roles"):
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`{"message":"missing scope: ` + banner + `"}`))
		default:
			proxy.ServeHTTP(w, r)
		}
	}))
	defer front.Close()

	e := startEnv(t, testConfig(t, storagetest.Database(t)))
	mode.Store("token")
	var doc events.Connection
	require.Equal(t, 422, e.call(http.MethodPut, "/v1/tenants/echo/connections/greenhouse", connectBody(org, front.URL), &doc))
	assert.Equal(t, "failed:unexpected_response", checkCodes(doc)["credentials"])

	mode.Store("")
	require.Equal(t, 200, e.call(http.MethodPut, "/v1/tenants/echo/connections/greenhouse", connectBody(org, front.URL), nil))
	e.waitConnection("echo", 40*time.Second, syncedAndConnected)
	mode.Store("roles")
	doc = e.requestSync("echo")
	assert.Equal(t, "failed:missing_scope", checkCodes(doc)["permissions"])
	e.call(http.MethodGet, "/v1/connections", nil, nil)

	answers := e.responses.String()
	assert.NotContains(t, answers, "internal-banner-4711", "an overridden endpoint's reply in an API answer")
	failed := 0
	for _, ev := range decodeAll(t, streamMessages(t, e.app)) {
		assert.NotContains(t, string(ev.Data), "internal-banner-4711", "an overridden endpoint's reply in %s", ev.Type)
		var sum events.SyncSummary
		if ev.Type == string(events.TypeSyncCompleted) && json.Unmarshal(ev.Data, &sum) == nil && sum.ErrorCode == "missing_scope" {
			failed++
			assert.NotEmpty(t, sum.ErrorMessage)
		}
	}
	assert.Equal(t, 1, failed, "the users run failed on the endpoint's 403")
	dump, err := e.app.Store.DumpText(context.Background())
	require.NoError(t, err)
	assert.NotContains(t, dump, "internal-banner-4711", "an overridden endpoint's reply in sync_runs")
	assert.Contains(t, e.logs.String(), "internal-banner-4711", "the operator's log keeps the reply")
}
