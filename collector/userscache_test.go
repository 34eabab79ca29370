package collector

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/storage"
)

func userSet(tenant string, n int) *storage.UserSet {
	rows := make([]storage.UserRow, n)
	for i := range rows {
		rows[i] = storage.UserRow{TenantID: tenant, App: "greenhouse", UserID: int64(i + 1), Name: "User", Status: "active", Version: 1}
	}
	return storage.NewUserSet(tenant, "greenhouse", len(rows), slices.Values(rows))
}

// An entry serves one run of its tenure before usersCacheTTL has passed since its users were
// read from ClickHouse, and nothing else.
func TestUsersCacheTakeAndKeep(t *testing.T) {
	c := newUsersCache(1 << 20)
	t0 := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	set := userSet("acme", 10)

	_, _, ok := c.take("acme", 1, t0)
	assert.False(t, ok, "nothing kept yet")
	c.keep("acme", 1, set, t0, t0)
	got, at, ok := c.take("acme", 1, t0.Add(time.Minute))
	require.True(t, ok)
	assert.Same(t, set, got)
	assert.Equal(t, t0, at, "when ClickHouse was read, not when it was kept")
	_, _, ok = c.take("acme", 1, t0.Add(time.Minute))
	assert.False(t, ok, "taken: a run that fails before keeping it leaves nothing behind")

	c.keep("acme", 1, set, t0, t0.Add(time.Minute))
	_, _, ok = c.take("acme", 2, t0.Add(time.Minute))
	assert.False(t, ok, "another tenure: another replica may have written the users meanwhile")
	_, _, ok = c.take("acme", 1, t0.Add(time.Minute))
	assert.False(t, ok, "and the stale entry is gone")

	c.keep("acme", 1, set, t0, t0.Add(usersCacheTTL-time.Second))
	_, _, ok = c.take("acme", 1, t0.Add(usersCacheTTL))
	assert.False(t, ok, "read from ClickHouse usersCacheTTL ago: read again")
	c.keep("acme", 1, set, t0, t0.Add(usersCacheTTL))
	n, _ := c.size()
	assert.Zero(t, n, "already expired: not kept")
}

// A set that does not fit is not kept, rather than evicting another tenant's (tenants synced
// in turn would evict each other and none would be served); expired entries make room.
func TestUsersCacheBudget(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	a, b := userSet("a", 100), userSet("b", 100)
	c := newUsersCache(a.Bytes() + b.Bytes()/2)
	c.keep("a", 1, a, t0, t0)
	c.keep("b", 1, b, t0, t0)
	n, bytes := c.size()
	assert.Equal(t, 1, n)
	assert.Equal(t, a.Bytes(), bytes)
	_, _, ok := c.take("b", 1, t0)
	assert.False(t, ok, "b did not fit")

	later := t0.Add(usersCacheTTL)
	c.keep("b", 1, b, later, later)
	_, _, ok = c.take("b", 1, later)
	assert.True(t, ok, "a expired and made room")
	n, bytes = c.size()
	assert.Equal(t, 0, n)
	assert.Zero(t, bytes)

	c.keep("a", 1, a, t0, t0)
	c.keep("a", 1, a, t0, t0)
	_, bytes = c.size()
	assert.Equal(t, a.Bytes(), bytes, "keeping again replaces")

	c.drop("a")
	n, bytes = c.size()
	assert.Zero(t, n, "a disconnected tenant's users are dropped")
	assert.Zero(t, bytes)

	var off *usersCache
	off.drop("a")
	off.keep("a", 1, a, t0, t0)
	_, _, ok = off.take("a", 1, t0)
	assert.False(t, ok, "no cache: nothing held")
	zero := newUsersCache(0)
	zero.keep("a", 1, a, t0, t0)
	_, _, ok = zero.take("a", 1, t0)
	assert.False(t, ok, "users-cache-mib 0: nothing held")
}
