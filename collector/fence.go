package collector

import (
	"context"
	"time"
)

// leaseFence keeps, per shard this replica holds, until when it may act on the shard: the
// moment its last successful lease write was sent plus the lease TTL. The leases bucket
// removes an entry no earlier than its TTL after the write, so no other replica can take the
// shard before that moment. When renewals keep failing (NATS unreachable, a node paused), the
// replica stops starting runs of the shard and cancels those under way shortly before it, so
// that a replica cut off from NATS is no longer working on tenants another one is about to
// take over (docs/reliability.md, "A JetStream cluster under failure"). A cancelled run is
// abandoned like a run at shutdown: nothing is recorded and the next holder repeats the step.
//
// The fence reads the real clock, not the service's (tests move that one), because the
// bucket's TTL runs on the servers' clocks. Guarded by the scheduler's mutex.
type leaseFence struct {
	until   map[int]time.Time             // shard → end of this replica's lease, as far as it knows
	cancels map[string]context.CancelFunc // tenant → cancels its running job
}

func newLeaseFence() leaseFence {
	return leaseFence{until: map[int]time.Time{}, cancels: map[string]context.CancelFunc{}}
}

// valid reports whether shard n's lease is held at t.
func (f *leaseFence) valid(n int, t time.Time) bool {
	u, ok := f.until[n]
	return ok && t.Before(u)
}

// fenceMargin is how long before its lease ends a run is cancelled: the fence looks every
// 250 ms, and cancelling takes a moment to reach the run's next blocking call.
func fenceMargin(ttl time.Duration) time.Duration { return min(time.Second, ttl/5) }

// startJob registers a job's cancel function; the job's context ends with the lease of its
// tenant's shard. Called with sch.mu held.
func (sch *scheduler) startJob(ctx context.Context, tenant string) context.Context {
	jctx, cancel := context.WithCancel(ctx)
	sch.fence.cancels[tenant] = cancel
	return jctx
}

// endJob releases what startJob registered. Called with sch.mu held.
func (sch *scheduler) endJob(tenant string) {
	if cancel, ok := sch.fence.cancels[tenant]; ok {
		cancel()
		delete(sch.fence.cancels, tenant)
	}
}

// fenceRuns cancels the running jobs whose tenant's shard is not held until at least t plus
// the margin, and returns how many it cancelled.
func (sch *scheduler) fenceRuns(t time.Time) int {
	sch.mu.Lock()
	defer sch.mu.Unlock()
	margin := fenceMargin(sch.cfg.LeaseTTL)
	n := 0
	for tenant, cancel := range sch.fence.cancels {
		if shard := shardOf(tenant, sch.cfg.Shards); !sch.fence.valid(shard, t.Add(margin)) {
			cancel()
			delete(sch.fence.cancels, tenant)
			n++
		}
	}
	return n
}

// watchFence runs fenceRuns every 250 ms until ctx ends, apart from the scheduler's loop,
// which a slow lease write may hold up.
func (sch *scheduler) watchFence(ctx context.Context) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if n := sch.fenceRuns(time.Now()); n > 0 {
				sch.log.Warn().Int("runs", n).Str("replica", sch.cfg.ReplicaID).
					Msg("shard leases not renewed in time: runs cancelled, another replica takes the shards over")
			}
		}
	}
}
