package storage_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/storage"
	"github.com/seatwatch/greenhouse-collector/storage/storagetest"
)

func boolp(b bool) *bool { return &b }

// usageOf is the usage rule in Go for the fixture (covered since 2024-05-01, T = fixT).
func usageOf(u storage.UserRow) string {
	if u.Status != "active" || u.ServiceAccount {
		return ""
	}
	if u.LastActivityAt != nil && !u.LastActivityAt.Before(fixT) {
		return "active"
	}
	if u.CreatedAt.Before(fixT) {
		return "inactive"
	}
	return "unknown"
}

func TestUserListFiltersAndSorts(t *testing.T) {
	t.Parallel()
	s := storagetest.NewStore(t)
	ctx := t.Context()
	users := fixtureUsers()
	// Names and emails that exercise case and substrings.
	names := map[int64]string{1: "ada Lovelace", 2: "Bob Stone", 3: "Ádám Kovács", 4: "carol o'Neil", 5: "Dave", 6: "eve", 7: "Frank", 8: "Build Bot", 9: "Gone Girl"}
	for i := range users {
		if users[i].TenantID == "acme" && users[i].App == "greenhouse" {
			users[i].Name = names[users[i].UserID]
			users[i].Email = fmt.Sprintf("%s@Acme.example", strings.ToLower(strings.Fields(names[users[i].UserID])[0]))
		}
	}
	require.NoError(t, s.UpsertUsers(ctx, users))
	current := map[int64]storage.UserRow{}
	for _, u := range users {
		if u.TenantID == "acme" && u.App == "greenhouse" && u.Version == 10 {
			current[u.UserID] = u
		}
	}
	params := storage.UsageParams{Now: fixNow, InactiveAfterDays: 30, CoverageStart: ts("2024-05-01 00:00:00")}

	cases := []struct {
		name   string
		filter storage.UserFilter
		keep   func(storage.UserRow) bool
	}{
		{"all", storage.UserFilter{}, func(storage.UserRow) bool { return true }},
		{"status", storage.UserFilter{Statuses: []string{"deactivated", "removed"}}, func(u storage.UserRow) bool { return u.Status != "active" }},
		{"license type", storage.UserFilter{LicenseTypes: []string{"job_admin", "site_admin"}}, func(u storage.UserRow) bool { return u.LicenseType != "basic" }},
		{"service accounts", storage.UserFilter{ServiceAccount: boolp(true)}, func(u storage.UserRow) bool { return u.ServiceAccount }},
		{"no service accounts", storage.UserFilter{ServiceAccount: boolp(false)}, func(u storage.UserRow) bool { return !u.ServiceAccount }},
		{"licensed", storage.UserFilter{Licensed: boolp(true)}, func(u storage.UserRow) bool { return usageOf(u) != "" }},
		{"unlicensed", storage.UserFilter{Licensed: boolp(false)}, func(u storage.UserRow) bool { return usageOf(u) == "" }},
		{"inactive", storage.UserFilter{Usages: []string{"inactive"}}, func(u storage.UserRow) bool { return usageOf(u) == "inactive" }},
		{"active or unknown", storage.UserFilter{Usages: []string{"active", "unknown"}}, func(u storage.UserRow) bool {
			return usageOf(u) == "active" || usageOf(u) == "unknown"
		}},
		{"q in name, any case", storage.UserFilter{Query: "LOVE"}, func(u storage.UserRow) bool { return u.UserID == 1 }},
		{"q in email", storage.UserFilter{Query: "acme.EX"}, func(storage.UserRow) bool { return true }},
		{"q non-ASCII", storage.UserFilter{Query: "ádám"}, func(u storage.UserRow) bool { return u.UserID == 3 }},
		{"q with a quote", storage.UserFilter{Query: "o'ne"}, func(u storage.UserRow) bool { return u.UserID == 4 }},
		{"q with a backslash", storage.UserFilter{Query: `\`}, func(storage.UserRow) bool { return false }},
		{"combined", storage.UserFilter{Statuses: []string{"active"}, LicenseTypes: []string{"basic"}, Usages: []string{"inactive"}},
			func(u storage.UserRow) bool { return u.LicenseType == "basic" && usageOf(u) == "inactive" }},
	}
	sorts := map[string]func(a, b storage.UserRow) int{
		storage.SortName: func(a, b storage.UserRow) int {
			return cmpStr(strings.ToLower(a.Name), strings.ToLower(b.Name), a.Name, b.Name)
		},
		storage.SortEmail: func(a, b storage.UserRow) int {
			return cmpStr(strings.ToLower(a.Email), strings.ToLower(b.Email), a.Email, b.Email)
		},
		storage.SortCreatedAt: func(a, b storage.UserRow) int { return a.CreatedAt.Compare(b.CreatedAt) },
		storage.SortLastActivityAt: func(a, b storage.UserRow) int {
			at := func(u storage.UserRow) time.Time {
				if u.LastActivityAt == nil {
					return time.Unix(0, 0)
				}
				return *u.LastActivityAt
			}
			return at(a).Compare(at(b))
		},
	}
	for _, c := range cases {
		for key, cmp := range sorts {
			for _, desc := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/%s/desc=%v", c.name, key, desc), func(t *testing.T) {
					c.filter.Usage = params
					got, err := s.UserIDs(ctx, "acme", "greenhouse", c.filter, storage.UserSort{Key: key, Desc: desc})
					require.NoError(t, err)
					var want []storage.UserRow
					for _, u := range current {
						if c.keep(u) {
							want = append(want, u)
						}
					}
					sort.Slice(want, func(i, j int) bool {
						r := cmp(want[i], want[j])
						if r == 0 {
							r = int(want[i].UserID - want[j].UserID)
						}
						if desc {
							return r > 0
						}
						return r < 0
					})
					wantIDs := []int64{}
					for _, u := range want {
						wantIDs = append(wantIDs, u.UserID)
					}
					assert.Equal(t, wantIDs, append([]int64{}, got...))

					// The export streams the same users in the same order.
					var exported []int64
					require.NoError(t, s.ExportUsers(ctx, "acme", "greenhouse", c.filter, storage.UserSort{Key: key, Desc: desc}, fixNow,
						func(u storage.ListedUser) error { exported = append(exported, u.UserID); return nil }))
					assert.Equal(t, wantIDs, append([]int64{}, exported...))
				})
			}
		}
	}
	_, err := s.UserIDs(ctx, "acme", "greenhouse", storage.UserFilter{}, storage.UserSort{Key: "name; DROP TABLE users"})
	require.Error(t, err)
}

func cmpStr(a, b, ta, tb string) int {
	if r := strings.Compare(a, b); r != 0 {
		return r
	}
	return strings.Compare(ta, tb)
}

func TestUsersByIDWithActiveDays(t *testing.T) {
	t.Parallel()
	s := storagetest.NewStore(t)
	ctx := t.Context()
	require.NoError(t, s.UpsertUsers(ctx, fixtureUsers()))
	var events []storage.AuditEventRow
	day := ts("2024-06-01 10:00:00")
	for i := 0; i < 5; i++ { // user 1 on five days, twice a day; user 2 on one day before the window
		events = append(events, auditEvent("acme", 2*i, day.Add(time.Duration(i)*24*time.Hour), 1, "action"),
			auditEvent("acme", 2*i+1, day.Add(time.Duration(i)*24*time.Hour+time.Hour), 1, "action"))
	}
	events = append(events, auditEvent("acme", 100, ts("2024-05-01 10:00:00"), 2, "action"))
	require.NoError(t, s.InsertAuditEvents(ctx, events))
	var days []time.Time
	for d := ts("2024-05-01 00:00:00"); d.Before(ts("2024-06-10 00:00:00")); d = d.Add(24 * time.Hour) {
		days = append(days, d)
	}
	require.NoError(t, s.RefreshDailyActivity(ctx, "acme", days))

	got, err := s.UsersByID(ctx, "acme", "greenhouse", []int64{2, 1, 42}, ts("2024-06-02 00:00:00"))
	require.NoError(t, err)
	byID := map[int64]storage.ListedUser{}
	for _, u := range got {
		byID[u.UserID] = u
	}
	require.Len(t, byID, 2)
	assert.Equal(t, uint32(4), byID[1].ActiveDays) // 06-02 … 06-05
	assert.Equal(t, uint32(0), byID[2].ActiveDays)
	assert.Equal(t, "active", byID[1].Status) // the current version, not the older one

	act, err := s.UserDailyActivity(ctx, "acme", "greenhouse", 1, ts("2024-06-03 00:00:00"), ts("2024-06-05 00:00:00"))
	require.NoError(t, err)
	require.Len(t, act, 2)
	assert.Equal(t, ts("2024-06-03 00:00:00"), act[0].Day)
	assert.Equal(t, uint32(2), act[0].Events)
	assert.Equal(t, ts("2024-06-04 11:00:00"), act[1].LastEventAt)
}

func TestUserHistory(t *testing.T) {
	t.Parallel()
	s := storagetest.NewStore(t)
	ctx := t.Context()
	ch := func(rev uint32, at, status, typ string, changed ...string) storage.UserChangeRow {
		return storage.UserChangeRow{TenantID: "acme", App: "greenhouse", UserID: 7, Revision: rev, ChangedAt: ts(at), Changed: changed,
			Status: status, LicenseType: typ, Name: "Ada", Email: "ada@x", Version: uint64(rev) * 10}
	}
	replay := ch(2, "2024-06-02 10:00:00", "active", "job_admin", "license_type")
	replay.Version = 25
	other := ch(1, "2024-06-01 10:00:00", "active", "basic", "created")
	other.TenantID = "other"
	require.NoError(t, s.InsertUserChanges(ctx, []storage.UserChangeRow{
		ch(1, "2024-06-01 10:00:00", "active", "basic", "created"),
		ch(2, "2024-06-02 09:00:00", "active", "job_admin", "license_type"),
		ch(3, "2024-06-03 10:00:00", "deactivated", "job_admin", "status"),
		other,
	}))
	require.NoError(t, s.InsertUserChanges(ctx, []storage.UserChangeRow{replay}))
	got, err := s.UserHistory(ctx, "acme", "greenhouse", 7)
	require.NoError(t, err)
	require.Len(t, got, 3)
	assert.Equal(t, []string{"created"}, got[0].Changed)
	assert.Equal(t, ts("2024-06-02 10:00:00"), got[1].ChangedAt, "the replay with the higher version wins")
	assert.Equal(t, "deactivated", got[2].Status)
}

func TestUsageTrend(t *testing.T) {
	t.Parallel()
	s := storagetest.NewStore(t)
	ctx := t.Context()
	params := storage.UsageParams{Now: fixNow, InactiveAfterDays: 30, CoverageStart: ts("2024-05-01 00:00:00")}
	require.NoError(t, s.UpsertUsers(ctx, fixtureUsers()))
	record := func(at time.Time) {
		_, err := s.RecordUsageCounts(ctx, "acme", "greenhouse", at, params, storage.PolicyTerms{})
		require.NoError(t, err)
	}
	// Three snapshots on 06-30 (the last one wins the day), one replayed, one on 06-24.
	for _, at := range []string{"2024-06-24 10:00:00", "2024-06-30 08:00:00", "2024-06-30 11:00:00", "2024-06-30 11:00:00"} {
		record(ts(at))
	}
	// A change after the 08:00 snapshot: user 3 acts, so the 11:00 one has one more active.
	u3 := fixtureUsers()[3]
	u3.LastActivityAt, u3.Version = ptr(ts("2024-06-29 00:00:00")), 20
	require.NoError(t, s.UpsertUsers(ctx, []storage.UserRow{u3}))
	record(ts("2024-06-30 11:00:00"))

	got, err := s.UsageTrend(ctx, "acme", "greenhouse", storage.BucketDay, ts("2024-06-01 00:00:00"), ts("2024-07-01 00:00:00"))
	require.NoError(t, err)
	want := []storage.UsageCountRow{
		{TS: ts("2024-06-24 10:00:00"), LicenseType: "basic", Users: 6, Licenses: 4, Active: 1, Inactive: 2, Unknown: 1},
		{TS: ts("2024-06-24 10:00:00"), LicenseType: "job_admin", Users: 1, Licenses: 1, Active: 0, Inactive: 1, Unknown: 0},
		{TS: ts("2024-06-24 10:00:00"), LicenseType: "site_admin", Users: 1, Licenses: 1, Active: 1, Inactive: 0, Unknown: 0},
		{TS: ts("2024-06-30 11:00:00"), LicenseType: "basic", Users: 6, Licenses: 4, Active: 2, Inactive: 1, Unknown: 1},
		{TS: ts("2024-06-30 11:00:00"), LicenseType: "job_admin", Users: 1, Licenses: 1, Active: 0, Inactive: 1, Unknown: 0},
		{TS: ts("2024-06-30 11:00:00"), LicenseType: "site_admin", Users: 1, Licenses: 1, Active: 1, Inactive: 0, Unknown: 0},
	}
	assert.Equal(t, want, got)

	month, err := s.UsageTrend(ctx, "acme", "greenhouse", storage.BucketMonth, ts("2024-06-01 00:00:00"), ts("2024-07-01 00:00:00"))
	require.NoError(t, err)
	assert.Equal(t, want[3:], month)
	week, err := s.UsageTrend(ctx, "acme", "greenhouse", storage.BucketWeek, ts("2024-06-01 00:00:00"), ts("2024-06-30 09:00:00"))
	require.NoError(t, err)
	// 06-24 is a Monday and 06-30 a Sunday: one week, whose last snapshot before 09:00 is 08:00.
	require.Len(t, week, 3)
	assert.Equal(t, ts("2024-06-30 08:00:00"), week[0].TS)
	assert.Equal(t, uint32(1), week[0].Active)
	_, err = s.UsageTrend(ctx, "acme", "greenhouse", "year", ts("2024-06-01 00:00:00"), ts("2024-07-01 00:00:00"))
	require.Error(t, err)
}

func TestSyncRunsPaged(t *testing.T) {
	t.Parallel()
	s := storagetest.NewStore(t)
	ctx := t.Context()
	base := ts("2024-05-01 10:00:00")
	for i := 0; i < 7; i++ {
		kind, status := "users", "succeeded"
		if i%2 == 1 {
			kind = "audit"
		}
		if i == 3 {
			status = "failed"
		}
		// Runs 5 and 6 start at the same second: the run id breaks the tie.
		at := base.Add(time.Duration(min(i, 5)) * time.Hour)
		require.NoError(t, s.InsertSyncRun(ctx, storage.SyncRunRow{TenantID: "acme", App: "greenhouse", RunID: fmt.Sprintf("r%d", i),
			Kind: kind, StartedAt: at, FinishedAt: at.Add(time.Minute), Status: status, Users: uint32(i)}))
	}
	page := func(f storage.SyncRunFilter, limit int) []string {
		var ids []string
		require.NoError(t, s.SyncRuns(ctx, "acme", "greenhouse", f, limit, func(r storage.SyncRunRow) error {
			ids = append(ids, r.RunID)
			return nil
		}))
		return ids
	}
	assert.Equal(t, []string{"r6", "r5", "r4", "r3", "r2", "r1", "r0"}, page(storage.SyncRunFilter{}, 0))
	assert.Equal(t, []string{"r6", "r5", "r4"}, page(storage.SyncRunFilter{}, 3))
	after := &storage.SyncRunRow{StartedAt: base.Add(5 * time.Hour), RunID: "r6"}
	assert.Equal(t, []string{"r5", "r4"}, page(storage.SyncRunFilter{After: after}, 2))
	assert.Equal(t, []string{"r5", "r3", "r1"}, page(storage.SyncRunFilter{Kind: "audit"}, 0))
	assert.Equal(t, []string{"r3"}, page(storage.SyncRunFilter{Status: "failed"}, 0))
}
