package storage

import (
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// The usage rule: who holds a license, and whether a license is used (docs/schema.md, "The
// usage rule"). This file is its one home. ClassifyUsage is the rule in Go (the collector's
// license records, alerts and licenses API); usageSQL and reasonSQL are the same rule in SQL
// over a row of users (the dashboard queries inactive_licenses.sql and utilisation.sql take
// them as {usage} and {reason}), written from the constants below and fed by usageArgs from
// the same UsageParams. TestUsageRuleAgrees runs one table of cases through both on
// ClickHouse.

// Statuses of a user.
const (
	StatusActive      = "active"
	StatusDeactivated = "deactivated"
	StatusRemoved     = "removed"
)

// Usage states of a license, and their reasons.
const (
	UsageActive   = "active"
	UsageInactive = "inactive"
	UsageUnknown  = "unknown"

	ReasonNoRecentActivity    = "no_recent_activity"
	ReasonNeverActive         = "never_active"
	ReasonInsufficientHistory = "insufficient_history"
	ReasonNoUsageData         = "no_usage_data" // the Audit Log is not available for the tenant
)

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
	// ListedAt is the start of the tenant's last complete users listing, to the second (zero:
	// none yet). It is not part of the rule: a user not removed was listed then, so readers
	// show the later of it and the stored last_seen_at, which a listing that changes nothing
	// about a user no longer rewrites (docs/schema.md, users).
	ListedAt time.Time
}

// Threshold is the start of the activity window: Now minus InactiveAfterDays days.
func (p UsageParams) Threshold() time.Time {
	return p.Now.Add(-time.Duration(p.InactiveAfterDays) * 24 * time.Hour)
}

// covered reports whether the Audit Log is known complete over the whole window.
func (p UsageParams) covered() bool {
	return !p.CoverageStart.IsZero() && !p.CoverageStart.After(p.Threshold())
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
	if !p.covered() || !createdAt.Before(t) {
		return UsageUnknown, ReasonInsufficientHistory
	}
	if lastActivity == nil {
		return UsageInactive, ReasonNeverActive
	}
	return UsageInactive, ReasonNoRecentActivity
}

// The rule in SQL over a row of users. @threshold is Threshold in Unix seconds rounded up
// (unix): the columns hold whole seconds, so x < @threshold exactly when x is before
// Threshold. @usage_data and @covered are CoverageStart's two tests, made in Go (usageArgs).
var (
	// licensedSQL is Licensed.
	licensedSQL = fmt.Sprintf("(status = %s AND service_account = 0)", quote(StatusActive))
	// usageSQL is ClassifyUsage's usage of a license holder, '' for a user without a license.
	usageSQL = fmt.Sprintf("multiIf(NOT %s, '', %s, %s, @usage_data = 0 OR %s, %s, %s)",
		licensedSQL, activeSinceSQL, quote(UsageActive), unjudgeableSQL, quote(UsageUnknown), quote(UsageInactive))
	// reasonSQL is ClassifyUsage's reason, '' for an active license or a user without one.
	reasonSQL = fmt.Sprintf("multiIf(NOT %s OR %s, '', @usage_data = 0, %s, %s, %s, isNull(last_activity_at), %s, %s)",
		licensedSQL, activeSinceSQL, quote(ReasonNoUsageData), unjudgeableSQL, quote(ReasonInsufficientHistory),
		quote(ReasonNeverActive), quote(ReasonNoRecentActivity))
)

const (
	// activeSinceSQL: activity at or after the threshold.
	activeSinceSQL = "ifNull(last_activity_at >= toDateTime(@threshold, 'UTC'), 0)"
	// unjudgeableSQL: the history does not reach back to the threshold, or the user is newer.
	unjudgeableSQL = "(@covered = 0 OR created_at >= toDateTime(@threshold, 'UTC'))"
)

// usagePlaceholders are the parts of the rule the dashboard queries name.
var usagePlaceholders = strings.NewReplacer(
	"{usage}", usageSQL,
	"{reason}", reasonSQL,
	"{licensed}", licensedSQL,
	"{usage_active}", quote(UsageActive),
	"{usage_inactive}", quote(UsageInactive),
)

// usageArgs binds the parameters of usageSQL and reasonSQL for p.
func usageArgs(p UsageParams) []any {
	return []any{
		clickhouse.Named("threshold", unix(p.Threshold())),
		clickhouse.Named("usage_data", b2u(!p.CoverageStart.IsZero())),
		clickhouse.Named("covered", b2u(p.covered())),
	}
}

// quote writes a constant of this file as a SQL string literal (they hold no quote).
func quote(s string) string { return "'" + s + "'" }
