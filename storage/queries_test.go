package storage_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/storage"
	"github.com/seatwatch/greenhouse-collector/storage/storagetest"
)

// usageFixture: Now 2024-06-30 12:00:00, 30 days, so T = 2024-05-31 12:00:00.
var (
	fixNow  = ts("2024-06-30 12:00:00")
	fixT    = ts("2024-05-31 12:00:00")
	longAgo = ts("2024-01-01 00:00:00")
)

func fixtureUsers() []storage.UserRow {
	u := func(id int64, status, typ string, created time.Time, last *time.Time) storage.UserRow {
		return storage.UserRow{TenantID: "acme", App: "greenhouse", UserID: id, Name: "N" + string(rune('A'+id)), Email: "e@x",
			Status: status, LicenseType: typ, CreatedAt: created, LastActivityAt: last, LastActivityType: map[bool]string{true: "action"}[last != nil], Version: 10}
	}
	old1 := u(1, "deactivated", "basic", longAgo, nil) // an older version of user 1
	old1.Version = 5
	svc := u(8, "active", "basic", longAgo, nil)
	svc.ServiceAccount = true
	other := u(2, "active", "basic", longAgo, nil)
	other.TenantID = "other"
	otherApp := u(3, "active", "basic", longAgo, nil)
	otherApp.App = "lever"
	return []storage.UserRow{
		old1,
		u(1, "active", "basic", longAgo, ptr(ts("2024-06-20 08:00:00"))),     // active
		u(2, "active", "job_admin", longAgo, ptr(ts("2024-05-01 09:00:00"))), // inactive, no recent activity
		u(3, "active", "basic", longAgo, nil),                                // inactive, never active
		u(4, "active", "basic", ts("2024-06-10 00:00:00"), nil),              // unknown: too new
		u(5, "active", "site_admin", longAgo, ptr(fixT)),                     // active: exactly T
		u(6, "active", "basic", longAgo, ptr(fixT.Add(-time.Second))),        // inactive: just before T
		u(7, "deactivated", "basic", longAgo, nil),                           // no license
		svc,                                    // no license
		u(9, "removed", "basic", longAgo, nil), // not a user any more
		other, otherApp,
	}
}

