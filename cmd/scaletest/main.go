// Command scaletest is the harness of deploy/local/scale-test.sh, which runs one collector
// process (the real cmd/collector binary) against thousands of simulated Greenhouse tenants
// and measures the time to the first full sync, per-cycle lateness, CPU, memory and the
// ClickHouse and NATS volume (docs/performance.md, "Scale"). It has three modes:
//
//	scaletest -sim -addr HOST:PORT -tenants N [-seed S] [-min-users A -max-users B | -users U]
//	          [-events-per-user E] [-max-events M] [-users-interval D] [-audit-interval D]
//	    serves a simulated Greenhouse with N seeded organisations whose sizes are drawn
//	    log-uniformly from A..B users (or all U users), each with E audit events per user over
//	    the last 30 days (at most M), and, for the script, GET /orgs (one name a line),
//	    GET /connect (every connect body as a JSON array) and GET /totals (organisations,
//	    users, events and the requests served); prints one ready line.
//	scaletest -connect -sim-url URL -api URL [-api-token T] [-parallel P]
//	    connects every organisation of the simulator as a tenant through the collector's
//	    PUT /v1/tenants/{id}/connections/greenhouse, P at a time, and prints what it took.
//	scaletest -analyze -connected-at T -from T0 -to T1 -tenants N [-users-interval D] [-audit-interval D]
//	    reads sync_runs rows (tenant, kind, status, started, finished as Unix seconds, users,
//	    events, requests, throttled; tab-separated) on stdin and prints key=value figures: the
//	    time from T (Unix seconds) until every tenant finished its first full sync, and, for
//	    the runs started in [T0, T1), how late each started against its interval.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/seatwatch/greenhouse-collector/cmd/internal/simserve"
	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse/simulator"
)

type options struct {
	sim, connect, analyze bool

	addr                  string
	tenants               int
	seed                  int64
	minUsers, maxUsers    int
	fixedUsers            int
	eventsPerUser         int
	maxEvents             int
	usersEvery, auditEach time.Duration

	simURL, apiURL, apiToken string
	parallel                 int

	connectedAt, from, to int64
}

func main() {
	var o options
	flag.BoolVar(&o.sim, "sim", false, "serve the simulated organisations")
	flag.BoolVar(&o.connect, "connect", false, "connect every simulated organisation through the collector's API")
	flag.BoolVar(&o.analyze, "analyze", false, "compute figures from sync_runs rows on stdin")
	flag.StringVar(&o.addr, "addr", "127.0.0.1:0", "listen address of the simulator")
	flag.IntVar(&o.tenants, "tenants", 100, "number of organisations (tenants)")
	flag.Int64Var(&o.seed, "seed", 7, "seed of the organisation sizes and contents")
	flag.IntVar(&o.minUsers, "min-users", 10, "smallest organisation (log-uniform sizes)")
	flag.IntVar(&o.maxUsers, "max-users", 5000, "largest organisation (log-uniform sizes)")
	flag.IntVar(&o.fixedUsers, "users", 0, "give every organisation this many users instead (0: log-uniform)")
	flag.IntVar(&o.eventsPerUser, "events-per-user", 5, "audit events per user over the last 30 days")
	flag.IntVar(&o.maxEvents, "max-events", 20000, "cap of audit events per organisation")
	flag.DurationVar(&o.usersEvery, "users-interval", time.Minute, "users_interval of the connect bodies")
	flag.DurationVar(&o.auditEach, "audit-interval", 30*time.Second, "audit_interval of the connect bodies")
	flag.StringVar(&o.simURL, "sim-url", "", "simulator base URL (-connect)")
	flag.StringVar(&o.apiURL, "api", "", "collector API base URL (-connect)")
	flag.StringVar(&o.apiToken, "api-token", os.Getenv("SCALETEST_API_TOKEN"), "bearer token of the collector's API (default $SCALETEST_API_TOKEN)")
	flag.IntVar(&o.parallel, "parallel", 8, "connect requests in flight")
	flag.Int64Var(&o.connectedAt, "connected-at", 0, "Unix time the connecting started (-analyze)")
	flag.Int64Var(&o.from, "from", 0, "Unix time the steady-state window starts (-analyze)")
	flag.Int64Var(&o.to, "to", 0, "Unix time the steady-state window ends (-analyze)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch {
	case o.sim:
		err = serveSim(ctx, o)
	case o.connect:
		err = connectAll(ctx, o)
	case o.analyze:
		err = analyze(os.Stdin, os.Stdout, o)
	default:
		err = errors.New("one of -sim, -connect or -analyze is required")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "scaletest:", err)
		stop()
		os.Exit(1)
	}
}

