package storage_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/seatwatch/greenhouse-collector/storage"
	"github.com/seatwatch/greenhouse-collector/storage/storagetest"
)

func TestUsersRoundTrip(t *testing.T) {
	t.Parallel()
	s := storagetest.NewStore(t)
	ctx := t.Context()
	v1 := storage.UserRow{TenantID: "acme", App: "greenhouse", UserID: 7, Name: "Ada", Email: "ada@example.com", Status: "active",
		LicenseType: "basic", CreatedAt: ts("2024-01-02 03:04:05"), UpdatedAt: ts("2024-02-01 00:00:00"),
		FirstSeenAt: ts("2024-03-01 00:00:00"), LastSeenAt: ts("2024-03-02 00:00:00"), LastActivityAt: ptr(ts("2024-03-01 12:00:00")),
		LastActivityType: "action", Revision: 1, Version: 100}
	v2 := v1
	v2.Status, v2.LicenseType, v2.SiteAdmin, v2.RemovedAt, v2.Revision, v2.Version = "removed", "site_admin", true, ptr(ts("2024-03-05 00:00:00")), 2, 200
	other := v1
	other.TenantID, other.Version = "other", 999
	svc := storage.UserRow{TenantID: "acme", App: "greenhouse", UserID: 9, Name: "Bot", Status: "active", ServiceAccount: true, Version: 1}
	stale := v1 // an older version written last must not win
	stale.Version = 50

	require.NoError(t, s.UpsertUsers(ctx, []storage.UserRow{v1, other, svc}))
	require.NoError(t, s.UpsertUsers(ctx, []storage.UserRow{v2}))
	require.NoError(t, s.UpsertUsers(ctx, []storage.UserRow{stale}))
	require.NoError(t, s.UpsertUsers(ctx, nil))

	var got []storage.UserRow
	require.NoError(t, s.CurrentUsers(ctx, "acme", "greenhouse", func(u storage.UserRow) error { got = append(got, u); return nil }))
	require.Len(t, got, 2)
	assert.Equal(t, v2, got[0])
	assert.Equal(t, svc, got[1], "zero times and nil pointers round-trip")

	stop := errors.New("stop")
	n := 0
	err := s.CurrentUsers(ctx, "acme", "greenhouse", func(storage.UserRow) error { n++; return stop })
	assert.ErrorIs(t, err, stop)
	assert.Equal(t, 1, n)
}

func TestUpsertUsersInChunks(t *testing.T) {
	t.Parallel()
	s := storagetest.NewStore(t)
	ctx := t.Context()
	rows := make([]storage.UserRow, 25_000)
	for i := range rows {
		rows[i] = storage.UserRow{TenantID: "big", App: "greenhouse", UserID: int64(i + 1), Status: "active", Version: 1}
	}
	require.NoError(t, s.UpsertUsers(ctx, rows))
	n := 0
	require.NoError(t, s.CurrentUsers(ctx, "big", "greenhouse", func(storage.UserRow) error { n++; return nil }))
	assert.Equal(t, 25_000, n)
}

