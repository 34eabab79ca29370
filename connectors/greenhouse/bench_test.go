package greenhouse_test

import (
	"context"
	"math"
	"net/http/httptest"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse"
	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse/simulator"
)

// The benchmarks run a sync against the simulator over real HTTP under Greenhouse's real
// limits (harvest 75 per 30 s, audit 50 per 10 s, paginated audit 3 per 30 s, token 30 per
// 60 s) with every window divided by a scale S, so that a sync the limits hold for minutes
// takes seconds. They report the duration against the floor those limits impose on the
// requests the sync actually made (see limitFloor). The ratio does not depend on S as long as
// (1) the work per request (the simulator encoding a page, the client decoding it, about 5 ms
// for 500 events on two cores) stays small against the scaled time per request, W/L, and
// (2) the windows stay whole seconds, because X-RateLimit-Reset is in whole seconds and a
// sub-second window would lose the rest of its second. S = 10 meets both (the audit window
// is 1 s, 20 ms per request); S = 30 would leave 6.7 ms per request and 333 ms windows and
// measure the CPU and the header's precision instead of the pacing. The naive point-in-time
// backfill, paced at 3 per 30 s, is run at S = 30 (its paged window 1 s), or it would take
// seven minutes. Each runs on both simulator profiles (docs/greenhouse-wire.md): documented,
// whose Audit Log names no X-RateLimit-Reset, and generous. Run them with
//
//	go test ./connectors/greenhouse -run XXX -bench 'Sync5000|Naive' -benchtime 1x -count 3
const (
	syncScale  = 10
	naiveScale = 30
)

// benchSpec is the organisation: 5,000 users and 200,000 audit events over 30 days.
var benchSpec = simulator.OrgSpec{Name: "bench", Seed: 5000, Users: 5000, Events: 200_000}

func benchOptions(scale time.Duration, profile string) simulator.Options {
	return simulator.Options{Profile: profile,
		HarvestLimit: 75, HarvestWindow: 30 * time.Second / scale,
		AuditLimit: 50, AuditWindow: 10 * time.Second / scale,
		AuditPagedLimit: 3, AuditPagedWindow: 30 * time.Second / scale,
		TokenLimit: 30, TokenWindow: 60 * time.Second / scale,
	}
}

type benchEnv struct {
	opts  simulator.Options
	scale time.Duration
	srv   *httptest.Server
	org   *simulator.Org
	gc    *greenhouse.Client
}

// newBenchEnv starts a fresh simulator (fresh rate-limit windows) with the benchmark org.
func newBenchEnv(b *testing.B, scale time.Duration, profile string) *benchEnv {
	b.Helper()
	opts := benchOptions(scale, profile)
	sim := simulator.New(opts)
	srv := httptest.NewServer(sim)
	b.Cleanup(srv.Close)
	org, err := sim.AddOrg(benchSpec)
	require.NoError(b, err)
	c := org.Credentials()
	gc, err := greenhouse.New(greenhouse.Config{
		Endpoints: greenhouse.Endpoints{Auth: srv.URL, Harvest: srv.URL, AuditLog: srv.URL},
		ClientID:  c.ClientID, ClientSecret: c.ClientSecret, AdminUserID: c.AdminUserID,
		AuditPagedLimit: opts.AuditPagedLimit, AuditPagedWindow: opts.AuditPagedWindow,
		// The documented window lengths, scaled like the simulator's.
		TokenWindow: opts.TokenWindow, HarvestWindow: opts.HarvestWindow, AuditWindow: opts.AuditWindow,
		AllowInsecure: true, UnsafeAllowLoopback: true,
	})
	require.NoError(b, err)
	return &benchEnv{opts: opts, scale: scale, srv: srv, org: org, gc: gc}
}

// classFloor is the least time a limit of limit requests per window lets n requests take:
// they need ceil(n/limit) windows and all but the last are waited out in full, so
// max(0, ceil(n/limit) - 1) × window.
func classFloor(n int64, limit int, window time.Duration) time.Duration {
	w := (n + int64(limit) - 1) / int64(limit)
	return time.Duration(max(0, w-1)) * window
}

