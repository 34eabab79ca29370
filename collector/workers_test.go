package collector

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// held is a pool of size workers with n of them taken.
func held(size, n int) *workerPool {
	p := newWorkerPool(size)
	for range n {
		if !p.tryTake(true) {
			panic("pool full")
		}
	}
	return p
}

// waitingJobs is how many jobs wait to take a worker back.
func waitingJobs(p *workerPool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.waiters)
}

// eventually waits until cond holds (another goroutine reaching a point).
func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, 5*time.Second, time.Millisecond)
}

// A job waiting in idle holds no worker: another job takes the only one meanwhile, and the
// waiting job gets it back (ahead of a later first sync) once the other gives it up.
func TestIdleGivesTheWorkerBack(t *testing.T) {
	pool := held(1, 1)
	freed := 0
	slot := &workerSlot{pool: pool, held: true, freed: func() { freed++ }}
	ctx := context.WithValue(t.Context(), workerSlotKey{}, slot)
	other := make(chan struct{})
	go func() {
		<-other
		eventually(t, func() bool { return waitingJobs(pool) == 1 }) // the idle job waits
		pool.give()
	}()
	idle(ctx, func() {
		require.False(t, slot.held)
		require.True(t, pool.tryTake(false), "another job's dispatch finds the worker free")
		close(other)
	})
	require.True(t, slot.held)
	require.Equal(t, 1, pool.inUse())
	require.False(t, pool.tryTake(true), "two workers held with a concurrency of one")
	slot.release()
	slot.release() // once only
	require.Zero(t, pool.inUse())
	assert.Equal(t, 2, freed, "the scheduler is told each time a worker is given back")
}

// A job whose context ends while it waits for a worker goes on without one and gives
// nothing back that it does not hold; idle outside a scheduled job just waits.
func TestIdleWithoutAWorker(t *testing.T) {
	pool := held(1, 1)
	slot := &workerSlot{pool: pool, held: true}
	ctx, cancel := context.WithCancel(context.WithValue(t.Context(), workerSlotKey{}, slot))
	idle(ctx, func() {
		require.True(t, pool.tryTake(true)) // taken by another job for good
		cancel()
	})
	require.False(t, slot.held)
	slot.release()
	require.Equal(t, 1, pool.inUse())
	require.Zero(t, waitingJobs(pool), "the job that gave up left the queue")
	ran := false
	idle(t.Context(), func() { ran = true })
	require.True(t, ran)
}

// While routine runs are due that no worker was free for, a worker given back goes to the
// dispatcher, not to a job taking its worker back: the routine run starts, and the waiting
// job gets a worker when the dispatcher lets it in (before any new first sync), or when no
// routine run is due any more.
func TestDueRoutineRunsGoAheadOfJobsTakingWorkersBack(t *testing.T) {
	pool := held(1, 1)
	got := make(chan bool, 1)
	go func() { got <- pool.take(t.Context()) }()
	eventually(t, func() bool { return waitingJobs(pool) == 1 })
	pool.setYield(true) // the dispatcher found a routine run due and no worker
	pool.give()
	assert.Zero(t, pool.inUse(), "the worker waits for the dispatcher")
	assert.False(t, pool.tryTake(false), "not for a new first sync")
	require.True(t, pool.tryTake(true), "the due routine run starts")
	select {
	case <-got:
		t.Fatal("the waiting job took a worker the routine run holds")
	case <-time.After(20 * time.Millisecond):
	}
	pool.give() // the routine run ends; another is due
	pool.admit()
	require.True(t, <-got, "the dispatcher lets the waiting job in")
	require.Equal(t, 1, pool.inUse())

	go func() { got <- pool.take(t.Context()) }()
	eventually(t, func() bool { return waitingJobs(pool) == 1 })
	pool.give()
	assert.Zero(t, pool.inUse())
	pool.setYield(false) // nothing routine due any more
	require.True(t, <-got)
	pool.give()
	require.Zero(t, pool.inUse())
	require.True(t, pool.tryTake(false))
}

