package collector

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/seatwatch/greenhouse-collector/events"
)

func TestLicenseType(t *testing.T) {
	assert.Equal(t, LicenseSiteAdmin, LicenseType(true, true))
	assert.Equal(t, LicenseSiteAdmin, LicenseType(true, false))
	assert.Equal(t, LicenseJobAdmin, LicenseType(false, true))
	assert.Equal(t, LicenseBasic, LicenseType(false, false))
}

func TestLicensed(t *testing.T) {
	assert.True(t, Licensed(StatusActive, false))
	assert.False(t, Licensed(StatusActive, true), "service accounts hold no license")
	assert.False(t, Licensed(StatusDeactivated, false))
	assert.False(t, Licensed(StatusRemoved, false))
}

func TestClassifyUsage(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	at := func(d time.Duration) *time.Time { v := now.Add(-d); return &v }
	old := now.Add(-400 * day)
	covered := UsageParams{Now: now, InactiveAfterDays: 30, CoverageStart: now.Add(-31 * day)}
	tests := []struct {
		name       string
		created    time.Time
		last       *time.Time
		params     UsageParams
		wantUsage  string
		wantReason string
	}{
		{"recent activity", old, at(2 * day), covered, UsageActive, ""},
		{"activity exactly at threshold", old, at(30 * day), covered, UsageActive, ""},
		{"stale activity", old, at(45 * day), covered, UsageInactive, ReasonNoRecentActivity},
		{"never active", old, nil, covered, UsageInactive, ReasonNeverActive},
		{"new user without activity", now.Add(-5 * day), nil, covered, UsageUnknown, ReasonInsufficientHistory},
		{"new user with activity", now.Add(-5 * day), at(time.Hour), covered, UsageActive, ""},
		{"history too short", old, nil, UsageParams{Now: now, InactiveAfterDays: 60, CoverageStart: now.Add(-30 * day)}, UsageUnknown, ReasonInsufficientHistory},
		{"history too short but active", old, at(day), UsageParams{Now: now, InactiveAfterDays: 60, CoverageStart: now.Add(-30 * day)}, UsageActive, ""},
		{"no usage data", old, nil, UsageParams{Now: now, InactiveAfterDays: 30}, UsageUnknown, ReasonNoUsageData},
		{"no usage data but old activity kept", old, at(day), UsageParams{Now: now, InactiveAfterDays: 30}, UsageActive, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, r := ClassifyUsage(tt.created, tt.last, tt.params)
			assert.Equal(t, tt.wantUsage, u)
			assert.Equal(t, tt.wantReason, r)
		})
	}
}

// TestUsageJudgedAsOfAppliedActivity: stored but not yet applied events (a crash between
// storing a poll and applying its activity) never make a license look inactive.
func TestUsageJudgedAsOfAppliedActivity(t *testing.T) {
	s := &Service{cfg: DefaultConfig()}
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	created := now.AddDate(0, 0, -90)
	cp := checkpoint{CoverageStart: now.AddDate(0, 0, -31), AuditThrough: now}

	// Backfill stored, activity not applied yet: too early to judge.
	p := s.usageParams(events.Connection{}, cp, now, time.Time{})
	usage, reason := ClassifyUsage(created, nil, p)
	if usage != UsageUnknown || reason != ReasonInsufficientHistory {
		t.Fatalf("before the activity is applied: %s/%s, want unknown/insufficient_history", usage, reason)
	}

	// Applied through an hour ago: judged as of then.
	applied := now.Add(-time.Hour)
	p = s.usageParams(events.Connection{}, cp, now, applied)
	if !p.Now.Equal(applied) {
		t.Fatalf("judged as of %s, want %s", p.Now, applied)
	}
	last := applied.AddDate(0, 0, -30).Add(time.Minute) // active as of the applied time
	if usage, _ := ClassifyUsage(created, &last, p); usage != UsageActive {
		t.Fatalf("last activity within 30 days of the applied time: %s, want active", usage)
	}
	old := now.AddDate(0, 0, -40)
	if usage, reason := ClassifyUsage(created, &old, p); usage != UsageInactive || reason != ReasonNoRecentActivity {
		t.Fatalf("last activity 40 days ago: %s/%s, want inactive/no_recent_activity", usage, reason)
	}
}
