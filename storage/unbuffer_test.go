package storage_test

import (
	"fmt"
	"os"
	"path"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/seatwatch/greenhouse-collector/storage"
	"github.com/seatwatch/greenhouse-collector/storage/storagetest"
)

// TestSmallTablesReadTheirWrites: sync_runs, license_counts and usage_counts are written and
// read straight (docs/schema.md, "Buffers, and why they went"): a row is readable as soon as
// its write returns, in every read after it, while other tenants' writes make parts and
// merges; a run written twice, or a snapshot written again at one ts, is read once, the
// later write winning.
func TestSmallTablesReadTheirWrites(t *testing.T) {
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
	assert.Equal(t, uint64(2), scalar(t, s, "SELECT count() FROM "+table(s, "sync_runs")), "in the table once written")

	runs, err := s.SyncHealth(ctx, "acme", "greenhouse", 10)
	require.NoError(t, err)
	if assert.Len(t, runs, 1) {
		assert.Equal(t, uint32(3), runs[0].Users)
	}
	lc, err := s.LicenseCountsOverTime(ctx, "acme", "greenhouse", at, at.Add(time.Hour))
	require.NoError(t, err)
	if assert.Len(t, lc, 1) {
		assert.Equal(t, uint32(5), lc[0].Users, "the later snapshot at one ts wins")
	}

	// Read-your-writes under load: each run is in every read after its write returned.
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
	for i := range 150 {
		r := run
		r.RunID, r.StartedAt = fmt.Sprintf("mine-%03d", i), at.Add(time.Duration(i+1)*time.Minute)
		require.NoError(t, s.InsertSyncRun(ctx, r))
		runs, err := s.SyncHealth(ctx, "acme", "greenhouse", 1)
		require.NoError(t, err)
		require.Len(t, runs, 1)
		require.Equal(t, r.RunID, runs[0].RunID, "the run just written is the newest")
	}
	close(stop)
	require.NoError(t, g.Wait())
}

// TestMigrationDropsTheBuffers: a database at 0005_buffers with rows its buffers still hold
// keeps them through 0006_unbuffer (dropping a Buffer table flushes it), and the buffers are
// gone.
func TestMigrationDropsTheBuffers(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, err := storage.Open(ctx, storage.Config{Addr: []string{storagetest.Addr(t)}, Database: storagetest.Database(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	upTo5 := fstest.MapFS{}
	entries, err := os.ReadDir("migrations")
	require.NoError(t, err)
	for _, e := range entries {
		if e.Name() < "0006" {
			body, err := os.ReadFile(path.Join("migrations", e.Name()))
			require.NoError(t, err)
			upTo5["m/"+e.Name()] = &fstest.MapFile{Data: body}
		}
	}
	require.Len(t, upTo5, 5)
	require.NoError(t, s.MigrateFS(ctx, upTo5, "m"))

	at := ts("2024-06-30 11:00:00")
	b, err := s.Conn().PrepareBatch(ctx, "INSERT INTO "+table(s, "sync_runs_buffer")+" (tenant_id, app, run_id, kind, started_at, finished_at, status)")
	require.NoError(t, err)
	require.NoError(t, b.Append("acme", "greenhouse", "run-1", "users", at, at.Add(time.Second), "succeeded"))
	require.NoError(t, b.Send())
	assert.Zero(t, scalar(t, s, "SELECT count() FROM "+table(s, "sync_runs")), "held by the buffer")

	require.NoError(t, s.Migrate(ctx))
	runs, err := s.SyncHealth(ctx, "acme", "greenhouse", 10)
	require.NoError(t, err)
	if assert.Len(t, runs, 1) {
		assert.Equal(t, "run-1", runs[0].RunID)
	}
	assert.Zero(t, scalar(t, s, "SELECT count() FROM system.tables WHERE database = '"+s.Database()+"' AND name LIKE '%\\_buffer'"))
}
