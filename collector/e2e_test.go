package collector_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/collector"
	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse/simulator"
	"github.com/seatwatch/greenhouse-collector/events"
	"github.com/seatwatch/greenhouse-collector/storage"
	"github.com/seatwatch/greenhouse-collector/storage/storagetest"
)

const testToken = "test-token-0123456789abcdef"

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fastSim is a simulator with Greenhouse's limits on windows scaled down 100 times, in the
// profile GREENHOUSE_SIM_PROFILE names (documented when unset); testConfig tells the
// collector the same windows.
func fastSim() *simulator.Server {
	profile, err := simulator.ProfileFromEnv()
	if err != nil {
		panic(err)
	}
	return simulator.New(simulator.Options{
		Profile:      profile,
		HarvestLimit: 75, HarvestWindow: 300 * time.Millisecond,
		AuditLimit: 50, AuditWindow: 100 * time.Millisecond,
		AuditPagedLimit: 3, AuditPagedWindow: 300 * time.Millisecond,
		TokenLimit: 30, TokenWindow: 600 * time.Millisecond,
	})
}

// auditOffCode is the audit_log check's code for an account without the Audit Log add-on: only
// the generous profile's answer says "not enabled"; the documented 403 does not say why.
func auditOffCode() string {
	if p, _ := simulator.ProfileFromEnv(); p == simulator.ProfileGenerous {
		return "audit_log_not_enabled"
	}
	return "audit_log_forbidden"
}

// env is one collector replica under test with its dependencies.
type env struct {
	t      *testing.T
	app    *collector.App
	api    string
	logs   *syncBuffer
	cancel context.CancelFunc
	done   chan error
	cfg    collector.Config
	// responses holds every API answer's body, for the secrets scan.
	responses *syncBuffer
}

func testConfig(t testing.TB, database string) collector.Config {
	cfg := collector.DefaultConfig()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.APIToken = testToken
	cfg.DataDir = t.TempDir()
	cfg.NATSPort = -1
	cfg.ClickHouseAddr = storagetest.Addr(t)
	cfg.ClickHouseDatabase = database
	cfg.SecretKeys = "k1:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	cfg.AllowEndpointOverride = true
	cfg.AllowInsecureEndpoints = true
	// The simulator is an httptest server on loopback.
	cfg.AllowedEndpointHosts = "127.0.0.1"
	cfg.UnsafeAllowLoopbackEndpointsForTests = true
	cfg.Shards = 8
	cfg.LeaseTTL = 3 * time.Second
	cfg.GreenhouseWindows = fastWindows
	return cfg
}

// fastWindows are fastSim's windows, for the collector's pacing where no reset is named.
const fastWindows = "harvest=300ms,audit=100ms,token=600ms,audit-paged=300ms"

func startEnv(t *testing.T, cfg collector.Config) *env {
	t.Helper()
	return startEnvWith(t, cfg, collector.Options{})
}

func startEnvWith(t *testing.T, cfg collector.Config, opts collector.Options) *env {
	t.Helper()
	logs := &syncBuffer{}
	log := zerolog.New(io.MultiWriter(logs, zerolog.NewTestWriter(t))).Level(zerolog.InfoLevel)
	ctx, cancel := context.WithCancel(context.Background())
	app, err := collector.Start(ctx, cfg, log, opts)
	require.NoError(t, err)
	e := &env{t: t, app: app, api: "http://" + app.Addr, logs: logs, cancel: cancel, done: make(chan error, 1), cfg: cfg, responses: &syncBuffer{}}
	go func() { e.done <- app.Run(ctx) }()
	t.Cleanup(e.stop)
	return e
}

func (e *env) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	select {
	case err := <-e.done:
		assert.NoError(e.t, err)
	case <-time.After(30 * time.Second):
		e.t.Error("collector did not stop within 30 s")
	}
	e.app.Close()
	e.cancel = nil
}

func (e *env) call(method, path string, body any, out any) int {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(e.t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.api+path, rd)
	require.NoError(e.t, err)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	if e.responses != nil {
		_, _ = e.responses.Write(raw)
	}
	if out != nil && len(raw) > 0 {
		require.NoError(e.t, json.Unmarshal(raw, out), string(raw))
	}
	return resp.StatusCode
}

