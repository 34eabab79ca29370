package storage_test

import (
	"fmt"
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
	tests := []struct {
		name       string
		status     string
		service    bool
		created    time.Time
		last       *time.Time
		params     storage.UsageParams
		wantUsage  string
		wantReason string
	}{
		{"recent activity", storage.StatusActive, false, old, at(2 * day), covered, storage.UsageActive, ""},
		{"activity exactly at threshold", storage.StatusActive, false, old, at(30 * day), covered, storage.UsageActive, ""},
		{"activity a second before threshold", storage.StatusActive, false, old, at(30*day + time.Second), covered, storage.UsageInactive, storage.ReasonNoRecentActivity},
		{"fractional now: activity at the whole second before threshold", storage.StatusActive, false, old, at(30 * day), fractional, storage.UsageInactive, storage.ReasonNoRecentActivity},
		{"stale activity", storage.StatusActive, false, old, at(45 * day), covered, storage.UsageInactive, storage.ReasonNoRecentActivity},
		{"never active", storage.StatusActive, false, old, nil, covered, storage.UsageInactive, storage.ReasonNeverActive},
		{"new user without activity", storage.StatusActive, false, now.Add(-5 * day), nil, covered, storage.UsageUnknown, storage.ReasonInsufficientHistory},
		{"created exactly at threshold", storage.StatusActive, false, now.Add(-30 * day), nil, covered, storage.UsageUnknown, storage.ReasonInsufficientHistory},
		{"created a second before threshold", storage.StatusActive, false, now.Add(-30*day - time.Second), nil, covered, storage.UsageInactive, storage.ReasonNeverActive},
		{"new user with activity", storage.StatusActive, false, now.Add(-5 * day), at(time.Hour), covered, storage.UsageActive, ""},
		{"history too short", storage.StatusActive, false, old, nil, short, storage.UsageUnknown, storage.ReasonInsufficientHistory},
		{"history too short but active", storage.StatusActive, false, old, at(day), short, storage.UsageActive, ""},
		{"history from exactly the threshold", storage.StatusActive, false, old, nil, storage.UsageParams{Now: now, InactiveAfterDays: 30, CoverageStart: now.Add(-30 * day)}, storage.UsageInactive, storage.ReasonNeverActive},
		{"history from a second after the threshold", storage.StatusActive, false, old, nil, storage.UsageParams{Now: now, InactiveAfterDays: 30, CoverageStart: now.Add(-30*day + time.Second)}, storage.UsageUnknown, storage.ReasonInsufficientHistory},
		{"no usage data", storage.StatusActive, false, old, nil, noData, storage.UsageUnknown, storage.ReasonNoUsageData},
		{"no usage data but old activity kept", storage.StatusActive, false, old, at(day), noData, storage.UsageActive, ""},
		{"no usage data, stale activity", storage.StatusActive, false, old, at(45 * day), noData, storage.UsageUnknown, storage.ReasonNoUsageData},
		{"service account: no license", storage.StatusActive, true, old, nil, covered, "", ""},
		{"deactivated: no license", storage.StatusDeactivated, false, old, nil, covered, "", ""},
		{"removed: no license", storage.StatusRemoved, false, old, at(45 * day), covered, "", ""},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tenant := fmt.Sprintf("rule-%d", i)
			row := storage.UserRow{TenantID: tenant, App: connectors.AppGreenhouse, UserID: int64(i + 1), Name: "N", Email: "e@x",
				Status: tc.status, LicenseType: "basic", ServiceAccount: tc.service, CreatedAt: tc.created, LastActivityAt: tc.last, Version: 1}
			require.NoError(t, s.UpsertUsers(ctx, []storage.UserRow{row}))

			usage, reason := "", ""
			if storage.Licensed(tc.status, tc.service) {
				usage, reason = storage.ClassifyUsage(tc.created, tc.last, tc.params)
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
			assert.Equal(t, []int{count(storage.UsageActive), count(storage.UsageInactive), count(storage.UsageUnknown)},
				[]int{u.Active, u.Inactive, u.Unknown}, "Utilisation: active, inactive, unknown")
		})
	}
}
