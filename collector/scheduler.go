package collector

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/seatwatch/greenhouse-collector/events"
)

// tenantSchedule is the scheduler's view of one tenant.
type tenantSchedule struct {
	// What every dispatch reads of every tenant first, together at the struct's start (one
	// cache line): the connection before them put them a few hundred bytes in.
	running    bool
	fresh      bool // no users sync done under this generation yet
	shard      int  // shardOf the tenant
	nextUsers  time.Time
	nextAudit  time.Time
	nextAction time.Time // the next run of a reclaim action (cfg.ActionEvery after the last)

	sc         storedConnection
	generation int64
	failures   int
	// served is the last requested run id this replica began: later revisions of the
	// connection that still carry it (its own SyncStarted mark, a clear not yet seen) do not
	// start it again.
	served string
}

// scheduler owns shards through leases and runs the due syncs of the tenants in its shards,
// at most cfg.Concurrency at once. One tenant's failure, slowness or panic only affects that
// tenant's own schedule.
type scheduler struct {
	cfg    Config
	conns  *connections
	syncer *syncer
	leases *events.KV[lease]
	// disconnected is told of a tenant disconnected or deleted (its client and series go).
	disconnected func(tenant string)
	metrics      *metrics
	log          zerolog.Logger
	now          func() time.Time

	mu      sync.Mutex
	tenants map[string]*tenantSchedule
	owned   map[int]uint64 // shard → lease revision
	// tenure is, per owned shard, the revision of the lease write that took it: what this
	// replica knew of a tenant under an earlier tenure (usersCache) may be stale.
	tenure  map[int]uint64
	fence   leaseFence // until when each owned shard may be acted on (fence.go)
	workers *workerPool
	// freshSem holds a place for each first sync that holds a worker: planDispatch starts one
	// only while fewer than three quarters of the workers run them, and a first sync that
	// gave its worker back (idle) takes a place again before its worker. A first sync
	// waiting for a group commit therefore leaves room for another one, not only for routine
	// runs: it waits at least once for the audit writer's flush (a second), a third of an
	// onboarding first sync (docs/performance.md, "Eighth session").
	freshSem chan struct{}
	wg       sync.WaitGroup
	wake     chan struct{}
	dueBuf   []dueSync // dispatch's list of due syncs, reused
	ownedBuf []bool    // dispatch's owned shards, reused
	// cands are the first due syncs the last full dispatch found, at candAt (wall clock), and
	// the tenants connection changes made due since; candCut: it found more than it kept.
	cands   []dueSync
	candAt  time.Time
	candCut bool
}

func newScheduler(cfg Config, conns *connections, sy *syncer, leases *events.KV[lease], disconnected func(string), m *metrics, log zerolog.Logger, now func() time.Time) *scheduler {
	return &scheduler{
		cfg: cfg, conns: conns, syncer: sy, leases: leases, disconnected: disconnected, metrics: m, log: log, now: now,
		tenants:  map[string]*tenantSchedule{},
		owned:    map[int]uint64{},
		tenure:   map[int]uint64{},
		fence:    newLeaseFence(),
		workers:  newWorkerPool(cfg.Concurrency),
		freshSem: make(chan struct{}, freshMax(cfg.Concurrency)),
		wake:     make(chan struct{}, 1),
	}
}

// allBusy reports whether every worker is taken.
func (sch *scheduler) allBusy() bool { return sch.workers.inUse() >= sch.workers.size }

// poke makes the scheduler look at its tenants now rather than at the next tick.
func (sch *scheduler) poke() {
	select {
	case sch.wake <- struct{}{}:
	default:
	}
}