func connectBody(org *simulator.Org, simURL string) map[string]any {
	c := org.Credentials()
	return map[string]any{
		"client_id": c.ClientID, "client_secret": c.ClientSecret, "admin_user_id": c.AdminUserID,
		"endpoints": map[string]string{"auth": simURL, "harvest": simURL, "audit_log": simURL},
	}
}

// waitConnection polls a connection document until ok accepts it.
func (e *env) waitConnection(tenant string, timeout time.Duration, ok func(events.Connection) bool) events.Connection {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	var doc events.Connection
	for time.Now().Before(deadline) {
		doc = events.Connection{}
		if e.call(http.MethodGet, "/v1/tenants/"+tenant+"/connections/greenhouse", nil, &doc) == 200 && ok(doc) {
			return doc
		}
		time.Sleep(200 * time.Millisecond)
	}
	e.t.Fatalf("connection of %s not as expected within %s: %+v", tenant, timeout, doc)
	return doc
}

func checkCodes(doc events.Connection) map[string]string {
	out := map[string]string{}
	for _, c := range doc.Checks {
		out[string(c.Name)] = string(c.Status)
		if c.Code != "" {
			out[string(c.Name)] += ":" + c.Code
		}
	}
	return out
}

// streamMessages reads every message of the SAAS stream.
func streamMessages(t *testing.T, app *collector.App) []jetstream.RawStreamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js := app.Bus.JetStream()
	st, err := js.Stream(ctx, "SAAS")
	require.NoError(t, err)
	info, err := st.Info(ctx)
	require.NoError(t, err)
	var out []jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		out = append(out, *m)
	}
	return out
}

type envelope struct {
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	Subject string          `json:"subject"`
	Data    json.RawMessage `json:"data"`
}

func decodeAll(t *testing.T, msgs []jetstream.RawStreamMsg) []envelope {
	out := make([]envelope, 0, len(msgs))
	for _, m := range msgs {
		var e envelope
		require.NoError(t, json.Unmarshal(m.Data, &e))
		assert.Equal(t, e.ID, m.Header.Get("Nats-Msg-Id"), "the CloudEvents id is the Nats-Msg-Id")
		out = append(out, e)
	}
	return out
}

