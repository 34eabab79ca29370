package storage

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/seatwatch/greenhouse-collector/connectors"
)

// userChunk is how many user rows go into one INSERT.
const userChunk = 10_000

// epoch is what a zero time.Time is stored as (DateTime starts at 1970); it reads back as zero.
var epoch = time.Unix(0, 0).UTC()

// toDB clamps t into DateTime's range: the zero time (and anything before 1970) becomes epoch.
func toDB(t time.Time) time.Time {
	if t.Before(epoch) {
		return epoch
	}
	return t
}

// fromDB turns a stored DateTime back into a UTC time, epoch into the zero time.
func fromDB(t time.Time) time.Time {
	if t.Unix() <= 0 {
		return time.Time{}
	}
	return t.UTC()
}

func toDBPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := toDB(*t)
	return &v
}

func fromDBPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := t.UTC()
	return &v
}

// UserRow is one version of a user's state (the users table). The row with the highest
// Version is the current state; Revision increases on every change of the user.
type UserRow struct {
	TenantID, App                                 string
	UserID                                        int64
	Name, Email, Status, LicenseType              string
	SiteAdmin, ServiceAccount                     bool
	CreatedAt, UpdatedAt, FirstSeenAt, LastSeenAt time.Time
	RemovedAt, LastActivityAt                     *time.Time
	LastActivityType                              string
	Revision                                      uint32
	Version                                       uint64
	// LicensedAt is when the user's first license began, as far as the collector knows: the
	// creation of a user licensed when first listed, or the users sync that first found a
	// user licensed who was not before; nil for a user never licensed (and for rows written
	// before the column existed).
	LicensedAt *time.Time
}

const userColumns = `tenant_id, app, user_id, name, email, status, license_type, site_admin, service_account,
 created_at, updated_at, first_seen_at, last_seen_at, removed_at, last_activity_at, last_activity_type, revision, version, licensed_at`

// UpsertUsers writes user rows and returns once they are durable; concurrent callers' rows
// share INSERTs (group commit, Config.RowFlushInterval). Writing the same row again is
// harmless: the highest version wins.
func (s *Store) UpsertUsers(ctx context.Context, rows []UserRow) error {
	if len(rows) == 0 {
		return nil
	}
	if err := s.users.write(ctx, rows); err != nil {
		return fmt.Errorf("upsert %d users: %w", len(rows), err)
	}
	return nil
}

// currentUsersSQL reads a tenant's users as CurrentUsers returns them.
const currentUsersSQL = "SELECT " + userColumns + " FROM {db}.users WHERE tenant_id = ? AND app = ? ORDER BY user_id, version DESC LIMIT 1 BY user_id"

// CurrentUsers calls fn with the current state of every user of tenant and app (its row of
// the highest version, what FINAL keeps), in user_id order, streaming the result. It stops at
// and returns fn's first error. Every users sync and every activity pass reads its tenant's
// users so, and on ClickHouse 18.16 FINAL cost about 4.5 times the CPU of the same rows
// sorted and cut by LIMIT 1 BY (docs/performance.md, "Fifth session"). A read that fails with
// a retryable error before it gave fn a row is tried again (retryRead).
func (s *Store) CurrentUsers(ctx context.Context, tenant, app string, fn func(UserRow) error) error {
	delivered := false
	_, err := retryRead(func() (struct{}, error) {
		err := s.currentUsersOnce(ctx, tenant, app, func(u UserRow) error {
			delivered = true
			return fn(u)
		})
		if err != nil && delivered {
			err = final{err} // fn has rows already: a second read would give them again
		}
		return struct{}{}, err
	})
	return err
}

