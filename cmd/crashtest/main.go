// Command crashtest is the harness of deploy/local/crash-test.sh, which kills a collector
// replica with SIGKILL at random moments and then checks that nothing was lost or repeated.
// It has three modes:
//
//	crashtest -sim -addr HOST:PORT
//	    serves a deterministic simulated Greenhouse (five seeded organisations) and, for the
//	    script, GET /orgs (one name a line), GET /connect/ORG (the body of the connect request)
//	    GET /truth/ORG (the organisation's ground truth as JSON) and GET /requests (how many
//	    Greenhouse requests it served); prints one ready line.
//	crashtest -addr HOST:PORT -data-dir DIR -clickhouse-addr A [-clickhouse-database D]
//	    runs one collector replica with an embedded NATS server in DIR (in process), a fixed API
//	    token (-api-token) and a fixed sealing key.
//	    With -nats-url it uses that NATS (deploy/local/cluster-test.sh: a 3-node cluster, with
//	    -replica-id, -stream-replicas 3 and -runs-file, which gets one JSON line per sync run
//	    with the replica that ran it).
//	crashtest -verify -sim-url URL -data-dir DIR -clickhouse-addr A [-clickhouse-database D]
//	    starts NATS offline on DIR (or reads the stream from -nats-url), reads ClickHouse and
//	    the simulator's truth, and checks users,
//	    license types, statuses, last activity, audit event counts, daily activity, that no
//	    CloudEvents id is in the stream twice, one saas.user.changed per user, exactly one
//	    license_inactive alert per inactive license holder and no license_active or
//	    license_freed alert (the organisations do not change). It exits 1 on any mismatch.
//	crashtest -verify-actions -action-file F -sim-url URL -data-dir DIR -clickhouse-addr A
//	    the actions mode (deploy/local/crash-actions-test.sh, actions.go): checks the action
//	    saved in F against the simulator's accepted writes (GET /writes/ORG) and truth, the
//	    actions rows and the stream. The simulator also serves GET /reclaim/ORG, the action's
//	    body; -sim-latency slows every answer of crash1, -sim-write-delay its answers to
//	    writes once they are done.
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/seatwatch/greenhouse-collector/cmd/internal/simserve"
	"github.com/seatwatch/greenhouse-collector/collector"
	"github.com/seatwatch/greenhouse-collector/connectors"
	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse/simulator"
	"github.com/seatwatch/greenhouse-collector/events"
	"github.com/seatwatch/greenhouse-collector/storage"
)

// defaultToken is the API token of the replicas under test (a test harness has no secret).
const defaultToken = "crashtest-token-0123456789abcdef"

// sealingKey seals the simulator's client secrets in KV: fixed so that every incarnation of
// the replica opens what an earlier one sealed.
var sealingKey = "k1:" + base64.StdEncoding.EncodeToString([]byte("crashtest-sealing-key-32-bytes!!"))

// orgSpecs are the simulated organisations: fixed seeds, 200 to 800 users, 5k to 20k events.
var orgSpecs = []simulator.OrgSpec{
	{Name: "crash1", Seed: 501, Users: 200, Events: 5000},
	{Name: "crash2", Seed: 502, Users: 350, Events: 8000},
	{Name: "crash3", Seed: 503, Users: 500, Events: 12000},
	{Name: "crash4", Seed: 504, Users: 650, Events: 16000},
	{Name: "crash5", Seed: 505, Users: 800, Events: 20000},
}

// inactiveAfterDays is the collector's default threshold, which the connect requests keep.
const inactiveAfterDays = 30

type options struct {
	sim, verify        bool
	addr, simURL       string
	dataDir            string
	chAddr, chDatabase string
	apiToken           string
	leaseTTL           time.Duration
	logLevel           string
	natsURL, replicaID string
	streamReplicas     int
	runsFile           string
	verifyActions      bool
	actionFile         string
	actionChunk        int
	actionEvery        time.Duration
	simLatency         time.Duration
	simWriteDelay      time.Duration
}

