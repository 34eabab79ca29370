package collector

import (
	"context"
	"time"

	"github.com/seatwatch/greenhouse-collector/storage"
)

// workerSlot is a job's place among the replica's workers (Config.Concurrency). A run gives
// it back while it only waits for ClickHouse's group commit (idle), so that the workers bound
// the runs doing work, not those waiting for other tenants' rows to fill an INSERT
// (docs/performance.md, "Seventh session"). Only the job's own goroutine uses it.
type workerSlot struct {
	sem   chan struct{}
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
		<-w.sem
		if w.fresh != nil {
			<-w.fresh
		}
		if w.freed != nil {
			w.freed()
		}
	}
}

// acquire takes a slot again (a first sync its place first), ahead of the dispatcher's next
// jobs (a channel's blocked sender is served before a later non-blocking one); false when ctx
// ended first.
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
	select {
	case w.sem <- struct{}{}:
		w.held = true
		return true
	case <-ctx.Done():
		if w.fresh != nil {
			<-w.fresh
		}
		return false
	}
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
