package collector

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/seatwatch/greenhouse-collector/events"
)

// lease is a shard's owner, kept in the leases bucket whose TTL makes an unrenewed lease
// vanish: a dead replica's shards are free again after at most one TTL.
type lease struct {
	Owner   string    `json:"owner"`
	Renewed time.Time `json:"renewed"`
}

// shardOf maps a tenant to its shard.
func shardOf(tenant string, shards int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(tenant))
	return int(h.Sum32() % uint32(shards))
}

func shardKey(n int) string       { return fmt.Sprintf("shard.%d", n) }
func replicaKey(id string) string { return "replica." + sanitizeKey(id) }

// sanitizeKey keeps a KV key to the characters JetStream accepts.
func sanitizeKey(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// tenantSchedule is the scheduler's view of one tenant.
type tenantSchedule struct {
	sc         storedConnection
	generation int64
	nextUsers  time.Time
	nextAudit  time.Time
	failures   int
	running    bool
	fresh      bool // no users sync done under this generation yet
	// served is the last requested run id this replica began: later revisions of the
	// connection that still carry it (its own SyncStarted mark, a clear not yet seen) do not
	// start it again.
	served string
}

// scheduler owns shards through leases and runs the due syncs of the tenants in its shards,
// at most cfg.Concurrency at once. One tenant's failure, slowness or panic only affects that
// tenant's own schedule.
type scheduler struct {
	s *Service

	mu      sync.Mutex
	tenants map[string]*tenantSchedule
	owned   map[int]uint64 // shard → lease revision
	fence   leaseFence     // until when each owned shard may be acted on (fence.go)
	sem     chan struct{}
	// freshRunning counts the first syncs under way (planDispatch caps them).
	freshRunning int
	// outbox holds the tenants (connected or not) whose connection has undelivered changes.
	outbox     map[string]*outboxRetry
	delivering int // outbox deliveries under way
	wg         sync.WaitGroup
	wake       chan struct{}
}

func newScheduler(s *Service) *scheduler {
	return &scheduler{
		s:       s,
		tenants: map[string]*tenantSchedule{},
		owned:   map[int]uint64{},
		fence:   newLeaseFence(),
		outbox:  map[string]*outboxRetry{},
		sem:     make(chan struct{}, s.cfg.Concurrency),
		wake:    make(chan struct{}, 1),
	}
}

// poke makes the scheduler look at its tenants now rather than at the next tick.
func (sch *scheduler) poke() {
	select {
	case sch.wake <- struct{}{}:
	default:
	}
}

// run is the scheduler's loop. On return every sync it started has ended.
func (sch *scheduler) run(ctx context.Context) error {
	log := sch.s.log.With().Str("replica", sch.s.cfg.ReplicaID).Logger()
	watchErr := make(chan error, 1)
	go func() { watchErr <- sch.watchConnections(ctx) }()
	go sch.watchFence(ctx)

	leaseEvery := sch.s.cfg.LeaseTTL / 3
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
			sch.wg.Wait()
			sch.releaseAll()
			return nil
		case err := <-watchErr:
			sch.wg.Wait()
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("watch connections: %w", err)
		case <-leaseTick.C:
			if err := sch.refreshLeases(ctx); err != nil && ctx.Err() == nil {
				log.Warn().Err(err).Msg("shard leases")
			}
		case <-tick.C:
		case <-sch.wake:
		}
		sch.dispatch(ctx)
	}
}

