package storage

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// The read API's queries (docs/api.md, docs/schema.md "Read API queries"): the users list
// (one walk's ids, a page's rows, the streamed export), a user's history and activity, the
// usage trend and the sync-run history.

// Sort keys of the users list.
const (
	SortName           = "name"
	SortEmail          = "email"
	SortCreatedAt      = "created_at"
	SortLastActivityAt = "last_activity_at"
)

// userOrders are the ORDER BY clauses of the users list by sort key, ascending; every one
// ends with user_id so that the order is total. Names and emails sort without regard to
// case, then by their bytes. A user who never acted sorts as the oldest activity.
var userOrders = map[string][]string{
	SortName:           {"lowerUTF8(name)", "name", "user_id"},
	SortEmail:          {"lowerUTF8(email)", "email", "user_id"},
	SortCreatedAt:      {"created_at", "user_id"},
	SortLastActivityAt: {"ifNull(last_activity_at, toDateTime(0, 'UTC'))", "user_id"},
}

// UserSort is the order of the users list: Key one of SortName, SortEmail, SortCreatedAt,
// SortLastActivityAt, descending when Desc.
type UserSort struct {
	Key  string
	Desc bool
}

func (o UserSort) clause() (string, error) {
	cols, ok := userOrders[o.Key]
	if !ok {
		return "", fmt.Errorf("unknown sort key %q", o.Key)
	}
	dir := " ASC"
	if o.Desc {
		dir = " DESC"
	}
	return strings.Join(cols, dir+", ") + dir, nil
}

// UserFilter selects users of the list. Empty lists and nil pointers match everything.
// Usages filters license holders by their usage under Usage (active, inactive, unknown,
// exempt; a user without a license has none); Exempt keeps the exempt license holders (true)
// or everyone else (false). Query is a case-insensitive substring of name or email.
type UserFilter struct {
	Statuses, LicenseTypes, Usages   []string
	ServiceAccount, Licensed, Exempt *bool
	Query                            string
	Usage                            UsageParams
}

func (f UserFilter) args(tenant, app string) []any {
	tri := func(b *bool) int {
		switch {
		case b == nil:
			return -1
		case *b:
			return 1
		}
		return 0
	}
	return append(named(tenant, app,
		"statuses", strings.Join(f.Statuses, ","), "license_types", strings.Join(f.LicenseTypes, ","),
		"usages", strings.Join(f.Usages, ","), "service_account", tri(f.ServiceAccount), "licensed", tri(f.Licensed),
		"exempt", tri(f.Exempt), "q", f.Query), usageArgs(f.Usage)...)
}

// ListedUser is a user's current row with its active days (days with seat-use events since
// the day given to the query).
type ListedUser struct {
	UserRow
	ActiveDays uint32
}

// usersQuery returns the named query with the filter fragment and order filled in.
func (s *Store) usersQuery(name string, o UserSort) (string, error) {
	order, err := o.clause()
	if err != nil {
		return "", err
	}
	q := strings.ReplaceAll(s.query(name), "{user_filter}", s.query("user_filter"))
	return strings.ReplaceAll(q, "{order}", order), nil
}

// UserIDs returns the ids of the users of tenant and app that match f, in the order o: the
// membership and order of one walk of the users list.
func (s *Store) UserIDs(ctx context.Context, tenant, app string, f UserFilter, o UserSort) ([]int64, error) {
	q, err := s.usersQuery("users_walk", o)
	if err != nil {
		return nil, err
	}
	rows, err := s.conn.Query(ctx, q, f.args(tenant, app)...)
	if err != nil {
		return nil, fmt.Errorf("list users of tenant %q: %w", tenant, err)
	}
	defer func() { _ = rows.Close() }()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("list users of tenant %q: %w", tenant, err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list users of tenant %q: %w", tenant, err)
	}
	return ids, nil
}

// UsersByID returns the current rows of the given users of tenant and app (in no particular
// order; ids without a row are left out), with their active days since the UTC day of since.
func (s *Store) UsersByID(ctx context.Context, tenant, app string, ids []int64, since time.Time) ([]ListedUser, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.FormatInt(id, 10)
	}
	q := strings.ReplaceAll(s.query("users_by_id"), "{ids}", strings.Join(parts, ","))
	var out []ListedUser
	err := s.scanUsers(ctx, tenant, q, named(tenant, app, "since_day", since.UTC().Format(time.DateOnly)), func(u ListedUser) error {
		out = append(out, u)
		return nil
	})
	return out, err
}

// ExportUsers calls fn with every user of tenant and app that matches f, in the order o, with
// their active days since the UTC day of since, streaming the rows. It stops at and returns
// fn's first error.
func (s *Store) ExportUsers(ctx context.Context, tenant, app string, f UserFilter, o UserSort, since time.Time, fn func(ListedUser) error) error {
	q, err := s.usersQuery("users_export", o)
	if err != nil {
		return err
	}
	args := append(f.args(tenant, app), clickhouse.Named("since_day", since.UTC().Format(time.DateOnly)))
	return s.scanUsers(streamed(ctx), tenant, q, args, fn)
}

