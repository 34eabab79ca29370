package storage

import (
	"cmp"
	"math"
	"slices"
	"time"
	"unique"
	"unsafe"
)

// UserSet is a tenant's users in the form CurrentUsers returns them once written (times cut
// to the second, before 1970 stored as 1970, UTC), held compactly: 168 bytes a user in the
// 1,000-tenant scale run. The collector keeps one per tenant it syncs often so that a users
// sync need not read its users back from ClickHouse (docs/performance.md, "Seventh
// session"). A UserSet is immutable.
type UserSet struct {
	tenant, app string
	users       []compactUser // by UserID
	bytes       int
}

// compactUser is a UserRow as stored: times in Unix seconds (noTime for nil), the repeated
// strings interned.
type compactUser struct {
	id                                             int64
	name, email, status, licenseType, activityType string
	created, updated, firstSeen, lastSeen          int64
	removed, lastActivity, licensed                int64
	version                                        uint64
	revision                                       uint32
	siteAdmin, serviceAccount                      bool
}

const noTime = math.MinInt64

// NewUserSet holds rows of tenant and app, the last row of a user winning, as ClickHouse
// would return them after they were written; n is how many rows are expected (0: unknown),
// so that the set is allocated once.
func NewUserSet(tenant, app string, n int, rows func(yield func(UserRow) bool)) *UserSet {
	s := &UserSet{tenant: tenant, app: app, users: make([]compactUser, 0, max(n, 0))}
	for r := range rows {
		c := compactUser{
			id: r.UserID, name: r.Name, email: r.Email,
			status: unique.Make(r.Status).Value(), licenseType: unique.Make(r.LicenseType).Value(),
			activityType: unique.Make(r.LastActivityType).Value(),
			created:      storedSec(r.CreatedAt), updated: storedSec(r.UpdatedAt), firstSeen: storedSec(r.FirstSeenAt), lastSeen: storedSec(r.LastSeenAt),
			removed: storedPtrSec(r.RemovedAt), lastActivity: storedPtrSec(r.LastActivityAt), licensed: storedPtrSec(r.LicensedAt),
			version: r.Version, revision: r.Revision, siteAdmin: r.SiteAdmin, serviceAccount: r.ServiceAccount,
		}
		s.users = append(s.users, c)
	}
	s.users = lastByID(s.users)
	s.bytes = int(unsafe.Sizeof(*s)) + cap(s.users)*int(unsafe.Sizeof(compactUser{}))
	for _, c := range s.users {
		s.bytes += len(c.name) + len(c.email)
	}
	return s
}

// lastByID orders users by id and keeps, of each id's rows, the last in the order given. It
// replaces a map by id that grew with every set built (one a users sync or activity pass).
// Rows already in id order (ClickHouse's answer, another set's) are not sorted; others (a
// map's order) are sorted through their positions, not moved as often as a stable sort of
// 160-byte rows would, and then put in that order in place, each row moved once.
func lastByID(users []compactUser) []compactUser {
	if !slices.IsSortedFunc(users, func(a, b compactUser) int { return cmp.Compare(a.id, b.id) }) {
		pos := make([]int, len(users))
		for i := range pos {
			pos[i] = i
		}
		slices.SortFunc(pos, func(a, b int) int {
			if c := cmp.Compare(users[a].id, users[b].id); c != 0 {
				return c
			}
			return cmp.Compare(a, b)
		})
		permute(users, pos)
	}
	kept := users[:0]
	for i, c := range users {
		if i+1 < len(users) && users[i+1].id == c.id {
			continue
		}
		kept = append(kept, c)
	}
	clear(users[len(kept):])
	return kept
}

// permute puts users in the order pos gives (the user at pos[i] comes to i) in
// place, following each cycle of the permutation; pos is spent.
func permute(users []compactUser, pos []int) {
	for i := range users {
		if pos[i] < 0 {
			continue
		}
		first, j := users[i], i
		for {
			k := pos[j]
			pos[j] = -1
			if k == i {
				users[j] = first
				break
			}
			users[j], j = users[k], k
		}
	}
}

// Len is the number of users.
func (s *UserSet) Len() int { return len(s.users) }

// Bytes is about the memory the set holds.
func (s *UserSet) Bytes() int { return s.bytes }

// All yields the users in UserID order, as CurrentUsers would.
func (s *UserSet) All(yield func(UserRow) bool) {
	for _, c := range s.users {
		r := UserRow{
			TenantID: s.tenant, App: s.app, UserID: c.id, Name: c.name, Email: c.email, Status: c.status, LicenseType: c.licenseType,
			SiteAdmin: c.siteAdmin, ServiceAccount: c.serviceAccount,
			CreatedAt: fromSec(c.created), UpdatedAt: fromSec(c.updated), FirstSeenAt: fromSec(c.firstSeen), LastSeenAt: fromSec(c.lastSeen),
			RemovedAt: fromPtrSec(c.removed), LastActivityAt: fromPtrSec(c.lastActivity), LastActivityType: c.activityType,
			Revision: c.revision, Version: c.version, LicensedAt: fromPtrSec(c.licensed),
		}
		if !yield(r) {
			return
		}
	}
}

// Map is the users by id.
func (s *UserSet) Map() map[int64]UserRow {
	m := make(map[int64]UserRow, len(s.users))
	for r := range s.All {
		m[r.UserID] = r
	}
	return m
}

// storedSec is t as a DateTime column keeps it (toDB, then whole seconds).
func storedSec(t time.Time) int64 { return toDB(t).Unix() }

func storedPtrSec(t *time.Time) int64 {
	if t == nil {
		return noTime
	}
	return storedSec(*t)
}

// fromSec is fromDB of a stored second: 1970 and before are the zero time.
func fromSec(sec int64) time.Time { return fromDB(time.Unix(sec, 0)) }

// fromPtrSec is fromDBPtr of a stored second, nil for noTime.
func fromPtrSec(sec int64) *time.Time {
	if sec == noTime {
		return nil
	}
	return fromDBPtr(new(time.Unix(sec, 0)))
}
