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

// UsageOfUsers classifies every user of tenant and app with the usage rule in SQL (usageSQL
// and reasonSQL): usage and reason by user id.
func (s *Store) UsageOfUsers(ctx context.Context, tenant, app string, p UsageParams) (map[int64][2]string, error) {
	q := s.sql(usagePlaceholders.Replace("SELECT user_id, {usage}, {reason} FROM {db}.users FINAL WHERE tenant_id = @tenant AND app = @app"))
	rows, err := s.conn.Query(ctx, q, append(named(tenant, app), usageArgs(p)...)...)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	out := map[int64][2]string{}
	for rows.Next() {
		var (
			id            int64
			usage, reason string
		)
		if err := rows.Scan(&id, &usage, &reason); err != nil {
			return nil, err
		}
		out[id] = [2]string{usage, reason}
	}
	return out, rows.Err()
}

// ConnectionEventInserts is how many INSERTs the connection events' writer has run.
func (s *Store) ConnectionEventInserts() uint64 { return s.connEvents.inserts.Load() }