func main() {
	var o options
	flag.BoolVar(&o.sim, "sim", false, "serve the deterministic simulator")
	flag.BoolVar(&o.verify, "verify", false, "check the stored data against the simulator's truth")
	flag.StringVar(&o.addr, "addr", "127.0.0.1:8089", "listen address of the simulator (-sim) or of the collector's API")
	flag.StringVar(&o.simURL, "sim-url", "http://127.0.0.1:8089", "simulator base URL (-verify)")
	flag.StringVar(&o.dataDir, "data-dir", "./crashtest-data", "data directory of the embedded NATS server")
	flag.StringVar(&o.chAddr, "clickhouse-addr", "127.0.0.1:9000", "ClickHouse native address")
	flag.StringVar(&o.chDatabase, "clickhouse-database", "crashtest", "ClickHouse database")
	flag.StringVar(&o.apiToken, "api-token", defaultToken, "bearer token of the collector's API")
	flag.DurationVar(&o.leaseTTL, "lease-ttl", time.Second, "shard lease lifetime: a killed replica's shards are free after it")
	flag.StringVar(&o.logLevel, "log-level", "info", "log level of the collector")
	flag.StringVar(&o.natsURL, "nats-url", "", "external NATS URLs, comma-separated (empty: the embedded NATS in data-dir)")
	flag.StringVar(&o.replicaID, "replica-id", "", "name of the replica in shard leases (empty: host name and pid)")
	flag.IntVar(&o.streamReplicas, "stream-replicas", 1, "replicas of the stream and KV buckets")
	flag.StringVar(&o.runsFile, "runs-file", "", "append one JSON line per sync run (tenant, replica, kind, start, end) to this file")
	flag.BoolVar(&o.verifyActions, "verify-actions", false, "check the reclaim action of -action-file (the actions mode)")
	flag.StringVar(&o.actionFile, "action-file", "", "the action's final GET answer (-verify-actions)")
	flag.IntVar(&o.actionChunk, "action-chunk", 25, "users of a reclaim action per run of the collector")
	flag.DurationVar(&o.actionEvery, "action-every", 30*time.Second, "least time between two runs of one reclaim action")
	flag.DurationVar(&o.simLatency, "sim-latency", 0, "latency added to every answer to crash1 (-sim)")
	flag.DurationVar(&o.simWriteDelay, "sim-write-delay", 0, "delay of crash1's answers to writes, after the write is done (-sim)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch {
	case o.sim && o.verify:
		err = errors.New("-sim and -verify exclude each other")
	case o.sim:
		err = serveSim(ctx, o)
	case o.verifyActions:
		var ok bool
		ok, err = verifyActions(ctx, o, os.Stdout)
		if err == nil && !ok {
			stop()
			os.Exit(1)
		}
	case o.verify:
		var ok bool
		ok, err = verify(ctx, o, os.Stdout)
		if err == nil && !ok {
			stop()
			os.Exit(1)
		}
	default:
		err = runCollector(ctx, o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "crashtest:", err)
		stop()
		os.Exit(2)
	}
}

// newSim builds the simulator with Greenhouse's limit windows scaled down ten times, so that
// a first sync spans several of the script's kills.
func newSim() (*simulator.Server, []*simulator.Org, error) {
	profile, err := simulator.ProfileFromEnv()
	if err != nil {
		return nil, nil, err
	}
	sim := simulator.New(simulator.Options{Profile: profile,
		HarvestWindow: 3 * time.Second, AuditWindow: time.Second, AuditPagedWindow: 3 * time.Second, TokenWindow: 6 * time.Second,
	})
	orgs := make([]*simulator.Org, 0, len(orgSpecs))
	for _, spec := range orgSpecs {
		org, err := sim.AddOrg(spec)
		if err != nil {
			return nil, nil, err
		}
		orgs = append(orgs, org)
	}
	return sim, orgs, nil
}

func serveSim(ctx context.Context, o options) error {
	sim, orgs, err := newSim()
	if err != nil {
		return err
	}
	ln, base, err := simserve.Listen(o.addr)
	if err != nil {
		return err
	}
	byName := map[string]*simulator.Org{}
	for _, org := range orgs {
		byName[org.Name()] = org
	}
	byName[actionOrg].SetFaults(simulator.Faults{Latency: o.simLatency, WriteAnswerDelay: o.simWriteDelay})
	withOrg := func(answer func(*simulator.Org) any) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			org, ok := byName[r.PathValue("org")]
			if !ok {
				http.NotFound(w, r)
				return
			}
			simserve.WriteJSON(w, answer(org))
		}
	}
	return simserve.Serve(ctx, ln, sim, orgs, map[string]http.HandlerFunc{
		"GET /connect/{org}": withOrg(func(org *simulator.Org) any { return simserve.ConnectBody(org, base, "1m", "30s") }),
		"GET /truth/{org}":   withOrg(func(org *simulator.Org) any { return org.Truth() }),
		"GET /writes/{org}":  withOrg(func(org *simulator.Org) any { return org.Writes() }),
		"GET /reclaim/{org}": withOrg(func(org *simulator.Org) any { return reclaimBody(org) }),
		"GET /requests": func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintln(w, sim.Stats().Requests)
		},
	}, fmt.Sprintf("crashtest sim ready on %s", ln.Addr()))
}

