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
// share and takes free shards up to it.
func (sch *scheduler) refreshLeases(ctx context.Context) error {
	now := sch.now()
	fair, err := sch.fairShare(ctx, now)
	if err != nil {
		return err
	}
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

	shards := sch.renewLeases(ctx, owned, now)
	errs := sch.releaseAbove(ctx, owned, shards, fair, busy)
	errs = append(errs, sch.acquireUpTo(ctx, owned, fair, now)...)
	sch.mu.Lock()
	sch.owned = owned
	sch.mu.Unlock()
	sch.metrics.shardsOwned.Set(float64(len(owned)))
	return errors.Join(errs...)
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

// renewLeases renews the owned shards' leases, dropping those lost (expired and taken, or a
// conflict), and returns the shards it had, in order.
func (sch *scheduler) renewLeases(ctx context.Context, owned map[int]uint64, now time.Time) []int {
	shards := make([]int, 0, len(owned))
	for n := range owned {
		shards = append(shards, n)
	}
	sort.Ints(shards)
	for _, n := range shards {
		rev, err := sch.leases.Update(ctx, shardKey(n), lease{Owner: sch.cfg.ReplicaID, Renewed: now}, owned[n])
		if err != nil {
			delete(owned, n)
			continue
		}
		owned[n] = rev
	}
	return shards
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
// to spread the first grabs.
func (sch *scheduler) acquireUpTo(ctx context.Context, owned map[int]uint64, fair int, now time.Time) []error {
	var errs []error
	me := sch.cfg.ReplicaID
	start := shardOf(me, sch.cfg.Shards)
	for i := 0; i < sch.cfg.Shards && len(owned) < fair; i++ {
		n := (start + i) % sch.cfg.Shards
		if _, ok := owned[n]; ok {
			continue
		}
		rev, err := sch.leases.Create(ctx, shardKey(n), lease{Owner: me, Renewed: now})
		if err == nil {
			owned[n] = rev
		} else if !errors.Is(err, events.ErrConflict) {
			errs = append(errs, err)
		}
	}
	return errs
}

// releaseAll gives the shards back on shutdown so that other replicas take them at once.
func (sch *scheduler) releaseAll() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sch.mu.Lock()
	owned := sch.owned
	sch.owned = map[int]uint64{}
	sch.mu.Unlock()
	for n, rev := range owned {
		_ = sch.leases.Delete(ctx, shardKey(n), rev)
	}
	_ = sch.leases.Delete(ctx, replicaKey(sch.cfg.ReplicaID), 0)
}

// owns reports whether this replica holds the tenant's shard.
func (sch *scheduler) owns(tenant string) bool {
	_, ok := sch.owned[shardOf(tenant, sch.cfg.Shards)]
	return ok
}