func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	g := startSim(t, nil)
	healthy := g.addOrg(t, simulator.OrgSpec{Name: "healthy", Seed: 11, Users: 640, Events: 25000})
	noAudit := g.addOrg(t, simulator.OrgSpec{Name: "noaudit", Seed: 12, Users: 120, Events: 2000})
	noAudit.SetFaults(simulator.Faults{AuditLogDisabled: true})
	notAdmin := g.addOrg(t, simulator.OrgSpec{Name: "notadmin", Seed: 13, Users: 50, Events: 500})
	notAdmin.SetFaults(simulator.Faults{AdminNotSiteAdmin: true})
	badCreds := g.addOrg(t, simulator.OrgSpec{Name: "badcreds", Seed: 14, Users: 30, Events: 100})
	badCreds.SetFaults(simulator.Faults{InvalidClient: true})

	cfg := testConfig(t, storagetest.Database(t))
	e := startEnv(t, cfg)

	// Connect flow: exact documents and codes.
	doc := e.connect("healthy", g, healthy, http.StatusOK)
	assert.Equal(t, "connected", doc.State)
	assert.True(t, doc.UsageData)
	assert.Equal(t, map[string]string{"credentials": "ok", "admin_user": "ok", "users": "ok", "permissions": "ok", "audit_log": "ok", "actions": "ok"}, checkCodes(doc))
	assert.Equal(t, events.Settings{InactiveAfterDays: 30, UsersInterval: "1h", AuditInterval: "5m"}, doc.Settings)

	doc = e.connect("noaudit", g, noAudit, http.StatusOK)
	assert.Equal(t, "degraded", doc.State)
	assert.False(t, doc.UsageData)
	assert.Equal(t, "failed:"+auditOffCode(), checkCodes(doc)["audit_log"])

	doc = e.connect("notadmin", g, notAdmin, http.StatusUnprocessableEntity)
	assert.Equal(t, "error", doc.State)
	assert.Equal(t, "failed:admin_not_site_admin", checkCodes(doc)["admin_user"])
	assert.Equal(t, 404, e.call(http.MethodGet, "/v1/tenants/notadmin/connections/greenhouse", nil, nil), "nothing stored")

	doc = e.connect("badcreds", g, badCreds, http.StatusUnprocessableEntity)
	assert.Equal(t, map[string]string{"credentials": "failed:invalid_client", "admin_user": "skipped", "users": "skipped", "permissions": "skipped", "audit_log": "skipped", "actions": "skipped"}, checkCodes(doc))
	assert.Equal(t, 404, e.call(http.MethodGet, "/v1/tenants/badcreds/connections/greenhouse", nil, nil), "nothing stored")

	// The first syncs: users, permissions and the 30-day backfill.
	synced := func(c events.Connection) bool {
		return c.Freshness.UsersSyncedAt != nil && c.Freshness.AuditSyncedThrough != nil && c.LastSync != nil
	}
	e.waitConnection("healthy", 2*time.Minute, synced)
	e.waitConnection("noaudit", time.Minute, func(c events.Connection) bool { return c.Freshness.UsersSyncedAt != nil })

	// Health and readiness need no token; metrics do (they name tenants).
	for path, want := range map[string]string{
		"/healthz": `"ok"`, "/readyz": `"clickhouse": "ok"`, "/metrics": `"unauthorized"`,
	} {
		resp, err := http.Get(e.api + path)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if path == "/metrics" {
			assert.Equal(t, 401, resp.StatusCode, path)
		} else {
			assert.Equal(t, 200, resp.StatusCode, path)
		}
		assert.Contains(t, string(body), want, path)
	}
	seen := e.responses.String()
	require.Equal(t, 200, e.call(http.MethodGet, "/metrics", nil, nil))
	assert.Contains(t, strings.TrimPrefix(e.responses.String(), seen), `collector_tenant_last_success_timestamp_seconds{kind="audit",tenant="healthy"}`)

	store := e.app.Store
	ctx := context.Background()
	assertMatchesTruth(t, store, "healthy", healthy.Truth(), true)
	assertMatchesTruth(t, store, "noaudit", noAudit.Truth(), false)

	// Licenses API agrees with the derivation from the truth.
	var lic struct {
		Count    int                    `json:"count"`
		Licenses []events.LicenseRecord `json:"licenses"`
	}
	require.Equal(t, 200, e.call(http.MethodGet, "/v1/tenants/healthy/licenses?usage=inactive", nil, &lic))
	var healthyDoc events.Connection
	require.Equal(t, 200, e.call(http.MethodGet, "/v1/tenants/healthy/connections/greenhouse", nil, &healthyDoc))
	require.NotNil(t, healthyDoc.ObservedSince)
	// The backfill starts right after the first users run: its history from 30 days before.
	wantInactive := expectedUsage(healthy.Truth(), time.Now(), healthyDoc.ObservedSince.Add(-30*24*time.Hour))
	gotInactive := map[int64]string{}
	for _, l := range lic.Licenses {
		gotInactive[l.UserID] = l.Reason
	}
	assert.Equal(t, wantInactive, gotInactive, "inactive licenses")
	require.NotEmpty(t, wantInactive, "the seeded org has inactive licenses")

	// The documented dashboard query (SQL) agrees with the service's derivation (Go).
	sqlInactive, err := e.app.Store.InactiveLicenses(context.Background(), "healthy", "greenhouse", storage.UsageParams{
		Now: time.Now(), InactiveAfterDays: 30, CoverageStart: healthyDoc.ObservedSince.Add(-30 * 24 * time.Hour)})
	require.NoError(t, err)
	sqlSet := map[int64]string{}
	for _, l := range sqlInactive {
		sqlSet[l.UserID] = l.Reason
	}
	assert.Equal(t, gotInactive, sqlSet, "SQL inactive list equals the API's")

	var sum collector.Summary
	require.Equal(t, 200, e.call(http.MethodGet, "/v1/tenants/healthy/usage/summary", nil, &sum))
	assert.Equal(t, len(wantInactive), sum.Inactive)
	assert.Equal(t, sum.Licenses, sum.Active+sum.Inactive+sum.Unknown)
	require.Equal(t, 200, e.call(http.MethodGet, "/v1/tenants/noaudit/usage/summary", nil, &sum))
	assert.Zero(t, sum.Active+sum.Inactive, "no usage data: every license unknown")
	assert.Equal(t, sum.Licenses, sum.Unknown)

	// Events: one user.changed per user, one license_inactive per inactive license.
	envs := decodeAll(t, streamMessages(t, e.app))
	byType := map[string]int{}
	inactiveAlerts := map[string]int{}
	for _, ev := range envs {
		byType[ev.Type+" "+strings.SplitN(ev.ID, ":", 2)[0]]++
		if ev.Type == string(events.TypeAlertLicenseInactive) {
			inactiveAlerts[ev.ID]++
		}
	}
	assert.Equal(t, len(healthy.Truth().Users), byType["saas.user.changed healthy"])
	assert.Equal(t, len(wantInactive), byType["saas.alert.license_inactive healthy"])
	assert.Zero(t, byType["saas.alert.license_inactive noaudit"], "no alert without usage data")
	assert.Positive(t, byType["saas.usage.updated healthy"])
	assert.Positive(t, byType["saas.sync.completed healthy"])
	assert.Positive(t, byType["saas.connection.changed noaudit"])
	// The first job runs the users sync, then the backfill: each run's summary covers its own
	// part only.
	var firstUsers, firstAudit *events.SyncSummary
	for _, ev := range envs {
		if ev.Type != string(events.TypeSyncCompleted) || !strings.HasPrefix(ev.ID, "healthy:") {
			continue
		}
		var sum events.SyncSummary
		require.NoError(t, json.Unmarshal(ev.Data, &sum))
		if sum.Kind == "users" && firstUsers == nil {
			firstUsers = &sum
		}
		if sum.Kind == "audit" && firstAudit == nil {
			firstAudit = &sum
		}
	}
	require.NotNil(t, firstUsers)
	require.NotNil(t, firstAudit)
	assert.False(t, firstUsers.FinishedAt.After(firstAudit.StartedAt), "users run finished %s, after the backfill started %s",
		firstUsers.FinishedAt, firstAudit.StartedAt)

	// Transitions: deactivate an active license holder, make an inactive one act again, then
	// sync twice: exactly one license_freed and one license_active.
	truth := healthy.Truth()
	var holder, sleeper int64
	for _, u := range truth.Users {
		if u.Status == "active" && !u.ServiceAccount && !u.SiteAdmin && holder == 0 && u.LastActivityAt != nil && time.Since(*u.LastActivityAt) < 24*time.Hour {
			holder = u.ID
		}
		if _, ok := wantInactive[u.ID]; ok && sleeper == 0 {
			sleeper = u.ID
		}
	}
	require.NotZero(t, holder)
	require.NotZero(t, sleeper)
	require.NoError(t, healthy.DeactivateUser(holder))
	require.NoError(t, healthy.AddUserEvent(sleeper, time.Now().Add(-time.Second), "action"))
	for i := 0; i < 2; i++ {
		var run map[string]string
		require.Equal(t, 202, e.call(http.MethodPost, "/v1/tenants/healthy/connections/greenhouse/sync", nil, &run))
		require.NotEmpty(t, run["run_id"])
		e.waitConnection("healthy", time.Minute, func(c events.Connection) bool {
			return c.LastSync != nil && c.LastSync.RunID == run["run_id"] && c.LastSync.Kind == "audit"
		})
		time.Sleep(1500 * time.Millisecond)
	}
	envs = decodeAll(t, streamMessages(t, e.app))
	count := func(typ string, user int64) int {
		n := 0
		for _, ev := range envs {
			if ev.Type == typ && ev.Subject == fmt.Sprintf("users/%d", user) && strings.HasPrefix(ev.ID, "healthy:") {
				n++
			}
		}
		return n
	}
	assert.Equal(t, 1, count(string(events.TypeAlertLicenseFreed), holder), "one license_freed")
	assert.Equal(t, 1, count(string(events.TypeAlertLicenseActive), sleeper), "one license_active")
	assert.Equal(t, 1, count(string(events.TypeAlertLicenseInactive), sleeper), "the inactive alert was not repeated")

	// Restart the replica on the same NATS data and ClickHouse: no alert is repeated.
	before := len(envs)
	var last events.Connection
	require.Equal(t, 200, e.call(http.MethodGet, "/v1/tenants/healthy/connections/greenhouse", nil, &last))
	require.NotNil(t, last.LastSync)
	e.stop()
	e2 := startEnv(t, cfg)
	// The restarted replica resumes the schedule (users hourly, Audit Log every 5 minutes)
	// instead of syncing every tenant at once.
	time.Sleep(3 * time.Second)
	var now events.Connection
	require.Equal(t, 200, e2.call(http.MethodGet, "/v1/tenants/healthy/connections/greenhouse", nil, &now))
	require.NotNil(t, now.LastSync)
	assert.Equal(t, last.LastSync.RunID, now.LastSync.RunID, "a run started right after the restart")
	var run map[string]string
	require.Equal(t, 202, e2.call(http.MethodPost, "/v1/tenants/healthy/connections/greenhouse/sync", nil, &run))
	e2.waitConnection("healthy", time.Minute, func(c events.Connection) bool {
		return c.LastSync != nil && c.LastSync.RunID == run["run_id"] && c.LastSync.Kind == "audit"
	})
	time.Sleep(1500 * time.Millisecond)
	envs = decodeAll(t, streamMessages(t, e2.app))
	for _, ev := range envs[before:] {
		assert.NotContains(t, ev.Type, "saas.alert.", "no alert after a restart and re-sync: %s", ev.ID)
	}

	// Disconnect: 204, secret erased, data kept.
	require.Equal(t, 204, e2.call(http.MethodDelete, "/v1/tenants/noaudit/connections/greenhouse", nil, nil))
	doc = events.Connection{}
	require.Equal(t, 200, e2.call(http.MethodGet, "/v1/tenants/noaudit/connections/greenhouse", nil, &doc))
	assert.Equal(t, "disconnected", doc.State)
	n := 0
	require.NoError(t, store2(t, e2).CurrentUsers(ctx, "noaudit", "greenhouse", func(storage.UserRow) error { n++; return nil }))
	assert.Equal(t, len(noAudit.Truth().Users), n, "collected data stays")

	// Needs attention list: degraded/disconnected before connected.
	var list struct {
		Connections []events.Connection `json:"connections"`
	}
	require.Equal(t, 200, e2.call(http.MethodGet, "/v1/connections", nil, &list))
	require.Len(t, list.Connections, 2)
	assert.Equal(t, "noaudit", list.Connections[0].TenantID)

	// A disconnected tenant's metric series are gone.
	assert.Eventually(t, func() bool {
		seen := e2.responses.String()
		require.Equal(t, 200, e2.call(http.MethodGet, "/metrics", nil, nil))
		page := strings.TrimPrefix(e2.responses.String(), seen)
		return strings.Contains(page, `tenant="healthy"`) && !strings.Contains(page, `tenant="noaudit"`)
	}, 10*time.Second, 100*time.Millisecond, "the metrics still list the disconnected tenant")

	// No secret anywhere: logs, NATS messages and store, ClickHouse rows, API answers.
	secrets := []string{healthy.Credentials().ClientSecret, noAudit.Credentials().ClientSecret, notAdmin.Credentials().ClientSecret, badCreds.Credentials().ClientSecret}
	// The read API's answers for every tenant, and the metrics page, join the scan.
	for _, tenant := range []string{"healthy", "noaudit", "notadmin", "badcreds"} {
		for _, path := range []string{"/connections/greenhouse", "/licenses", "/usage/summary"} {
			code := e2.call(http.MethodGet, "/v1/tenants/"+tenant+path, nil, nil)
			if tenant == "healthy" || tenant == "noaudit" {
				assert.Equal(t, 200, code, tenant+path)
			} else {
				assert.Equal(t, 404, code, "%s%s: failed credentials store nothing", tenant, path)
			}
		}
	}
	e2.call(http.MethodGet, "/v1/connections", nil, nil)
	e2.call(http.MethodGet, "/metrics", nil, nil)
	// Both replicas ran on the same NATS store and ClickHouse database.
	assertNoSecrets(t, e2, "", healthy.Credentials().ClientID, secrets, e.responses.String(), e.logs.String())
}

