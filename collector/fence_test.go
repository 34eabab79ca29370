package collector

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLeaseFence: a shard is owned only until its last lease write plus the TTL, and the runs
// of a shard whose lease ends within the margin are cancelled while the others go on.
func TestLeaseFence(t *testing.T) {
	sch := newScheduler(Config{Shards: 64, LeaseTTL: 5 * time.Second, Concurrency: 4}, nil, nil, nil, nil, newMetrics(), zerolog.Nop(), time.Now)
	// Three tenants in three shards.
	var tenants []string
	seen := map[int]bool{}
	for i := 0; len(tenants) < 3; i++ {
		tenant := fmt.Sprintf("tenant-%d", i)
		if n := shardOf(tenant, 64); !seen[n] {
			seen[n] = true
			tenants = append(tenants, tenant)
		}
	}
	held, lapsing, lapsed := tenants[0], tenants[1], tenants[2]
	now := time.Now()
	for tenant, until := range map[string]time.Time{held: now.Add(5 * time.Second), lapsing: now.Add(500 * time.Millisecond), lapsed: now.Add(-time.Millisecond)} {
		n := shardOf(tenant, 64)
		sch.owned[n], sch.fence.until[n] = 1, until
	}
	assert.True(t, sch.owns(held))
	assert.True(t, sch.owns(lapsing), "held until its end")
	assert.False(t, sch.owns(lapsed), "its lease ended: another replica may hold it")

	ctx := context.Background()
	jobs := map[string]context.Context{}
	for _, tenant := range []string{held, lapsing, lapsed} {
		jobs[tenant] = sch.startJob(ctx, tenant)
	}
	require.Equal(t, 2, sch.fenceRuns(now))
	assert.NoError(t, jobs[held].Err())
	assert.ErrorIs(t, jobs[lapsing].Err(), context.Canceled, "ends within the margin (%s)", fenceMargin(5*time.Second))
	assert.ErrorIs(t, jobs[lapsed].Err(), context.Canceled)
	sch.endJob(held)
	assert.ErrorIs(t, jobs[held].Err(), context.Canceled, "its context ends with the job")
	assert.Empty(t, sch.fence.cancels)
}