// run is the scheduler's loop. On return every sync it started has ended.
func (sch *scheduler) run(ctx context.Context) error {
	log := sch.log.With().Str("replica", sch.cfg.ReplicaID).Logger()
	watchErr := make(chan error, 1)
	go func() { watchErr <- sch.watchConnections(ctx) }()
	go sch.watchFence(ctx)

	leaseEvery := sch.cfg.LeaseTTL / 3
	leaseTick := time.NewTicker(leaseEvery)
	defer leaseTick.Stop()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	if err := sch.refreshLeases(ctx); err != nil {
		log.Warn().Err(err).Msg("shard leases")
	}
	for {
		select {
		case <-ctx.Done():
			sch.workers.setYield(false) // no dispatch will let waiting jobs in any more
			sch.wg.Wait()
			sch.releaseAll()
			return nil
		case err := <-watchErr:
			sch.workers.setYield(false)
			sch.wg.Wait()
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("watch connections: %w", err)
		case <-leaseTick.C:
			if err := sch.refreshLeases(ctx); err != nil && ctx.Err() == nil {
				log.Warn().Err(err).Msg("shard leases")
			}
			sch.dispatch(ctx, true) // shards taken: their tenants are no candidates yet
			continue
		case <-tick.C:
			sch.dispatch(ctx, true)
			continue
		case <-sch.wake:
			if sch.allBusy() {
				// Nothing could start: a worker given back wakes the loop again, and the
				// tick refreshes the backlog's metrics and the outboxes. At 10,000 tenants
				// onboarding, connection changes woke it hundreds of times a second, and
				// each dispatch looks at every tenant (docs/performance.md, "Seventh
				// session").
				continue
			}
		}
		sch.dispatch(ctx, false)
	}
}

// watchConnections keeps the tenants map equal to the connections bucket.
func (sch *scheduler) watchConnections(ctx context.Context) error {
	return sch.conns.watch(ctx, func(tenant string, sc storedConnection, deleted bool) {
		sch.mu.Lock()
		defer sch.mu.Unlock()
		sch.conns.retries.track(tenant, !deleted && len(sc.Outbox) > 0)
		if deleted || sc.Secret == nil {
			delete(sch.tenants, tenant)
			sch.disconnected(tenant)
			return
		}
		ts, known := sch.tenants[tenant]
		if !known || ts.generation != sc.Generation {
			now := sch.now()
			ts = &tenantSchedule{generation: sc.Generation, nextUsers: now, nextAudit: now, fresh: true, running: known && ts.running,
				shard: shardOf(tenant, sch.cfg.Shards)}
			sch.tenants[tenant] = ts
			sch.resume(ts, sc)
			sch.cands = append(sch.cands, dueSync{tenant: tenant, ts: ts}) // new: not a candidate yet
		} else if !ts.running && !sch.owns(tenant) {
			// Another replica runs it: follow its runs, so that taking the shard over
			// continues the schedule instead of syncing everything at once.
			sch.resume(ts, sc)
		}
		ts.sc = sc
		if sc.SyncRequest != "" && sc.SyncRequest != ts.served {
			ts.nextUsers, ts.nextAudit = time.Time{}, time.Time{}
			sch.candidate(tenant, ts)
		}
		sch.poke()
	})
}

// resume sets a tenant's schedule from its stored document when its current generation has
// had a users sync: the next runs are due an interval after the last ones, so a restarted
// replica, or one taking over shards, carries on with the schedule rather than syncing every
// tenant at once (10,000 tenants' users syncs at the same moment). A generation with no users
// sync yet keeps its first sync due now. Called with sch.mu held.
func (sch *scheduler) resume(ts *tenantSchedule, sc storedConnection) {
	if sc.SyncedGeneration != sc.Generation {
		return
	}
	st := sch.cfg.settingsOf(sc.Doc)
	ts.fresh = false
	if t := sc.Doc.Freshness.UsersSyncedAt; t != nil {
		ts.nextUsers = t.Add(jitter(st.usersEvery))
	}
	if t := sc.Doc.Freshness.AuditSyncedThrough; t != nil {
		ts.nextAudit = t.Add(jitter(st.auditEvery))
	}
}

// dueSync is a tenant whose sync is due, as dispatch sees it.
type dueSync struct {
	tenant    string
	ts        *tenantSchedule
	due       time.Time // the earliest due time of its due kinds; zero when asked for
	requested bool
}

// freshMax is how many of workers may run first syncs at once: all but a quarter of them.
func freshMax(workers int) int { return workers - workers/4 }