// kvRaw returns the raw bytes of every message the collector's KV buckets hold (the latest
// revision of each key: the buckets keep no history), read from their JetStream streams.
func kvRaw(t *testing.T, app *collector.App) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js := app.Bus.JetStream()
	var b strings.Builder
	for _, name := range events.Buckets() {
		st, err := js.Stream(ctx, "KV_"+events.DefaultKVPrefix+"_"+name)
		require.NoError(t, err, name)
		info, err := st.Info(ctx)
		require.NoError(t, err)
		for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
			m, err := st.GetMsg(ctx, seq)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue // deleted or superseded
			}
			require.NoError(t, err, "read %s message %d", name, seq)
			b.WriteString(m.Subject)
			b.Write(m.Data)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func store2(t *testing.T, e *env) *storage.Store { return e.app.Store }

// expectedUsage derives, from the simulator's truth, the inactive license holders and their
// reasons (the 30-day backfill covers a 30-day threshold); historyFrom is where the observed
// Audit Log history starts (a user created before it who never acted may have acted before).
func expectedUsage(truth simulator.Truth, now, historyFrom time.Time) map[int64]string {
	out := map[int64]string{}
	threshold := now.Add(-30 * 24 * time.Hour)
	for _, u := range truth.Users {
		if u.Status != "active" || u.ServiceAccount {
			continue
		}
		if u.LastActivityAt != nil && !u.LastActivityAt.Before(threshold) {
			continue
		}
		if !u.CreatedAt.Before(threshold) {
			continue
		}
		switch {
		case u.LastActivityAt == nil && u.CreatedAt.Before(historyFrom):
			out[u.ID] = "no_activity_observed"
		case u.LastActivityAt == nil:
			out[u.ID] = "never_active"
		default:
			out[u.ID] = "no_recent_activity"
		}
	}
	return out
}

