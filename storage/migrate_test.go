package storage_test

import (
	"os"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/seatwatch/greenhouse-collector/storage"
	"github.com/seatwatch/greenhouse-collector/storage/storagetest"
)

var tables = []string{"actions", "audit_events", "connection_events", "license_counts", "license_counts_buffer", "policy_changes", "schema_migrations", "sync_runs", "sync_runs_buffer", "usage_counts", "usage_counts_buffer", "user_activity_daily", "user_changes", "users"}

func tablesOf(t *testing.T, s *storage.Store) []string {
	t.Helper()
	rows, err := s.Conn().Query(t.Context(), "SELECT name FROM system.tables WHERE database = ? ORDER BY name", s.Database())
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		require.NoError(t, rows.Scan(&n))
		out = append(out, n)
	}
	require.NoError(t, rows.Err())
	return out
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	addr := storagetest.Addr(t)
	tests := []struct {
		name     string
		replicas int // stores migrating the same database at once
		runs     int // Migrate calls per store, one after the other
	}{
		{name: "fresh", replicas: 1, runs: 1},
		{name: "re-run", replicas: 1, runs: 3},
		{name: "two concurrent", replicas: 2, runs: 1},
		{name: "four concurrent twice", replicas: 4, runs: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := storagetest.Database(t)
			stores := make([]*storage.Store, tc.replicas)
			for i := range stores {
				s, err := storage.Open(t.Context(), storage.Config{Addr: []string{addr}, Database: db})
				require.NoError(t, err)
				t.Cleanup(func() { _ = s.Close() })
				stores[i] = s
			}
			var g errgroup.Group
			var start sync.WaitGroup
			start.Add(1)
			for _, s := range stores {
				g.Go(func() error {
					start.Wait()
					for range tc.runs {
						if err := s.Migrate(t.Context()); err != nil {
							return err
						}
					}
					return nil
				})
			}
			start.Done()
			require.NoError(t, g.Wait())
			assert.Equal(t, tables, tablesOf(t, stores[0]))
			files, err := os.ReadDir("migrations")
			require.NoError(t, err)
			assert.Equal(t, uint64(len(files)), scalar(t, stores[0], "SELECT uniqExact(version) FROM "+table(stores[0], "schema_migrations")), "every migration once")
			assert.Equal(t, db, stores[0].Database())
		})
	}
}

func TestMigrateAddColumnAndChecksum(t *testing.T) {
	t.Parallel()
	s := storagetest.NewStore(t)
	ctx := t.Context()
	fsys := fstest.MapFS{
		"m/1001_t.sql": {Data: []byte("-- a test table\nCREATE TABLE IF NOT EXISTS {db}.t (a String) ENGINE = ReplacingMergeTree ORDER BY a;\n")},
		"m/1002_col.sql": {Data: []byte("ALTER TABLE {db}.t ADD COLUMN IF NOT EXISTS b UInt32 DEFAULT 7;\n" +
			"ALTER TABLE {db}.t ADD COLUMN IF NOT EXISTS b UInt32 DEFAULT 7;\n")},
	}
	require.NoError(t, s.MigrateFS(ctx, fsys, "m"))
	require.NoError(t, s.MigrateFS(ctx, fsys, "m"), "re-run")
	assert.Equal(t, uint64(1), scalar(t, s, "SELECT count() FROM system.columns WHERE database = ? AND table = 't' AND name = 'b'", s.Database()))

	fsys["m/1002_col.sql"] = &fstest.MapFile{Data: []byte("ALTER TABLE {db}.t ADD COLUMN IF NOT EXISTS c String;\n")}
	err := s.MigrateFS(ctx, fsys, "m")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "changed after it was applied")
}

func TestOpenRejectsBadDatabaseName(t *testing.T) {
	t.Parallel()
	_, err := storage.Open(t.Context(), storage.Config{Addr: []string{storagetest.Addr(t)}, Database: "x`; DROP"})
	require.Error(t, err)
}
