package storage_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/connectors"
	"github.com/seatwatch/greenhouse-collector/storage"
	"github.com/seatwatch/greenhouse-collector/storage/storagetest"
)

// TestInsertAuditEventsSurvivesOutage kills its own ClickHouse in the middle of writing:
// InsertAuditEvents keeps retrying, succeeds once the server is back, and nothing is lost or
// duplicated.
func TestInsertAuditEventsSurvivesOutage(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts its own ClickHouse")
	}
	if _, err := storagetest.FindServer(); err != nil {
		t.Skip(err)
	}
	srv := storagetest.StartServer(t, storagetest.ServerOptions{})
	s := storagetest.NewStoreWithConfig(t, storage.Config{Addr: []string{srv.Addr()}, DialTimeout: time.Second,
		AuditFlushInterval: 20 * time.Millisecond, Logger: storagetest.Logger(t)})
	ctx := t.Context()

	base := ts("2024-06-01 00:00:00")
	events := func(from, to int) []storage.AuditEventRow {
		var out []storage.AuditEventRow
		for i := from; i < to; i++ {
			out = append(out, auditEvent("acme", i, base.Add(time.Duration(i)*time.Minute), int64(i%7+1), "x"))
		}
		return out
	}
	require.NoError(t, s.InsertAuditEvents(ctx, events(0, 1000)))

	srv.Kill()
	done := make(chan error, 1)
	go func() { done <- s.InsertAuditEvents(ctx, events(500, 2000)) }() // overlaps the first write

	// Wait until the writer has failed at least twice against the stopped server.
	require.Eventually(t, func() bool { return s.AuditStats().Retries >= 2 }, 30*time.Second, 20*time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("InsertAuditEvents returned during the outage: %v", err)
	default:
	}
	require.NoError(t, srv.Start())
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(60 * time.Second):
		t.Fatal("InsertAuditEvents did not finish after the restart")
	}

	n, err := s.CountAuditEvents(ctx, "acme")
	require.NoError(t, err)
	assert.Equal(t, uint64(2000), n)
	require.NoError(t, s.Conn().Exec(ctx, "OPTIMIZE TABLE "+table(s, "audit_events")+" FINAL"))
	assert.Equal(t, uint64(2000), scalar(t, s, "SELECT count() FROM "+table(s, "audit_events")))

	// A caller whose context ends during an outage gets its context's error.
	srv.Kill()
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, s.InsertAuditEvents(short, events(3000, 3010)), context.DeadlineExceeded)
	require.NoError(t, srv.Start())
}

// TestTimezones runs a server in Asia/Kolkata (UTC+5:30) and a client in America/Los_Angeles:
// stored and returned times, UTC days and partitions stay UTC.
func TestTimezones(t *testing.T) {
	// Not parallel: it changes time.Local.
	if testing.Short() {
		t.Skip("starts its own ClickHouse")
	}
	if _, err := storagetest.FindServer(); err != nil {
		t.Skip(err)
	}
	la, err := time.LoadLocation("America/Los_Angeles")
	if err != nil {
		t.Skip("no time zone database:", err)
	}
	local := time.Local
	time.Local = la
	t.Cleanup(func() { time.Local = local })

	srv := storagetest.StartServer(t, storagetest.ServerOptions{Timezone: "Asia/Kolkata"})
	s := storagetest.NewStoreWithConfig(t, storage.Config{Addr: []string{srv.Addr()}})
	ctx := t.Context()
	var tz string
	require.NoError(t, s.Conn().QueryRow(ctx, "SELECT timezone()").Scan(&tz))
	require.Equal(t, "Asia/Kolkata", tz)

	late := ts("2024-03-31 23:30:00") // 05:00 on April 1st in Kolkata, 16:30 on March 31st in LA
	require.NoError(t, s.InsertAuditEvents(ctx, []storage.AuditEventRow{auditEvent("tz", 1, late.In(la), 1, "x")}))
	require.NoError(t, s.RefreshDailyActivity(ctx, "tz", []time.Time{late}))
	daily, err := s.DailyActivity(ctx, "tz", connectors.AppGreenhouse, ts("2024-03-31 00:00:00"), ts("2024-04-01 00:00:00"))
	require.NoError(t, err)
	assert.Equal(t, []storage.DailyActivityRow{{UserID: 1, Day: ts("2024-03-31 00:00:00"), Events: 1, LastEventAt: late}}, daily)

	var str, part string
	require.NoError(t, s.Conn().QueryRow(ctx, "SELECT toString(event_time), _partition_id FROM "+table(s, "audit_events")).Scan(&str, &part))
	assert.Equal(t, "2024-03-31 23:30:00", str)
	assert.Equal(t, "202403", part)

	u := storage.UserRow{TenantID: "tz", App: "greenhouse", UserID: 1, Status: "active", CreatedAt: late.In(la), LastActivityAt: ptr(late.In(la)), Version: 1}
	require.NoError(t, s.UpsertUsers(ctx, []storage.UserRow{u}))
	require.NoError(t, s.CurrentUsers(ctx, "tz", "greenhouse", func(got storage.UserRow) error {
		assert.True(t, got.CreatedAt.Equal(late))
		assert.Equal(t, time.UTC, got.CreatedAt.Location())
		assert.True(t, got.LastActivityAt.Equal(late))
		return nil
	}))
	// The usage threshold compares instants: activity at 23:30 UTC is active for a threshold of 23:30 UTC.
	util, err := s.Utilisation(ctx, "tz", "greenhouse", storage.UsageParams{Now: late.Add(24 * time.Hour).In(la), InactiveAfterDays: 1, CoverageStart: longAgo})
	require.NoError(t, err)
	assert.Equal(t, 1, util.Active)
}
