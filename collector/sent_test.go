package collector

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/events"
)

// ids counts the published events by id.
func (b *fakeBus) ids() map[string]int {
	out := map[string]int{}
	for _, e := range b.envs {
		out[e.ID]++
	}
	return out
}

// TestFailedStepIsNotPublishedAgain: a users step whose events were published but whose rows
// ClickHouse refused is retried an hour later (far past any duplicate window); the fake bus
// deduplicates nothing, so an event published twice would show. Without the memory, it does.
func TestFailedStepIsNotPublishedAgain(t *testing.T) {
	sync := func(f *syncerFixture) runResult {
		return f.s.remembering(t.Context(), "acme", "users", func(ctx context.Context) runResult {
			return f.s.syncUsers(ctx, "acme", storedConnection{}, f.gh)
		})
	}
	failThenSucceed := func(t *testing.T, mem *sentMemory) *syncerFixture {
		f := newSyncerFixture(t)
		f.s.sent = mem
		f.store.failing = errors.New("clickhouse: connection refused")
		require.NotNil(t, sync(f).err, "the first run fails to store")
		require.Equal(t, 4, f.bus.types()[events.TypeUserChanged], "after publishing its four user events")
		f.store.failing = nil
		f.now = f.now.Add(time.Hour)
		require.Nil(t, sync(f).err)
		return f
	}
	t.Run("remembered: each id once", func(t *testing.T) {
		mem := newSentMemory(maxRemembered)
		f := failThenSucceed(t, mem)
		for id, n := range f.bus.ids() {
			assert.Equal(t, 1, n, "event %s published %d times", id, n)
		}
		assert.Len(t, f.store.users, 4, "the retry stored the users all the same")
		assert.Zero(t, mem.remembered(), "the step's success forgot its ids")
	})
	t.Run("not remembered: the retry publishes them again", func(t *testing.T) {
		f := failThenSucceed(t, nil)
		assert.Equal(t, 8, f.bus.types()[events.TypeUserChanged])
	})
	t.Run("a publish that fails remembers nothing", func(t *testing.T) {
		mem := newSentMemory(maxRemembered)
		f := newSyncerFixture(t)
		f.s.sent = mem
		f.bus.err = errors.New("nats: timeout")
		require.NotNil(t, sync(f).err)
		assert.Zero(t, mem.remembered())
	})
}

func TestSentMemoryBounds(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	envs := func(tenant string, n int) []events.Envelope {
		out := make([]events.Envelope, n)
		for i := range out {
			out[i].ID = fmt.Sprintf("%s:user:%d:1", tenant, i)
		}
		return out
	}
	fail := func(m *sentMemory, tenant string, n int, at time.Time) {
		_, tr := m.begin(t.Context(), tenant, "users", at)
		tr.published(envs(tenant, n))
		m.end(tenant, "users", tr, false, at)
	}
	t.Run("at most max ids in all", func(t *testing.T) {
		m := newSentMemory(5)
		fail(m, "a", 4, now)
		fail(m, "b", 4, now)
		assert.Equal(t, 5, m.remembered())
		ctx, tr := m.begin(t.Context(), "a", "users", now)
		assert.Len(t, tr.unsent(envs("a", 6)), 2, "a's four are left out")
		assert.Same(t, tr, trackerOf(ctx))
		m.drop("a")
		assert.Equal(t, 1, m.remembered(), "b's one is left")
	})
	t.Run("forgotten after the TTL", func(t *testing.T) {
		m := newSentMemory(100)
		fail(m, "a", 3, now)
		_, tr := m.begin(t.Context(), "a", "users", now.Add(sentMemoryTTL+time.Second))
		assert.Len(t, tr.unsent(envs("a", 3)), 3)
		assert.Zero(t, m.remembered())
	})
	t.Run("steps apart; failures add up", func(t *testing.T) {
		m := newSentMemory(100)
		fail(m, "a", 2, now)
		_, tr := m.begin(t.Context(), "a", "audit", now)
		assert.Len(t, tr.unsent(envs("a", 2)), 2, "the audit step sent none of them")
		_, tr = m.begin(t.Context(), "a", "users", now)
		tr.published(envs("a", 4)[2:])
		m.end("a", "users", tr, false, now)
		_, tr = m.begin(t.Context(), "a", "users", now)
		assert.Empty(t, tr.unsent(envs("a", 4)))
		assert.Equal(t, 4, m.remembered())
	})
	t.Run("nothing remembered: the same slice", func(t *testing.T) {
		m := newSentMemory(100)
		_, tr := m.begin(t.Context(), "a", "users", now)
		in := envs("a", 3)
		out := tr.unsent(in)
		assert.Same(t, &in[0], &out[0])
	})
}

// TestSentMemoryKeepsFailingSteps: the TTL runs from a step's last failure even when that
// failure published nothing new (every id skipped), and a failure sweeps away the steps of
// tenants that no longer run here.
func TestSentMemoryKeepsFailingSteps(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	m := newSentMemory(100)
	fail := func(tenant string, ids []string, at time.Time) {
		_, tr := m.begin(t.Context(), tenant, "users", at)
		envs := make([]events.Envelope, len(ids))
		for i, id := range ids {
			envs[i].ID = id
		}
		tr.published(tr.unsent(envs))
		m.end(tenant, "users", tr, false, at)
	}
	fail("a", []string{"a1", "a2"}, now)
	fail("gone", []string{"g1"}, now) // its shard moves away: never begun here again
	for h := 1; h <= 12; h++ {        // an outage of 12 hours, a failure an hour
		fail("a", []string{"a1", "a2"}, now.Add(time.Duration(h)*time.Hour))
	}
	_, tr := m.begin(t.Context(), "a", "users", now.Add(12*time.Hour+time.Minute))
	assert.Empty(t, tr.unsent([]events.Envelope{{ID: "a1"}, {ID: "a2"}}), "still remembered after 12 hours of failures")
	assert.Equal(t, 2, m.remembered(), "gone's id was swept")
}

// BenchmarkSentMemorySize reports the heap a full memory holds per id: 100 tenants' failed
// first syncs of 2,000 user events each, ids as the collector makes them (docs/reliability.md,
// "The duplicate window"). go test -run '^$' -bench BenchmarkSentMemorySize ./collector
func BenchmarkSentMemorySize(b *testing.B) {
	now := time.Now()
	for range b.N {
		m := newSentMemory(maxRemembered)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for tn := range 100 {
			tenant := fmt.Sprintf("tenant-%05d", tn)
			_, tr := m.begin(b.Context(), tenant, "users", now)
			envs := make([]events.Envelope, 2000)
			for i := range envs {
				envs[i].ID = userEventID(tenant, int64(4_000_000+i), 1)
			}
			tr.published(envs)
			m.end(tenant, "users", tr, false, now)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(m.remembered()), "bytes/id")
		runtime.KeepAlive(m)
	}
}