// planDispatch orders the due syncs and picks those to start, given workers of which busy are
// taken and freshRunning run first syncs. Asked-for syncs come first, then routine runs of
// onboarded tenants, most overdue first, then first syncs (the 30-day backfill, by far the
// longest runs) in the order their tenants connected. With 4 workers or more, a quarter of
// them is kept for each side: first syncs never take the last quarter, so routine runs due
// later find a worker soon; and while first syncs wait, routine runs (but asked-for ones)
// leave them a quarter, so onboarding goes on even when routine runs alone would fill every
// worker.
func planDispatch(due []dueSync, workers, busy, freshRunning int) []dueSync {
	// Every pick takes a worker, and the picks of each list are a prefix of it in this order
	// (asked-for syncs first): only the first free workers of each can start, and only they
	// are kept (not a list of every due sync, which at 10,000 tenants onboarding was 4 % of
	// the collector's allocation).
	var routine, fresh []dueSync
	if free := workers - busy; free > 0 {
		routine, fresh = make([]dueSync, 0, free+1), make([]dueSync, 0, free+1)
		for _, d := range due {
			if d.ts.fresh && !d.requested {
				fresh = keepFirst(fresh, d, free)
			} else {
				routine = keepFirst(routine, d, free)
			}
		}
	}
	quarter := workers / 4 // below 4 workers nothing is kept: routine runs simply go first
	mostFresh := freshMax(workers)
	reserve := 0
	if len(fresh) > 0 {
		reserve = max(0, quarter-freshRunning)
	}
	var out []dueSync
	for _, d := range routine {
		limit := workers - reserve
		if d.requested {
			limit = workers // someone is waiting for it
		}
		if busy >= limit {
			continue
		}
		out = append(out, d)
		busy++
	}
	for _, d := range fresh {
		if busy >= workers || freshRunning >= mostFresh {
			break
		}
		out = append(out, d)
		busy++
		freshRunning++
	}
	return out
}

// dueBefore is dispatch's order: asked-for syncs, then by due time, then by tenant.
func dueBefore(a, b dueSync) bool {
	if a.requested != b.requested {
		return a.requested
	}
	if !a.due.Equal(b.due) {
		return a.due.Before(b.due)
	}
	return a.tenant < b.tenant
}

// keepFirst adds d to out, the first k (or fewer) so far in dueBefore's order, sorted; out has
// room for k+1. Dispatch keeps only the syncs it can start: with 10,000 tenants onboarding,
// sorting every due sync at each dispatch (after every run) took a fifth of the collector's
// CPU (docs/performance.md, "Seventh session").
func keepFirst(out []dueSync, d dueSync, k int) []dueSync {
	if len(out) == k && !dueBefore(d, out[k-1]) {
		return out
	}
	i := sort.Search(len(out), func(i int) bool { return dueBefore(d, out[i]) })
	out = slices.Insert(out, i, d)
	if len(out) > k {
		out = out[:k]
	}
	return out
}

// dueOf is a tenant's due sync at now, if any: asked for, or the earliest due time of its
// due kinds.
func dueOf(tenant string, ts *tenantSchedule, now time.Time) (dueSync, bool) {
	users := !now.Before(ts.nextUsers)
	audit := !now.Before(ts.nextAudit)
	if !users && !audit && !actionDue(ts, now) {
		return dueSync{}, false
	}
	d := dueSync{tenant: tenant, ts: ts, requested: ts.sc.SyncRequest != "" && ts.sc.SyncRequest != ts.served}
	switch {
	case d.requested:
	case !users && !audit:
		d.due = ts.nextAction
	case users && audit:
		d.due = ts.nextUsers
		if ts.nextAudit.Before(d.due) {
			d.due = ts.nextAudit
		}
	case users:
		d.due = ts.nextUsers
	default:
		d.due = ts.nextAudit
	}
	return d, true
}