func runCollector(ctx context.Context, o options) error {
	level, err := zerolog.ParseLevel(o.logLevel)
	if err != nil {
		return fmt.Errorf("log-level: %w", err)
	}
	cfg := collector.DefaultConfig()
	cfg.HTTPAddr = o.addr
	cfg.APIToken = o.apiToken
	cfg.DataDir = o.dataDir
	cfg.ClickHouseAddr = o.chAddr
	cfg.ClickHouseDatabase = o.chDatabase
	cfg.SecretKeys = sealingKey
	cfg.AllowEndpointOverride = true
	cfg.AllowInsecureEndpoints = true
	cfg.GreenhouseWindows = "harvest=3s,audit=1s,token=6s,audit-paged=3s" // as newSim's
	cfg.AllowedEndpointHosts = "127.0.0.1"                                // the simulator's address
	cfg.UnsafeAllowLoopbackEndpointsForTests = true                       // the simulator runs on this host
	cfg.Shards = 8
	cfg.LeaseTTL = o.leaseTTL
	cfg.NATSURL = o.natsURL
	cfg.StreamReplicas = o.streamReplicas
	cfg.ActionChunk, cfg.ActionEvery = o.actionChunk, o.actionEvery
	if o.replicaID != "" {
		cfg.ReplicaID = o.replicaID
	}
	log := zerolog.New(os.Stderr).Level(level).With().Timestamp().Str("replica", cfg.ReplicaID).Logger()
	var opts collector.Options
	if o.runsFile != "" {
		f, err := os.OpenFile(o.runsFile, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return fmt.Errorf("runs-file: %w", err)
		}
		defer f.Close()
		var mu sync.Mutex
		enc := json.NewEncoder(f)
		opts.RunObserver = func(r collector.RunInfo) {
			mu.Lock()
			defer mu.Unlock()
			_ = enc.Encode(r) // one write per line: a kill loses at most the line being written
		}
	}
	app, err := collector.Start(ctx, cfg, log, opts)
	if err != nil {
		return err
	}
	defer app.Close()
	return app.Run(ctx)
}

// envelope is the part of a CloudEvents envelope the checks read.
type envelope struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Subject string `json:"subject"`
}

// report collects mismatches, printing the first few of each tenant.
type report struct {
	out        io.Writer
	mismatches int
	shown      map[string]int
}

func (r *report) fail(tenant, format string, args ...any) {
	r.mismatches++
	if r.shown[tenant] < 10 {
		fmt.Fprintf(r.out, "  MISMATCH %s: %s\n", tenant, fmt.Sprintf(format, args...))
	}
	r.shown[tenant]++
}

// verify checks the stored state against the simulator's truth; false means a mismatch.
func verify(ctx context.Context, o options, out io.Writer) (bool, error) {
	orgs, err := fetchOrgs(ctx, o.simURL)
	if err != nil {
		return false, err
	}
	var envs []envelope
	if o.natsURL != "" {
		envs, err = readClusterStream(ctx, o.natsURL)
	} else {
		envs, err = readStream(ctx, filepath.Join(o.dataDir, "nats"))
	}
	if err != nil {
		return false, err
	}
	store, err := storage.Open(ctx, storage.Config{Addr: []string{o.chAddr}, Database: o.chDatabase, Logger: zerolog.Nop()})
	if err != nil {
		return false, fmt.Errorf("open ClickHouse: %w", err)
	}
	defer store.Close()

	rep := &report{out: out, shown: map[string]int{}}
	ids := map[string]int{}
	for _, e := range envs {
		ids[e.ID]++
	}
	dupIDs := 0
	for id, n := range ids {
		if n > 1 {
			dupIDs++
			rep.fail("stream", "CloudEvents id %s appears %d times", id, n)
		}
	}
	fmt.Fprintf(out, "stream: %d messages, %d distinct ids, %d ids repeated\n", len(envs), len(ids), dupIDs)

	now := time.Now()
	for _, tenant := range orgs {
		var truth simulator.Truth
		if err := getJSON(ctx, o.simURL+"/truth/"+tenant, &truth); err != nil {
			return false, err
		}
		before := rep.mismatches
		users, err := checkUsers(ctx, store, rep, tenant, truth)
		if err != nil {
			return false, err
		}
		stored, daily, err := checkActivity(ctx, store, rep, tenant, truth, now)
		if err != nil {
			return false, err
		}
		inactive, alerts := checkEvents(rep, tenant, truth, envs, now)
		status := "ok"
		if rep.mismatches > before {
			status = fmt.Sprintf("%d MISMATCHES", rep.mismatches-before)
		}
		fmt.Fprintf(out, "%s: %d users, %d audit events, %d daily rows, %d inactive licenses / %d license_inactive alerts: %s\n",
			tenant, users, stored, daily, inactive, alerts, status)
	}
	if rep.mismatches > 0 {
		fmt.Fprintf(out, "verify: FAILED with %d mismatches\n", rep.mismatches)
		return false, nil
	}
	fmt.Fprintln(out, "verify: OK, ClickHouse and the stream equal the simulator's truth")
	return true, nil
}