func TestInactiveLicensesAndUtilisation(t *testing.T) {
	t.Parallel()
	s := storagetest.NewStore(t)
	ctx := t.Context()
	require.NoError(t, s.UpsertUsers(ctx, fixtureUsers()))

	inactive := func(id int64, typ, reason string, last *time.Time) storage.InactiveLicense {
		l := storage.InactiveLicense{UserID: id, Name: "N" + string(rune('A'+id)), Email: "e@x", LicenseType: typ, CreatedAt: longAgo, LastActivityAt: last, Reason: reason}
		if last != nil {
			l.LastActivityType = "action"
		}
		return l
	}
	// User 3 never acted: never active when the history reaches back to its creation
	// (longAgo), no activity observed when it starts later (2024-05-01).
	coveredWith := func(reason3 string) []storage.InactiveLicense {
		return []storage.InactiveLicense{
			inactive(3, "basic", reason3, nil),
			inactive(2, "job_admin", storage.ReasonNoRecentActivity, ptr(ts("2024-05-01 09:00:00"))),
			inactive(6, "basic", storage.ReasonNoRecentActivity, ptr(fixT.Add(-time.Second))),
		}
	}
	covered := coveredWith(storage.ReasonNoActivityObserved)
	byType := map[string]int{"basic": 4, "job_admin": 1, "site_admin": 1}
	tests := []struct {
		name         string
		p            storage.UsageParams
		wantInactive []storage.InactiveLicense
		wantUtil     storage.Utilisation
	}{
		{
			name:         "covered since before T",
			p:            storage.UsageParams{Now: fixNow, InactiveAfterDays: 30, CoverageStart: ts("2024-05-01 00:00:00")},
			wantInactive: covered,
			wantUtil:     storage.Utilisation{Users: 8, Licenses: 6, Active: 2, Inactive: 3, Unknown: 1, ByType: byType, Ratio: 2.0 / 6},
		},
		{
			name:         "covered exactly from T",
			p:            storage.UsageParams{Now: fixNow, InactiveAfterDays: 30, CoverageStart: fixT},
			wantInactive: covered,
			wantUtil:     storage.Utilisation{Users: 8, Licenses: 6, Active: 2, Inactive: 3, Unknown: 1, ByType: byType, Ratio: 2.0 / 6},
		},
		{
			name:     "coverage starts after T: insufficient history",
			p:        storage.UsageParams{Now: fixNow, InactiveAfterDays: 30, CoverageStart: fixT.Add(time.Second)},
			wantUtil: storage.Utilisation{Users: 8, Licenses: 6, Active: 2, Inactive: 0, Unknown: 4, ByType: byType, Ratio: 2.0 / 6},
		},
		{
			name:     "no usage data",
			p:        storage.UsageParams{Now: fixNow, InactiveAfterDays: 30},
			wantUtil: storage.Utilisation{Users: 8, Licenses: 6, Active: 2, Inactive: 0, Unknown: 4, ByType: byType, Ratio: 2.0 / 6},
		},
		{
			name: "fractional now: exactly-T activity is half a second late",
			p:    storage.UsageParams{Now: fixNow.Add(500 * time.Millisecond), InactiveAfterDays: 30, CoverageStart: longAgo},
			wantInactive: append(coveredWith(storage.ReasonNeverActive),
				storage.InactiveLicense{UserID: 5, Name: "NF", Email: "e@x", LicenseType: "site_admin", CreatedAt: longAgo, LastActivityAt: ptr(fixT), LastActivityType: "action", Reason: storage.ReasonNoRecentActivity}),
			wantUtil: storage.Utilisation{Users: 8, Licenses: 6, Active: 1, Inactive: 4, Unknown: 1, ByType: byType, Ratio: 1.0 / 6},
		},
		{
			name: "60 days: T = 2024-05-01 12:00, user 6 is active now",
			p:    storage.UsageParams{Now: fixNow, InactiveAfterDays: 60, CoverageStart: longAgo},
			wantInactive: []storage.InactiveLicense{
				inactive(3, "basic", storage.ReasonNeverActive, nil),
				inactive(2, "job_admin", storage.ReasonNoRecentActivity, ptr(ts("2024-05-01 09:00:00"))),
			},
			wantUtil: storage.Utilisation{Users: 8, Licenses: 6, Active: 3, Inactive: 2, Unknown: 1, ByType: byType, Ratio: 3.0 / 6},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.InactiveLicenses(ctx, "acme", "greenhouse", tc.p)
			require.NoError(t, err)
			assert.Equal(t, tc.wantInactive, got)
			u, err := s.Utilisation(ctx, "acme", "greenhouse", tc.p)
			require.NoError(t, err)
			assert.Equal(t, tc.wantUtil.Users, u.Users)
			assert.Equal(t, tc.wantUtil.Licenses, u.Licenses)
			assert.Equal(t, tc.wantUtil.Active, u.Active)
			assert.Equal(t, tc.wantUtil.Inactive, u.Inactive)
			assert.Equal(t, tc.wantUtil.Unknown, u.Unknown)
			assert.Equal(t, tc.wantUtil.ByType, u.ByType)
			assert.InDelta(t, tc.wantUtil.Ratio, u.Ratio, 1e-9)
			assert.Equal(t, 9, u.Stored, "every user stored, the removed one included")
			assert.Equal(t, 1, u.ServiceAccounts)
			assert.Equal(t, map[string]int{"active": 7, "deactivated": 1, "removed": 1}, u.ByStatus)
		})
	}

	empty, err := s.Utilisation(ctx, "nobody", "greenhouse", storage.UsageParams{Now: fixNow, InactiveAfterDays: 30})
	require.NoError(t, err)
	assert.Equal(t, storage.Utilisation{ByType: map[string]int{}, ByStatus: map[string]int{}, Types: map[string]storage.UsageCounts{}}, empty)
}

// activityFixture inserts audit events of two users over two days (plus noise) and the users.
func activityFixture(t *testing.T, s *storage.Store) {
	ctx := t.Context()
	ev := []storage.AuditEventRow{
		auditEvent("acme", 1, ts("2024-06-01 09:00:00"), 1, "a"),
		auditEvent("acme", 2, ts("2024-06-01 10:00:00"), 1, "b"),
		auditEvent("acme", 3, ts("2024-06-01 23:59:59"), 1, "c"),
		auditEvent("acme", 4, ts("2024-06-02 00:00:00"), 1, "d"),
		auditEvent("acme", 5, ts("2024-06-01 12:00:00"), 2, "e"),
		auditEvent("acme", 6, ts("2024-06-03 12:00:00"), 2, "f"), // outside the refreshed days
		auditEvent("other", 7, ts("2024-06-01 12:00:00"), 1, "g"),
	}
	api := auditEvent("acme", 8, ts("2024-06-01 13:00:00"), 3, "harvest_access")
	api.PerformerType = "api_key"
	bad := auditEvent("acme", 9, ts("2024-06-01 14:00:00"), 0, "x")
	bad.PerformerID = "not-a-number"
	ev = append(ev, api, bad)
	require.NoError(t, s.InsertAuditEvents(ctx, ev))
	require.NoError(t, s.RefreshDailyActivity(ctx, "acme", []time.Time{ts("2024-06-01 00:00:00"), ts("2024-06-02 15:00:00")}))
	require.NoError(t, s.UpsertUsers(ctx, []storage.UserRow{
		{TenantID: "acme", App: "greenhouse", UserID: 1, Name: "Ada", Email: "ada@x", Status: "active", Version: 1},
		{TenantID: "acme", App: "greenhouse", UserID: 2, Name: "Bob", Email: "bob@x", Status: "active", Version: 1},
	}))
}