// orgSpecs draws the organisations: sizes log-uniform in [min, max] from the seed (or all
// fixed), events per user capped.
func orgSpecs(o options) ([]simulator.OrgSpec, error) {
	if o.tenants < 1 {
		return nil, errors.New("-tenants must be at least 1")
	}
	if o.fixedUsers == 0 && (o.minUsers < 1 || o.maxUsers < o.minUsers || o.maxUsers > 50000) {
		return nil, errors.New("-min-users and -max-users must satisfy 1 <= min <= max <= 50000")
	}
	r := rand.New(rand.NewPCG(uint64(o.seed), 0x5ca1e))
	lo, hi := math.Log(float64(o.minUsers)), math.Log(float64(o.maxUsers))
	specs := make([]simulator.OrgSpec, o.tenants)
	for i := range specs {
		users := o.fixedUsers
		if users == 0 {
			users = int(math.Round(math.Exp(lo + r.Float64()*(hi-lo))))
		}
		events := max(1, min(users*o.eventsPerUser, o.maxEvents))
		specs[i] = simulator.OrgSpec{Name: fmt.Sprintf("t%05d", i), Seed: o.seed*1_000_003 + int64(i), Users: users, Events: events}
	}
	return specs, nil
}

type totals struct {
	Orgs   int             `json:"orgs"`
	Users  int             `json:"users"`
	Events int             `json:"events"`
	Served simulator.Stats `json:"served"`
}

func serveSim(ctx context.Context, o options) error {
	specs, err := orgSpecs(o)
	if err != nil {
		return err
	}
	began := time.Now()
	sim, orgs, err := buildSim(specs)
	if err != nil {
		return err
	}
	tot := totals{Orgs: len(specs)}
	for _, s := range specs {
		tot.Users += s.Users
		tot.Events += s.Events
	}
	runtime.GC()

	ln, base, err := simserve.Listen(o.addr)
	if err != nil {
		return err
	}
	type connectBody struct {
		Tenant string         `json:"tenant"`
		Body   map[string]any `json:"body"`
	}
	bodies := make([]connectBody, len(orgs))
	for i, org := range orgs {
		bodies[i] = connectBody{Tenant: org.Name(), Body: simserve.ConnectBody(org, base, o.usersEvery.String(), o.auditEach.String())}
	}
	return simserve.Serve(ctx, ln, sim, orgs, map[string]http.HandlerFunc{
		"GET /connect": func(w http.ResponseWriter, r *http.Request) { simserve.WriteJSON(w, bodies) },
		"GET /totals": func(w http.ResponseWriter, r *http.Request) {
			t := tot
			t.Served = sim.Stats()
			simserve.WriteJSON(w, t)
		},
	}, fmt.Sprintf("scaletest sim ready on %s: %d organisations, %d users, %d audit events, built in %.1f s",
		ln.Addr(), tot.Orgs, tot.Users, tot.Events, time.Since(began).Seconds()))
}

// buildSim generates the organisations of specs on a simulator with Greenhouse's real limits
// and windows, on every CPU.
func buildSim(specs []simulator.OrgSpec) (*simulator.Server, []*simulator.Org, error) {
	profile, err := simulator.ProfileFromEnv()
	if err != nil {
		return nil, nil, err
	}
	sim := simulator.New(simulator.Options{Profile: profile})
	orgs := make([]*simulator.Org, len(specs))
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		genErr  error
	)
	for range runtime.NumCPU() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(specs) {
					return
				}
				org, err := sim.AddOrg(specs[i])
				if err != nil {
					errOnce.Do(func() { genErr = err })
					return
				}
				orgs[i] = org
			}
		}()
	}
	wg.Wait()
	return sim, orgs, genErr
}

