package collector_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/collector"
	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse/simulator"
	"github.com/seatwatch/greenhouse-collector/events"
	"github.com/seatwatch/greenhouse-collector/storage/storagetest"
)

// Fault durations of the CI tests. The target (docs/reliability.md, "Outages") is a dependency down for a
// minute; CI keeps the package fast with shorter outages, and FAULT_OUTAGE=60s runs both outage
// tests with the full minute (docs/reliability.md):
//
//	FAULT_OUTAGE=60s go test ./collector -run 'Outage|Restart' -count 1 -v
var (
	clickHouseOutage = outageOr(10 * time.Second)
	natsOutage       = outageOr(3 * time.Second)
)

// outageOr is FAULT_OUTAGE when it is set, else d.
func outageOr(d time.Duration) time.Duration {
	if v := os.Getenv("FAULT_OUTAGE"); v != "" {
		o, err := time.ParseDuration(v)
		if err != nil || o <= 0 {
			panic(fmt.Sprintf("FAULT_OUTAGE=%q: want a positive duration such as 60s", v))
		}
		return o
	}
	return d
}

const (
	// greenhouse5xxBurst is the run of consecutive 503 answers injected into one tenant: as many
	// as the connector's attempts at one request (1 + 4 retries), so that exactly one scheduled
	// run fails and the next, after the scheduler's 30 s failure backoff, recovers. Longer
	// bursts fail one run per 5 answers, each after a doubled backoff: docs/reliability.md.
	greenhouse5xxBurst = 5
	greenhouseLatency  = 200 * time.Millisecond
)

// syncedAndConnected accepts a connection document whose users and Audit Log syncs both
// finished and whose state is connected.
func syncedAndConnected(c events.Connection) bool {
	return c.State == collector.StateConnected && c.Freshness.UsersSyncedAt != nil &&
		c.Freshness.AuditSyncedThrough != nil && c.LastSync != nil && c.LastSync.Status == "succeeded"
}

// stateWatch polls a tenant's connection document in the background and records every
// distinct state, failed check and last run's error code it shows (without the test's require helpers, which must
// not run outside the test goroutine).
type stateWatch struct {
	mu   sync.Mutex
	seen []string
	stop chan struct{}
	done chan struct{}
}

func watchStates(e *env, tenant string) *stateWatch {
	api := e.api
	w := &stateWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		last := ""
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			req, _ := http.NewRequest(http.MethodGet, api+"/v1/tenants/"+tenant+"/connections/greenhouse", nil)
			req.Header.Set("Authorization", "Bearer "+testToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				continue
			}
			raw, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			_, _ = e.responses.Write(raw) // for the secrets scan
			var doc events.Connection
			if err != nil || resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &doc) != nil {
				continue
			}
			s := doc.State
			for _, c := range doc.Checks {
				if c.Code != "" {
					s += " " + string(c.Name) + ":" + c.Code
				}
			}
			if doc.LastSync != nil && doc.LastSync.ErrorCode != "" {
				s += " last_sync:" + doc.LastSync.ErrorCode
			}
			if s != last {
				w.mu.Lock()
				w.seen = append(w.seen, s)
				w.mu.Unlock()
				last = s
			}
		}
	}()
	return w
}

func (w *stateWatch) states() []string {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.seen...)
}