// limitFloor is the floor the limits impose on the requests a run made (as the simulator
// counted them, which includes 429s; the benchmarks expect none):
//
//	floor = Σ_c max(0, ceil(n_c / L_c) - 1) × W_c
//
// over the token, harvest and audit classes, which the sync runs one after another, so their
// floors add. A paginated audit request counts against both the audit limit and the paginated
// limit at the same time, so those two contribute the larger of their floors, not the sum.
func limitFloor(st simulator.Stats, o simulator.Options) time.Duration {
	audit := max(classFloor(st.AuditRequests, o.AuditLimit, o.AuditWindow),
		classFloor(st.AuditPaged, o.AuditPagedLimit, o.AuditPagedWindow))
	return classFloor(st.TokenRequests, o.TokenLimit, o.TokenWindow) +
		classFloor(st.HarvestRequests, o.HarvestLimit, o.HarvestWindow) + audit
}

// exhaustedWindows is how many windows the requests of a run used up before the last:
// Σ_c max(0, ceil(n_c / L_c) - 1), counted like limitFloor. Against a server whose
// X-RateLimit-Reset is rounded down each of them costs the client up to one more real second.
func exhaustedWindows(st simulator.Stats, o simulator.Options) int64 {
	n := func(req int64, limit int) int64 { return max(0, (req+int64(limit)-1)/int64(limit)-1) }
	audit := max(n(st.AuditRequests, o.AuditLimit), n(st.AuditPaged, o.AuditPagedLimit))
	return n(st.TokenRequests, o.TokenLimit) + n(st.HarvestRequests, o.HarvestLimit) + audit
}

// collectAudit returns a batch callback counting deliveries per event id, of the events before
// to: the read also delivers the rest of to's second, where the documented profile records the
// sync's own Harvest reads.
func collectAudit(ids map[string]int, to time.Time) func(greenhouse.AuditBatch) error {
	return func(batch greenhouse.AuditBatch) error {
		for _, e := range batch.Events {
			if e.Time.Before(to) {
				ids[e.ID]++
			}
		}
		return nil
	}
}

// requireExactlyOnce asserts that the delivered events are the organisation's as of the read's
// start (want: its Truth then; the documented profile adds the sync's own Harvest reads to the
// Audit Log after it), each once.
func requireExactlyOnce(b *testing.B, want int, ids map[string]int) {
	b.Helper()
	for id, n := range ids {
		if n != 1 {
			b.Fatalf("event %s delivered %d times", id, n)
		}
	}
	require.Equal(b, want, len(ids), "every audit event of the 30 days")
}

// runSync is the full sync: roles, job and future job permissions, every user, 30 days of
// audit events.
func runSync(ctx context.Context, b *testing.B, env *benchEnv, from, to time.Time) map[string]int {
	b.Helper()
	gc := env.gc
	var roles, perms, future, users int
	require.NoError(b, gc.ListUserRoles(ctx, func(p []greenhouse.UserRole) error { roles += len(p); return nil }))
	require.NoError(b, gc.ListJobPermissions(ctx, func(p []greenhouse.JobPermission) error { perms += len(p); return nil }))
	require.NoError(b, gc.ListFutureJobPermissions(ctx, func(p []greenhouse.FutureJobPermission) error { future += len(p); return nil }))
	require.NoError(b, gc.ListUsers(ctx, greenhouse.UserQuery{}, func(p []greenhouse.User) error { users += len(p); return nil }))
	ids := map[string]int{}
	require.NoError(b, gc.AuditEvents(ctx, from, to, collectAudit(ids, to)))
	require.Len(b, env.org.Truth().Users, users, "every user")
	require.Positive(b, roles)
	require.Positive(b, perms+future)
	return ids
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return math.NaN()
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

var benchProfiles = []string{simulator.ProfileDocumented, simulator.ProfileGenerous}

func BenchmarkSync5000(b *testing.B) {
	for _, p := range benchProfiles {
		b.Run(p, func(b *testing.B) { benchSync5000(b, p) })
	}
}

func benchSync5000(b *testing.B, profile string) {
	var wall, floor, ratio, floored, reqs, audit, throttled []float64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		env := newBenchEnv(b, syncScale, profile)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		to := time.Now()
		from := to.Add(-30 * 24 * time.Hour)
		want := env.org.Truth().Events
		b.StartTimer()
		start := time.Now()
		ids := runSync(ctx, b, env, from, to)
		d := time.Since(start)
		b.StopTimer()
		cancel()
		requireExactlyOnce(b, want, ids)
		st := env.org.Stats()
		fl := limitFloor(st, env.opts)
		// At real scale, against a server that rounds X-RateLimit-Reset down, the pacer
		// waits up to one more real second per exhausted window.
		worst := d + time.Duration(exhaustedWindows(st, env.opts))*time.Second/env.scale
		wall = append(wall, d.Seconds())
		floor = append(floor, fl.Seconds())
		ratio = append(ratio, d.Seconds()/fl.Seconds())
		floored = append(floored, worst.Seconds()/fl.Seconds())
		reqs = append(reqs, float64(st.Requests))
		audit = append(audit, float64(st.AuditRequests))
		throttled = append(throttled, float64(st.Throttled))
		b.Logf("S=%d sync %v, floor %v, ratio %.3f (%.3f if resets were rounded down), requests %d (token %d, harvest %d, audit %d, paged %d), 429s %d, client retries %d",
			env.scale, d.Round(time.Millisecond), fl, d.Seconds()/fl.Seconds(), worst.Seconds()/fl.Seconds(), st.Requests, st.TokenRequests, st.HarvestRequests, st.AuditRequests, st.AuditPaged, st.Throttled, env.gc.Stats().Retries)
		b.StartTimer()
	}
	b.ReportMetric(median(wall), "wall-s")
	b.ReportMetric(median(floor), "floor-s")
	b.ReportMetric(median(ratio), "ratio")
	b.ReportMetric(median(floored), "ratio-if-floored")
	b.ReportMetric(median(reqs), "requests")
	b.ReportMetric(median(audit), "audit-requests")
	b.ReportMetric(median(throttled), "429s")
}