// dispatch starts the due syncs of owned tenants while workers are free, in planDispatch's
// order. A full dispatch (every tick) looks at every tenant and keeps the first due syncs it
// found as candidates; a dispatch woken by a worker given back or a connection change looks
// at those only, unless they are too few and it left others out, or they are older than a
// tick. At 10,000 tenants onboarding, dispatches looking at every tenant after each run were
// 6 % of the collector's CPU (docs/performance.md, "Twelfth session").
func (sch *scheduler) dispatch(ctx context.Context, full bool) {
	now := sch.now()
	sch.mu.Lock()
	defer sch.mu.Unlock()
	owned := sch.ownedNow(time.Now()) // the fence's clock (fence.go), read once for every tenant
	due, ok := []dueSync(nil), false
	if !full {
		due, ok = sch.dueCandidates(now, owned)
	}
	if !ok {
		due = sch.dueTenants(now, owned)
	}
	defer func() { clear(due); sch.dueBuf = due[:0] }() // a buffer reused by every dispatch
	waiting := [2]int{}                                 // first syncs, routine runs
	ahead := 0                                          // due runs that go ahead of jobs taking their worker back (setYield)
	for _, d := range due {
		waiting[b2i(!d.ts.fresh)]++
		if !d.ts.fresh || d.requested {
			ahead++
		}
	}
	plan := planDispatch(due, sch.workers.size, sch.workers.inUse(), len(sch.freshSem))
	admitted := false
start:
	for _, d := range plan {
		var fresh chan struct{}
		routine := !d.ts.fresh || d.requested
		if !routine && !admitted {
			// Routine runs first, then jobs taking their worker back, then new first syncs.
			sch.workers.admit()
			admitted = true
		}
		if d.ts.fresh {
			fresh = sch.freshSem
			select {
			case fresh <- struct{}{}:
			default:
				continue // an idle first sync took the place back meanwhile
			}
		}
		if !sch.workers.tryTake(routine) {
			if fresh != nil {
				<-fresh
			}
			break start // every worker is busy, or a first sync finds a job waiting for one
		}
		waiting[b2i(!d.ts.fresh)]--
		if routine {
			ahead--
		}
		sch.launch(ctx, d, fresh, now)
	}
	sch.workers.setYield(ahead > 0) // and lets waiting jobs have the workers left free
	if !ok {                        // counted over every tenant
		sch.metrics.runsWaiting.WithLabelValues("first_sync").Set(float64(waiting[0]))
		sch.metrics.runsWaiting.WithLabelValues("routine").Set(float64(waiting[1]))
	}
	sch.retryOutboxes(ctx, now)
}

// b2i is 1 for true.
func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// candidateTTL is how long a full dispatch's candidates serve: its tick.
const candidateTTL = 250 * time.Millisecond

// dueTenants is every owned tenant's due sync, and keeps the first of them in dispatch's
// order as candidates: as many of each kind as four times the workers. Called with sch.mu
// held.
func (sch *scheduler) dueTenants(now time.Time, owned []bool) []dueSync {
	due := sch.dueBuf[:0]
	for tenant, ts := range sch.tenants {
		if ts.running || !owned[ts.shard] {
			continue
		}
		if d, ok := dueOf(tenant, ts, now); ok {
			due = append(due, d)
		}
	}
	k := 4 * sch.workers.size
	routine, fresh := sch.cands[:0], make([]dueSync, 0, k+1)
	for _, d := range due {
		if d.ts.fresh && !d.requested {
			fresh = keepFirst(fresh, d, k)
		} else {
			routine = keepFirst(routine, d, k)
		}
	}
	sch.cands = append(routine, fresh...)
	sch.candAt, sch.candCut = time.Now(), len(due) > len(sch.cands)
	return due
}