func TestSyncRunsAndSyncHealth(t *testing.T) {
	t.Parallel()
	s := storagetest.NewStore(t)
	ctx := t.Context()
	base := ts("2024-05-01 10:00:00")
	runs := []storage.SyncRunRow{
		{TenantID: "acme", App: "greenhouse", RunID: "r1", Kind: "users", StartedAt: base, FinishedAt: base.Add(time.Minute), Status: "succeeded", Users: 10, Requests: 3},
		{TenantID: "acme", App: "greenhouse", RunID: "r2", Kind: "audit", StartedAt: base.Add(time.Hour), FinishedAt: base.Add(61 * time.Minute), Status: "failed", Events: 5, Requests: 4, Throttled: 1, ErrorCode: "rate_limited", ErrorMessage: "slow down"},
		{TenantID: "acme", App: "greenhouse", RunID: "r3", Kind: "users", StartedAt: base.Add(2 * time.Hour), FinishedAt: base.Add(121 * time.Minute), Status: "succeeded", Users: 11},
		{TenantID: "other", App: "greenhouse", RunID: "x", Kind: "users", StartedAt: base.Add(3 * time.Hour), Status: "succeeded"},
	}
	for _, r := range runs {
		require.NoError(t, s.InsertSyncRun(ctx, r))
	}
	require.NoError(t, s.InsertSyncRun(ctx, runs[1]), "a replayed run is deduplicated")
	tests := []struct {
		name  string
		limit int
		want  []storage.SyncRunRow
	}{
		{name: "all newest first", limit: 10, want: []storage.SyncRunRow{runs[2], runs[1], runs[0]}},
		{name: "limited", limit: 1, want: []storage.SyncRunRow{runs[2]}},
		{name: "zero", limit: 0, want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.SyncHealth(ctx, "acme", "greenhouse", tc.limit)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestInsertConnectionEvent(t *testing.T) {
	t.Parallel()
	s := storagetest.NewStore(t)
	ctx := t.Context()
	ev := storage.ConnectionEventRow{TenantID: "acme", App: "greenhouse", TS: ts("2024-05-01 10:00:00"), EventID: "e1", State: "degraded",
		UsageData: false, Checks: `[{"name":"audit_log","status":"failed"}]`, Changed: "state"}
	require.NoError(t, s.InsertConnectionEvent(ctx, ev))
	ev2 := ev
	ev2.EventID, ev2.State, ev2.UsageData, ev2.TS = "e2", "connected", true, ev.TS.Add(time.Hour)
	require.NoError(t, s.InsertConnectionEvent(ctx, ev2))

	rows, err := s.Conn().Query(ctx, "SELECT tenant_id, app, ts, event_id, state, usage_data, checks, changed FROM "+table(s, "connection_events")+" FINAL ORDER BY ts")
	require.NoError(t, err)
	defer rows.Close()
	var got []storage.ConnectionEventRow
	for rows.Next() {
		var (
			r storage.ConnectionEventRow
			u uint8
		)
		require.NoError(t, rows.Scan(&r.TenantID, &r.App, &r.TS, &r.EventID, &r.State, &u, &r.Checks, &r.Changed))
		r.UsageData, r.TS = u == 1, r.TS.UTC()
		got = append(got, r)
	}
	require.NoError(t, rows.Err())
	assert.Equal(t, []storage.ConnectionEventRow{ev, ev2}, got)

	// A burst of connects shares INSERTs (group commit) and loses none.
	before := s.ConnectionEventInserts()
	var g errgroup.Group
	for i := range 200 {
		g.Go(func() error {
			e := ev
			e.TenantID, e.EventID = fmt.Sprintf("t%03d", i), "c"
			return s.InsertConnectionEvent(ctx, e)
		})
	}
	require.NoError(t, g.Wait())
	assert.Equal(t, uint64(200), scalar(t, s, "SELECT count() FROM "+table(s, "connection_events")+" WHERE event_id = 'c'"))
	inserts := s.ConnectionEventInserts() - before
	assert.Less(t, inserts, uint64(50), "200 concurrent events in fewer INSERTs")
	t.Logf("200 connection events, %d INSERTs", inserts)
}

func TestLicenseCountsOverTime(t *testing.T) {
	t.Parallel()
	s := storagetest.NewStore(t)
	ctx := t.Context()
	t1, t2, t3 := ts("2024-05-01 10:00:00"), ts("2024-05-01 11:00:00"), ts("2024-06-01 00:00:00")
	snap := func(at time.Time, basic, admin uint32) []storage.LicenseCountRow {
		return []storage.LicenseCountRow{
			{TenantID: "acme", App: "greenhouse", TS: at, LicenseType: "basic", Status: "active", Users: basic},
			{TenantID: "acme", App: "greenhouse", TS: at, LicenseType: "site_admin", Status: "active", Users: admin},
		}
	}
	require.NoError(t, s.InsertLicenseCounts(ctx, snap(t1, 10, 2)))
	require.NoError(t, s.InsertLicenseCounts(ctx, snap(t2, 11, 2)))
	require.NoError(t, s.InsertLicenseCounts(ctx, snap(t2, 11, 2)), "replayed snapshot")
	require.NoError(t, s.InsertLicenseCounts(ctx, snap(t3, 12, 3)))
	require.NoError(t, s.InsertLicenseCounts(ctx, []storage.LicenseCountRow{{TenantID: "other", App: "greenhouse", TS: t1, LicenseType: "basic", Status: "active", Users: 99}}))

	tests := []struct {
		name     string
		from, to time.Time
		want     []storage.LicenseCountRow
	}{
		{name: "everything", from: t1, to: t3.Add(time.Second), want: append(append(snap(t1, 10, 2), snap(t2, 11, 2)...), snap(t3, 12, 3)...)},
		{name: "half-open", from: t1, to: t3, want: append(snap(t1, 10, 2), snap(t2, 11, 2)...)},
		{name: "fractional bounds", from: t1.Add(time.Millisecond), to: t2.Add(time.Millisecond), want: snap(t2, 11, 2)},
		{name: "empty", from: t3.Add(time.Second), to: t3.Add(time.Hour), want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.LicenseCountsOverTime(ctx, "acme", "greenhouse", tc.from, tc.to)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}