// exportBlockRows bounds the rows of one block of a streamed export: the client holds about
// a block at a time, so its memory does not grow with the rows (ClickHouse's default block of
// 65,536 rows would hold a whole tenant's users at once).
const exportBlockRows = 1000

// streamed asks ClickHouse for small blocks on ctx's queries.
func streamed(ctx context.Context) context.Context {
	return clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"max_block_size": exportBlockRows}))
}

func (s *Store) scanUsers(ctx context.Context, tenant, q string, args []any, fn func(ListedUser) error) error {
	rows, err := s.conn.Query(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("read users of tenant %q: %w", tenant, err)
	}
	defer func() { _ = rows.Close() }()
	for rows.Next() {
		var u ListedUser
		if err := scanUser(rows, &u.UserRow, &u.ActiveDays); err != nil {
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

// UserChangeRow is one revision of a user (the user_changes table): what changed and the
// state after the change, at the time of the users sync that saw it.
type UserChangeRow struct {
	TenantID, App             string
	UserID                    int64
	Revision                  uint32
	ChangedAt                 time.Time
	Changed                   []string // e.g. created, status, license_type
	Status, LicenseType       string
	SiteAdmin, ServiceAccount bool
	Name, Email               string
	Version                   uint64
}

// InsertUserChanges writes user revisions (group-committed like UpsertUsers); a replayed
// revision (same tenant, app, user and revision) replaces itself, the highest version winning.
func (s *Store) InsertUserChanges(ctx context.Context, rows []UserChangeRow) error {
	if len(rows) == 0 {
		return nil
	}
	if err := s.userChanges.write(ctx, rows); err != nil {
		return fmt.Errorf("insert %d user changes: %w", len(rows), err)
	}
	return nil
}

// UserHistory returns the stored revisions of one user, oldest first.
func (s *Store) UserHistory(ctx context.Context, tenant, app string, userID int64) ([]UserChangeRow, error) {
	rows, err := s.conn.Query(ctx, s.query("user_history"), named(tenant, app, "user", userID)...)
	if err != nil {
		return nil, fmt.Errorf("read history of user %d of tenant %q: %w", userID, tenant, err)
	}
	defer func() { _ = rows.Close() }()
	var out []UserChangeRow
	for rows.Next() {
		var (
			r          = UserChangeRow{TenantID: tenant, App: app, UserID: userID}
			changed    string
			admin, svc uint8
		)
		if err := rows.Scan(&r.Revision, &r.ChangedAt, &changed, &r.Status, &r.LicenseType, &admin, &svc, &r.Name, &r.Email); err != nil {
			return nil, fmt.Errorf("read history of user %d of tenant %q: %w", userID, tenant, err)
		}
		r.ChangedAt, r.SiteAdmin, r.ServiceAccount = fromDB(r.ChangedAt), admin == 1, svc == 1
		if changed != "" {
			r.Changed = strings.Split(changed, ",")
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read history of user %d of tenant %q: %w", userID, tenant, err)
	}
	return out, nil
}

// UserDailyActivity returns one user's daily activity for the UTC days overlapping
// [from, to), ordered by day.
func (s *Store) UserDailyActivity(ctx context.Context, tenant, app string, userID int64, from, to time.Time) ([]DailyActivityRow, error) {
	fd, td := dayRange(from, to)
	rows, err := s.conn.Query(ctx, s.query("user_daily_activity"), named(tenant, app, "user", userID, "from_day", fd, "to_day", td)...)
	if err != nil {
		return nil, fmt.Errorf("read activity of user %d of tenant %q: %w", userID, tenant, err)
	}
	defer func() { _ = rows.Close() }()
	var out []DailyActivityRow
	for rows.Next() {
		r := DailyActivityRow{UserID: userID}
		if err := rows.Scan(&r.Day, &r.Events, &r.LastEventAt); err != nil {
			return nil, fmt.Errorf("read activity of user %d of tenant %q: %w", userID, tenant, err)
		}
		r.Day = time.Date(r.Day.Year(), r.Day.Month(), r.Day.Day(), 0, 0, 0, 0, time.UTC)
		r.LastEventAt = r.LastEventAt.UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read activity of user %d of tenant %q: %w", userID, tenant, err)
	}
	return out, nil
}

// UsageCountRow is the usage of one license type at one usage snapshot (usage_counts): Users
// counts the users not removed, Licenses the active, non-service users, split into Active,
// Inactive, Exempt and Unknown by the usage rule.
type UsageCountRow struct {
	TS                                                 time.Time
	LicenseType                                        string
	Users, Licenses, Active, Inactive, Exempt, Unknown uint32
}

// Trend buckets.
const (
	BucketDay   = "day"
	BucketWeek  = "week" // ISO weeks, from Monday
	BucketMonth = "month"
)

// UsageTrend returns, for each bucket (BucketDay, BucketWeek or BucketMonth, UTC) with a
// snapshot in [from, to), the rows of its last snapshot, ordered by time and license type;
// read twice (readTwice), the last snapshot of a bucket being the last of either read.
func (s *Store) UsageTrend(ctx context.Context, tenant, app, bucket string, from, to time.Time) ([]UsageCountRow, error) {
	switch bucket {
	case BucketDay, BucketWeek, BucketMonth:
	default:
		return nil, fmt.Errorf("unknown bucket %q", bucket)
	}
	first, second, err := readTwice(func() ([]UsageCountRow, error) { return s.usageTrendOnce(ctx, tenant, app, bucket, from, to) })
	if err != nil {
		return nil, err
	}
	key := func(r UsageCountRow) tsType { return tsType{r.TS, r.LicenseType} }
	all := unionBy(first, second, key, func(a, b UsageCountRow) int { return byTSType(key(a), key(b)) })
	return lastOfEachBucket(all, bucket), nil
}

func (s *Store) usageTrendOnce(ctx context.Context, tenant, app, bucket string, from, to time.Time) ([]UsageCountRow, error) {
	rows, err := s.conn.Query(ctx, s.query("usage_trend"), named(tenant, app, "bucket", bucket, "from", unix(from), "to", unix(to))...)
	if err != nil {
		return nil, fmt.Errorf("read usage trend of tenant %q: %w", tenant, err)
	}
	defer func() { _ = rows.Close() }()
	var out []UsageCountRow
	for rows.Next() {
		var r UsageCountRow
		if err := rows.Scan(&r.TS, &r.LicenseType, &r.Users, &r.Licenses, &r.Active, &r.Inactive, &r.Exempt, &r.Unknown); err != nil {
			return nil, fmt.Errorf("read usage trend of tenant %q: %w", tenant, err)
		}
		r.TS = r.TS.UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read usage trend of tenant %q: %w", tenant, err)
	}
	return out, nil
}

// SyncRunFilter selects sync runs: Kind and Status match exactly when not empty; After, when
// set, is the position of the previous page's last run (its start and run id), and only
// older runs are returned.
type SyncRunFilter struct {
	Kind, Status string
	After        *SyncRunRow
}

// SyncRuns calls fn with the sync runs of tenant and app that match f, newest first (by start,
// then run id, descending), at most limit of them (0: all). It stops at and returns fn's
// first error. A page (limit > 0) is read twice (readTwice); all runs (limit 0, the CSV
// export) are streamed from one read, which can miss a run whose row a flush of the buffer
// was moving at that moment (docs/schema.md, "Buffers").
func (s *Store) SyncRuns(ctx context.Context, tenant, app string, f SyncRunFilter, limit int, fn func(SyncRunRow) error) error {
	if limit <= 0 {
		return s.syncRunsOnce(ctx, tenant, app, f, 0, fn)
	}
	first, second, err := readTwice(func() ([]SyncRunRow, error) {
		var page []SyncRunRow
		err := s.syncRunsOnce(ctx, tenant, app, f, limit, func(r SyncRunRow) error {
			page = append(page, r)
			return nil
		})
		return page, err
	})
	if err != nil {
		return err
	}
	page := unionBy(first, second, keyOfRun, newestRunFirst)
	for _, r := range page[:min(limit, len(page))] {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) syncRunsOnce(ctx context.Context, tenant, app string, f SyncRunFilter, limit int, fn func(SyncRunRow) error) error {
	after, afterTS, afterRun := 0, int64(0), ""
	if f.After != nil {
		after, afterTS, afterRun = 1, unix(f.After.StartedAt), f.After.RunID
	}
	lim := ""
	if limit > 0 {
		lim = "LIMIT " + strconv.Itoa(limit)
	}
	q := strings.ReplaceAll(s.query("sync_runs_page"), "{limit}", lim)
	rows, err := s.conn.Query(streamed(ctx), q, named(tenant, app, "kind", f.Kind, "status", f.Status, "after", after,
		"after_ts", afterTS, "after_run", afterRun)...)
	if err != nil {
		return fmt.Errorf("read sync runs of tenant %q: %w", tenant, err)
	}
	defer func() { _ = rows.Close() }()
	for rows.Next() {
		r := SyncRunRow{TenantID: tenant, App: app}
		if err := rows.Scan(&r.RunID, &r.Kind, &r.StartedAt, &r.FinishedAt, &r.Status, &r.Users, &r.Events, &r.Requests,
			&r.Throttled, &r.ErrorCode, &r.ErrorMessage); err != nil {
			return fmt.Errorf("read sync runs of tenant %q: %w", tenant, err)
		}
		r.StartedAt, r.FinishedAt = fromDB(r.StartedAt), fromDB(r.FinishedAt)
		if err := fn(r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read sync runs of tenant %q: %w", tenant, err)
	}
	return nil
}