// connectAll PUTs every connect body to the collector, o.parallel at a time; a transport
// error or a 5xx is retried a few times. It fails unless every tenant was answered 200.
func connectAll(ctx context.Context, o options) error {
	if o.simURL == "" || o.apiURL == "" || o.apiToken == "" {
		return errors.New("-connect needs -sim-url, -api and -api-token")
	}
	var bodies []struct {
		Tenant string          `json:"tenant"`
		Body   json.RawMessage `json:"body"`
	}
	resp, err := http.Get(o.simURL + "/connect")
	if err != nil {
		return fmt.Errorf("get connect bodies: %w", err)
	}
	err = json.NewDecoder(resp.Body).Decode(&bodies)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("decode connect bodies: %w", err)
	}
	client := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: o.parallel}}
	began := time.Now()
	var (
		next                      atomic.Int64
		ok, done, failed, retries atomic.Int64
		wg                        sync.WaitGroup
		mu                        sync.Mutex
		firstErrs                 []string
		latencies                 = make([]float64, len(bodies))
	)
	put := func(tenant string, body []byte) (int, string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, o.apiURL+"/v1/tenants/"+tenant+"/connections/greenhouse", bytes.NewReader(body))
		if err != nil {
			return 0, "", err
		}
		req.Header.Set("Authorization", "Bearer "+o.apiToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return resp.StatusCode, string(b), nil
	}
	for range max(1, o.parallel) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(bodies) || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				var (
					code int
					msg  string
					err  error
				)
				// A transport error, a 5xx or a 422 (a check that failed, e.g. timed out on a
				// saturated machine; nothing is stored then) is tried again.
				for attempt := range 5 {
					if attempt > 0 {
						retries.Add(1)
						time.Sleep(time.Duration(attempt) * time.Second)
					}
					code, msg, err = put(bodies[i].Tenant, bodies[i].Body)
					if err == nil && (code < 500 && code != http.StatusUnprocessableEntity) {
						break
					}
				}
				latencies[i] = time.Since(t0).Seconds()
				if err == nil && code == http.StatusOK {
					ok.Add(1)
				} else {
					failed.Add(1)
					mu.Lock()
					if len(firstErrs) < 5 {
						firstErrs = append(firstErrs, fmt.Sprintf("%s: %d %v %.300s", bodies[i].Tenant, code, err, msg))
					}
					mu.Unlock()
				}
				if n := done.Add(1); n%1000 == 0 {
					fmt.Fprintf(os.Stderr, "scaletest: %d/%d connected after %.0f s\n", n, len(bodies), time.Since(began).Seconds())
				}
			}
		}()
	}
	wg.Wait()
	sort.Float64s(latencies)
	fmt.Printf("connect_tenants=%d\nconnect_ok=%d\nconnect_failed=%d\nconnect_retries=%d\nconnect_seconds=%.1f\nconnect_latency_p50_s=%.3f\nconnect_latency_p99_s=%.3f\n",
		len(bodies), ok.Load(), failed.Load(), retries.Load(), time.Since(began).Seconds(), quantile(latencies, 0.5), quantile(latencies, 0.99))
	if failed.Load() > 0 {
		return fmt.Errorf("%d tenants not connected, e.g. %s", failed.Load(), strings.Join(firstErrs, "; "))
	}
	return ctx.Err()
}

// quantile of sorted xs (nearest rank); NaN when empty.
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(q*float64(len(xs)))) - 1
	return xs[max(0, min(i, len(xs)-1))]
}

type run struct {
	tenant, kind, status string
	started, finished    int64
	users, events        int64
	requests, throttled  int64
}

