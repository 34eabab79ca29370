package collector

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A job waiting in idle holds no worker: another job takes the only one meanwhile, and the
// waiting job gets it back (ahead of a later dispatch) once the other gives it up.
func TestIdleGivesTheWorkerBack(t *testing.T) {
	sem := make(chan struct{}, 1)
	sem <- struct{}{}
	freed := 0
	slot := &workerSlot{sem: sem, held: true, freed: func() { freed++ }}
	ctx := context.WithValue(t.Context(), workerSlotKey{}, slot)
	other := make(chan struct{})
	go func() {
		<-other
		time.Sleep(20 * time.Millisecond) // the idle job now waits to take a worker again
		<-sem
	}()
	idle(ctx, func() {
		require.False(t, slot.held)
		select {
		case sem <- struct{}{}: // another job's dispatch finds the worker free
		default:
			t.Fatal("the waiting job kept its worker")
		}
		close(other)
	})
	require.True(t, slot.held)
	require.Len(t, sem, 1)
	select {
	case sem <- struct{}{}:
		t.Fatal("two workers held with a concurrency of one")
	default:
	}
	slot.release()
	slot.release() // once only
	require.Empty(t, sem)
	assert.Equal(t, 2, freed, "the scheduler is told each time a worker is given back")
}

// A job whose context ends while it waits for a worker goes on without one and gives
// nothing back that it does not hold; idle outside a scheduled job just waits.
func TestIdleWithoutAWorker(t *testing.T) {
	sem := make(chan struct{}, 1)
	sem <- struct{}{}
	slot := &workerSlot{sem: sem, held: true}
	ctx, cancel := context.WithCancel(context.WithValue(t.Context(), workerSlotKey{}, slot))
	idle(ctx, func() {
		sem <- struct{}{} // taken by another job for good
		cancel()
	})
	require.False(t, slot.held)
	slot.release()
	require.Len(t, sem, 1)
	ran := false
	idle(t.Context(), func() { ran = true })
	require.True(t, ran)
}

// A first sync waiting in idle gives back its place among the first syncs with its worker:
// another first sync can start (with two workers and room for one first sync), and the
// waiting one takes the place again before a worker, so first syncs never hold more than
// their share of the workers.
func TestIdleFirstSyncLeavesRoomForAnother(t *testing.T) {
	sem, fresh := make(chan struct{}, 2), make(chan struct{}, 1)
	sem <- struct{}{}
	fresh <- struct{}{}
	slot := &workerSlot{sem: sem, fresh: fresh, held: true}
	ctx := context.WithValue(t.Context(), workerSlotKey{}, slot)
	other := &workerSlot{sem: sem, fresh: fresh}
	done := make(chan struct{})
	go func() {
		<-done
		time.Sleep(20 * time.Millisecond) // the idle job now waits for its place
		assert.Len(t, fresh, 1)           // assert, not require: the release below must happen
		assert.Len(t, sem, 1, "the idle first sync waits for its place, not holding a worker")
		other.release()
	}()
	idle(ctx, func() {
		require.Empty(t, fresh)
		require.Empty(t, sem)
		require.True(t, other.acquire(t.Context()), "another first sync starts meanwhile")
		close(done)
	})
	require.True(t, slot.held)
	require.Len(t, fresh, 1)
	require.Len(t, sem, 1)
	slot.release()
	require.Empty(t, fresh)
	require.Empty(t, sem)

	// A context that ends while the job waits for its worker gives its place back.
	sem <- struct{}{}
	sem <- struct{}{}
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