// assertMatchesTruth compares what the collector stored with the simulator's ground truth.
func assertMatchesTruth(t *testing.T, store *storage.Store, tenant string, truth simulator.Truth, usage bool) {
	t.Helper()
	ctx := context.Background()
	got := map[int64]storage.UserRow{}
	require.NoError(t, store.CurrentUsers(ctx, tenant, "greenhouse", func(r storage.UserRow) error { got[r.UserID] = r; return nil }))
	require.Len(t, got, len(truth.Users), "users of %s", tenant)
	for _, u := range truth.Users {
		r, ok := got[u.ID]
		if !assert.True(t, ok, "user %d missing", u.ID) {
			continue
		}
		assert.Equal(t, u.Status, r.Status, "status of %d", u.ID)
		assert.Equal(t, u.LicenseType, r.LicenseType, "license type of %d", u.ID)
		assert.Equal(t, u.ServiceAccount, r.ServiceAccount, "service account %d", u.ID)
		assert.Equal(t, u.Email, r.Email, "email of %d", u.ID)
		if usage {
			if u.LastActivityAt == nil {
				assert.Nil(t, r.LastActivityAt, "last activity of %d", u.ID)
			} else if assert.NotNil(t, r.LastActivityAt, "last activity of %d", u.ID) {
				assert.True(t, u.LastActivityAt.Equal(*r.LastActivityAt), "last activity of %d: %s vs %s", u.ID, u.LastActivityAt, r.LastActivityAt)
			}
		}
	}
	if !usage {
		return
	}
	n, err := store.CountAuditEvents(ctx, tenant)
	require.NoError(t, err)
	assert.Equal(t, uint64(truth.Events), n, "audit events of %s", tenant)
	daily, err := store.DailyActivity(ctx, tenant, "greenhouse", time.Now().Add(-40*24*time.Hour), time.Now().Add(24*time.Hour))
	require.NoError(t, err)
	key := func(id int64, d time.Time) string {
		return strconv.FormatInt(id, 10) + "@" + d.UTC().Format("2006-01-02")
	}
	want := map[string]int{}
	for _, d := range truth.Daily {
		want[key(d.UserID, d.Day)] = d.Events
	}
	gotDaily := map[string]int{}
	for _, d := range daily {
		gotDaily[key(d.UserID, d.Day)] = int(d.Events)
	}
	if !assert.Equal(t, len(want), len(gotDaily), "daily activity rows of %s", tenant) {
		var missing []string
		for k := range want {
			if _, ok := gotDaily[k]; !ok {
				missing = append(missing, k)
			}
		}
		sort.Strings(missing)
		t.Logf("first missing: %v", missing[:min(5, len(missing))])
	}
	assert.Equal(t, want, gotDaily, "daily activity of %s", tenant)
}