// A dispatch that leaves a worker free (routine runs held back for first syncs' quarter, or
// a first sync that found a job waiting) lets the waiting jobs have it, and does not make
// workers given back wait for the dispatcher while one is free.
func TestDispatchLeavesNoWorkerFreeToWaitingJobs(t *testing.T) {
	pool := held(2, 2)
	pool.setYield(true)
	got := make(chan bool, 1)
	go func() { got <- pool.take(t.Context()) }()
	eventually(t, func() bool { return waitingJobs(pool) == 1 })
	pool.give() // kept for the dispatcher
	require.Equal(t, 1, pool.inUse())
	pool.setYield(true) // it started nothing: the routine runs due are held back
	require.True(t, <-got, "the free worker goes to the waiting job")
	require.Equal(t, 2, pool.inUse())
	pool.give()
	pool.give()
	pool.setYield(true)
	pool.mu.Lock()
	assert.False(t, pool.yield, "routine runs waiting while workers are free do not hold back jobs")
	pool.mu.Unlock()
	require.True(t, pool.take(t.Context()), "taken at once")
}

// A first sync waiting in idle gives back its place among the first syncs with its worker:
// another first sync can start (with two workers and room for one first sync), and the
// waiting one takes the place again before a worker, so first syncs never hold more than
// their share of the workers.
func TestIdleFirstSyncLeavesRoomForAnother(t *testing.T) {
	pool, fresh := held(2, 1), make(chan struct{}, 1)
	fresh <- struct{}{}
	slot := &workerSlot{pool: pool, fresh: fresh, held: true}
	ctx := context.WithValue(t.Context(), workerSlotKey{}, slot)
	other := &workerSlot{pool: pool, fresh: fresh}
	done := make(chan struct{})
	go func() {
		<-done
		time.Sleep(20 * time.Millisecond) // the idle job now waits for its place
		assert.Len(t, fresh, 1)           // assert, not require: the release below must happen
		assert.Equal(t, 1, pool.inUse(), "the idle first sync waits for its place, not holding a worker")
		other.release()
	}()
	idle(ctx, func() {
		require.Empty(t, fresh)
		require.Zero(t, pool.inUse())
		require.True(t, other.acquire(t.Context()), "another first sync starts meanwhile")
		close(done)
	})
	require.True(t, slot.held)
	require.Len(t, fresh, 1)
	require.Equal(t, 1, pool.inUse())
	slot.release()
	require.Empty(t, fresh)
	require.Zero(t, pool.inUse())

	// A context that ends while the job waits for its worker gives its place back.
	require.True(t, pool.tryTake(true))
	require.True(t, pool.tryTake(true))
	cctx, cancel := context.WithCancel(t.Context())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	assert.False(t, slot.acquire(cctx))
	assert.Empty(t, fresh, "no place kept by a job without a worker")
}

// A shard's tenure begins with the lease write that took it: renewals keep it, a loss ends
// it, and taking the shard again (even within one round of lease writes) begins another.
func TestTenureBeginsWithEachTake(t *testing.T) {
	sch := &scheduler{owned: map[int]uint64{}, tenure: map[int]uint64{}, fence: newLeaseFence(), metrics: newMetrics()}
	until := func() map[int]time.Time { return map[int]time.Time{3: time.Now().Add(time.Minute)} }
	sch.setOwned(map[int]uint64{3: 10}, until(), map[int]uint64{3: 10})
	assert.Equal(t, uint64(10), sch.tenure[3])
	sch.setOwned(map[int]uint64{3: 11}, until(), nil)
	assert.Equal(t, uint64(10), sch.tenure[3], "renewed")
	sch.setOwned(map[int]uint64{}, nil, nil)
	assert.NotContains(t, sch.tenure, 3, "lost")
	sch.setOwned(map[int]uint64{3: 20}, until(), map[int]uint64{3: 20})
	assert.Equal(t, uint64(20), sch.tenure[3])
	sch.setOwned(map[int]uint64{3: 30}, until(), map[int]uint64{3: 30})
	assert.Equal(t, uint64(30), sch.tenure[3], "lost on renewal and taken again in one round")
	sch.setOwned(map[int]uint64{3: 31}, map[int]time.Time{3: time.Now().Add(-time.Second)}, nil)
	assert.NotContains(t, sch.tenure, 3, "the lease ended without a renewal")
}