// currentUsersOnce is one read of CurrentUsers.
func (s *Store) currentUsersOnce(ctx context.Context, tenant, app string, fn func(UserRow) error) error {
	rows, err := s.conn.Query(ctx, s.sql(currentUsersSQL), tenant, app)
	if err != nil {
		return fmt.Errorf("read users of tenant %q: %w", tenant, err)
	}
	defer func() { _ = rows.Close() }()
	for rows.Next() {
		var u UserRow
		if err := scanUser(rows, &u); err != nil {
			return fmt.Errorf("read users of tenant %q: %w", tenant, err)
		}
		if err := fn(u); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read users of tenant %q: %w", tenant, err)
	}
	return nil
}

// scanUser reads a row of userColumns, followed by the destinations of any further columns,
// into u: the flags from UInt8, the times in UTC.
func scanUser(rows driver.Rows, u *UserRow, more ...any) error {
	var (
		admin, svc      uint8
		removed, la, lc *time.Time
	)
	dest := append([]any{&u.TenantID, &u.App, &u.UserID, &u.Name, &u.Email, &u.Status, &u.LicenseType, &admin, &svc,
		&u.CreatedAt, &u.UpdatedAt, &u.FirstSeenAt, &u.LastSeenAt, &removed, &la, &u.LastActivityType, &u.Revision, &u.Version, &lc}, more...)
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	u.SiteAdmin, u.ServiceAccount = admin == 1, svc == 1
	u.CreatedAt, u.UpdatedAt, u.FirstSeenAt, u.LastSeenAt = fromDB(u.CreatedAt), fromDB(u.UpdatedAt), fromDB(u.FirstSeenAt), fromDB(u.LastSeenAt)
	u.RemovedAt, u.LastActivityAt, u.LicensedAt = fromDBPtr(removed), fromDBPtr(la), fromDBPtr(lc)
	return nil
}

// LicenseCountRow is the number of users of one license type and status at a sync (ts).
type LicenseCountRow struct {
	TenantID, App       string
	TS                  time.Time
	LicenseType, Status string
	Users               uint32
}

// InsertLicenseCounts writes a license-count snapshot (group-committed like UpsertUsers); a
// replayed snapshot (same ts) replaces itself.
func (s *Store) InsertLicenseCounts(ctx context.Context, rows []LicenseCountRow) error {
	if len(rows) == 0 {
		return nil
	}
	version := writeVersion()
	versioned := make([]licenseCountsRow, len(rows))
	for i, r := range rows {
		versioned[i] = licenseCountsRow{LicenseCountRow: r, Version: version}
	}
	if err := s.licenseCounts.write(ctx, versioned); err != nil {
		return fmt.Errorf("insert %d license counts: %w", len(rows), err)
	}
	return nil
}

// licenseCountsRow is a license_counts row as written: a LicenseCountRow and the snapshot's
// writeVersion, by which the later of two snapshots at one ts wins.
type licenseCountsRow struct {
	LicenseCountRow
	Version uint64
}

// sendLicenseCounts runs one INSERT of license-count rows.
func (s *Store) sendLicenseCounts(ctx context.Context, rows []licenseCountsRow) error {
	return s.batch(ctx, "INSERT INTO {db}.license_counts_buffer (tenant_id, app, ts, license_type, status, users, version)", len(rows), func(i int) []any {
		r := &rows[i]
		return []any{r.TenantID, r.App, toDB(r.TS), r.LicenseType, r.Status, r.Users, r.Version}
	})
}

// lastVersion is the last version writeVersion returned.
var lastVersion atomic.Uint64

// writeVersion returns the time in ns, above every value it returned before: the version of a
// snapshot row (license_counts, usage_counts), so that of two snapshots written in turn at
// one ts the later wins even within one clock tick.
func writeVersion() uint64 {
	for {
		last := lastVersion.Load()
		v := max(uint64(time.Now().UnixNano()), last+1)
		if lastVersion.CompareAndSwap(last, v) {
			return v
		}
	}
}

// SyncRunRow is the summary of one sync run.
type SyncRunRow struct {
	TenantID, App, RunID, Kind         string
	StartedAt, FinishedAt              time.Time
	Status                             string
	Users, Events, Requests, Throttled uint32
	ErrorCode, ErrorMessage            string
}