// assertExactlyOnce checks the stream's events of one tenant: no CloudEvents id twice, one
// saas.user.changed per user of the truth, and one license_inactive alert per inactive license
// holder of the truth and none for anyone else.
func assertExactlyOnce(t *testing.T, envs []envelope, tenant string, truth simulator.Truth) {
	t.Helper()
	ids := map[string]int{}
	userChanged := map[string]int{}
	inactive := map[int64]int{}
	for _, ev := range envs {
		ids[ev.ID]++
		if !strings.HasPrefix(ev.ID, tenant+":") {
			continue
		}
		switch ev.Type {
		case string(events.TypeUserChanged):
			userChanged[ev.Subject]++
		case string(events.TypeAlertLicenseInactive):
			var id int64
			_, err := fmt.Sscanf(ev.Subject, "users/%d", &id)
			require.NoError(t, err, ev.Subject)
			inactive[id]++
		}
	}
	for id, n := range ids {
		assert.Equal(t, 1, n, "CloudEvents id %s appears %d times", id, n)
	}
	require.Len(t, userChanged, len(truth.Users), "saas.user.changed of %s: one subject per user", tenant)
	for subject, n := range userChanged {
		assert.Equal(t, 1, n, "saas.user.changed for %s of %s", subject, tenant)
	}
	want := expectedUsage(truth, time.Now(), time.Time{}) // the licenses; their reasons are not compared
	require.NotEmpty(t, want, "the seeded org of %s has inactive licenses", tenant)
	for id := range want {
		assert.Equal(t, 1, inactive[id], "license_inactive alerts of user %d of %s", id, tenant)
	}
	for id, n := range inactive {
		_, ok := want[id]
		assert.True(t, ok, "license_inactive alert (%d of them) for user %d of %s, who is not inactive", n, id, tenant)
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestClickHouseOutageMidSync stops the replica's ClickHouse right after a tenant is
// connected, during its first sync, keeps it down for clickHouseOutage and starts it again:
// the collector recovers by itself, with exactly the simulator's truth and no repeated event.
func TestClickHouseOutageMidSync(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test")
	}
	t.Parallel()
	ch := storagetest.StartServer(t, storagetest.ServerOptions{})
	cfg := testConfig(t, "outage")
	cfg.ClickHouseAddr = ch.Addr()
	ct := connectTenant(t, simulator.OrgSpec{Name: "chdown", Seed: 31, Users: 300, Events: 8000}, &cfg)
	e, org := ct.env, ct.org
	watch := watchStates(e, "chdown")

	ch.Stop()
	var doc events.Connection
	require.Equal(t, 200, e.call(http.MethodGet, "/v1/tenants/chdown/connections/greenhouse", nil, &doc))
	require.Nil(t, doc.Freshness.AuditSyncedThrough, "ClickHouse must go down before the first sync ends")
	time.Sleep(clickHouseOutage) // the outage itself
	require.NoError(t, ch.Start())
	upAt := time.Now()

	doc = e.waitConnection("chdown", 50*time.Second+clickHouseOutage, syncedAndConnected)
	recovered := time.Since(upAt)
	states := watch.states()
	t.Logf("ClickHouse down %s; connected and synced %s after it came back; states seen: %q",
		clickHouseOutage, recovered.Round(100*time.Millisecond), states)
	assert.Equal(t, collector.StateConnected, doc.State)
	assert.Equal(t, events.RunSucceeded, doc.LastSync.Status)
	// The outage is the collector's, not Greenhouse's nor the customer's: the runs it failed
	// say so (in their saas.sync.completed; last_sync may already show the next run), and no
	// check of the customer's connection was blamed.
	seen := strings.Join(states, ",")
	assert.NotContains(t, seen, "greenhouse_unavailable")
	for _, s := range states {
		assert.True(t, strings.HasPrefix(s, collector.StateConnected), "state %q during a ClickHouse outage", s)
	}
	envs := decodeAll(t, streamMessages(t, e.app))
	var failed []string
	for _, ev := range envs {
		if ev.Type != string(events.TypeSyncCompleted) {
			continue
		}
		var sum events.SyncSummary
		require.NoError(t, json.Unmarshal(ev.Data, &sum))
		if sum.Status == "failed" {
			failed = append(failed, sum.ErrorCode)
			assert.NotContains(t, sum.ErrorMessage, "127.0.0.1", "the driver's error stays in the log")
		}
	}
	// Whether a run fails depends on what the sync was doing when ClickHouse went: audit inserts
	// retry through an outage while their run lives, reads fail the run. Every run that failed
	// blames the storage, never Greenhouse.
	if len(failed) == 0 {
		t.Log("no run failed: the writes under way retried through the outage")
	}
	for _, code := range failed {
		assert.Equal(t, "storage_unavailable", code, "a run failed on ClickHouse and said so")
	}

	assertMatchesTruth(t, e.app.Store, "chdown", org.Truth(), true)
	assertExactlyOnce(t, envs, "chdown", org.Truth())
	assertNoSecrets(t, e, "", org.Credentials().ClientID, []string{org.Credentials().ClientSecret})
}

// TestNATSRestartMidSync restarts an external NATS server (same port, same store directory)
// during a tenant's first sync: the data ends equal to the truth and no event is repeated.
func TestNATSRestartMidSync(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test")
	}
	t.Parallel()
	natsDir := t.TempDir()
	natsPort := freePort(t)
	ns, err := events.StartEmbedded(events.EmbeddedConfig{Listen: true, Dir: natsDir, Host: "127.0.0.1", Port: natsPort})
	require.NoError(t, err)
	defer func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	}()

	cfg := testConfig(t, storagetest.Database(t))
	cfg.NATSURL = ns.ClientURL()
	ct := connectTenant(t, simulator.OrgSpec{Name: "natsdown", Seed: 32, Users: 300, Events: 8000}, &cfg)
	e, org := ct.env, ct.org
	var doc events.Connection
	require.Equal(t, 200, e.call(http.MethodGet, "/v1/tenants/natsdown/connections/greenhouse", nil, &doc))
	require.Nil(t, doc.Freshness.AuditSyncedThrough, "NATS must go down before the first sync ends")

	ns.Shutdown()
	ns.WaitForShutdown()
	time.Sleep(natsOutage) // the outage itself
	ns, err = events.StartEmbedded(events.EmbeddedConfig{Listen: true, Dir: natsDir, Host: "127.0.0.1", Port: natsPort})
	require.NoError(t, err)
	upAt := time.Now()

	e.waitConnection("natsdown", 50*time.Second+natsOutage, syncedAndConnected)
	t.Logf("NATS down %s; connected and synced %s after it came back", natsOutage, time.Since(upAt).Round(100*time.Millisecond))

	assertMatchesTruth(t, e.app.Store, "natsdown", org.Truth(), true)
	assertExactlyOnce(t, decodeAll(t, streamMessages(t, e.app)), "natsdown", org.Truth())
	e.call(http.MethodGet, "/v1/tenants/natsdown/connections/greenhouse", nil, nil)
	assertNoSecrets(t, e, natsDir, org.Credentials().ClientID, []string{org.Credentials().ClientSecret})
}

