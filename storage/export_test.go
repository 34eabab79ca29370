package storage

import (
	"context"
	"io/fs"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Conn exposes the connection pool to the tests of package storage_test.
func (s *Store) Conn() driver.Conn { return s.conn }

// MigrateFS runs the migrations of dir in fsys instead of the embedded ones.
func (s *Store) MigrateFS(ctx context.Context, fsys fs.FS, dir string) error {
	return s.migrate(ctx, fsys, dir)
}