func fetchOrgs(ctx context.Context, simURL string) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, simURL+"/orgs", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("list simulator orgs: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("list simulator orgs: status %d: %v", resp.StatusCode, err)
	}
	return strings.Fields(string(b)), nil
}

func getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("get %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("get %s: status %d", url, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("decode %s: %w", url, err)
	}
	return nil
}

// readStream starts NATS on the replica's store directory (in process) and reads every
// message of the SAAS stream, checking that each Nats-Msg-Id is its CloudEvents id.
func readStream(ctx context.Context, dir string) ([]envelope, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("NATS store: %w", err)
	}
	ns, err := events.StartEmbedded(events.EmbeddedConfig{Dir: dir})
	if err != nil {
		return nil, err
	}
	defer func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	}()
	nc, err := nats.Connect(ns.ClientURL(), events.InProcess(ns))
	if err != nil {
		return nil, fmt.Errorf("connect to NATS: %w", err)
	}
	defer nc.Close()
	return readSAAS(ctx, nc)
}

// readClusterStream reads every message of the SAAS stream from a running NATS (the cluster
// of deploy/local/cluster-test.sh).
func readClusterStream(ctx context.Context, url string) ([]envelope, error) {
	nc, err := events.Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	return readSAAS(ctx, nc)
}

// readSAAS reads every message of the SAAS stream, checking that each Nats-Msg-Id is its
// CloudEvents id.
func readSAAS(ctx context.Context, nc *nats.Conn) ([]envelope, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	st, err := js.Stream(ctx, "SAAS")
	if err != nil {
		return nil, fmt.Errorf("stream SAAS: %w", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("stream SAAS: %w", err)
	}
	var out []envelope
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read message %d: %w", seq, err)
		}
		var e envelope
		if err := json.Unmarshal(m.Data, &e); err != nil {
			return nil, fmt.Errorf("message %d is not a CloudEvents envelope: %w", seq, err)
		}
		if id := m.Header.Get("Nats-Msg-Id"); id != e.ID {
			return nil, fmt.Errorf("message %d: Nats-Msg-Id %q is not its id %q", seq, id, e.ID)
		}
		out = append(out, e)
	}
	return out, nil
}

func checkUsers(ctx context.Context, store *storage.Store, rep *report, tenant string, truth simulator.Truth) (int, error) {
	got := map[int64]storage.UserRow{}
	if err := store.CurrentUsers(ctx, tenant, connectors.AppGreenhouse, func(r storage.UserRow) error { got[r.UserID] = r; return nil }); err != nil {
		return 0, fmt.Errorf("read users of %s: %w", tenant, err)
	}
	if len(got) != len(truth.Users) {
		rep.fail(tenant, "%d users stored, %d in the truth", len(got), len(truth.Users))
	}
	for _, u := range truth.Users {
		r, ok := got[u.ID]
		switch {
		case !ok:
			rep.fail(tenant, "user %d missing", u.ID)
			continue
		case r.Status != u.Status:
			rep.fail(tenant, "user %d status %q, truth %q", u.ID, r.Status, u.Status)
		case r.LicenseType != u.LicenseType:
			rep.fail(tenant, "user %d license type %q, truth %q", u.ID, r.LicenseType, u.LicenseType)
		case r.ServiceAccount != u.ServiceAccount || r.Email != u.Email:
			rep.fail(tenant, "user %d service account or email differ", u.ID)
		}
		switch {
		case u.LastActivityAt == nil && r.LastActivityAt != nil:
			rep.fail(tenant, "user %d last activity %s, truth none", u.ID, r.LastActivityAt)
		case u.LastActivityAt != nil && (r.LastActivityAt == nil || !u.LastActivityAt.Equal(*r.LastActivityAt)):
			rep.fail(tenant, "user %d last activity %v, truth %s", u.ID, r.LastActivityAt, u.LastActivityAt)
		}
	}
	return len(got), nil
}

