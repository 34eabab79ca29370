package collector

import (
	"time"

	"github.com/seatwatch/greenhouse-collector/events"
	"github.com/seatwatch/greenhouse-collector/storage"
)

// The license types, and the usage rule (storage/usage.go) applied to a tenant: its
// parameters and a user's license record.

// License types (docs/events.md, saas.user.changed): the usage rule's (storage/usage.go).
const (
	LicenseSiteAdmin = storage.LicenseSiteAdmin
	LicenseJobAdmin  = storage.LicenseJobAdmin
	LicenseBasic     = storage.LicenseBasic
)

// LicenseType derives a user's license type: site_admin if the user is a Site Admin, else
// job_admin if the user holds any job or future-job permission, else basic.
func LicenseType(siteAdmin, hasJobPermission bool) string {
	switch {
	case siteAdmin:
		return LicenseSiteAdmin
	case hasJobPermission:
		return LicenseJobAdmin
	default:
		return LicenseBasic
	}
}

// record turns a stored row into the contract's license record, with its usage.
func record(r storage.UserRow, p storage.UsageParams) events.LicenseRecord {
	rec := events.LicenseRecord{
		TenantID:         r.TenantID,
		App:              r.App,
		UserID:           r.UserID,
		Name:             r.Name,
		Email:            r.Email,
		Status:           r.Status,
		Licensed:         storage.Licensed(r.Status, r.ServiceAccount),
		LicenseType:      r.LicenseType,
		SiteAdmin:        r.SiteAdmin,
		ServiceAccount:   r.ServiceAccount,
		CreatedAt:        r.CreatedAt,
		UpdatedAt:        r.UpdatedAt,
		FirstSeenAt:      r.FirstSeenAt,
		LastSeenAt:       lastSeen(r, p.ListedAt),
		RemovedAt:        r.RemovedAt,
		LastActivityAt:   r.LastActivityAt,
		LastActivityType: r.LastActivityType,
	}
	if rec.Licensed {
		rec.Usage, rec.Reason = storage.ClassifyUsage(r, p)
	}
	return rec
}

// lastSeen is when a stored user was last listed: its stored last_seen_at, or for a user not
// removed the tenant's last complete listing (listedAt) when that is later. A users listing
// writes only the users it changes (docs/schema.md, users).
func lastSeen(r storage.UserRow, listedAt time.Time) time.Time {
	if r.Status != storage.StatusRemoved && listedAt.After(r.LastSeenAt) {
		return listedAt
	}
	return r.LastSeenAt
}

// usageParams returns the parameters of the usage rule (storage/usage.go) for a tenant now,
// under its settings and license policy (nil: none).
//
// activityThrough is the time through which users' activity has been applied from the stored
// events (zero: not yet). Usage is judged as of then, never later: events stored but not yet
// applied (a crash between the two steps) must not make anyone look inactive.
func usageParams(st tenantSettings, pol *tenantPolicy, cp checkpoint, now, activityThrough time.Time) storage.UsageParams {
	p := storage.UsageParams{Now: now, InactiveAfterDays: st.inactiveAfterDays, CoverageStart: cp.CoverageStart,
		ListedAt: cp.UsersSyncedAt.UTC().Truncate(time.Second)}
	switch {
	case p.CoverageStart.IsZero():
	case activityThrough.IsZero():
		p.CoverageStart = now // the backfill is stored, its activity not applied: too early to judge
	case activityThrough.Before(now):
		p.Now = activityThrough
	}
	pol.apply(&p, now)
	return p
}
