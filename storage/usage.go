package storage

import (
	"fmt"
	"slices"
	"strconv"
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
// ClickHouse. A tenant's license policy (thresholds per license type, a grace period,
// exemptions) enters the rule through UsageParams.

// Statuses of a user.
const (
	StatusActive      = "active"
	StatusDeactivated = "deactivated"
	StatusRemoved     = "removed"
)

// License types (docs/events.md, saas.user.changed).
const (
	LicenseSiteAdmin = "site_admin"
	LicenseJobAdmin  = "job_admin"
	LicenseBasic     = "basic"
)

// LicenseTypes lists the license types in the contract's order.
var LicenseTypes = []string{LicenseSiteAdmin, LicenseJobAdmin, LicenseBasic}

// Usage states of a license, and their reasons.
const (
	UsageActive   = "active"
	UsageInactive = "inactive"
	UsageUnknown  = "unknown"
	// UsageExempt is a license the tenant's policy exempts: never inactive, left out of
	// utilisation and waste.
	UsageExempt = "exempt"

	ReasonNoRecentActivity = "no_recent_activity" // the last activity is before the threshold
	// ReasonNoActivityObserved: no activity in the whole observed history (the Audit Log
	// from CoverageStart), for a user created before it: they may have acted before.
	ReasonNoActivityObserved = "no_activity_observed"
	// ReasonNeverActive: no activity ever, and the whole of the user's existence is observed
	// (created at or after CoverageStart).
	ReasonNeverActive         = "never_active"
	ReasonInsufficientHistory = "insufficient_history"
	ReasonNoUsageData         = "no_usage_data" // the Audit Log is not available for the tenant
	// ReasonGracePeriod: created or first licensed within the policy's grace period.
	ReasonGracePeriod = "grace_period"
)

// Licensed reports whether a user with this status holds a license: every active,
// non-service user does.
func Licensed(status string, serviceAccount bool) bool {
	return status == StatusActive && !serviceAccount
}

// UsageParams are what a usage classification depends on besides the user.
type UsageParams struct {
	Now time.Time
	// InactiveAfterDays is the tenant's threshold: days without activity before a license is
	// inactive.
	InactiveAfterDays int
	// DaysByType overrides InactiveAfterDays for a license type (the policy's thresholds).
	DaysByType map[string]int
	// CoverageStart is the time from which the tenant's Audit Log is known to be complete in
	// storage (the start of the first completed backfill). Zero means no usage data at all.
	CoverageStart time.Time
	// GraceDays keeps a license created or first licensed within that many days before Now
	// out of inactive (0: no grace).
	GraceDays int
	// Exempt are the users the policy exempts at Now.
	Exempt Exemptions
	// ListedAt is the start of the tenant's last complete users listing, to the second (zero:
	// none yet). It is not part of the rule: a user not removed was listed then, so readers
	// show the later of it and the stored last_seen_at, which a listing that changes nothing
	// about a user no longer rewrites (docs/schema.md, users).
	ListedAt time.Time
}

// Exemptions are users exempt from the usage rule, by id and by e-mail (compared without
// regard to ASCII case).
type Exemptions struct {
	IDs    []int64
	Emails []string // lower-cased (LowerEmail)
}

// Has reports whether a user with this id or e-mail is exempt.
func (e Exemptions) Has(userID int64, email string) bool {
	return slices.Contains(e.IDs, userID) || email != "" && slices.Contains(e.Emails, LowerEmail(email))
}

// LowerEmail lower-cases the ASCII letters of an e-mail address, as lower() does in SQL.
func LowerEmail(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// DaysFor is the inactivity threshold in days of a license type.
func (p UsageParams) DaysFor(licenseType string) int {
	if d, ok := p.DaysByType[licenseType]; ok && d > 0 {
		return d
	}
	return p.InactiveAfterDays
}

// ThresholdFor is the start of a license type's activity window: Now minus its days.
func (p UsageParams) ThresholdFor(licenseType string) time.Time {
	return p.Now.Add(-time.Duration(p.DaysFor(licenseType)) * 24 * time.Hour)
}

// coveredFor reports whether the Audit Log is known complete over a license type's whole
// window.
func (p UsageParams) coveredFor(licenseType string) bool {
	return !p.CoverageStart.IsZero() && !p.CoverageStart.After(p.ThresholdFor(licenseType))
}

// graceFrom is the start of the grace period (zero: none).
func (p UsageParams) graceFrom() time.Time {
	if p.GraceDays <= 0 {
		return time.Time{}
	}
	return p.Now.Add(-time.Duration(p.GraceDays) * 24 * time.Hour)
}

// ClassifyUsage returns the usage state of a license holder and its reason:
//   - exempt: the policy exempts the user (no reason);
//   - active: activity at or after the license type's threshold;
//   - unknown/no_usage_data: no Audit Log coverage at all;
//   - unknown/insufficient_history: the observed history does not reach back to the
//     threshold, or the user was created after it (too new to judge);
//   - unknown/grace_period: created or first licensed within the grace period;
//   - inactive otherwise: never_active (no activity, and created within the observed
//     history), no_activity_observed (no activity in the observed history, created before
//     it) or no_recent_activity (the last activity is before the threshold).
//
// It never guesses: inactive is returned only when the whole window is covered.
func ClassifyUsage(u UserRow, p UsageParams) (usage, reason string) {
	if p.Exempt.Has(u.UserID, u.Email) {
		return UsageExempt, ""
	}
	t := p.ThresholdFor(u.LicenseType)
	if u.LastActivityAt != nil && !u.LastActivityAt.Before(t) {
		return UsageActive, ""
	}
	if p.CoverageStart.IsZero() {
		return UsageUnknown, ReasonNoUsageData
	}
	if !p.coveredFor(u.LicenseType) || !u.CreatedAt.Before(t) {
		return UsageUnknown, ReasonInsufficientHistory
	}
	if g := p.graceFrom(); !g.IsZero() && !u.licenseStart().Before(g) {
		return UsageUnknown, ReasonGracePeriod
	}
	switch {
	case u.LastActivityAt != nil:
		return UsageInactive, ReasonNoRecentActivity
	case !u.CreatedAt.Before(p.CoverageStart):
		return UsageInactive, ReasonNeverActive
	}
	return UsageInactive, ReasonNoActivityObserved
}

// licenseStart is when the user's first license began: LicensedAt, or CreatedAt when unknown.
func (u UserRow) licenseStart() time.Time {
	if u.LicensedAt != nil {
		return *u.LicensedAt
	}
	return u.CreatedAt
}

// The rule in SQL over a row of users. Times are bound as Unix seconds rounded up (unix): the
// columns hold whole seconds, so x < @t exactly when x is before t. The per-type parameters
// (@threshold_<type>, @covered_<type>) are chosen by perType; @usage_data and @covered_* are
// CoverageStart's tests, made in Go (usageArgs).
var (
	// licensedSQL is Licensed.
	licensedSQL = fmt.Sprintf("(status = %s AND service_account = 0)", quote(StatusActive))
	// thresholdSQL is ThresholdFor the row's license type.
	thresholdSQL = perType("toDateTime(@threshold%s, 'UTC')")
	// activeSinceSQL: activity at or after the threshold.
	activeSinceSQL = "ifNull(last_activity_at >= " + thresholdSQL + ", 0)"
	// unjudgeableSQL: the history does not reach back to the threshold, or the user is newer.
	unjudgeableSQL = "(" + perType("@covered%s") + " = 0 OR created_at >= " + thresholdSQL + ")"
	// exemptSQL is Exemptions.Has: the ids and e-mails bound as comma-separated lists.
	exemptSQL = "(has(splitByChar(',', @exempt_ids), toString(user_id)) OR (@exempt_emails != '' AND email != '' AND has(splitByChar(',', @exempt_emails), lower(email))))"
	// graceSQL: the license began within the grace period.
	graceSQL = "(@grace_from > 0 AND ifNull(licensed_at, created_at) >= toDateTime(@grace_from, 'UTC'))"
	// usageSQL is ClassifyUsage's usage of a license holder, '' for a user without a license.
	usageSQL = fmt.Sprintf("multiIf(NOT %s, '', %s, %s, %s, %s, @usage_data = 0 OR %s OR %s, %s, %s)",
		licensedSQL, exemptSQL, quote(UsageExempt), activeSinceSQL, quote(UsageActive), unjudgeableSQL, graceSQL,
		quote(UsageUnknown), quote(UsageInactive))
	// reasonSQL is ClassifyUsage's reason, '' for an exempt or active license or a user
	// without one.
	reasonSQL = fmt.Sprintf("multiIf(NOT %s OR %s OR %s, '', @usage_data = 0, %s, %s, %s, %s, %s, "+
		"isNotNull(last_activity_at), %s, created_at >= toDateTime(@coverage_start, 'UTC'), %s, %s)",
		licensedSQL, exemptSQL, activeSinceSQL, quote(ReasonNoUsageData), unjudgeableSQL, quote(ReasonInsufficientHistory),
		graceSQL, quote(ReasonGracePeriod), quote(ReasonNoRecentActivity), quote(ReasonNeverActive), quote(ReasonNoActivityObserved))
)

// perType writes a choice by the row's license type of the parameters format names with
// the suffix _<type>, and without a suffix for any other type.
func perType(format string) string {
	var b strings.Builder
	b.WriteString("multiIf(")
	for _, typ := range LicenseTypes {
		fmt.Fprintf(&b, "license_type = %s, %s, ", quote(typ), fmt.Sprintf(format, "_"+typ))
	}
	b.WriteString(fmt.Sprintf(format, "") + ")")
	return b.String()
}

// usagePlaceholders are the parts of the rule the dashboard queries name.
var usagePlaceholders = strings.NewReplacer(
	"{usage}", usageSQL,
	"{reason}", reasonSQL,
	"{licensed}", licensedSQL,
	"{usage_active}", quote(UsageActive),
	"{usage_inactive}", quote(UsageInactive),
	"{usage_exempt}", quote(UsageExempt),
)

// usageArgs binds the parameters of usageSQL and reasonSQL for p.
func usageArgs(p UsageParams) []any {
	graceFrom := int64(0) // none
	if g := p.graceFrom(); !g.IsZero() {
		graceFrom = max(unix(g), 1)
	}
	args := []any{
		clickhouse.Named("threshold", unix(p.ThresholdFor(""))),
		clickhouse.Named("covered", b2u(p.coveredFor(""))),
		clickhouse.Named("usage_data", b2u(!p.CoverageStart.IsZero())),
		clickhouse.Named("coverage_start", max(unix(p.CoverageStart), 0)),
		clickhouse.Named("grace_from", graceFrom),
		clickhouse.Named("exempt_ids", joinIDs(p.Exempt.IDs)),
		clickhouse.Named("exempt_emails", strings.Join(p.Exempt.Emails, ",")),
	}
	for _, typ := range LicenseTypes {
		args = append(args,
			clickhouse.Named("threshold_"+typ, unix(p.ThresholdFor(typ))),
			clickhouse.Named("covered_"+typ, b2u(p.coveredFor(typ))))
	}
	return args
}

// joinIDs writes ids as a comma-separated list.
func joinIDs(ids []int64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatInt(id, 10)
	}
	return strings.Join(s, ",")
}

// quote writes a constant of this file as a SQL string literal (they hold no quote).
func quote(s string) string { return "'" + s + "'" }
