package collector

import (
	"sync"
	"time"

	"github.com/seatwatch/greenhouse-collector/storage"
)

// usersCacheTTL is how long a tenant's users are used from the cache after they were last
// read from ClickHouse: at most this long does a change of the users table that did not go
// through this replica (an operator's fix, a replica that held the tenant during a lease
// handover this one did not see) stay unseen by the users sync, which reads them again then.
const usersCacheTTL = 10 * time.Minute

// usersCache keeps, for the tenants this replica syncs more often than usersCacheTTL, their
// users as this replica last stored them, so that a users sync (and an activity pass) does
// not read them back from ClickHouse every time: at 1,000 tenants on a 1-minute users
// interval those reads were a third of ClickHouse's CPU (docs/performance.md, "Seventh
// session"). An entry is taken out for a run and kept again only once the run's writes of
// users are durable, so a failed or abandoned run leaves none behind. It is used only within
// the lease tenure it was kept under (the revision of the lease write that took the tenant's
// shard; another replica may have written the users between two tenures) and until
// usersCacheTTL after its users were read from ClickHouse. It holds at most max bytes; a
// set that does not fit is not kept (a tenant whose users do not fit reads them every time,
// rather than all tenants in turn evicting each other).
type usersCache struct {
	mu      sync.Mutex
	max     int
	bytes   int
	entries map[string]usersEntry
}

type usersEntry struct {
	set    *storage.UserSet
	tenure uint64
	readAt time.Time // when its users were read from ClickHouse
}

func newUsersCache(maxBytes int) *usersCache {
	return &usersCache{max: maxBytes, entries: map[string]usersEntry{}}
}

// take removes and returns the tenant's users, if held for this tenure and read from
// ClickHouse less than usersCacheTTL before now, with when they were read.
func (c *usersCache) take(tenant string, tenure uint64, now time.Time) (*storage.UserSet, time.Time, bool) {
	if c == nil {
		return nil, time.Time{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.remove(tenant)
	if !ok {
		return nil, time.Time{}, false
	}
	if e.tenure != tenure || now.Sub(e.readAt) >= usersCacheTTL {
		return nil, time.Time{}, false
	}
	return e.set, e.readAt, true
}

// keep holds the tenant's users as stored now, read from ClickHouse at readAt (or derived
// from a read then and the rows written since), if they fit; expired entries make room.
func (c *usersCache) keep(tenant string, tenure uint64, set *storage.UserSet, readAt, now time.Time) {
	if c == nil || c.max <= 0 || now.Sub(readAt) >= usersCacheTTL {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.remove(tenant)
	if c.bytes+set.Bytes() > c.max {
		for t, e := range c.entries {
			if now.Sub(e.readAt) >= usersCacheTTL {
				c.remove(t)
			}
		}
		if c.bytes+set.Bytes() > c.max {
			return
		}
	}
	c.entries[tenant] = usersEntry{set: set, tenure: tenure, readAt: readAt}
	c.bytes += set.Bytes()
}

// drop forgets the tenant's users (a disconnected tenant's memory is freed at once).
func (c *usersCache) drop(tenant string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.remove(tenant)
}

// remove takes the tenant's entry out, if any, and returns it. Called with c.mu held.
func (c *usersCache) remove(tenant string) (usersEntry, bool) {
	e, ok := c.entries[tenant]
	if ok {
		delete(c.entries, tenant)
		c.bytes -= e.set.Bytes()
	}
	return e, ok
}

// size is the tenants held and their bytes.
func (c *usersCache) size() (int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries), c.bytes
}