// watchConnections keeps the tenants map equal to the connections bucket.
func (sch *scheduler) watchConnections(ctx context.Context) error {
	return sch.s.conns.Watch(ctx, func(key string, sc storedConnection, rev uint64, deleted bool) {
		tenant, ok := tenantFromKey(key)
		if !ok {
			return
		}
		sch.mu.Lock()
		defer sch.mu.Unlock()
		if !deleted && len(sc.Outbox) > 0 {
			if sch.outbox[tenant] == nil {
				sch.outbox[tenant] = &outboxRetry{}
			}
		} else {
			delete(sch.outbox, tenant)
		}
		if deleted || sc.Secret == nil {
			delete(sch.tenants, tenant)
			sch.s.dropClient(tenant)
			sch.s.metrics.forgetTenant(tenant)
			return
		}
		ts, known := sch.tenants[tenant]
		if !known || ts.generation != sc.Generation {
			now := sch.s.now()
			ts = &tenantSchedule{generation: sc.Generation, nextUsers: now, nextAudit: now, fresh: true, running: known && ts.running}
			sch.tenants[tenant] = ts
			sch.resume(ts, sc)
		} else if !ts.running && !sch.owns(tenant) {
			// Another replica runs it: follow its runs, so that taking the shard over
			// continues the schedule instead of syncing everything at once.
			sch.resume(ts, sc)
		}
		ts.sc = sc
		if sc.SyncRequest != "" && sc.SyncRequest != ts.served {
			ts.nextUsers, ts.nextAudit = time.Time{}, time.Time{}
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
	_, usersEvery, auditEvery := sch.s.settings(sc.Doc)
	ts.fresh = false
	if t := sc.Doc.Freshness.UsersSyncedAt; t != nil {
		ts.nextUsers = t.Add(jitter(usersEvery))
	}
	if t := sc.Doc.Freshness.AuditSyncedThrough; t != nil {
		ts.nextAudit = t.Add(jitter(auditEvery))
	}
}

// refreshLeases heartbeats this replica, renews its shards, takes free shards up to its fair
// share and releases what is above it.
func (sch *scheduler) refreshLeases(ctx context.Context) error {
	s := sch.s
	me := s.cfg.ReplicaID
	now := s.now()
	// A round is bounded, so that the loop keeps dispatching while NATS is slow; a write that
	// does not answer in time is retried on the next round.
	ctx, cancel := context.WithTimeout(ctx, max(s.cfg.LeaseTTL/2, 2*time.Second))
	defer cancel()
	var errs []error
	// Without the heartbeat or the replica count, held shards are still renewed (they are
	// what keeps runs going), but none is released or taken.
	renewOnly := false
	if _, err := s.leases.Put(ctx, replicaKey(me), lease{Owner: me, Renewed: now}); err != nil {
		errs, renewOnly = append(errs, fmt.Errorf("heartbeat: %w", err)), true
	}
	replicas := 0
	if !renewOnly {
		if err := s.leases.Keys(ctx, "replica.", func(string) error { replicas++; return nil }); err != nil {
			errs, renewOnly = append(errs, fmt.Errorf("list replicas: %w", err)), true
		}
	}
	if replicas < 1 {
		replicas = 1
	}
	fair := (s.cfg.Shards + replicas - 1) / replicas

	sch.mu.Lock()
	owned := make(map[int]uint64, len(sch.owned))
	for k, v := range sch.owned {
		owned[k] = v
	}
	busy := map[int]bool{} // shards with a sync in flight are released only once it ends
	for tenant, ts := range sch.tenants {
		if ts.running {
			busy[shardOf(tenant, s.cfg.Shards)] = true
		}
	}
	sch.mu.Unlock()

	// Renew. A lease is held until its last write was sent plus the TTL (fence.go): a write
	// that fails for another reason than a conflict leaves the shard held until then.
	until := map[int]time.Time{}
	shards := make([]int, 0, len(owned))
	for n := range owned {
		shards = append(shards, n)
	}
	sort.Ints(shards)
	for _, n := range shards {
		sent := time.Now()
		rev, err := s.leases.Update(ctx, shardKey(n), lease{Owner: me, Renewed: now}, owned[n])
		if errors.Is(err, events.ErrConflict) {
			delete(owned, n) // lost (expired and taken, or deleted)
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		owned[n], until[n] = rev, sent.Add(s.cfg.LeaseTTL)
	}
	if renewOnly {
		sch.setOwned(owned, until)
		return errors.Join(errs...)
	}
	// Release above the fair share (the highest shards first, so replicas converge).
	for i := len(shards) - 1; i >= 0 && len(owned) > fair; i-- {
		n := shards[i]
		if rev, ok := owned[n]; ok && !busy[n] {
			if err := s.leases.Delete(ctx, shardKey(n), rev); err != nil {
				errs = append(errs, err)
			}
			delete(owned, n)
		}
	}
	// Acquire free shards, starting at a replica-specific offset to spread the first grabs.
	start := shardOf(me, s.cfg.Shards)
	for i := 0; i < s.cfg.Shards && len(owned) < fair; i++ {
		n := (start + i) % s.cfg.Shards
		if _, ok := owned[n]; ok {
			continue
		}
		sent := time.Now()
		rev, err := s.leases.Create(ctx, shardKey(n), lease{Owner: me, Renewed: now})
		if err == nil {
			owned[n], until[n] = rev, sent.Add(s.cfg.LeaseTTL)
		} else if !errors.Is(err, events.ErrConflict) {
			errs = append(errs, err)
		}
	}
	sch.setOwned(owned, until)
	return errors.Join(errs...)
}

// setOwned records the shards held after a round of lease writes, with the new ends of the
// leases written (a shard kept without a successful write keeps its earlier end), and drops
// the shards whose lease has ended.
func (sch *scheduler) setOwned(owned map[int]uint64, until map[int]time.Time) {
	now := time.Now()
	sch.mu.Lock()
	for n := range owned {
		if u, ok := until[n]; ok {
			sch.fence.until[n] = u
		}
		if !sch.fence.valid(n, now) {
			delete(owned, n)
		}
	}
	for n := range sch.fence.until {
		if _, ok := owned[n]; !ok {
			delete(sch.fence.until, n)
		}
	}
	sch.owned = owned
	sch.mu.Unlock()
	sch.s.metrics.shardsOwned.Set(float64(len(owned)))
}

// releaseAll gives the shards back on shutdown so that other replicas take them at once.
func (sch *scheduler) releaseAll() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sch.mu.Lock()
	owned := sch.owned
	sch.owned = map[int]uint64{}
	sch.fence.until = map[int]time.Time{}
	sch.mu.Unlock()
	for n, rev := range owned {
		_ = sch.s.leases.Delete(ctx, shardKey(n), rev)
	}
	_ = sch.s.leases.Delete(ctx, replicaKey(sch.s.cfg.ReplicaID), 0)
}

// owns reports whether this replica holds the tenant's shard.
func (sch *scheduler) owns(tenant string) bool {
	n := shardOf(tenant, sch.s.cfg.Shards)
	_, ok := sch.owned[n]
	return ok && sch.fence.valid(n, time.Now())
}

// dueSync is a tenant whose sync is due, as dispatch sees it.
type dueSync struct {
	tenant    string
	ts        *tenantSchedule
	due       time.Time // the earliest due time of its due kinds; zero when asked for
	requested bool
}

// planDispatch orders the due syncs and picks those to start, given workers of which busy are
// taken and freshRunning run first syncs. Asked-for syncs come first, then routine runs of
// onboarded tenants, most overdue first, then first syncs (the 30-day backfill, by far the
// longest runs) in the order their tenants connected. With 4 workers or more, a quarter of
// them is kept for each side: first syncs never take the last quarter, so routine runs due
// later find a worker soon; and while first syncs wait, routine runs (but asked-for ones)
// leave them a quarter, so onboarding goes on even when routine runs alone would fill every
// worker.
func planDispatch(due []dueSync, workers, busy, freshRunning int) []dueSync {
	var routine, fresh []dueSync
	for _, d := range due {
		if d.ts.fresh && !d.requested {
			fresh = append(fresh, d)
		} else {
			routine = append(routine, d)
		}
	}
	byDue := func(list []dueSync) {
		sort.Slice(list, func(i, j int) bool {
			if !list[i].due.Equal(list[j].due) {
				return list[i].due.Before(list[j].due)
			}
			return list[i].tenant < list[j].tenant
		})
	}
	byDue(routine)
	byDue(fresh)
	quarter := workers / 4 // below 4 workers nothing is kept: routine runs simply go first
	freshMax := workers - quarter
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
		if busy >= workers || freshRunning >= freshMax {
			break
		}
		out = append(out, d)
		busy++
		freshRunning++
	}
	return out
}

// dispatch starts the due syncs of owned tenants while workers are free, in planDispatch's
// order.
func (sch *scheduler) dispatch(ctx context.Context) {
	now := sch.s.now()
	sch.mu.Lock()
	defer sch.mu.Unlock()
	var due []dueSync
	waiting := [2]int{}
	for tenant, ts := range sch.tenants {
		if ts.running || !sch.owns(tenant) {
			continue
		}
		users := !now.Before(ts.nextUsers)
		audit := !now.Before(ts.nextAudit)
		if !users && !audit {
			continue
		}
		d := dueSync{tenant: tenant, ts: ts, requested: ts.sc.SyncRequest != "" && ts.sc.SyncRequest != ts.served}
		switch {
		case d.requested:
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
		if ts.fresh {
			waiting[0]++
		} else {
			waiting[1]++
		}
		due = append(due, d)
	}
start:
	for _, d := range planDispatch(due, cap(sch.sem), len(sch.sem), sch.freshRunning) {
		select {
		case sch.sem <- struct{}{}:
		default:
			break start // every worker is busy (planDispatch counted the free ones: not expected)
		}
		ts := d.ts
		if ts.fresh {
			waiting[0]--
		} else {
			waiting[1]--
		}
		ts.running = true
		job := syncJob{tenant: d.tenant, sc: ts.sc, users: !now.Before(ts.nextUsers) || ts.fresh, audit: !now.Before(ts.nextAudit) || ts.fresh, fresh: ts.fresh}
		if job.fresh {
			sch.freshRunning++
		}
		if d.requested {
			job.runID, ts.served = ts.sc.SyncRequest, ts.sc.SyncRequest
		}
		jctx := sch.startJob(ctx, d.tenant)
		sch.wg.Add(1)
		go func() {
			defer sch.wg.Done()
			defer func() { <-sch.sem }()
			sch.runJob(jctx, job)
		}()
	}
	sch.s.metrics.runsWaiting.WithLabelValues("first_sync").Set(float64(waiting[0]))
	sch.s.metrics.runsWaiting.WithLabelValues("routine").Set(float64(waiting[1]))
	sch.retryOutboxes(ctx, now)
}

// outboxRetry paces the scheduler's deliveries of one tenant's queued connection changes.
type outboxRetry struct {
	seen       time.Time // when the scheduler first saw changes queued; zero: not yet
	next       time.Time
	failures   int
	delivering bool
}

// outboxGrace is how long queued changes are left to the request or run that queued them
// before the scheduler delivers them; retries back off from outboxEvery to outboxMaxEvery, and
// at most outboxWorkers deliveries run at once (after an outage, thousands of tenants may have
// changes queued).
const (
	outboxGrace    = 10 * time.Second
	outboxEvery    = 15 * time.Second
	outboxMaxEvery = 5 * time.Minute
	outboxWorkers  = 4
)

// retryOutboxes delivers the queued connection changes of owned tenants that their own
// request or run could not deliver (NATS or ClickHouse down at the time). Called with sch.mu
// held.
func (sch *scheduler) retryOutboxes(ctx context.Context, now time.Time) {
	for tenant, o := range sch.outbox {
		if o.seen.IsZero() {
			o.seen, o.next = now, now.Add(outboxGrace)
		}
		if sch.delivering >= outboxWorkers {
			return
		}
		if o.delivering || now.Before(o.next) || !sch.owns(tenant) {
			continue
		}
		o.delivering = true
		sch.delivering++
		sch.wg.Add(1)
		go func() {
			defer sch.wg.Done()
			err := sch.s.redeliverOutbox(ctx, tenant)
			if err != nil && ctx.Err() == nil {
				sch.s.log.Warn().Err(err).Str("tenant", tenant).Msg("deliver queued connection changes")
			}
			sch.mu.Lock()
			defer sch.mu.Unlock()
			sch.delivering--
			o.delivering = false
			if err != nil {
				o.failures++
			}
			o.next = sch.s.now().Add(jitter(min(outboxEvery<<min(o.failures, 5), outboxMaxEvery)))
		}()
	}
}

type syncJob struct {
	tenant       string
	sc           storedConnection
	users, audit bool
	fresh        bool   // the tenant's first sync under this generation
	runID        string // asked for through the API, or ""
}

// runJob runs one tenant's due syncs, turning a panic into that tenant's error, and schedules
// the tenant's next runs.
func (sch *scheduler) runJob(ctx context.Context, job syncJob) {
	s := sch.s
	log := s.log.With().Str("tenant", job.tenant).Logger()
	var (
		usersOK, auditOK bool
		usersEnd         time.Time
	)
	func() {
		defer func() {
			if r := recover(); r != nil {
				usersOK, auditOK = false, false
				log.Error().Str("panic", fmt.Sprint(r)).Str("stack", string(debug.Stack())).Msg("sync panicked")
				s.metrics.syncs.WithLabelValues("any", "panic").Inc()
			}
		}()
		usersOK, auditOK, usersEnd = s.runTenant(ctx, job)
	}()

	_, usersEvery, auditEvery := s.settings(job.sc.Doc)
	now := s.now()
	sch.mu.Lock()
	defer sch.mu.Unlock()
	sch.endJob(job.tenant)
	if job.fresh {
		sch.freshRunning--
	}
	ts, exists := sch.tenants[job.tenant]
	if !exists {
		return
	}
	ts.running = false
	if ts.generation != job.sc.Generation {
		return // replaced meanwhile: its own schedule starts now
	}
	if (!job.users || usersOK) && (!job.audit || auditOK) {
		ts.failures = 0
	} else {
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
	}
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