const syncRunColumns = `tenant_id, app, run_id, kind, started_at, finished_at, status, users, events, requests, throttled, error_code, error_message`

// InsertSyncRun writes one sync run's summary (group-committed like UpsertUsers).
func (s *Store) InsertSyncRun(ctx context.Context, row SyncRunRow) error {
	if err := s.syncRuns.write(ctx, []SyncRunRow{row}); err != nil {
		return fmt.Errorf("insert sync run %s of tenant %q: %w", row.RunID, row.TenantID, err)
	}
	return nil
}

// sendSyncRuns runs one INSERT of sync-run rows.
func (s *Store) sendSyncRuns(ctx context.Context, rows []SyncRunRow) error {
	return s.batch(ctx, "INSERT INTO {db}.sync_runs_buffer ("+syncRunColumns+")", len(rows), func(i int) []any {
		r := &rows[i]
		return []any{r.TenantID, r.App, r.RunID, r.Kind, toDB(r.StartedAt), toDB(r.FinishedAt), r.Status,
			r.Users, r.Events, r.Requests, r.Throttled, r.ErrorCode, r.ErrorMessage}
	})
}

// startWriters starts the group-commit writers: the audit events' (Config.Audit*) and one
// per small per-run table, which flush every RowFlushInterval or at userChunk rows.
func (s *Store) startWriters(serverRevision uint64) {
	c := s.cfg
	s.native = newNativePool(c, c.AuditWorkers, serverRevision)
	s.audit = newGroupWriter(s, "audit_events", groupOptions{batchRows: c.AuditBatchRows, bufferRows: c.AuditBufferRows,
		workers: c.AuditWorkers, flushInterval: c.AuditFlushInterval}, s.sendAudit)
	small := groupOptions{batchRows: userChunk, bufferRows: 8 * userChunk, workers: 1, flushInterval: c.RowFlushInterval}
	bulky := small
	bulky.minGap = c.UserInsertGap
	s.users = newGroupWriter(s, "users", bulky, newNativeTable(s, serverRevision, "users", userCols).send)
	s.userChanges = newGroupWriter(s, "user_changes", bulky, newNativeTable(s, serverRevision, "user_changes", userChangeCols).send)
	s.licenseCounts = newGroupWriter(s, "license_counts", small, flat(s.sendLicenseCounts))
	s.usageCounts = newGroupWriter(s, "usage_counts", small, flat(s.sendUsageCounts))
	s.syncRuns = newGroupWriter(s, "sync_runs", small, flat(s.sendSyncRuns))
	// The daily rows of a backfill's activity pass (thousands per tenant) flush as the audit
	// rows do: every 50 ms, at 10 onboarding tenants a second, ClickHouse merged each small
	// part into the month's part of every tenant (docs/performance.md, "Eighth session").
	s.daily = newGroupWriter(s, "user_activity_daily", groupOptions{batchRows: c.AuditBatchRows, bufferRows: 4 * c.AuditBatchRows,
		workers: 1, flushInterval: c.AuditFlushInterval}, newNativeTable(s, serverRevision, "user_activity_daily", dailyCols).send)
	once := small
	once.once = true // the connection outbox keeps a change until it is stored
	s.connEvents = newGroupWriter(s, "connection_events", once, flat(s.sendConnectionEvents))
}

// closeWriters flushes every writer's pending rows (Close).
func (s *Store) closeWriters() {
	var wg sync.WaitGroup
	for _, c := range []func(){s.audit.close, s.users.close, s.userChanges.close, s.licenseCounts.close, s.usageCounts.close, s.syncRuns.close, s.daily.close, s.connEvents.close} {
		wg.Go(c)
	}
	wg.Wait()
	s.native.close()
	for _, p := range s.tablePools {
		p.close()
	}
}

// ConnectionEventRow is one change of a connection's state or checks. Checks is the checks
// array as JSON; Changed names what changed.
type ConnectionEventRow struct {
	TenantID, App   string
	TS              time.Time
	EventID, State  string
	UsageData       bool
	Checks, Changed string
}

