package events_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/events"
)

type watched struct {
	key     string
	value   string
	deleted bool
}

func TestKVWatchDeliversCurrentValuesThenChanges(t *testing.T) {
	_, _, bus := setup(t)
	ctx := t.Context()
	kv := events.BucketKV[string](bus, events.BucketConnections)
	_, err := kv.Put(ctx, "greenhouse.a", "one")
	require.NoError(t, err)

	var (
		mu  sync.Mutex
		got []watched
	)
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- kv.Watch(wctx, func(key, v string, rev uint64, deleted bool) {
			mu.Lock()
			got = append(got, watched{key, v, deleted})
			mu.Unlock()
		})
	}()
	waitFor := func(n int) []watched {
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			if len(got) >= n {
				out := append([]watched(nil), got...)
				mu.Unlock()
				return out
			}
			mu.Unlock()
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("watch delivered fewer than %d updates", n)
		return nil
	}
	assert.Equal(t, []watched{{"greenhouse.a", "one", false}}, waitFor(1))
	_, err = kv.Put(ctx, "greenhouse.b", "two")
	require.NoError(t, err)
	require.NoError(t, kv.Delete(ctx, "greenhouse.a", 0))
	assert.Equal(t, []watched{{"greenhouse.a", "one", false}, {"greenhouse.b", "two", false}, {"greenhouse.a", "", true}}, waitFor(3))
	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err, "a cancelled watch ends without error")
	case <-time.After(5 * time.Second):
		t.Fatal("watch did not end on cancellation")
	}
	pctx, cancelPing := context.WithTimeout(ctx, 5*time.Second) // a ping needs a deadline
	defer cancelPing()
	assert.NoError(t, bus.Ping(pctx))
}
