package collector

import (
	"time"
)

// Statuses of a user (PRODUCT.md 3).
const (
	StatusActive      = "active"
	StatusDeactivated = "deactivated"
	StatusRemoved     = "removed"
)

// License types (PRODUCT.md 3).
const (
	LicenseSiteAdmin = "site_admin"
	LicenseJobAdmin  = "job_admin"
	LicenseBasic     = "basic"
)

// Usage states and their reasons.
const (
	UsageActive   = "active"
	UsageInactive = "inactive"
	UsageUnknown  = "unknown"

	ReasonNoRecentActivity    = "no_recent_activity"
	ReasonNeverActive         = "never_active"
	ReasonInsufficientHistory = "insufficient_history"
	ReasonNoUsageData         = "no_usage_data" // the Audit Log is not available for the tenant
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

// Licensed reports whether a user with this status holds a license: every active,
// non-service user does.
func Licensed(status string, serviceAccount bool) bool {
	return status == StatusActive && !serviceAccount
}

// UsageParams are what a usage classification depends on besides the user.
type UsageParams struct {
	Now               time.Time
	InactiveAfterDays int
	// CoverageStart is the time from which the tenant's Audit Log is known to be complete in
	// storage (the start of the first completed backfill). Zero means no usage data at all.
	CoverageStart time.Time
}

// Threshold is the start of the activity window: Now minus InactiveAfterDays days.
func (p UsageParams) Threshold() time.Time {
	return p.Now.Add(-time.Duration(p.InactiveAfterDays) * 24 * time.Hour)
}

// ClassifyUsage returns the usage state of a license holder and its reason:
//   - active: activity at or after the threshold;
//   - unknown/no_usage_data: no Audit Log coverage at all;
//   - unknown/insufficient_history: the observed history does not reach back to the threshold,
//     or the user was created after it (too new to judge);
//   - inactive/never_active or inactive/no_recent_activity otherwise.
//
// It never guesses: inactive is returned only when the whole window is covered.
func ClassifyUsage(createdAt time.Time, lastActivity *time.Time, p UsageParams) (usage, reason string) {
	t := p.Threshold()
	if lastActivity != nil && !lastActivity.Before(t) {
		return UsageActive, ""
	}
	if p.CoverageStart.IsZero() {
		return UsageUnknown, ReasonNoUsageData
	}
	if p.CoverageStart.After(t) || !createdAt.Before(t) {
		return UsageUnknown, ReasonInsufficientHistory
	}
	if lastActivity == nil {
		return UsageInactive, ReasonNeverActive
	}
	return UsageInactive, ReasonNoRecentActivity
}