// TestGreenhouseFaults5xxAndLatency serves a tenant's first sync slowly and with a burst of
// 503s: the collector retries by itself, ends with the truth and the connection connected.
func TestGreenhouseFaults5xxAndLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test")
	}
	t.Parallel()
	ct := connectTenant(t, simulator.OrgSpec{Name: "flaky", Seed: 33, Users: 200, Events: 5000}, nil)
	e, org := ct.env, ct.org
	org.SetFaults(simulator.Faults{Fail5xx: greenhouse5xxBurst, Latency: greenhouseLatency})
	start := time.Now()
	watch := watchStates(e, "flaky")

	e.waitConnection("flaky", 55*time.Second, syncedAndConnected)
	states := watch.states()
	t.Logf("%d×503 and %s latency: connected and synced after %s; states seen: %q",
		greenhouse5xxBurst, greenhouseLatency, time.Since(start).Round(100*time.Millisecond), states)
	assert.Zero(t, org.Faults().Fail5xx, "every injected 503 was served")
	assert.Contains(t, strings.Join(states, ","), "greenhouse_unavailable", "the connection showed the failure meanwhile")
	assertMatchesTruth(t, e.app.Store, "flaky", org.Truth(), true)
	assertExactlyOnce(t, decodeAll(t, streamMessages(t, e.app)), "flaky", org.Truth())
	assertNoSecrets(t, e, "", org.Credentials().ClientID, []string{org.Credentials().ClientSecret})
}

