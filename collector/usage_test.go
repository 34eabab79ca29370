package collector

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/seatwatch/greenhouse-collector/events"
	"github.com/seatwatch/greenhouse-collector/storage"
)

func TestLicenseType(t *testing.T) {
	assert.Equal(t, LicenseSiteAdmin, LicenseType(true, true))
	assert.Equal(t, LicenseSiteAdmin, LicenseType(true, false))
	assert.Equal(t, LicenseJobAdmin, LicenseType(false, true))
	assert.Equal(t, LicenseBasic, LicenseType(false, false))
}

// TestUsageJudgedAsOfAppliedActivity: stored but not yet applied events (a crash between
// storing a poll and applying its activity) never make a license look inactive.
func TestUsageJudgedAsOfAppliedActivity(t *testing.T) {
	st := DefaultConfig().settingsOf(events.Connection{})
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	created := now.AddDate(0, 0, -90)
	cp := checkpoint{CoverageStart: now.AddDate(0, 0, -31), AuditThrough: now}

	// Backfill stored, activity not applied yet: too early to judge.
	p := usageParams(st, nil, cp, now, time.Time{})
	usage, reason := storage.ClassifyUsage(storage.UserRow{CreatedAt: created}, p)
	if usage != storage.UsageUnknown || reason != storage.ReasonInsufficientHistory {
		t.Fatalf("before the activity is applied: %s/%s, want unknown/insufficient_history", usage, reason)
	}

	// Applied through an hour ago: judged as of then.
	applied := now.Add(-time.Hour)
	p = usageParams(st, nil, cp, now, applied)
	if !p.Now.Equal(applied) {
		t.Fatalf("judged as of %s, want %s", p.Now, applied)
	}
	last := applied.AddDate(0, 0, -30).Add(time.Minute) // active as of the applied time
	if usage, _ := storage.ClassifyUsage(storage.UserRow{CreatedAt: created, LastActivityAt: &last}, p); usage != storage.UsageActive {
		t.Fatalf("last activity within 30 days of the applied time: %s, want active", usage)
	}
	old := now.AddDate(0, 0, -40)
	if usage, reason := storage.ClassifyUsage(storage.UserRow{CreatedAt: created, LastActivityAt: &old}, p); usage != storage.UsageInactive || reason != storage.ReasonNoRecentActivity {
		t.Fatalf("last activity 40 days ago: %s/%s, want inactive/no_recent_activity", usage, reason)
	}
}
