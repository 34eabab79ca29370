package storage_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/connectors"
	"github.com/seatwatch/greenhouse-collector/storage"
	"github.com/seatwatch/greenhouse-collector/storage/storagetest"
)

// TestUsageRuleAgrees: the usage rule has one home (storage/usage.go) written twice, in Go
// (ClassifyUsage, Licensed) and in SQL (the {usage} and {reason} of the dashboard queries).
// Every case goes through both, on ClickHouse: the SQL classification of the user, the
// inactive list and the utilisation counts must say what the Go function says.
func TestUsageRuleAgrees(t *testing.T) {
	t.Parallel()
	s := storagetest.NewStore(t)
	ctx := t.Context()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	at := func(d time.Duration) *time.Time { v := now.Add(-d); return &v }
	old := now.Add(-400 * day)
	covered := storage.UsageParams{Now: now, InactiveAfterDays: 30, CoverageStart: now.Add(-31 * day)}
	fractional := covered
	fractional.Now = now.Add(500 * time.Millisecond)
	short := storage.UsageParams{Now: now, InactiveAfterDays: 60, CoverageStart: now.Add(-30 * day)}
	noData := storage.UsageParams{Now: now, InactiveAfterDays: 30}
	// The policy's parts: exemptions, thresholds per license type, a grace period.
	exempt := covered
	exempt.Exempt = storage.Exemptions{IDs: []int64{999, 0}, Emails: []string{"boss@x"}}
	perType := covered
	perType.DaysByType = map[string]int{storage.LicenseSiteAdmin: 20, storage.LicenseJobAdmin: 60}
	perTypeLong := perType
	perTypeLong.CoverageStart = now.Add(-61 * day)
	grace := covered
	grace.GraceDays = 45
	graceShort := covered
	graceShort.GraceDays = 14
	// Options of a case's row: its id, e-mail, license type and license start.
	id := func(n int64) func(*storage.UserRow) { return func(r *storage.UserRow) { r.UserID = n } }
	email := func(e string) func(*storage.UserRow) { return func(r *storage.UserRow) { r.Email = e } }
	typ := func(t string) func(*storage.UserRow) { return func(r *storage.UserRow) { r.LicenseType = t } }
	licensed := func(d time.Duration) func(*storage.UserRow) { return func(r *storage.UserRow) { r.LicensedAt = at(d) } }
	tests := []struct {
		name       string
		status     string
		service    bool
		created    time.Time
		last       *time.Time
		params     storage.UsageParams
		wantUsage  string
		wantReason string
		opts       []func(*storage.UserRow)
	}{
		{"recent activity", storage.StatusActive, false, old, at(2 * day), covered, storage.UsageActive, "", nil},
		{"activity exactly at threshold", storage.StatusActive, false, old, at(30 * day), covered, storage.UsageActive, "", nil},
		{"activity a second before threshold", storage.StatusActive, false, old, at(30*day + time.Second), covered, storage.UsageInactive, storage.ReasonNoRecentActivity, nil},
		{"fractional now: activity at the whole second before threshold", storage.StatusActive, false, old, at(30 * day), fractional, storage.UsageInactive, storage.ReasonNoRecentActivity, nil},
		{"stale activity", storage.StatusActive, false, old, at(45 * day), covered, storage.UsageInactive, storage.ReasonNoRecentActivity, nil},
		{"no activity observed, created before the history", storage.StatusActive, false, old, nil, covered, storage.UsageInactive, storage.ReasonNoActivityObserved, nil},
		{"never active, created within the history", storage.StatusActive, false, now.Add(-30*day - time.Hour), nil, covered, storage.UsageInactive, storage.ReasonNeverActive, nil},
		{"created exactly at the history's start", storage.StatusActive, false, now.Add(-31 * day), nil, covered, storage.UsageInactive, storage.ReasonNeverActive, nil},
		{"created a second before the history's start", storage.StatusActive, false, now.Add(-31*day - time.Second), nil, covered, storage.UsageInactive, storage.ReasonNoActivityObserved, nil},
		{"new user without activity", storage.StatusActive, false, now.Add(-5 * day), nil, covered, storage.UsageUnknown, storage.ReasonInsufficientHistory, nil},
		{"created exactly at threshold", storage.StatusActive, false, now.Add(-30 * day), nil, covered, storage.UsageUnknown, storage.ReasonInsufficientHistory, nil},
		{"created a second before threshold", storage.StatusActive, false, now.Add(-30*day - time.Second), nil, covered, storage.UsageInactive, storage.ReasonNeverActive, nil},
		{"new user with activity", storage.StatusActive, false, now.Add(-5 * day), at(time.Hour), covered, storage.UsageActive, "", nil},
		{"history too short", storage.StatusActive, false, old, nil, short, storage.UsageUnknown, storage.ReasonInsufficientHistory, nil},
		{"history too short but active", storage.StatusActive, false, old, at(day), short, storage.UsageActive, "", nil},
		{"history from exactly the threshold", storage.StatusActive, false, old, nil, storage.UsageParams{Now: now, InactiveAfterDays: 30, CoverageStart: now.Add(-30 * day)}, storage.UsageInactive, storage.ReasonNoActivityObserved, nil},
		{"history from a second after the threshold", storage.StatusActive, false, old, nil, storage.UsageParams{Now: now, InactiveAfterDays: 30, CoverageStart: now.Add(-30*day + time.Second)}, storage.UsageUnknown, storage.ReasonInsufficientHistory, nil},
		{"no usage data", storage.StatusActive, false, old, nil, noData, storage.UsageUnknown, storage.ReasonNoUsageData, nil},
		{"no usage data but old activity kept", storage.StatusActive, false, old, at(day), noData, storage.UsageActive, "", nil},
		{"no usage data, stale activity", storage.StatusActive, false, old, at(45 * day), noData, storage.UsageUnknown, storage.ReasonNoUsageData, nil},
		{"service account: no license", storage.StatusActive, true, old, nil, covered, "", "", nil},
		{"deactivated: no license", storage.StatusDeactivated, false, old, nil, covered, "", "", nil},
		{"removed: no license", storage.StatusRemoved, false, old, at(45 * day), covered, "", "", nil},
		{"exempt by id", storage.StatusActive, false, old, nil, exempt, storage.UsageExempt, "", []func(*storage.UserRow){id(999)}},
		{"exempt by id, active", storage.StatusActive, false, old, at(day), exempt, storage.UsageExempt, "", []func(*storage.UserRow){id(999)}},
		{"exempt by e-mail, another case", storage.StatusActive, false, old, nil, exempt, storage.UsageExempt, "", []func(*storage.UserRow){email("Boss@X")}},
		{"exempt e-mail that only contains another", storage.StatusActive, false, old, nil, exempt, storage.UsageInactive, storage.ReasonNoActivityObserved, []func(*storage.UserRow){email("big.boss@x")}},
		{"exemptions without this user", storage.StatusActive, false, old, nil, exempt, storage.UsageInactive, storage.ReasonNoActivityObserved, nil},
		{"exempt but deactivated: no license", storage.StatusDeactivated, false, old, nil, exempt, "", "", []func(*storage.UserRow){id(999)}},
		{"exemption lists, user without e-mail", storage.StatusActive, false, old, nil, exempt, storage.UsageInactive, storage.ReasonNoActivityObserved, []func(*storage.UserRow){email("")}},
		{"site admin's shorter threshold: inactive", storage.StatusActive, false, old, at(25 * day), perType, storage.UsageInactive, storage.ReasonNoRecentActivity, []func(*storage.UserRow){typ(storage.LicenseSiteAdmin)}},
		{"basic keeps the tenant's threshold", storage.StatusActive, false, old, at(25 * day), perType, storage.UsageActive, "", nil},
		{"job admin's longer threshold: active", storage.StatusActive, false, old, at(45 * day), perType, storage.UsageActive, "", []func(*storage.UserRow){typ(storage.LicenseJobAdmin)}},
		{"job admin's longer threshold beyond the history", storage.StatusActive, false, old, at(75 * day), perType, storage.UsageUnknown, storage.ReasonInsufficientHistory, []func(*storage.UserRow){typ(storage.LicenseJobAdmin)}},
		{"job admin's longer threshold within a longer history", storage.StatusActive, false, old, at(75 * day), perTypeLong, storage.UsageInactive, storage.ReasonNoRecentActivity, []func(*storage.UserRow){typ(storage.LicenseJobAdmin)}},
		{"created within the grace period", storage.StatusActive, false, now.Add(-40 * day), nil, grace, storage.UsageUnknown, storage.ReasonGracePeriod, nil},
		{"created exactly at the grace period's start", storage.StatusActive, false, now.Add(-45 * day), nil, grace, storage.UsageUnknown, storage.ReasonGracePeriod, nil},
		{"created a second before the grace period", storage.StatusActive, false, now.Add(-45*day - time.Second), nil, grace, storage.UsageInactive, storage.ReasonNoActivityObserved, nil},
		{"first licensed within the grace period", storage.StatusActive, false, old, nil, graceShort, storage.UsageUnknown, storage.ReasonGracePeriod, []func(*storage.UserRow){licensed(10 * day)}},
		{"first licensed before the grace period", storage.StatusActive, false, old, at(40 * day), graceShort, storage.UsageInactive, storage.ReasonNoRecentActivity, []func(*storage.UserRow){licensed(20 * day)}},
		{"grace period but active", storage.StatusActive, false, now.Add(-40 * day), at(day), grace, storage.UsageActive, "", nil},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tenant := fmt.Sprintf("rule-%d", i)
			row := storage.UserRow{TenantID: tenant, App: connectors.AppGreenhouse, UserID: int64(i + 1), Name: "N", Email: "e@x",
				Status: tc.status, LicenseType: storage.LicenseBasic, ServiceAccount: tc.service, CreatedAt: tc.created, LastActivityAt: tc.last, Version: 1}
			for _, o := range tc.opts {
				o(&row)
			}
			require.NoError(t, s.UpsertUsers(ctx, []storage.UserRow{row}))

			usage, reason := "", ""
			if storage.Licensed(tc.status, tc.service) {
				usage, reason = storage.ClassifyUsage(row, tc.params)
			}
			assert.Equal(t, [2]string{tc.wantUsage, tc.wantReason}, [2]string{usage, reason}, "Go")

			bySQL, err := s.UsageOfUsers(ctx, tenant, connectors.AppGreenhouse, tc.params)
			require.NoError(t, err)
			assert.Equal(t, [2]string{usage, reason}, bySQL[row.UserID], "SQL ({usage}, {reason})")

			inactive, err := s.InactiveLicenses(ctx, tenant, connectors.AppGreenhouse, tc.params)
			require.NoError(t, err)
			if usage == storage.UsageInactive {
				require.Len(t, inactive, 1, "InactiveLicenses")
				assert.Equal(t, reason, inactive[0].Reason, "InactiveLicenses")
			} else {
				assert.Empty(t, inactive, "InactiveLicenses")
			}

			u, err := s.Utilisation(ctx, tenant, connectors.AppGreenhouse, tc.params)
			require.NoError(t, err)
			count := func(want string) int {
				if usage == want {
					return 1
				}
				return 0
			}
			assert.Equal(t, []int{count(storage.UsageActive), count(storage.UsageInactive), count(storage.UsageExempt), count(storage.UsageUnknown)},
				[]int{u.Active, u.Inactive, u.Exempt, u.Unknown}, "Utilisation: active, inactive, exempt, unknown")
			assert.Equal(t, u, utilisationOfStored(t, s, tenant, tc.params), "UtilisationOf")
		})
	}
}