// InsertConnectionEvent writes one connection event, group-committed like UpsertUsers: a
// burst of connects (10,009 single-row INSERTs when 10,000 tenants connected, each a part to
// merge; docs/performance.md, "Sixth session") shares INSERTs. Unlike UpsertUsers, a failed
// INSERT is not retried: the error returns at once, and the caller's outbox keeps the change
// for a later delivery (docs/reliability.md).
func (s *Store) InsertConnectionEvent(ctx context.Context, row ConnectionEventRow) error {
	if err := s.connEvents.write(ctx, []ConnectionEventRow{row}); err != nil {
		return fmt.Errorf("insert connection event of tenant %q: %w", row.TenantID, err)
	}
	return nil
}

// sendConnectionEvents runs one INSERT of connection events.
func (s *Store) sendConnectionEvents(ctx context.Context, rows []ConnectionEventRow) error {
	return s.batch(ctx, "INSERT INTO {db}.connection_events (tenant_id, app, ts, event_id, state, usage_data, checks, changed)", len(rows), func(i int) []any {
		r := &rows[i]
		return []any{r.TenantID, r.App, toDB(r.TS), r.EventID, r.State, b2u(r.UsageData), r.Checks, r.Changed}
	})
}

// batch runs one INSERT of n rows; row(i) returns the values of row i in column order.
func (s *Store) batch(ctx context.Context, insert string, n int, row func(i int) []any) error {
	b, err := s.conn.PrepareBatch(ctx, s.sql(insert))
	if err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	defer func() { _ = b.Close() }()
	for i := range n {
		if err := b.Append(row(i)...); err != nil {
			return fmt.Errorf("append row %d: %w", i, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	return nil
}

// auditApp is the app whose Audit Log audit_events holds (it has no app column); rows derived
// from audit events (user_activity_daily) carry it in theirs.
const auditApp = connectors.AppGreenhouse

// SeatUseSQL is the condition under which an audit event is a person's use of a seat
// (docs/events.md, "What counts as use"): a user performed it, it is not Harvest access, and
// its request.type is not an API request ("/v3/…", "https://…", "GET /v3/…"). A token minted
// with a user as sub acts as that user, so the collector's own reads and any integration's
// changes appear as that user's events; they are nobody's use of a seat. The simulator's
// SeatUse is the same rule, and a test keeps the two equal.
const SeatUseSQL = `performer_type = 'user' AND event_type != 'harvest_access' AND NOT match(request_type, '^([A-Z]+ )?(/|http)')`

// dailyActivitySQL computes a tenant's user_activity_daily rows for a set of days (%s).
const dailyActivitySQL = `SELECT toInt64OrZero(performer_id) AS uid, toDate(event_time) AS d,
       toUInt32(uniqExact(event_id)) AS events, max(event_time) AS last_event_at
FROM {db}.audit_events
WHERE tenant_id = ? AND event_time >= toDateTime(?, 'UTC') AND event_time < toDateTime(?, 'UTC')
  AND toDate(event_time) IN (%s)
  AND ` + SeatUseSQL + ` AND ` + userPerformerSQL + `
GROUP BY uid, d`

// dailyRow is a user_activity_daily row as written.
type dailyRow struct {
	TenantID    string
	UserID      int64
	Day         time.Time
	Events      uint32
	LastEventAt time.Time
	Version     uint64
}

// RefreshDailyActivity recomputes user_activity_daily for tenant and the given UTC days from
// audit_events: per user performer of seat-use events (SeatUseSQL; user_id = the numeric
// performer_id) and day, the distinct events and the newest event time. Rows carry the write
// time in ns as version, so a replay recomputes the same figures and replaces the old rows.
// The figures are read, then written through a group-committed writer: one part for many
// tenants' refreshes instead of one INSERT … SELECT, and one part, each (docs/performance.md,
// "Onboarding and memory").
func (s *Store) RefreshDailyActivity(ctx context.Context, tenant string, days []time.Time) error {
	if len(days) == 0 {
		return nil
	}
	set := map[string]time.Time{}
	for _, d := range days {
		d = d.UTC().Truncate(24 * time.Hour)
		set[d.Format("2006-01-02")] = d
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	first, last := set[keys[0]], set[keys[len(keys)-1]]
	list := "'" + strings.Join(keys, "','") + "'"
	rows, err := retryRead(func() ([]dailyRow, error) {
		return s.dailyActivity(ctx, fmt.Sprintf(dailyActivitySQL, list), tenant, first, last)
	})
	if err == nil {
		err = s.daily.write(ctx, rows)
	}
	if err != nil {
		return fmt.Errorf("refresh daily activity of tenant %q: %w", tenant, err)
	}
	return nil
}

// dailyActivity reads the rows of dailyActivitySQL q for tenant over the days first..last.
func (s *Store) dailyActivity(ctx context.Context, q, tenant string, first, last time.Time) ([]dailyRow, error) {
	version := uint64(time.Now().UnixNano())
	res, err := s.conn.Query(ctx, s.sql(q), tenant, unix(first), unix(last.Add(24*time.Hour)))
	if err != nil {
		return nil, err
	}
	defer res.Close()
	var out []dailyRow
	for res.Next() {
		r := dailyRow{TenantID: tenant, Version: version}
		if err := res.Scan(&r.UserID, &r.Day, &r.Events, &r.LastEventAt); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, res.Err()
}

// UserActivity is a user performer's activity within a time range of audit events.
type UserActivity struct {
	UserID        int64
	Events        uint64    // distinct events
	LastEventAt   time.Time // newest event time
	LastEventType string    // the type of that newest event
}

const userActivitySQL = `SELECT toInt64OrZero(performer_id) AS uid, uniqExact(event_id), max(event_time),
       argMax(event_type, tuple(event_time, event_id))
FROM {db}.audit_events
WHERE tenant_id = ? AND event_time >= toDateTime(?, 'UTC') AND event_time < toDateTime(?, 'UTC')
  AND ` + SeatUseSQL + ` AND ` + userPerformerSQL + ` %s
GROUP BY uid
ORDER BY uid`

// UserActivity returns, per user performer with seat-use events (SeatUseSQL) of tenant in
// [from, to), the distinct
// event count and the newest event with its type (ties broken by event_id). When ids is not
// empty only those users are returned.
func (s *Store) UserActivity(ctx context.Context, tenant string, from, to time.Time, ids []int64) ([]UserActivity, error) {
	filter := ""
	if len(ids) > 0 {
		parts := make([]string, len(ids))
		for i, id := range ids {
			parts[i] = fmt.Sprint(id)
		}
		filter = "AND toInt64OrZero(performer_id) IN (" + strings.Join(parts, ",") + ")"
	}
	return retryRead(func() ([]UserActivity, error) { return s.userActivityOnce(ctx, tenant, filter, from, to) })
}

// userActivityOnce is one read of UserActivity, filter being its user id condition.
func (s *Store) userActivityOnce(ctx context.Context, tenant, filter string, from, to time.Time) ([]UserActivity, error) {
	rows, err := s.conn.Query(ctx, s.sql(fmt.Sprintf(userActivitySQL, filter)), tenant, unix(from), unix(to))
	if err != nil {
		return nil, fmt.Errorf("read user activity of tenant %q: %w", tenant, err)
	}
	defer func() { _ = rows.Close() }()
	var out []UserActivity
	for rows.Next() {
		var a UserActivity
		if err := rows.Scan(&a.UserID, &a.Events, &a.LastEventAt, &a.LastEventType); err != nil {
			return nil, fmt.Errorf("read user activity of tenant %q: %w", tenant, err)
		}
		a.LastEventAt = a.LastEventAt.UTC()
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read user activity of tenant %q: %w", tenant, err)
	}
	return out, nil
}