// TestHostileEndpointOverrides sends base URL overrides pointing at loopback, link-local
// metadata services, private and other internal addresses, and odd schemes, to a collector that
// allows overrides to any host but not plain http (and not the test-only loopback allowance).
// Plain-http and malformed URLs are refused with 400 for their form; https URLs to every
// class of internal address, as IP literals and as a name resolving to loopback, are refused
// with 422 endpoint_not_allowed for their address. No connection reaches the https server
// on loopback, nothing is stored, and the request's secret is in no answer or log line.
func TestHostileEndpointOverrides(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test")
	}
	t.Parallel()
	var hits atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	defer target.Close()
	targetURL := target.URL // http://127.0.0.1:port
	var tlsConns atomic.Int64
	tlsTarget := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"access_token":"t","token_type":"Bearer","expires_in":3600}`))
	}))
	tlsTarget.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			tlsConns.Add(1)
		}
	}
	tlsTarget.StartTLS()
	defer tlsTarget.Close()
	tlsPort := strings.TrimPrefix(tlsTarget.URL, "https://127.0.0.1:")

	cfg := testConfig(t, storagetest.Database(t))
	cfg.AllowEndpointOverride = true
	cfg.AllowInsecureEndpoints = false
	cfg.AllowedEndpointHosts = "*" // the address checks alone
	cfg.UnsafeAllowLoopbackEndpointsForTests = false
	cfg.CheckTimeout = 5 * time.Second
	e := startEnv(t, cfg)

	tests := []struct {
		name, url, code string
	}{
		{"loopback", "http://127.0.0.1", "insecure_endpoint"},
		{"loopback with port", targetURL, "insecure_endpoint"},
		{"loopback v6", "http://[::1]:8080", "insecure_endpoint"},
		{"localhost", "http://localhost", "insecure_endpoint"},
		{"cloud metadata", "http://169.254.169.254", "insecure_endpoint"},
		{"cloud metadata path", "http://169.254.169.254/latest/meta-data/iam/", "insecure_endpoint"},
		{"decimal ip", "http://2852039166", "insecure_endpoint"},
		{"file", "file:///etc/passwd", "invalid_field"},
		{"gopher", "gopher://127.0.0.1:25/_HELO", "invalid_field"},
		{"javascript", "javascript:alert(1)", "invalid_field"},
		{"scheme relative", "//127.0.0.1/", "invalid_field"},
		{"credentials in url", "https://admin:pw@harvest.greenhouse.io", "invalid_field"},
		{"query", "https://harvest.greenhouse.io/?next=http://127.0.0.1", "invalid_field"},
		{"no host", "https:///v3", "invalid_field"},
		// https: refused for the address, not the scheme.
		{"https loopback", tlsTarget.URL, "endpoint_not_allowed"},
		{"https loopback, other address", "https://127.1.2.3:" + tlsPort, "endpoint_not_allowed"},
		{"https localhost", "https://localhost:" + tlsPort, "endpoint_not_allowed"},
		{"https loopback v6", "https://[::1]:" + tlsPort, "endpoint_not_allowed"},
		{"https v4-mapped loopback", "https://[::ffff:127.0.0.1]:" + tlsPort, "endpoint_not_allowed"},
		{"https unspecified", "https://0.0.0.0:" + tlsPort, "endpoint_not_allowed"},
		{"https cloud metadata", "https://169.254.169.254/latest/meta-data/", "endpoint_not_allowed"},
		{"https cloud metadata v6", "https://[fd00:ec2::254]", "endpoint_not_allowed"},
		{"https private 10/8", "https://10.0.0.1", "endpoint_not_allowed"},
		{"https private 192.168/16", "https://192.168.1.1", "endpoint_not_allowed"},
		{"https v4-mapped private", "https://[::ffff:10.0.0.1]", "endpoint_not_allowed"},
		{"https carrier-grade NAT", "https://100.64.0.1", "endpoint_not_allowed"},
		{"https link-local v6", "https://[fe80::1]", "endpoint_not_allowed"},
		{"https multicast", "https://224.0.0.1", "endpoint_not_allowed"},
	}
	fields := []struct{ json, name string }{{"auth", "endpoints.auth"}, {"harvest", "endpoints.harvest"}, {"audit_log", "endpoints.audit_log"}}
	for _, tc := range tests {
		for _, f := range fields {
			t.Run(tc.name+"/"+f.json, func(t *testing.T) {
				body := map[string]any{
					"client_id": "abc-1", "client_secret": "s3cr3t-value", "admin_user_id": 42,
					"endpoints": map[string]string{f.json: tc.url},
				}
				var out struct {
					Error  struct{ Code, Field string } `json:"error"`
					State  string                       `json:"state"`
					Checks []struct{ Code, Message string }
				}
				status := e.call(http.MethodPut, "/v1/tenants/hostile/connections/greenhouse", body, &out)
				if tc.code != "endpoint_not_allowed" {
					assert.Equal(t, 400, status)
					assert.Equal(t, tc.code, out.Error.Code)
					assert.Equal(t, f.name, out.Error.Field)
					return
				}
				assert.Equal(t, 422, status)
				assert.Equal(t, "error", out.State)
				if assert.NotEmpty(t, out.Checks) {
					assert.Equal(t, tc.code, out.Checks[0].Code)
					assert.Contains(t, out.Checks[0].Message, f.name)
				}
			})
		}
	}
	assert.Equal(t, 404, e.call(http.MethodGet, "/v1/tenants/hostile/connections/greenhouse", nil, nil), "nothing stored")
	assert.Zero(t, hits.Load(), "no request reached the loopback target")
	assert.Zero(t, tlsConns.Load(), "no connection reached the https target on loopback")
	for _, form := range secretForms("s3cr3t-value") {
		assert.NotContains(t, e.responses.String(), form, "the secret in an answer")
		assert.NotContains(t, e.logs.String(), form, "the secret in the log")
	}
}

// TestTenantIsolation connects two tenants and checks that one tenant's read API never
// carries the other's users, and that tenant ids cannot be bent into another tenant's.
func TestTenantIsolation(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test")
	}
	t.Parallel()
	ct := connectTenant(t, simulator.OrgSpec{Name: "alpha", Seed: 34, Users: 80, Events: 800}, nil)
	e := ct.env
	beta := ct.sim.addOrg(t, simulator.OrgSpec{Name: "beta", Seed: 35, Users: 90, Events: 900})
	e.connect("beta", ct.sim, beta, http.StatusOK)
	orgs := map[string]*simulator.Org{"alpha": ct.org, "beta": beta}
	for name := range orgs {
		e.waitConnection(name, 40*time.Second, syncedAndConnected)
	}

	raw := func(path string) (int, string) {
		req, err := http.NewRequest(http.MethodGet, e.api+path, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		_, _ = e.responses.Write(b) // for the secrets scan
		return resp.StatusCode, string(b)
	}
	emails := func(org *simulator.Org) []string {
		var out []string
		for _, u := range org.Truth().Users {
			if u.Email != "" {
				out = append(out, u.Email)
			}
		}
		return out
	}
	for name, org := range orgs {
		other := "beta"
		if name == "beta" {
			other = "alpha"
		}
		for _, path := range []string{"/licenses", "/licenses?usage=inactive", "/licenses?usage=active", "/licenses?usage=unknown", "/usage/summary"} {
			code, body := raw("/v1/tenants/" + name + path)
			require.Equal(t, 200, code, path)
			assert.NotContains(t, body, other+".example", "%s%s carries %s's domain", name, path, other)
			for _, em := range emails(orgs[other]) {
				if !assert.NotContains(t, body, em, "%s%s carries a user of %s", name, path, other) {
					break
				}
			}
		}
		// Positive control: the tenant's own licensed users are all there.
		var lic struct {
			Licenses []events.LicenseRecord `json:"licenses"`
		}
		require.Equal(t, 200, e.call(http.MethodGet, "/v1/tenants/"+name+"/licenses", nil, &lic))
		want := 0
		for _, u := range org.Truth().Users {
			if u.Status == "active" && !u.ServiceAccount {
				want++
			}
		}
		assert.Len(t, lic.Licenses, want, "licenses of %s", name)
		for _, l := range lic.Licenses {
			assert.Equal(t, name, l.TenantID)
		}
	}

	// Tenant ids that try to reach another tenant are refused or name nobody.
	for _, path := range []string{
		"/v1/tenants/alpha%2F..%2Fbeta/licenses", "/v1/tenants/alpha%27%20OR%201%3D1/licenses",
		"/v1/tenants/alpha%00/licenses", "/v1/tenants/ALPHA/licenses", "/v1/tenants/alpha,beta/usage/summary",
		"/v1/tenants/*/licenses", "/v1/tenants/alpha./licenses",
	} {
		code, body := raw(path)
		assert.Contains(t, []int{400, 404}, code, path)
		for _, em := range append(emails(ct.org), emails(beta)...) {
			if !assert.NotContains(t, body, em, path) {
				break
			}
		}
	}
	// A connection of one tenant is invisible through another tenant's path.
	var doc events.Connection
	require.Equal(t, 200, e.call(http.MethodGet, "/v1/tenants/alpha/connections/greenhouse", nil, &doc))
	assert.Equal(t, "alpha", doc.TenantID)
	assert.NotEqual(t, beta.Credentials().ClientID, doc.ClientID)
	b, _ := json.Marshal(doc)
	assert.False(t, bytes.Contains(b, []byte(beta.Credentials().ClientID)))
	assertNoSecrets(t, e, "", ct.org.Credentials().ClientID, []string{ct.org.Credentials().ClientSecret, beta.Credentials().ClientSecret})
}

// TestConnectionChangesQueuedThroughOutage changes connections while ClickHouse is down: a new
// connection and a disconnect. Their saas.connection.changed events and connection_events
// rows wait in the connection's outbox and arrive, once each, after ClickHouse is back (the
// 10,000-tenant connect burst lost 14 such rows to transient ClickHouse errors before).
func TestConnectionChangesQueuedThroughOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test")
	}
	t.Parallel()
	ch := storagetest.StartServer(t, storagetest.ServerOptions{})
	cfg := testConfig(t, "outbox")
	cfg.ClickHouseAddr = ch.Addr()
	ct := connectTenant(t, simulator.OrgSpec{Name: "obxa", Seed: 41, Users: 20, Events: 50}, &cfg)
	e := ct.env
	orgB := ct.sim.addOrg(t, simulator.OrgSpec{Name: "obxb", Seed: 42, Users: 20, Events: 50})
	e.waitConnection("obxa", 30*time.Second, syncedAndConnected)

	ch.Stop()
	e.connect("obxb", ct.sim, orgB, http.StatusOK)
	require.Equal(t, http.StatusNoContent, e.call(http.MethodDelete, "/v1/tenants/obxa/connections/greenhouse", nil, nil))
	require.Contains(t, e.logs.String(), "queued for retry", "the changes could not be stored while ClickHouse was down")
	time.Sleep(2 * time.Second)
	require.NoError(t, ch.Start())

	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{ch.Addr()}})
	require.NoError(t, err)
	defer conn.Close()
	type row struct{ tenant, state, changed string }
	read := func() []row {
		rows, err := conn.Query(context.Background(), "SELECT tenant_id, state, changed FROM outbox.connection_events FINAL ORDER BY ts, tenant_id")
		if err != nil {
			return nil
		}
		defer rows.Close()
		var out []row
		for rows.Next() {
			var r row
			require.NoError(t, rows.Scan(&r.tenant, &r.state, &r.changed))
			out = append(out, r)
		}
		return out
	}
	want := []row{
		{"obxa", "connected", `["state","usage_data","check:credentials","check:admin_user","check:users","check:permissions","check:audit_log","check:actions"]`},
		{"obxb", "connected", `["state","usage_data","check:credentials","check:admin_user","check:users","check:permissions","check:audit_log","check:actions"]`},
		{"obxa", "disconnected", `["state"]`},
	}
	require.Eventually(t, func() bool { return len(read()) >= len(want) }, 60*time.Second, 500*time.Millisecond,
		"the queued connection changes were stored after ClickHouse came back")
	assert.ElementsMatch(t, want, read())

	// The stream has each change once, and the outbox is empty again.
	var changes []string
	for _, ev := range decodeAll(t, streamMessages(t, e.app)) {
		if ev.Type == string(events.TypeConnectionChanged) {
			var c events.ConnectionChanged
			require.NoError(t, json.Unmarshal(ev.Data, &c))
			changes = append(changes, c.Connection.TenantID+":"+c.Connection.State)
		}
	}
	assert.ElementsMatch(t, []string{"obxa:connected", "obxb:connected", "obxa:disconnected"}, changes)
	assert.Eventually(t, func() bool { return !strings.Contains(kvRaw(t, e.app), `"outbox"`) }, 20*time.Second, 200*time.Millisecond,
		"delivered changes leave the outbox")
	e.call(http.MethodGet, "/v1/connections", nil, nil)
	assertNoSecrets(t, e, "", orgB.Credentials().ClientID, []string{ct.org.Credentials().ClientSecret, orgB.Credentials().ClientSecret})
}
