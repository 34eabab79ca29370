package storage_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/seatwatch/greenhouse-collector/storage"
	"github.com/seatwatch/greenhouse-collector/storage/storagetest"
)

// TestReplayIdempotency replays everything a sync writes: the same audit events twice and in
// overlapping windows, the daily refresh twice, the same user snapshot twice. No count, daily
// figure or last activity changes.
func TestReplayIdempotency(t *testing.T) {
	t.Parallel()
	s := storagetest.NewStore(t)
	ctx := t.Context()
	activityFixture(t, s)
	users := fixtureUsers()
	require.NoError(t, s.UpsertUsers(ctx, users))
	p := storage.UsageParams{Now: fixNow, InactiveAfterDays: 30, CoverageStart: longAgo}

	type snapshot struct {
		count    uint64
		daily    []storage.DailyActivityRow
		top      []storage.TopUser
		activity []storage.UserActivity
		users    []storage.UserRow
		inactive []storage.InactiveLicense
		util     storage.Utilisation
	}
	take := func() snapshot {
		var sn snapshot
		var err error
		sn.count, err = s.CountAuditEvents(ctx, "acme")
		require.NoError(t, err)
		sn.daily, err = s.DailyActivity(ctx, "acme", "greenhouse", ts("2024-06-01 00:00:00"), ts("2024-06-03 00:00:00"))
		require.NoError(t, err)
		sn.top, err = s.TopUsers(ctx, "acme", "greenhouse", ts("2024-06-01 00:00:00"), ts("2024-06-03 00:00:00"), 10)
		require.NoError(t, err)
		sn.activity, err = s.UserActivity(ctx, "acme", ts("2024-06-01 00:00:00"), ts("2024-06-04 00:00:00"), nil)
		require.NoError(t, err)
		require.NoError(t, s.CurrentUsers(ctx, "acme", "greenhouse", func(u storage.UserRow) error { sn.users = append(sn.users, u); return nil }))
		sn.inactive, err = s.InactiveLicenses(ctx, "acme", "greenhouse", p)
		require.NoError(t, err)
		sn.util, err = s.Utilisation(ctx, "acme", "greenhouse", p)
		require.NoError(t, err)
		return sn
	}
	before := take()
	require.Equal(t, wantDaily, before.daily)

	// Replays: the whole fixture again, overlapping windows of it, the refresh twice, the
	// user snapshot again.
	activityFixture(t, s)
	require.NoError(t, s.InsertAuditEvents(ctx, []storage.AuditEventRow{
		auditEvent("acme", 3, ts("2024-06-01 23:59:59"), 1, "c"),
		auditEvent("acme", 4, ts("2024-06-02 00:00:00"), 1, "d"),
	}))
	for range 2 {
		require.NoError(t, s.RefreshDailyActivity(ctx, "acme", []time.Time{ts("2024-06-01 00:00:00"), ts("2024-06-02 00:00:00")}))
	}
	require.NoError(t, s.UpsertUsers(ctx, users))
	assert.Equal(t, before, take())

	// After merging, the duplicates are gone from storage too.
	for _, tbl := range []string{"audit_events", "user_activity_daily", "users"} {
		require.NoError(t, s.Conn().Exec(ctx, "OPTIMIZE TABLE "+table(s, tbl)+" FINAL"))
	}
	assert.Equal(t, uint64(8), scalar(t, s, "SELECT count() FROM "+table(s, "audit_events")+" WHERE tenant_id = 'acme'"))
	assert.Equal(t, uint64(3), scalar(t, s, "SELECT count() FROM "+table(s, "user_activity_daily")))
	assert.Equal(t, before, take())
}

func TestGroupCommitUnderConcurrency(t *testing.T) {
	t.Parallel()
	s := storagetest.NewStoreWithConfig(t, storage.Config{AuditBatchRows: 20_000, AuditFlushInterval: 50 * time.Millisecond})
	ctx := t.Context()
	const (
		tenants = 40
		calls   = 10
		rows    = 250
	)
	base := ts("2024-06-01 00:00:00")
	var g errgroup.Group
	for tn := range tenants {
		g.Go(func() error {
			tenant := fmt.Sprintf("t%02d", tn)
			for c := range calls {
				batch := make([]storage.AuditEventRow, rows)
				for i := range batch {
					id := c*rows + i
					batch[i] = auditEvent(tenant, id, base.Add(time.Duration(id)*time.Second), int64(id%50+1), "x")
				}
				if err := s.InsertAuditEvents(ctx, batch); err != nil {
					return err
				}
			}
			return nil
		})
	}
	require.NoError(t, g.Wait())
	assert.Equal(t, uint64(tenants*calls*rows), scalar(t, s, "SELECT count() FROM "+table(s, "audit_events")))
	for tn := range tenants {
		n, err := s.CountAuditEvents(ctx, fmt.Sprintf("t%02d", tn))
		require.NoError(t, err)
		assert.Equal(t, uint64(calls*rows), n)
	}
	st := s.AuditStats()
	assert.Equal(t, uint64(tenants*calls*rows), st.Rows)
	assert.Less(t, st.Inserts, uint64(tenants*calls/4), "concurrent callers share INSERTs")
	t.Logf("%d calls, %d INSERTs", tenants*calls, st.Inserts)
}

func TestInsertAuditEventsBackpressureAndCancel(t *testing.T) {
	t.Parallel()
	// A buffer of 200 rows: a call of 5,000 rows passes through it in chunks.
	s := storagetest.NewStoreWithConfig(t, storage.Config{AuditBatchRows: 100, AuditBufferRows: 200, AuditFlushInterval: 10 * time.Millisecond})
	ctx := t.Context()
	batch := make([]storage.AuditEventRow, 5000)
	for i := range batch {
		batch[i] = auditEvent("bp", i, ts("2024-06-01 00:00:00").Add(time.Duration(i)*time.Second), 1, "x")
	}
	require.NoError(t, s.InsertAuditEvents(ctx, batch))
	n, err := s.CountAuditEvents(ctx, "bp")
	require.NoError(t, err)
	assert.Equal(t, uint64(5000), n)
	assert.GreaterOrEqual(t, s.AuditStats().Inserts, uint64(50))

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	assert.ErrorIs(t, s.InsertAuditEvents(canceled, batch[:10]), context.Canceled)
	assert.NoError(t, s.InsertAuditEvents(ctx, nil))
}

func TestInsertAuditEventsAfterClose(t *testing.T) {
	t.Parallel()
	s := storagetest.NewStore(t)
	ctx := t.Context()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Either written before Close or refused with ErrClosed: never lost silently.
		err := s.InsertAuditEvents(ctx, []storage.AuditEventRow{auditEvent("c", 1, ts("2024-06-01 00:00:00"), 1, "x")})
		if err != nil {
			assert.ErrorIs(t, err, storage.ErrClosed)
		}
	}()
	wg.Wait()
	require.NoError(t, s.Close())
	assert.ErrorIs(t, s.InsertAuditEvents(ctx, []storage.AuditEventRow{auditEvent("c", 2, ts("2024-06-01 00:00:00"), 1, "x")}), storage.ErrClosed)
}