// dueCandidates is the due syncs among the candidates, the others dropped; false when a full
// look is needed: the candidates are older than candidateTTL, or fewer than the free workers
// while the full look that kept them left due syncs out. Called with sch.mu held.
func (sch *scheduler) dueCandidates(now time.Time, owned []bool) ([]dueSync, bool) {
	if sch.candAt.IsZero() || time.Since(sch.candAt) >= candidateTTL {
		return nil, false
	}
	kept := sch.cands[:0]
	for _, c := range sch.cands {
		ts := c.ts
		if sch.tenants[c.tenant] != ts || ts.running || !owned[ts.shard] {
			continue
		}
		if d, ok := dueOf(c.tenant, ts, now); ok {
			kept = append(kept, d)
		}
	}
	clear(sch.cands[len(kept):])
	sch.cands = kept
	if sch.candCut && len(kept) < sch.workers.size-sch.workers.inUse() {
		return nil, false
	}
	return append(sch.dueBuf[:0], kept...), true
}

// candidate adds a tenant a connection change made due (connected, reconnected, or asked to
// sync) to the candidates, once. Called with sch.mu held.
func (sch *scheduler) candidate(tenant string, ts *tenantSchedule) {
	if !slices.ContainsFunc(sch.cands, func(c dueSync) bool { return c.ts == ts }) {
		sch.cands = append(sch.cands, dueSync{tenant: tenant, ts: ts})
	}
}

// ownedNow is, by shard, whether this replica owns it at wall (ownsShard), for a dispatch:
// two map lookups for each tenant were a third of a dispatch's time at 2,000 tenants, and
// a dispatch looks at every tenant (docs/performance.md, "Twelfth session"). Called with
// sch.mu held.
func (sch *scheduler) ownedNow(wall time.Time) []bool {
	owned := slices.Grow(sch.ownedBuf[:0], sch.cfg.Shards)[:sch.cfg.Shards]
	clear(owned)
	for n := range sch.owned {
		if n >= 0 && n < len(owned) {
			owned[n] = sch.ownsShard(n, wall)
		}
	}
	sch.ownedBuf = owned
	return owned
}

// launch starts d's job on the worker dispatch took for it (and fresh, a first sync's place).
// Called with sch.mu held.
func (sch *scheduler) launch(ctx context.Context, d dueSync, fresh chan struct{}, now time.Time) {
	ts := d.ts
	ts.running = true
	job := syncJob{tenant: d.tenant, sc: ts.sc, users: !now.Before(ts.nextUsers) || ts.fresh, audit: !now.Before(ts.nextAudit) || ts.fresh, fresh: ts.fresh}
	if !job.users && !job.audit {
		// Only an action is due: its chunk runs after an Audit Log poll, whose activity
		// its guards read. Due syncs always go first, so an action never starves them.
		job.action, job.audit = ts.sc.Actions[0], true
	}
	if d.requested {
		job.runID, ts.served = ts.sc.SyncRequest, ts.sc.SyncRequest
	}
	slot := &workerSlot{pool: sch.workers, fresh: fresh, held: true, freed: sch.poke}
	jctx := context.WithValue(sch.startJob(ctx, d.tenant), workerSlotKey{}, slot)
	jctx = context.WithValue(jctx, tenureKey{}, sch.tenure[ts.shard])
	jctx = context.WithValue(jctx, jobUsersKey{}, &jobUsers{})
	sch.wg.Add(1)
	go func() {
		defer sch.wg.Done()
		defer slot.release()
		sch.runJob(jctx, job)
	}()
}

// retryOutboxes delivers the queued connection changes of owned tenants that their own
// request or run could not deliver, as connections' outboxRetries paces them. Called with
// sch.mu held.
func (sch *scheduler) retryOutboxes(ctx context.Context, now time.Time) {
	for _, r := range sch.conns.retries.due(now, sch.owns) {
		sch.wg.Add(1)
		go func() {
			defer sch.wg.Done()
			err := sch.conns.redeliver(ctx, r.tenant)
			if err != nil && ctx.Err() == nil {
				sch.log.Warn().Err(err).Str("tenant", r.tenant).Msg("deliver queued connection changes")
			}
			sch.conns.retries.done(r, err != nil, sch.now())
		}()
	}
}

