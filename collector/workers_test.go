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
