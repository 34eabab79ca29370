package storage

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

//go:embed migrations/*.sql
var migrationsFS embed.FS

const schemaMigrationsDDL = `CREATE TABLE IF NOT EXISTS {db}.schema_migrations (
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime('UTC')
) ENGINE = ReplacingMergeTree
ORDER BY version`

// migration is one embedded file NNNN_name.sql.
type migration struct {
	version    uint32
	name       string
	checksum   string
	statements []string
}

var migrationName = regexp.MustCompile(`^(\d+)_([A-Za-z0-9_]+)\.sql$`)

// loadMigrations reads every NNNN_name.sql file of dir in fsys, ordered by version.
func loadMigrations(fsys fs.FS, dir string) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var out []migration
	seen := map[uint32]string{}
	for _, e := range entries {
		m := migrationName.FindStringSubmatch(e.Name())
		if e.IsDir() || m == nil {
			continue
		}
		v, err := strconv.ParseUint(m[1], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("migration %s: bad version: %w", e.Name(), err)
		}
		if prev, ok := seen[uint32(v)]; ok {
			return nil, fmt.Errorf("migrations %s and %s share version %d", prev, e.Name(), v)
		}
		seen[uint32(v)] = e.Name()
		body, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		sum := sha256.Sum256(body)
		out = append(out, migration{
			version:    uint32(v),
			name:       m[2],
			checksum:   hex.EncodeToString(sum[:8]),
			statements: splitStatements(string(body)),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}

// splitStatements drops "--" comment lines and splits on ";" at the end of a line.
func splitStatements(body string) []string {
	var (
		out []string
		cur strings.Builder
	)
	for _, line := range strings.Split(body, "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(t, ";") {
			if st := strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"); st != "" {
				out = append(out, st)
			}
			cur.Reset()
		}
	}
	if st := strings.TrimSpace(cur.String()); st != "" {
		out = append(out, st)
	}
	return out
}

// Migrate applies the embedded migrations (storage/migrations/NNNN_name.sql) that are not yet
// recorded in schema_migrations, in version order, and records each. Every statement is
// idempotent, so a re-run, a run interrupted half-way, and two replicas migrating at the same
// time all converge on the same schema. A recorded migration whose file changed since is an
// error: migrations are append-only.
func (s *Store) Migrate(ctx context.Context) error {
	return s.migrate(ctx, migrationsFS, "migrations")
}

func (s *Store) migrate(ctx context.Context, fsys fs.FS, dir string) error {
	migs, err := loadMigrations(fsys, dir)
	if err != nil {
		return err
	}
	if err := s.execIdempotent(ctx, s.ddl(schemaMigrationsDDL)); err != nil {
		return fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	applied := map[uint32]string{}
	rows, err := s.conn.Query(ctx, s.sql(`SELECT version, any(checksum) FROM {db}.schema_migrations GROUP BY version`))
	if err != nil {
		return fmt.Errorf("migrate: read schema_migrations: %w", err)
	}
	for rows.Next() {
		var (
			v   uint32
			sum string
		)
		if err := rows.Scan(&v, &sum); err != nil {
			_ = rows.Close()
			return fmt.Errorf("migrate: read schema_migrations: %w", err)
		}
		applied[v] = sum
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("migrate: read schema_migrations: %w", err)
	}
	_ = rows.Close()

	for _, m := range migs {
		if sum, ok := applied[m.version]; ok {
			if sum != m.checksum {
				return fmt.Errorf("migrate: migration %04d_%s changed after it was applied (checksum %s, recorded %s)", m.version, m.name, m.checksum, sum)
			}
			continue
		}
		start := time.Now()
		for i, st := range m.statements {
			if err := s.execIdempotent(ctx, s.ddl(st)); err != nil {
				return fmt.Errorf("migrate: %04d_%s statement %d: %w", m.version, m.name, i+1, err)
			}
		}
		// A batch, not Exec with VALUES: over the native protocol 18.16 waits for a data block.
		if err := s.batch(ctx, "INSERT INTO {db}.schema_migrations (version, name, checksum, applied_at)", 1, func(int) []any {
			return []any{m.version, m.name, m.checksum, time.Now().UTC().Truncate(time.Second)}
		}); err != nil {
			return fmt.Errorf("migrate: record %04d_%s: %w", m.version, m.name, err)
		}
		s.log.Info().Uint32("version", m.version).Str("migration", m.name).Str("database", s.cfg.Database).
			Dur("took", time.Since(start)).Msg("clickhouse migration applied")
	}
	return nil
}

// addColumnIfNotExists matches ALTER TABLE t ADD COLUMN IF NOT EXISTS c …, which ClickHouse
// 18.16 does not parse; execIdempotent runs it as a plain ADD COLUMN when the column is missing.
var addColumnIfNotExists = regexp.MustCompile(`(?is)^\s*ALTER\s+TABLE\s+(\S+)\s+ADD\s+COLUMN\s+IF\s+NOT\s+EXISTS\s+(\S+)\s+(.*)$`)

// plainAddColumn is an ALTER TABLE … ADD COLUMN IF NOT EXISTS statement without IF NOT
// EXISTS, what execIdempotent runs when the column is missing (any other statement as it is).
func plainAddColumn(st string) string {
	if m := addColumnIfNotExists.FindStringSubmatch(st); m != nil {
		return "ALTER TABLE " + m[1] + " ADD COLUMN " + m[2] + " " + m[3]
	}
	return st
}

// execIdempotent runs one migration statement. "Already exists" answers (a concurrent
// migrator got there first) count as success.
func (s *Store) execIdempotent(ctx context.Context, st string) error {
	m := addColumnIfNotExists.FindStringSubmatch(st)
	if m != nil {
		table := m[1]
		if i := strings.LastIndexByte(table, '.'); i >= 0 {
			table = table[i+1:]
		}
		table = strings.Trim(table, "`")
		column := strings.Trim(m[2], "`")
		var n uint64
		if err := s.conn.QueryRow(ctx, `SELECT count() FROM system.columns WHERE database = ? AND table = ? AND name = ?`,
			s.cfg.Database, table, column).Scan(&n); err != nil {
			return fmt.Errorf("look up column %s.%s: %w", table, column, err)
		}
		if n > 0 {
			return nil
		}
		st = plainAddColumn(st)
	}
	err := s.conn.Exec(ctx, st)
	switch exceptionCode(err) {
	case codeTableAlreadyExists, codeDatabaseAlreadyExists, codeDuplicateColumn:
		return nil
	case codeIllegalColumn:
		// A concurrent migrator added the column between the lookup and this ADD COLUMN:
		// 18.16 says so with ILLEGAL_COLUMN ("column with this name already exists").
		if m != nil && strings.Contains(err.Error(), "already exists") {
			return nil
		}
	}
	return err
}