// runJob runs one tenant's due syncs, turning a panic into that tenant's error, and schedules
// the tenant's next runs.
func (sch *scheduler) runJob(ctx context.Context, job syncJob) {
	log := sch.log.With().Str("tenant", job.tenant).Logger()
	var (
		usersOK, auditOK bool
		usersEnd         time.Time
	)
	func() {
		defer func() {
			if r := recover(); r != nil {
				usersOK, auditOK = false, false
				log.Error().Str("panic", fmt.Sprint(r)).Str("stack", string(debug.Stack())).Msg("sync panicked")
				sch.metrics.syncs.WithLabelValues("any", "panic").Inc()
			}
		}()
		usersOK, auditOK, usersEnd = sch.syncer.run(ctx, job)
	}()
	sch.reschedule(job, usersOK, auditOK, usersEnd, ctx.Err() != nil)
}

// reschedule sets a tenant's next runs after a job: an interval after a success, a backoff
// after a failure (15 s doubling, at most the users interval), at once when a sync was asked
// for while the job ran. A job abandoned (its shard's lease lost, or the replica shutting
// down) did not fail, and was not recorded: it stays due, for whoever owns the shard now. Taken
// for a failure, it waited out a backoff when the same replica took the shard back (the
// cluster test saw a routine poll 8.6 s later than the lease TTL allows).
func (sch *scheduler) reschedule(job syncJob, usersOK, auditOK bool, usersEnd time.Time, abandoned bool) {
	st := sch.cfg.settingsOf(job.sc.Doc)
	usersEvery, auditEvery := st.usersEvery, st.auditEvery
	now := sch.now()
	sch.mu.Lock()
	defer sch.mu.Unlock()
	sch.endJob(job.tenant)
	ts, exists := sch.tenants[job.tenant]
	if !exists {
		return
	}
	ts.running = false
	if ts.generation != job.sc.Generation {
		sch.candidate(job.tenant, ts) // replaced meanwhile: its own schedule starts now
		return
	}
	switch {
	case (!job.users || usersOK) && (!job.audit || auditOK):
		ts.failures = 0
	case abandoned:
		// Nothing of it was recorded (run returns before finish): every part stays due, the
		// finished ones too, or a users sync that ended just before the cancel would set
		// the next one an interval after a run that no record shows.
		job.users, job.audit = false, false
		sch.candidate(job.tenant, ts)
	default:
		ts.failures++
	}
	backoff := time.Duration(1<<min(ts.failures, 10)) * 15 * time.Second
	if job.users {
		if usersOK {
			ts.fresh = false
			// The users interval runs from the end of the users listing, not of the job (a
			// first job's backfill can take minutes).
			from := now
			if !usersEnd.IsZero() {
				from = usersEnd
			}
			ts.nextUsers = from.Add(jitter(usersEvery))
		} else {
			ts.nextUsers = now.Add(jitter(min(backoff, usersEvery)))
		}
	}
	if job.action != "" {
		ts.nextAction = now.Add(sch.cfg.ActionEvery)
	}
	if job.audit {
		if auditOK {
			ts.nextAudit = now.Add(jitter(auditEvery))
		} else {
			// An Audit Log that is not enabled is retried at the users pace: enabling it
			// later recovers usage data by itself.
			ts.nextAudit = now.Add(jitter(min(backoff, usersEvery)))
		}
	}
	switch {
	case ts.sc.SyncRequest == "" || ts.sc.SyncRequest == ts.served:
		// Nothing asked for, or served by this run (or an earlier one): its clear in KV
		// follows.
	default:
		// Asked for while this run was under way (it started without the request): run
		// again now rather than at the schedule just set, or the request would wait a
		// whole interval.
		ts.nextUsers, ts.nextAudit = time.Time{}, time.Time{}
		sch.candidate(job.tenant, ts)
	}
}

// actionDue reports whether a reclaim action of an onboarded tenant waits for its next run.
func actionDue(ts *tenantSchedule, now time.Time) bool {
	return len(ts.sc.Actions) > 0 && !ts.fresh && !now.Before(ts.nextAction)
}

// jitter spreads d by ±10% so that tenants connected together do not sync in lockstep.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	spread := int64(d) / 5
	if spread <= 0 {
		return d
	}
	return time.Duration(int64(d) - spread/2 + rand.Int64N(spread))
}