// utilisationOfStored is storage.UtilisationOf of the tenant's users as stored.
func utilisationOfStored(t *testing.T, s *storage.Store, tenant string, p storage.UsageParams) storage.Utilisation {
	t.Helper()
	var rows []storage.UserRow
	require.NoError(t, s.CurrentUsers(t.Context(), tenant, connectors.AppGreenhouse, func(r storage.UserRow) error {
		rows = append(rows, r)
		return nil
	}))
	return storage.UtilisationOf(slices.Values(rows), p)
}

// TestUtilisationOfAgreesWithTheQuery: a users sync counts its tenant's utilisation in Go
// (storage.UtilisationOf) instead of running utilisation.sql; over a tenant of every status,
// license type, service account and usage, under several policies, the two agree in every
// field.
func TestUtilisationOfAgreesWithTheQuery(t *testing.T) {
	t.Parallel()
	s := storagetest.NewStore(t)
	ctx := t.Context()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	statuses := []string{storage.StatusActive, storage.StatusActive, storage.StatusDeactivated, storage.StatusRemoved}
	types := append(slices.Clone(storage.LicenseTypes), "custom_type")
	var rows []storage.UserRow
	for i := range 240 {
		r := storage.UserRow{TenantID: "util", App: connectors.AppGreenhouse, UserID: int64(i + 1), Name: "N", Email: fmt.Sprintf("u%d@x", i),
			Status: statuses[i%len(statuses)], LicenseType: types[i%len(types)], ServiceAccount: i%7 == 0,
			CreatedAt: now.Add(-time.Duration(i%90) * day), Version: 1}
		if i%3 != 0 {
			at := now.Add(-time.Duration(i%50)*day - time.Hour)
			r.LastActivityAt = &at
		}
		if i%11 == 0 {
			at := now.Add(-time.Duration(i%20) * day)
			r.LicensedAt = &at
		}
		rows = append(rows, r)
	}
	require.NoError(t, s.UpsertUsers(ctx, rows))
	covered := storage.UsageParams{Now: now, InactiveAfterDays: 30, CoverageStart: now.Add(-60 * day)}
	policy := covered
	policy.DaysByType = map[string]int{storage.LicenseSiteAdmin: 20, storage.LicenseJobAdmin: 45}
	policy.GraceDays = 14
	policy.Exempt = storage.Exemptions{IDs: []int64{5, 6}, Emails: []string{"U9@X"}}
	for name, p := range map[string]storage.UsageParams{
		"covered": covered, "policy": policy, "no usage data": {Now: now, InactiveAfterDays: 30},
		"short history": {Now: now, InactiveAfterDays: 30, CoverageStart: now.Add(-10 * day)},
	} {
		want, err := s.Utilisation(ctx, "util", connectors.AppGreenhouse, p)
		require.NoError(t, err)
		require.NotZero(t, want.Licenses, name)
		assert.Equal(t, want, utilisationOfStored(t, s, "util", p), name)
	}
}
