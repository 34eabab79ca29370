package storage

import (
	"context"
	"fmt"
	"reflect"
	"strings"
)

// Tables are the tables of the contract, in the order the docs list them.
var Tables = []string{"users", "license_counts", "audit_events", "user_activity_daily", "sync_runs", "connection_events", "user_changes", "usage_counts", "policy_changes", "actions"}

// buffered are the tables written and read through a Buffer table of the same name with
// "_buffer" appended (docs/schema.md, "Buffers").
var buffered = map[string]bool{"sync_runs": true, "license_counts": true, "usage_counts": true}

// readThrough returns the table to read table through: its Buffer table where it has one, so
// that rows not yet flushed are read too.
func readThrough(table string) string {
	if buffered[table] {
		return table + "_buffer"
	}
	return table
}

// RowCounts returns the number of stored rows of every table (before merges deduplicate).
func (s *Store) RowCounts(ctx context.Context) (map[string]uint64, error) {
	out := make(map[string]uint64, len(Tables))
	for _, t := range Tables {
		var n uint64
		if err := s.conn.QueryRow(ctx, s.sql("SELECT count() FROM {db}."+readThrough(t))).Scan(&n); err != nil {
			return nil, fmt.Errorf("count rows of %s: %w", t, err)
		}
		out[t] = n
	}
	return out, nil
}

// DumpText returns every row of every table as tab-separated text. Tests scan it for secrets.
func (s *Store) DumpText(ctx context.Context) (string, error) {
	var b strings.Builder
	for _, t := range Tables {
		if err := s.dumpTable(ctx, t, &b); err != nil {
			return "", fmt.Errorf("dump %s: %w", t, err)
		}
	}
	return b.String(), nil
}

func (s *Store) dumpTable(ctx context.Context, table string, b *strings.Builder) error {
	rows, err := s.conn.Query(ctx, s.sql("SELECT * FROM {db}."+readThrough(table)))
	if err != nil {
		return err
	}
	defer func() { _ = rows.Close() }()
	cols := rows.ColumnTypes()
	for rows.Next() {
		vals := make([]any, len(cols))
		for i, c := range cols {
			vals[i] = reflect.New(c.ScanType()).Interface()
		}
		if err := rows.Scan(vals...); err != nil {
			return err
		}
		b.WriteString(table)
		for _, v := range vals {
			fmt.Fprintf(b, "\t%v", reflect.ValueOf(v).Elem().Interface())
		}
		b.WriteByte('\n')
	}
	return rows.Err()
}
