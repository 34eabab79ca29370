package collector

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/seatwatch/greenhouse-collector/storage"
)

// workerPool is the replica's workers (Config.Concurrency). The dispatcher takes a worker for
// each job it starts (tryTake) and the job gives it back when it ends, and while it only waits
// for ClickHouse's group commit (idle), so that the workers bound the runs doing work, not
// those waiting for other tenants' rows to fill an INSERT (docs/performance.md, "Seventh
// session"). A job taking its worker back after such a wait (take) goes ahead of first syncs
// the dispatcher has not started yet, so that onboarding finishes what it began; but not ahead
// of routine runs that are due: while some wait for a worker (yield), a worker given back goes
// to the dispatcher, which starts them and only then lets the waiting jobs in (admit).
// Otherwise first syncs, whose writes give their worker back several times a run, kept
// routine runs waiting behind them while tenants onboarded (docs/performance.md, "Eleventh
// session").
type workerPool struct {
	mu      sync.Mutex
	size    int
	busy    int
	waiters []chan struct{} // jobs taking a worker back, in the order they asked
	yield   bool            // the last dispatch left routine runs due and no worker free
}

func newWorkerPool(size int) *workerPool { return &workerPool{size: size} }

// inUse is how many workers are taken.
func (p *workerPool) inUse() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.busy
}

// tryTake takes a free worker for a job the dispatcher starts; false when none is free, or
// when a job waits to take one back and the new job is a first sync (routine is false).
func (p *workerPool) tryTake(routine bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.busy >= p.size || len(p.waiters) > 0 && !routine {
		return false
	}
	p.busy++
	return true
}

// take takes a worker back for a job that gave it up, waiting while none is free (or while
// due routine runs go first); false when ctx ended first.
func (p *workerPool) take(ctx context.Context) bool {
	p.mu.Lock()
	if p.busy < p.size && len(p.waiters) == 0 && !p.yield {
		p.busy++
		p.mu.Unlock()
		return true
	}
	ch := make(chan struct{})
	p.waiters = append(p.waiters, ch)
	p.mu.Unlock()
	select {
	case <-ch:
		return true
	case <-ctx.Done():
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if i := slices.Index(p.waiters, ch); i >= 0 {
		p.waiters = slices.Delete(p.waiters, i, i+1)
		return false
	}
	return true // granted meanwhile: the job holds it and gives it back as usual
}

// give gives a worker back: to the first job waiting to take one back, unless routine runs
// are due (the dispatcher then starts them first).
func (p *workerPool) give() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.busy--
	if !p.yield {
		p.admitLocked()
	}
}

// admit lets the jobs waiting to take a worker back have the free workers: the dispatcher
// calls it after starting the routine runs it could, before any first sync.
func (p *workerPool) admit() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.admitLocked()
}

func (p *workerPool) admitLocked() {
	for p.busy < p.size && len(p.waiters) > 0 {
		p.busy++
		close(p.waiters[0])
		p.waiters[0] = nil
		p.waiters = p.waiters[1:]
	}
}

// setYield ends a dispatch: the jobs waiting to take a worker back have the free workers, and
// the workers given back go to the dispatcher until its next call if routineWaiting (routine
// runs are due that it could not start) and no worker is left free. Routine runs held back
// while workers are free (planDispatch's quarter for first syncs) do not stop waiting jobs
// from taking those; nor does a stopped dispatcher (setYield(false)).
func (p *workerPool) setYield(routineWaiting bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.admitLocked()
	p.yield = routineWaiting && p.busy >= p.size
}

// workerSlot is a job's place among the replica's workers. Only the job's own goroutine uses
// it.
type workerSlot struct {
	pool  *workerPool
	fresh chan struct{} // a first sync's place among them (scheduler.freshSem); nil: none
	held  bool
	freed func() // told when the slot is given back (the scheduler's poke); nil: none
}

type workerSlotKey struct{}

// tenureKey holds, in a scheduled job's context, the tenure of the lease under which it runs
// (scheduler.tenure); 0 outside a scheduled job.
type tenureKey struct{}

// jobUsers carries, within one scheduled job, the tenant's users as its users sync stored
// them to the activity pass of its Audit Log poll (a first job's 30-day backfill ends with
// one), whether or not the users cache keeps them: at 10,000 tenants onboarding, reading them
// back for that pass was half of the users reads (docs/performance.md, "Seventh session"). No
// other run of the tenant writes its users while the job holds it.
type jobUsers struct {
	set    *storage.UserSet
	readAt time.Time
}

type jobUsersKey struct{}

// tenureOf is the tenure a job runs under.
func tenureOf(ctx context.Context) uint64 {
	t, _ := ctx.Value(tenureKey{}).(uint64)
	return t
}

// release gives the slot back, if held, and a first sync's place with it.
func (w *workerSlot) release() {
	if w.held {
		w.held = false
		w.pool.give()
		if w.fresh != nil {
			<-w.fresh
		}
		if w.freed != nil {
			w.freed()
		}
	}
}

// acquire takes a slot again (a first sync its place first), as workerPool.take orders it;
// false when ctx ended first.
func (w *workerSlot) acquire(ctx context.Context) bool {
	if w.held {
		return true
	}
	if w.fresh != nil {
		select {
		case w.fresh <- struct{}{}:
		case <-ctx.Done():
			return false
		}
	}
	if !w.pool.take(ctx) {
		if w.fresh != nil {
			<-w.fresh
		}
		return false
	}
	w.held = true
	return true
}

// idle runs wait, which must only wait (for a group commit, not for CPU or Greenhouse), with
// the job's worker given back, and takes a worker again before returning. Outside a
// scheduled job (ctx without a slot) it just runs wait.
func idle(ctx context.Context, wait func()) {
	slot, _ := ctx.Value(workerSlotKey{}).(*workerSlot)
	if slot == nil {
		wait()
		return
	}
	slot.release()
	wait()
	slot.acquire(ctx)
}
