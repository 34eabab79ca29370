package collector

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"strings"
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

// refreshLeases heartbeats this replica, renews its shards, releases what is above its fair
// share and takes free shards up to it. A round is bounded, so that the loop keeps
// dispatching while NATS is slow; a write that does not answer in time is retried on the next
// round. Without the heartbeat or the replica count, held shards are still renewed (they are
// what keeps runs going), but none is released or taken.
func (sch *scheduler) refreshLeases(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, max(sch.cfg.LeaseTTL/2, 2*time.Second))
	defer cancel()
	now := sch.now()
	fair, fairErr := sch.fairShare(ctx, now)
	sch.mu.Lock()
	owned := make(map[int]uint64, len(sch.owned))
	for k, v := range sch.owned {
		owned[k] = v
	}
	busy := map[int]bool{} // shards with a sync in flight are released only once it ends
	for tenant, ts := range sch.tenants {
		if ts.running {
			busy[shardOf(tenant, sch.cfg.Shards)] = true
		}
	}
	sch.mu.Unlock()

	until := map[int]time.Time{}
	shards, errs := sch.renewLeases(ctx, owned, until, now)
	if fairErr != nil {
		sch.setOwned(owned, until, nil)
		return errors.Join(append(errs, fairErr)...)
	}
	errs = append(errs, sch.releaseAbove(ctx, owned, shards, fair, busy)...)
	taken, aerrs := sch.acquireUpTo(ctx, owned, until, fair, now)
	sch.setOwned(owned, until, taken)
	return errors.Join(append(errs, aerrs...)...)
}

// setOwned records the shards held after a round of lease writes, with the new ends of the
// leases written (a shard kept without a successful write keeps its earlier end), and drops
// the shards whose lease has ended (fence.go). taken are the shards this round took, by the
// revision that took them: each begins a new tenure.
func (sch *scheduler) setOwned(owned map[int]uint64, until map[int]time.Time, taken map[int]uint64) {
	now := time.Now()
	sch.mu.Lock()
	for n, rev := range taken {
		sch.tenure[n] = rev
	}
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
	for n := range sch.tenure {
		if _, ok := owned[n]; !ok {
			delete(sch.tenure, n)
		}
	}
	sch.owned = owned
	sch.mu.Unlock()
	sch.metrics.shardsOwned.Set(float64(len(owned)))
}

// fairShare heartbeats this replica and returns its share of the shards: all of them over
// the replicas heartbeating, rounded up.
func (sch *scheduler) fairShare(ctx context.Context, now time.Time) (int, error) {
	me := sch.cfg.ReplicaID
	if _, err := sch.leases.Put(ctx, replicaKey(me), lease{Owner: me, Renewed: now}); err != nil {
		return 0, fmt.Errorf("heartbeat: %w", err)
	}
	replicas := 0
	if err := sch.leases.Keys(ctx, "replica.", func(string) error { replicas++; return nil }); err != nil {
		return 0, fmt.Errorf("list replicas: %w", err)
	}
	replicas = max(replicas, 1)
	return (sch.cfg.Shards + replicas - 1) / replicas, nil
}

// renewLeases renews the owned shards' leases and returns the shards it had, in order. A
// lease is held until its last write was sent plus the TTL (fence.go), recorded in until: a
// shard lost to a conflict (expired and taken, or deleted) is dropped, one whose write failed
// otherwise stays held until its earlier end.
func (sch *scheduler) renewLeases(ctx context.Context, owned map[int]uint64, until map[int]time.Time, now time.Time) ([]int, []error) {
	var errs []error
	shards := make([]int, 0, len(owned))
	for n := range owned {
		shards = append(shards, n)
	}
	sort.Ints(shards)
	for _, n := range shards {
		sent := time.Now()
		rev, err := sch.leases.Update(ctx, shardKey(n), lease{Owner: sch.cfg.ReplicaID, Renewed: now}, owned[n])
		if errors.Is(err, events.ErrConflict) {
			delete(owned, n)
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		owned[n], until[n] = rev, sent.Add(sch.cfg.LeaseTTL)
	}
	return shards, errs
}

// releaseAbove releases owned shards above the fair share, the highest first so that replicas
// converge, but not busy ones.
func (sch *scheduler) releaseAbove(ctx context.Context, owned map[int]uint64, shards []int, fair int, busy map[int]bool) []error {
	var errs []error
	for i := len(shards) - 1; i >= 0 && len(owned) > fair; i-- {
		n := shards[i]
		if rev, ok := owned[n]; ok && !busy[n] {
			if err := sch.leases.Delete(ctx, shardKey(n), rev); err != nil {
				errs = append(errs, err)
			}
			delete(owned, n)
		}
	}
	return errs
}

// acquireUpTo takes free shards up to the fair share, starting at a replica-specific offset
// to spread the first grabs, and returns those it took by the revision that took them.
func (sch *scheduler) acquireUpTo(ctx context.Context, owned map[int]uint64, until map[int]time.Time, fair int, now time.Time) (map[int]uint64, []error) {
	var errs []error
	taken := map[int]uint64{}
	me := sch.cfg.ReplicaID
	start := shardOf(me, sch.cfg.Shards)
	for i := 0; i < sch.cfg.Shards && len(owned) < fair; i++ {
		n := (start + i) % sch.cfg.Shards
		if _, ok := owned[n]; ok {
			continue
		}
		sent := time.Now()
		rev, err := sch.leases.Create(ctx, shardKey(n), lease{Owner: me, Renewed: now})
		if err == nil {
			owned[n], until[n], taken[n] = rev, sent.Add(sch.cfg.LeaseTTL), rev
		} else if !errors.Is(err, events.ErrConflict) {
			errs = append(errs, err)
		}
	}
	return taken, errs
}

// releaseAll gives the shards back on shutdown so that other replicas take them at once.
func (sch *scheduler) releaseAll() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sch.mu.Lock()
	owned := sch.owned
	sch.owned = map[int]uint64{}
	sch.tenure = map[int]uint64{}
	sch.fence.until = map[int]time.Time{}
	sch.mu.Unlock()
	for n, rev := range owned {
		_ = sch.leases.Delete(ctx, shardKey(n), rev)
	}
	_ = sch.leases.Delete(ctx, replicaKey(sch.cfg.ReplicaID), 0)
}

// owns reports whether this replica holds the tenant's shard, and its lease has not ended.
func (sch *scheduler) owns(tenant string) bool {
	return sch.ownsShard(shardOf(tenant, sch.cfg.Shards), time.Now())
}

// ownsShard reports whether this replica holds shard n and its lease has not ended at t.
func (sch *scheduler) ownsShard(n int, t time.Time) bool {
	_, ok := sch.owned[n]
	return ok && sch.fence.valid(n, t)
}
