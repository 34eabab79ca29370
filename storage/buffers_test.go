package storage_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/seatwatch/greenhouse-collector/storage"
	"github.com/seatwatch/greenhouse-collector/storage/storagetest"
)

// TestSmallTablesWriteThroughBuffers: sync_runs, license_counts and usage_counts are written
// through their Buffer tables (docs/schema.md, "Buffers"): a row is readable as soon as its
// write returns, reaches its table within the buffer's 5 seconds, and a row the buffer holds
// twice, or a snapshot written again at one ts, is read once, the later write winning, before
// and after the flush; and while other tenants' writes keep the buffers flushing, every row
// is in every read after its write returned.
func TestSmallTablesWriteThroughBuffers(t *testing.T) {
	t.Parallel()
	s := storagetest.NewStore(t)
	ctx := t.Context()
	at := ts("2024-06-30 11:00:00")
	run := storage.SyncRunRow{TenantID: "acme", App: "greenhouse", RunID: "run-1", Kind: "users", StartedAt: at,
		FinishedAt: at.Add(time.Second), Status: "succeeded", Users: 3}
	// The same run twice: a retried INSERT whose first attempt was stored after all.
	require.NoError(t, s.InsertSyncRun(ctx, run))
	require.NoError(t, s.InsertSyncRun(ctx, run))
	counts := func(users uint32) []storage.LicenseCountRow {
		return []storage.LicenseCountRow{{TenantID: "acme", App: "greenhouse", TS: at, LicenseType: "basic", Status: "active", Users: users}}
	}
	require.NoError(t, s.InsertLicenseCounts(ctx, counts(4)))
	require.NoError(t, s.InsertLicenseCounts(ctx, counts(5)))
	assert.Zero(t, scalar(t, s, "SELECT count() FROM "+table(s, "sync_runs")), "held by the buffer, not yet in the table")

	check := func(when string) {
		t.Helper()
		runs, err := s.SyncHealth(ctx, "acme", "greenhouse", 10)
		require.NoError(t, err)
		if assert.Len(t, runs, 1, when) {
			assert.Equal(t, uint32(3), runs[0].Users, when)
		}
		var page []storage.SyncRunRow
		require.NoError(t, s.SyncRuns(ctx, "acme", "greenhouse", storage.SyncRunFilter{}, 10, func(r storage.SyncRunRow) error {
			page = append(page, r)
			return nil
		}))
		assert.Len(t, page, 1, when)
		lc, err := s.LicenseCountsOverTime(ctx, "acme", "greenhouse", at, at.Add(time.Hour))
		require.NoError(t, err)
		if assert.Len(t, lc, 1, when) {
			assert.Equal(t, uint32(5), lc[0].Users, "the later snapshot at one ts wins, "+when)
		}
	}
	check("from the buffer")
	require.Eventually(t, func() bool {
		return scalar(t, s, "SELECT count() FROM "+table(s, "sync_runs")) == 2 &&
			scalar(t, s, "SELECT count() FROM "+table(s, "license_counts")) == 2
	}, 20*time.Second, 200*time.Millisecond, "the buffer flushes into the tables")
	check("from the table")

	// Read-your-writes while buffers flush (every 5 s): each run and snapshot is in every
	// read after its write returned, though a single read through a buffer can miss rows a
	// flush is moving (readTwice). Other tenants' writes keep the buffer busy.
	var g errgroup.Group
	stop := make(chan struct{})
	g.Go(func() error {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return nil
			default:
			}
			other := storage.SyncRunRow{TenantID: fmt.Sprintf("t%d", i%50), App: "greenhouse", RunID: fmt.Sprint(i), Kind: "audit",
				StartedAt: at.Add(time.Duration(i) * time.Second), Status: "succeeded"}
			if err := s.InsertSyncRun(ctx, other); err != nil {
				return err
			}
		}
	})
	for i, deadline := 0, time.Now().Add(12*time.Second); time.Now().Before(deadline); i++ {
		r := run
		r.RunID, r.StartedAt = fmt.Sprintf("mine-%04d", i), at.Add(time.Duration(i+1)*time.Minute)
		require.NoError(t, s.InsertSyncRun(ctx, r))
		require.NoError(t, s.InsertLicenseCounts(ctx, []storage.LicenseCountRow{{TenantID: "acme", App: "greenhouse", TS: r.StartedAt,
			LicenseType: "basic", Status: "active", Users: uint32(i)}}))
		runs, err := s.SyncHealth(ctx, "acme", "greenhouse", 1)
		require.NoError(t, err)
		require.Len(t, runs, 1)
		require.Equal(t, r.RunID, runs[0].RunID, "the run just written is the newest")
		lc, err := s.LicenseCountsOverTime(ctx, "acme", "greenhouse", r.StartedAt, r.StartedAt.Add(time.Second))
		require.NoError(t, err)
		require.Len(t, lc, 1, "the snapshot just written")
	}
	close(stop)
	require.NoError(t, g.Wait())
}
