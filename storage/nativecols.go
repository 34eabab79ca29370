package storage

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/ch-go/proto"
)

// The larger group-committed tables (users, user_changes, user_activity_daily) are written
// with ch-go (native.go) from columns kept between INSERTs, as audit_events are: through clickhouse-go's batch API every value went through reflection
// into columns that were garbage after each INSERT, about 8 of the 46 GB the collector
// allocated while 2,000 tenants onboarded (docs/performance.md, "Tenth session").

// nativeCol is one column of such an INSERT: its name, its data, and how a batch fills it.
type nativeCol[R any] struct {
	name string
	data proto.ColInput
	fill func(chunks [][]R, n int) // n: the rows in chunks
}

// nativeCols are a table's columns in its INSERT's order.
type nativeCols[R any] []nativeCol[R]

// input fills every column with the rows of chunks and names them for the INSERT.
func (c nativeCols[R]) input(chunks [][]R) proto.Input {
	n := 0
	for _, rows := range chunks {
		n += len(rows)
	}
	in := make(proto.Input, len(c))
	for i, col := range c {
		col.fill(chunks, n)
		in[i] = proto.InputColumn{Name: col.name, Data: col.data}
	}
	return in
}

// query is the INSERT of the columns into table ({db} unreplaced).
func (c nativeCols[R]) query(table string) string {
	names := make([]string, len(c))
	for i, col := range c {
		names[i] = col.name
	}
	return "INSERT INTO {db}." + table + " (" + strings.Join(names, ", ") + ") VALUES"
}

// strCol is a String column; it grows once to the batch's size.
func strCol[R any](name string, get func(*R) string) nativeCol[R] {
	c := new(proto.ColStr)
	return nativeCol[R]{name: name, data: c, fill: func(chunks [][]R, n int) {
		size := 0
		for _, rows := range chunks {
			for i := range rows {
				size += len(get(&rows[i]))
			}
		}
		c.Reset()
		c.Buf = slices.Grow(c.Buf, size)
		c.Pos = slices.Grow(c.Pos, n)
		for _, rows := range chunks {
			for i := range rows {
				c.Append(get(&rows[i]))
			}
		}
	}}
}

// valCol is a column of values of type T (numbers, dates, nullables).
func valCol[R, T any](name string, c proto.ColumnOf[T], get func(*R) T) nativeCol[R] {
	return nativeCol[R]{name: name, data: c, fill: func(chunks [][]R, _ int) {
		c.Reset()
		for _, rows := range chunks {
			for i := range rows {
				c.Append(get(&rows[i]))
			}
		}
	}}
}

// timeCol is a DateTime column; times before 1970 are stored as 1970 (toDB).
func timeCol[R any](name string, get func(*R) time.Time) nativeCol[R] {
	return valCol(name, proto.ColumnOf[time.Time](new(proto.ColDateTime)), func(r *R) time.Time { return toDB(get(r)) })
}

// nullTimeCol is a Nullable(DateTime) column: nil is NULL.
func nullTimeCol[R any](name string, get func(*R) *time.Time) nativeCol[R] {
	return valCol(name, proto.ColumnOf[proto.Nullable[time.Time]](proto.NewColNullable[time.Time](new(proto.ColDateTime))),
		func(r *R) proto.Nullable[time.Time] {
			if t := get(r); t != nil {
				return proto.NewNullable(toDB(*t))
			}
			return proto.Null[time.Time]()
		})
}

// nativeTable sends a table's INSERTs, one at a time (its writer has one worker), from a
// column set kept between them, over a connection of its own: ch-go's connections keep their
// encoding and compression buffers at the size of the largest block they sent, so sharing
// the audit writer's (50,000 events a block) held about 130 MB more at 2,000 tenants.
type nativeTable[R any] struct {
	table string
	pool  *nativePool
	query string // with {db} replaced
	cols  nativeCols[R]
}

func newNativeTable[R any](s *Store, serverRevision uint64, table string, cols func() nativeCols[R]) *nativeTable[R] {
	t := &nativeTable[R]{table: table, pool: newNativePool(s.cfg, 1, serverRevision), cols: cols()}
	t.query = s.sql(t.cols.query(table))
	s.tablePools = append(s.tablePools, t.pool)
	return t
}

// send runs one INSERT of the rows of chunks; its writer's one worker calls it.
func (t *nativeTable[R]) send(ctx context.Context, chunks [][]R) error {
	if err := t.pool.do(ctx, t.query, t.cols.input(chunks)); err != nil {
		return fmt.Errorf("insert into %s: %w", t.table, err)
	}
	return nil
}