var (
	wantDaily = []storage.DailyActivityRow{
		{UserID: 1, Day: ts("2024-06-01 00:00:00"), Events: 3, LastEventAt: ts("2024-06-01 23:59:59")},
		{UserID: 2, Day: ts("2024-06-01 00:00:00"), Events: 1, LastEventAt: ts("2024-06-01 12:00:00")},
		{UserID: 1, Day: ts("2024-06-02 00:00:00"), Events: 1, LastEventAt: ts("2024-06-02 00:00:00")},
	}
	wantTop = []storage.TopUser{
		{UserID: 1, Name: "Ada", Email: "ada@x", Events: 4, LastEventAt: ts("2024-06-02 00:00:00")},
		{UserID: 2, Name: "Bob", Email: "bob@x", Events: 1, LastEventAt: ts("2024-06-01 12:00:00")},
	}
)

func TestActivityQueries(t *testing.T) {
	t.Parallel()
	s := storagetest.NewStore(t)
	ctx := t.Context()
	activityFixture(t, s)

	t.Run("daily activity", func(t *testing.T) {
		tests := []struct {
			name     string
			from, to time.Time
			want     []storage.DailyActivityRow
		}{
			{name: "both days", from: ts("2024-06-01 00:00:00"), to: ts("2024-06-03 00:00:00"), want: wantDaily},
			{name: "days overlapping a partial range", from: ts("2024-06-01 18:00:00"), to: ts("2024-06-02 00:00:01"), want: wantDaily},
			{name: "second day", from: ts("2024-06-02 00:00:00"), to: ts("2024-06-03 00:00:00"), want: wantDaily[2:]},
			{name: "not refreshed", from: ts("2024-06-03 00:00:00"), to: ts("2024-06-04 00:00:00"), want: nil},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				got, err := s.DailyActivity(ctx, "acme", "greenhouse", tc.from, tc.to)
				require.NoError(t, err)
				assert.Equal(t, tc.want, got)
			})
		}
	})

	t.Run("top users", func(t *testing.T) {
		tests := []struct {
			name  string
			from  time.Time
			limit int
			want  []storage.TopUser
		}{
			{name: "all", from: ts("2024-06-01 00:00:00"), limit: 10, want: wantTop},
			{name: "top one", from: ts("2024-06-01 00:00:00"), limit: 1, want: wantTop[:1]},
			{name: "second day only", from: ts("2024-06-02 00:00:00"), limit: 10, want: []storage.TopUser{
				{UserID: 1, Name: "Ada", Email: "ada@x", Events: 1, LastEventAt: ts("2024-06-02 00:00:00")}}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				got, err := s.TopUsers(ctx, "acme", "greenhouse", tc.from, ts("2024-06-03 00:00:00"), tc.limit)
				require.NoError(t, err)
				assert.Equal(t, tc.want, got)
			})
		}
	})

	t.Run("user activity", func(t *testing.T) {
		tests := []struct {
			name string
			ids  []int64
			want []storage.UserActivity
		}{
			{name: "everyone", want: []storage.UserActivity{
				{UserID: 1, Events: 4, LastEventAt: ts("2024-06-02 00:00:00"), LastEventType: "d"},
				{UserID: 2, Events: 2, LastEventAt: ts("2024-06-03 12:00:00"), LastEventType: "f"}}},
			{name: "only user 2", ids: []int64{2}, want: []storage.UserActivity{
				{UserID: 2, Events: 2, LastEventAt: ts("2024-06-03 12:00:00"), LastEventType: "f"}}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				got, err := s.UserActivity(ctx, "acme", ts("2024-06-01 00:00:00"), ts("2024-06-04 00:00:00"), tc.ids)
				require.NoError(t, err)
				assert.Equal(t, tc.want, got)
			})
		}
	})

	t.Run("count audit events", func(t *testing.T) {
		for tenant, want := range map[string]uint64{"acme": 8, "other": 1, "nobody": 0} {
			n, err := s.CountAuditEvents(ctx, tenant)
			require.NoError(t, err)
			assert.Equal(t, want, n, tenant)
		}
	})
}