// analyze computes the figures of one scale run from its sync_runs rows.
//
// Lateness: the scheduler sets a tenant's next run of a kind to the end of its previous run
// plus the interval with ±10 % jitter, so a run on schedule starts at most 1.1 intervals after
// the previous one of its kind finished. A run's lateness is start − previous finish − 1.1 ×
// interval (negative: on time); sync_runs keeps whole seconds, so one second is tolerated
// before a run counts as late.
func analyze(in io.Reader, out io.Writer, o options) error {
	var runs []run
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) < 9 {
			continue
		}
		n := func(s string) int64 { v, _ := strconv.ParseInt(s, 10, 64); return v }
		runs = append(runs, run{tenant: f[0], kind: f[1], status: f[2], started: n(f[3]), finished: n(f[4]),
			users: n(f[5]), events: n(f[6]), requests: n(f[7]), throttled: n(f[8])})
	}
	if err := sc.Err(); err != nil {
		return err
	}
	sort.Slice(runs, func(i, j int) bool {
		a, b := runs[i], runs[j]
		if a.tenant != b.tenant {
			return a.tenant < b.tenant
		}
		if a.kind != b.kind {
			return a.kind < b.kind
		}
		return a.started < b.started
	})
	// First full sync: the end of each tenant's first successful audit run (it follows the
	// users sync in the same job).
	firstDone := map[string]int64{}
	for _, r := range runs {
		if r.kind == "audit" && r.status == "succeeded" {
			if t, ok := firstDone[r.tenant]; !ok || r.finished < t {
				firstDone[r.tenant] = r.finished
			}
		}
	}
	var firsts []float64
	for _, t := range firstDone {
		firsts = append(firsts, float64(t-o.connectedAt))
	}
	sort.Float64s(firsts)
	all := quantile(firsts, 1)
	if len(firsts) < o.tenants {
		all = math.NaN() // not every tenant got there
	}
	fmt.Fprintf(out, "first_sync_tenants=%d\nfirst_sync_p50_s=%.0f\nfirst_sync_all_s=%.0f\n", len(firsts), quantile(firsts, 0.5), all)

	interval := map[string]float64{"users": o.usersEvery.Seconds(), "audit": o.auditEach.Seconds()}
	for _, kind := range []string{"users", "audit"} {
		w := window(runs, firstDone, kind, interval[kind], o.from, o.to)
		missing := int64(o.tenants - len(w.tenants))
		p := func(name string, v float64) { fmt.Fprintf(out, "%s_%s=%.1f\n", kind, name, v) }
		fmt.Fprintf(out, "%s_runs=%d\n%s_failed=%d\n%s_tenants_without_run=%d\n%s_late_runs=%d\n", kind, w.count, kind, w.failed, kind, missing, kind, w.lateRuns)
		fmt.Fprintf(out, "%s_late_pct=%.1f\n", kind, w.latePct())
		p("lateness_p50_s", quantile(w.late, 0.5))
		p("lateness_p95_s", quantile(w.late, 0.95))
		p("lateness_p99_s", quantile(w.late, 0.99))
		p("lateness_max_s", quantile(w.late, 1))
		p("duration_p50_s", quantile(w.durs, 0.5))
		p("duration_p99_s", quantile(w.durs, 0.99))
		fmt.Fprintf(out, "%s_users=%d\n%s_events=%d\n%s_requests=%d\n%s_throttled=%d\n", kind, w.users, kind, w.evs, kind, w.reqs, kind, w.thr)
		// While tenants onboard (from the first connect to the steady window): the routine
		// runs of tenants already onboarded, which must not wait behind first syncs.
		ob := window(runs, firstDone, kind, interval[kind], o.connectedAt, o.from)
		fmt.Fprintf(out, "onboarding_%s_runs=%d\nonboarding_%s_late_pct=%.1f\n", kind, len(ob.late), kind, ob.latePct())
		fmt.Fprintf(out, "onboarding_%s_lateness_p99_s=%.1f\nonboarding_%s_lateness_max_s=%.1f\n", kind, quantile(ob.late, 0.99), kind, quantile(ob.late, 1))
	}
	return nil
}

// windowStats are the runs of one kind that started in a time window.
type windowStats struct {
	count, failed, lateRuns, users, evs, reqs, thr int64
	late, durs                                     []float64 // sorted
	tenants                                        map[string]bool
}

func (w windowStats) latePct() float64 {
	if len(w.late) == 0 {
		return math.NaN()
	}
	return 100 * float64(w.lateRuns) / float64(len(w.late))
}

// window collects the runs of kind that started in [from, to); runs is sorted by tenant, kind
// and start. A run's lateness needs the previous run of its tenant and kind, so each tenant's
// first run has none; nor does a run before its tenant's first full sync was done (firstDone):
// a first sync that failed is tried again as a first sync, behind the others waiting for
// theirs, not as a routine run on its interval.
func window(runs []run, firstDone map[string]int64, kind string, interval float64, from, to int64) windowStats {
	w := windowStats{tenants: map[string]bool{}}
	var prev *run
	for i := range runs {
		r := &runs[i]
		if r.kind != kind {
			continue
		}
		if prev != nil && prev.tenant != r.tenant {
			prev = nil
		}
		if r.started >= from && r.started < to {
			w.count++
			w.tenants[r.tenant] = true
			if r.status != "succeeded" {
				w.failed++
			}
			w.users += r.users
			w.evs += r.events
			w.reqs += r.requests
			w.thr += r.throttled
			w.durs = append(w.durs, float64(r.finished-r.started))
			if done, ok := firstDone[r.tenant]; prev != nil && ok && r.started >= done {
				l := float64(r.started-prev.finished) - 1.1*interval
				w.late = append(w.late, l)
				if l > 1 {
					w.lateRuns++
				}
			}
		}
		prev = r
	}
	sort.Float64s(w.late)
	sort.Float64s(w.durs)
	return w
}