func checkActivity(ctx context.Context, store *storage.Store, rep *report, tenant string, truth simulator.Truth, now time.Time) (uint64, int, error) {
	n, err := store.CountAuditEvents(ctx, tenant)
	if err != nil {
		return 0, 0, fmt.Errorf("count audit events of %s: %w", tenant, err)
	}
	if n != uint64(truth.Events) {
		rep.fail(tenant, "%d audit events stored (uniqExact), %d in the truth", n, truth.Events)
	}
	daily, err := store.DailyActivity(ctx, tenant, connectors.AppGreenhouse, now.Add(-40*24*time.Hour), now.Add(24*time.Hour))
	if err != nil {
		return 0, 0, fmt.Errorf("read daily activity of %s: %w", tenant, err)
	}
	key := func(id int64, d time.Time) string {
		return strconv.FormatInt(id, 10) + "@" + d.UTC().Format("2006-01-02")
	}
	want := map[string]int{}
	for _, d := range truth.Daily {
		want[key(d.UserID, d.Day)] = d.Events
	}
	got := map[string]int{}
	for _, d := range daily {
		got[key(d.UserID, d.Day)] = int(d.Events)
	}
	keys := make([]string, 0, len(want)+len(got))
	for k := range want {
		keys = append(keys, k)
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if want[k] != got[k] {
			rep.fail(tenant, "daily activity %s: %d stored, %d in the truth", k, got[k], want[k])
		}
	}
	return n, len(daily), nil
}

// expectedInactive derives the inactive license holders from the truth: active, not a service
// account, created before the threshold, and no activity since it (the 30-day backfill covers
// the threshold).
func expectedInactive(truth simulator.Truth, now time.Time) map[int64]bool {
	threshold := now.Add(-inactiveAfterDays * 24 * time.Hour)
	out := map[int64]bool{}
	for _, u := range truth.Users {
		if u.Status != "active" || u.ServiceAccount || !u.CreatedAt.Before(threshold) {
			continue
		}
		if u.LastActivityAt == nil || u.LastActivityAt.Before(threshold) {
			out[u.ID] = true
		}
	}
	return out
}

// checkEvents checks a tenant's events: one saas.user.changed per user and exactly one
// license_inactive alert per inactive license holder, none for anyone else.
func checkEvents(rep *report, tenant string, truth simulator.Truth, envs []envelope, now time.Time) (inactive, alerts int) {
	changed := map[string]int{}
	alerted := map[int64]int{}
	others := map[string]int{} // license_active and license_freed: the organisations never change
	for _, e := range envs {
		if !strings.HasPrefix(e.ID, tenant+":") {
			continue
		}
		switch e.Type {
		case string(events.TypeUserChanged):
			changed[e.Subject]++
		case string(events.TypeAlertLicenseInactive):
			var id int64
			if _, err := fmt.Sscanf(e.Subject, "users/%d", &id); err != nil {
				rep.fail(tenant, "alert %s has subject %q", e.ID, e.Subject)
				continue
			}
			alerted[id]++
			alerts++
		case string(events.TypeAlertLicenseActive), string(events.TypeAlertLicenseFreed):
			others[e.Type+" "+e.Subject]++
		}
	}
	for k, n := range others {
		rep.fail(tenant, "%d× %s, but no user changed", n, k)
	}
	for _, u := range truth.Users {
		if n := changed[fmt.Sprintf("users/%d", u.ID)]; n != 1 {
			rep.fail(tenant, "%d saas.user.changed for user %d, want 1", n, u.ID)
		}
	}
	want := expectedInactive(truth, now)
	for id := range want {
		if alerted[id] != 1 {
			rep.fail(tenant, "%d license_inactive alerts for inactive user %d, want 1", alerted[id], id)
		}
	}
	for id, n := range alerted {
		if !want[id] {
			rep.fail(tenant, "%d license_inactive alerts for user %d, who is not inactive", n, id)
		}
	}
	return len(want), alerts
}