// BenchmarkAuditBackfillNaive reads the same 30 days twice, each on a fresh simulator: with
// the window strategy (AuditEvents, S = syncScale) and with point-in-time pagination only
// (S = naiveScale). Durations are compared at real scale (measured × S).
func BenchmarkAuditBackfillNaive(b *testing.B) {
	for _, p := range benchProfiles {
		b.Run(p, func(b *testing.B) { benchAuditBackfillNaive(b, p) })
	}
}

func benchAuditBackfillNaive(b *testing.B, profile string) {
	var naive, windowed, naiveReqs, windowedReqs, naiveFloor, speedup, throttled []float64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		env := newBenchEnv(b, syncScale, profile)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		to := time.Now()
		from := to.Add(-30 * 24 * time.Hour)
		want := env.org.Truth().Events
		b.StartTimer()
		start := time.Now()
		ids := map[string]int{}
		require.NoError(b, env.gc.AuditEvents(ctx, from, to, collectAudit(ids, to)))
		dw := time.Since(start) * env.scale
		b.StopTimer()
		requireExactlyOnce(b, want, ids)
		sw := env.org.Stats()

		env = newBenchEnv(b, naiveScale, profile)
		to = time.Now()
		from = to.Add(-30 * 24 * time.Hour)
		want = env.org.Truth().Events
		b.StartTimer()
		start = time.Now()
		ids = map[string]int{}
		require.NoError(b, env.gc.AuditEventsPaged(ctx, from, to, collectAudit(ids, to)))
		dn := time.Since(start) * env.scale
		b.StopTimer()
		cancel()
		requireExactlyOnce(b, want, ids)
		sn := env.org.Stats()
		// The floor counts the requests served: here every 429 was a paginated audit request.
		served := sn
		served.AuditRequests -= sn.Throttled
		served.AuditPaged -= sn.Throttled
		fl := limitFloor(served, env.opts) * env.scale
		naive = append(naive, dn.Seconds())
		windowed = append(windowed, dw.Seconds())
		naiveReqs = append(naiveReqs, float64(sn.AuditRequests))
		windowedReqs = append(windowedReqs, float64(sw.AuditRequests))
		naiveFloor = append(naiveFloor, fl.Seconds())
		speedup = append(speedup, dn.Seconds()/dw.Seconds())
		throttled = append(throttled, float64(sn.Throttled+sw.Throttled))
		b.Logf("real-scale equivalents: naive %v (floor %v), %d requests (%d paged), 429s %d; windowed %v, %d requests, 429s %d; speed-up %.1f×",
			dn.Round(time.Second), fl, sn.AuditRequests, sn.AuditPaged, sn.Throttled, dw.Round(time.Second), sw.AuditRequests, sw.Throttled, dn.Seconds()/dw.Seconds())
		b.StartTimer()
	}
	b.ReportMetric(median(naive), "naive-real-s")
	b.ReportMetric(median(naiveFloor), "naive-floor-real-s")
	b.ReportMetric(median(naiveReqs), "naive-requests")
	b.ReportMetric(median(windowed), "windowed-real-s")
	b.ReportMetric(median(windowedReqs), "windowed-requests")
	b.ReportMetric(median(speedup), "speedup")
	b.ReportMetric(median(throttled), "429s")
}
