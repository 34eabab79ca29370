package collector

import (
	"fmt"
	"time"

	"github.com/seatwatch/greenhouse-collector/connectors"
	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse"
	"github.com/seatwatch/greenhouse-collector/storage"
)

// userDiff merges one complete users listing into the stored state of a tenant's users.
// It is fed page by page; the rows it returns are the new state of every listed user, with the
// revision bumped and the changed fields named where something changed. After the listing,
// removed() returns the users that were stored as present and are no longer listed.
type userDiff struct {
	tenant  string
	now     time.Time // truncated to the second
	version uint64
	prev    map[int64]storage.UserRow
	seen    map[int64]struct{}
	// listedAt is the start of the last complete listing: what a removed user's last_seen_at
	// becomes when its stored one is older (lastSeen).
	listedAt time.Time
}

func newUserDiff(tenant string, now time.Time, version uint64, prev map[int64]storage.UserRow) *userDiff {
	return &userDiff{
		tenant:  tenant,
		now:     now.UTC().Truncate(time.Second),
		version: version,
		prev:    prev,
		seen:    make(map[int64]struct{}, len(prev)),
	}
}

// change is a user whose state changed in this sync.
type change struct {
	row     storage.UserRow
	changed []string
	// freed is set when a license holder lost the license (deactivated or removed).
	freed bool
}

// created reports whether the change is a user new to the listing.
func (ch *change) created() bool {
	return ch != nil && len(ch.changed) == 1 && ch.changed[0] == "created"
}

// apply merges one listed user. It returns the user's new row and, when something changed,
// the change (nil otherwise). A user listed twice in one listing is applied once.
func (d *userDiff) apply(u greenhouse.User, hasJobPermission bool) (storage.UserRow, *change, bool) {
	if _, dup := d.seen[u.ID]; dup {
		return storage.UserRow{}, nil, false
	}
	d.seen[u.ID] = struct{}{}
	status := storage.StatusActive
	if u.Deactivated {
		status = storage.StatusDeactivated
	}
	row := storage.UserRow{
		TenantID:       d.tenant,
		App:            connectors.AppGreenhouse,
		UserID:         u.ID,
		Name:           u.Name,
		Email:          u.PrimaryEmail,
		Status:         status,
		LicenseType:    LicenseType(u.SiteAdmin, hasJobPermission),
		SiteAdmin:      u.SiteAdmin,
		ServiceAccount: u.ServiceAccount,
		CreatedAt:      u.CreatedAt.UTC().Truncate(time.Second),
		UpdatedAt:      u.UpdatedAt.UTC().Truncate(time.Second),
		FirstSeenAt:    d.now,
		LastSeenAt:     d.now,
		Version:        d.version,
	}
	prev, known := d.prev[u.ID]
	if !known {
		row.Revision = 1
		if storage.Licensed(row.Status, row.ServiceAccount) {
			row.LicensedAt = &row.CreatedAt // licensed when first listed: since its creation, as far as is known
		}
		return row, &change{row: row, changed: []string{"created"}}, true
	}
	row.FirstSeenAt = prev.FirstSeenAt
	row.LastActivityAt = prev.LastActivityAt
	row.LastActivityType = prev.LastActivityType
	row.LicensedAt = licensedAt(prev, row, d.now)
	row.Revision = prev.Revision
	changed := changedFields(prev, row)
	if len(changed) == 0 {
		return row, nil, true
	}
	row.Revision = prev.Revision + 1
	return row, &change{
		row:     row,
		changed: changed,
		freed:   storage.Licensed(prev.Status, prev.ServiceAccount) && !storage.Licensed(row.Status, row.ServiceAccount) && row.Status != storage.StatusActive,
	}, true
}

// licensedAt is when a listed user's first license began (the grace period's start): kept
// once known; the creation of a user stored licensed before the column existed; now for a
// user licensed for the first time; nil while the user never held one.
func licensedAt(prev, row storage.UserRow, now time.Time) *time.Time {
	switch {
	case prev.LicensedAt != nil:
		return prev.LicensedAt
	case storage.Licensed(prev.Status, prev.ServiceAccount):
		return &row.CreatedAt
	case storage.Licensed(row.Status, row.ServiceAccount):
		return &now
	}
	return nil
}

// changedFields names the fields of a user that differ between two rows, in the contract's
// order (docs/events.md, saas.user.changed).
func changedFields(prev, row storage.UserRow) []string {
	var changed []string
	for _, f := range []struct {
		name    string
		differs bool
	}{
		{"status", prev.Status != row.Status},
		{"license_type", prev.LicenseType != row.LicenseType},
		{"site_admin", prev.SiteAdmin != row.SiteAdmin},
		{"service_account", prev.ServiceAccount != row.ServiceAccount},
		{"name", prev.Name != row.Name},
		{"email", prev.Email != row.Email},
		{"created_at", !prev.CreatedAt.Equal(row.CreatedAt)},
	} {
		if f.differs {
			changed = append(changed, f.name)
		}
	}
	return changed
}

// removed returns the stored users that were present (not already removed) and are absent
// from the listing, as their new rows with status removed.
func (d *userDiff) removed() []change {
	var out []change
	for id, prev := range d.prev {
		if _, ok := d.seen[id]; ok || prev.Status == storage.StatusRemoved {
			continue
		}
		row := prev
		row.LastSeenAt = lastSeen(prev, d.listedAt)
		row.Status = storage.StatusRemoved
		removedAt := d.now
		row.RemovedAt = &removedAt
		row.Revision = prev.Revision + 1
		row.Version = d.version
		out = append(out, change{
			row:     row,
			changed: []string{"status"},
			freed:   storage.Licensed(prev.Status, prev.ServiceAccount),
		})
	}
	return out
}

// userEventID is the deterministic id of the saas.user.changed event for a user's revision.
func userEventID(tenant string, userID int64, revision uint32) string {
	return fmt.Sprintf("%s:user:%d:%d", tenant, userID, revision)
}
