package collector

import (
	"context"
	"sync"
	"time"

	"github.com/seatwatch/greenhouse-collector/events"
)

// sentMemory remembers, per tenant and sync step, the ids of the events a failed step
// published (every one acknowledged, so in the stream) before it failed to store what they
// describe, and the step's retry does not publish them again. JetStream's duplicate window
// would drop them too, but only within the window: with this memory a step failing for as
// long as ClickHouse is down repeats no event, however long that is, and the window only has
// to cover a crash (a replica's restart, or another replica taking over after the lease TTL),
// which lets it be short. The window's index of every message published within it was more
// than half of the collector's live heap while 10,000 tenants onboarded (docs/reliability.md,
// "The duplicate window"; docs/performance.md, "Thirteenth session").
//
// What it remembers is bounded (maxRemembered ids in all; past that, a failed step's ids are
// left to the window) and forgotten when the step next succeeds, sentMemoryTTL after the
// step's last failure, or when the tenant is disconnected. It is the replica's own: a tenant
// that moves to another replica has its failed step repeated there, and only the window
// keeps those ids out of the stream.
type sentMemory struct {
	mu    sync.Mutex
	steps map[sentKey]*sentIDs
	total int // ids in steps
	max   int
	swept time.Time // the last sweep
}

// sentKey is a tenant's sync step.
type sentKey struct {
	tenant string
	step   string // "users" or "audit"
}

// sentIDs are the ids a step's failed runs published.
type sentIDs struct {
	ids map[string]struct{}
	at  time.Time // the step's last failure
}

const (
	// maxRemembered bounds the ids remembered, in all: a ClickHouse outage fails every
	// tenant's step after its first publish, and a first sync publishes up to a flush of
	// events (about 90 bytes each, remembered: BenchmarkSentMemorySize).
	maxRemembered = 200_000
	// sentMemoryTTL is how long a step's ids are kept after its last failure.
	sentMemoryTTL = 6 * time.Hour
)

func newSentMemory(max int) *sentMemory {
	return &sentMemory{steps: map[sentKey]*sentIDs{}, max: max}
}

// sentTracker collects the ids of the events one run of a step published and had
// acknowledged, and skips those its earlier failed runs did.
type sentTracker struct {
	before map[string]struct{} // the step's remembered ids; nil if none (read only)
	mu     sync.Mutex
	acked  []string
}

type sentTrackerKey struct{}

// begin starts tracking a run of a tenant's step: publishes through the returned context
// skip the ids remembered for the step and collect those acknowledged.
func (m *sentMemory) begin(ctx context.Context, tenant, step string, now time.Time) (context.Context, *sentTracker) {
	if m == nil {
		return ctx, nil
	}
	t := &sentTracker{}
	m.mu.Lock()
	k := sentKey{tenant, step}
	if s := m.steps[k]; s != nil {
		if now.Sub(s.at) > sentMemoryTTL {
			m.forget(k, s)
		} else {
			t.before = s.ids
		}
	}
	m.mu.Unlock()
	return context.WithValue(ctx, sentTrackerKey{}, t), t
}

// end closes a run: a success forgets the step's ids (what they describe is stored now); a
// failure remembers the ids this run had acknowledged, within the bound.
func (m *sentMemory) end(tenant, step string, t *sentTracker, ok bool, now time.Time) {
	if m == nil || t == nil {
		return
	}
	k := sentKey{tenant, step}
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.steps[k]
	if ok {
		if s != nil {
			m.forget(k, s)
		}
		return
	}
	m.sweep(now)
	if s = m.steps[k]; s != nil {
		s.at = now // kept 6 hours from the step's last failure, whatever it published
	}
	t.mu.Lock()
	acked := t.acked
	t.mu.Unlock()
	if len(acked) == 0 || m.total >= m.max {
		return
	}
	if s == nil {
		s = &sentIDs{ids: make(map[string]struct{}, len(acked)), at: now}
		m.steps[k] = s
	} else {
		// A run under way may be reading the map without the lock (two jobs of one tenant
		// can overlap across a disconnect and a reconnect): add to a copy.
		s.ids = cloneIDs(s.ids, len(acked))
	}
	for _, id := range acked {
		if m.total >= m.max {
			break
		}
		if _, dup := s.ids[id]; !dup {
			s.ids[id] = struct{}{}
			m.total++
		}
	}
}

// sweep forgets the steps not failed for sentMemoryTTL: those of tenants no longer run here
// (their shard moved to another replica) would otherwise be kept for good. Called with m.mu
// held, at a failure, at most once a minute (a ClickHouse outage fails every tenant's steps).
func (m *sentMemory) sweep(now time.Time) {
	if now.Sub(m.swept) < time.Minute {
		return
	}
	m.swept = now
	for k, s := range m.steps {
		if now.Sub(s.at) > sentMemoryTTL {
			m.forget(k, s)
		}
	}
}

// forget drops a step's ids. Called with m.mu held.
func (m *sentMemory) forget(k sentKey, s *sentIDs) {
	m.total -= len(s.ids)
	delete(m.steps, k)
}

// cloneIDs copies ids with room for n more.
func cloneIDs(ids map[string]struct{}, n int) map[string]struct{} {
	c := make(map[string]struct{}, len(ids)+n)
	for id := range ids {
		c[id] = struct{}{}
	}
	return c
}

// drop forgets a tenant (disconnected).
func (m *sentMemory) drop(tenant string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, s := range m.steps {
		if k.tenant == tenant {
			m.forget(k, s)
		}
	}
}

// remembered is the number of ids remembered, for tests.
func (m *sentMemory) remembered() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.total
}

// trackerOf is the run's tracker in ctx, nil if none.
func trackerOf(ctx context.Context) *sentTracker {
	t, _ := ctx.Value(sentTrackerKey{}).(*sentTracker)
	return t
}

// unsent is envs without those an earlier failed run of the step published: envs itself when
// none is (no copy).
func (t *sentTracker) unsent(envs []events.Envelope) []events.Envelope {
	if t == nil || len(t.before) == 0 {
		return envs
	}
	var out []events.Envelope
	for i := range envs {
		if _, sent := t.before[envs[i].ID]; sent {
			if out == nil {
				out = append(make([]events.Envelope, 0, len(envs)-1), envs[:i]...)
			}
			continue
		}
		if out != nil {
			out = append(out, envs[i])
		}
	}
	if out == nil {
		return envs
	}
	return out
}

// published records envs as acknowledged.
func (t *sentTracker) published(envs []events.Envelope) {
	if t == nil {
		return
	}
	t.mu.Lock()
	for i := range envs {
		t.acked = append(t.acked, envs[i].ID)
	}
	t.mu.Unlock()
}