func userCols() nativeCols[UserRow] {
	return nativeCols[UserRow]{
		strCol("tenant_id", func(u *UserRow) string { return u.TenantID }),
		strCol("app", func(u *UserRow) string { return u.App }),
		valCol("user_id", proto.ColumnOf[int64](new(proto.ColInt64)), func(u *UserRow) int64 { return u.UserID }),
		strCol("name", func(u *UserRow) string { return u.Name }),
		strCol("email", func(u *UserRow) string { return u.Email }),
		strCol("status", func(u *UserRow) string { return u.Status }),
		strCol("license_type", func(u *UserRow) string { return u.LicenseType }),
		valCol("site_admin", proto.ColumnOf[uint8](new(proto.ColUInt8)), func(u *UserRow) uint8 { return b2u(u.SiteAdmin) }),
		valCol("service_account", proto.ColumnOf[uint8](new(proto.ColUInt8)), func(u *UserRow) uint8 { return b2u(u.ServiceAccount) }),
		timeCol("created_at", func(u *UserRow) time.Time { return u.CreatedAt }),
		timeCol("updated_at", func(u *UserRow) time.Time { return u.UpdatedAt }),
		timeCol("first_seen_at", func(u *UserRow) time.Time { return u.FirstSeenAt }),
		timeCol("last_seen_at", func(u *UserRow) time.Time { return u.LastSeenAt }),
		nullTimeCol("removed_at", func(u *UserRow) *time.Time { return u.RemovedAt }),
		nullTimeCol("last_activity_at", func(u *UserRow) *time.Time { return u.LastActivityAt }),
		strCol("last_activity_type", func(u *UserRow) string { return u.LastActivityType }),
		valCol("revision", proto.ColumnOf[uint32](new(proto.ColUInt32)), func(u *UserRow) uint32 { return u.Revision }),
		valCol("version", proto.ColumnOf[uint64](new(proto.ColUInt64)), func(u *UserRow) uint64 { return u.Version }),
		nullTimeCol("licensed_at", func(u *UserRow) *time.Time { return u.LicensedAt }),
	}
}

func userChangeCols() nativeCols[UserChangeRow] {
	return nativeCols[UserChangeRow]{
		strCol("tenant_id", func(r *UserChangeRow) string { return r.TenantID }),
		strCol("app", func(r *UserChangeRow) string { return r.App }),
		valCol("user_id", proto.ColumnOf[int64](new(proto.ColInt64)), func(r *UserChangeRow) int64 { return r.UserID }),
		valCol("revision", proto.ColumnOf[uint32](new(proto.ColUInt32)), func(r *UserChangeRow) uint32 { return r.Revision }),
		timeCol("changed_at", func(r *UserChangeRow) time.Time { return r.ChangedAt }),
		strCol("changed", func(r *UserChangeRow) string { return strings.Join(r.Changed, ",") }),
		strCol("status", func(r *UserChangeRow) string { return r.Status }),
		strCol("license_type", func(r *UserChangeRow) string { return r.LicenseType }),
		valCol("site_admin", proto.ColumnOf[uint8](new(proto.ColUInt8)), func(r *UserChangeRow) uint8 { return b2u(r.SiteAdmin) }),
		valCol("service_account", proto.ColumnOf[uint8](new(proto.ColUInt8)), func(r *UserChangeRow) uint8 { return b2u(r.ServiceAccount) }),
		strCol("name", func(r *UserChangeRow) string { return r.Name }),
		strCol("email", func(r *UserChangeRow) string { return r.Email }),
		valCol("version", proto.ColumnOf[uint64](new(proto.ColUInt64)), func(r *UserChangeRow) uint64 { return r.Version }),
	}
}

func dailyCols() nativeCols[dailyRow] {
	return nativeCols[dailyRow]{
		strCol("tenant_id", func(r *dailyRow) string { return r.TenantID }),
		strCol("app", func(*dailyRow) string { return auditApp }),
		valCol("user_id", proto.ColumnOf[int64](new(proto.ColInt64)), func(r *dailyRow) int64 { return r.UserID }),
		valCol("day", proto.ColumnOf[time.Time](new(proto.ColDate)), func(r *dailyRow) time.Time { return r.Day }),
		valCol("events", proto.ColumnOf[uint32](new(proto.ColUInt32)), func(r *dailyRow) uint32 { return r.Events }),
		timeCol("last_event_at", func(r *dailyRow) time.Time { return r.LastEventAt }),
		valCol("version", proto.ColumnOf[uint64](new(proto.ColUInt64)), func(r *dailyRow) uint64 { return r.Version }),
	}
}
