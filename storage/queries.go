package storage

import (
	"cmp"
	"context"
	"embed"
	"fmt"
	"iter"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

//go:embed queries/*.sql
var queriesFS embed.FS

// loadQueries reads every embedded dashboard query (queries/NAME.sql) without its comment
// lines, with {db} and the usage rule's placeholders (usagePlaceholders) replaced, keyed by
// NAME.
func (s *Store) loadQueries() error {
	entries, err := queriesFS.ReadDir("queries")
	if err != nil {
		return fmt.Errorf("read queries: %w", err)
	}
	s.queries = make(map[string]string, len(entries))
	for _, e := range entries {
		body, err := queriesFS.ReadFile("queries/" + e.Name())
		if err != nil {
			return fmt.Errorf("read query %s: %w", e.Name(), err)
		}
		var b strings.Builder
		for _, line := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "--") {
				continue
			}
			b.WriteString(line)
			b.WriteByte('\n')
		}
		s.queries[strings.TrimSuffix(e.Name(), ".sql")] = s.sql(usagePlaceholders.Replace(b.String()))
	}
	return nil
}

// query returns the loaded dashboard query name.
func (s *Store) query(name string) string { return s.queries[name] }

func named(tenant, app string, more ...any) []any {
	args := []any{clickhouse.Named("tenant", tenant), clickhouse.Named("app", app)}
	for i := 0; i+1 < len(more); i += 2 {
		args = append(args, clickhouse.Named(more[i].(string), more[i+1]))
	}
	return args
}

// dayRange returns the UTC dates (YYYY-MM-DD) of the first day overlapping [from, to) and of
// the day after the last one.
func dayRange(from, to time.Time) (string, string) {
	const day = 24 * time.Hour
	f := from.UTC().Truncate(day)
	t := to.UTC().Truncate(day)
	if t.Before(to) {
		t = t.Add(day)
	}
	return f.Format(time.DateOnly), t.Format(time.DateOnly)
}

// LicenseCountsOverTime returns the license-count snapshots of tenant and app with ts in
// [from, to), ordered by ts, license type and status; read twice (readTwice).
func (s *Store) LicenseCountsOverTime(ctx context.Context, tenant, app string, from, to time.Time) ([]LicenseCountRow, error) {
	first, second, err := readTwice(func() ([]LicenseCountRow, error) { return s.licenseCountsOnce(ctx, tenant, app, from, to) })
	if err != nil {
		return nil, err
	}
	type key struct {
		ts          time.Time
		typ, status string
	}
	return unionBy(first, second, func(r LicenseCountRow) key { return key{r.TS, r.LicenseType, r.Status} },
		func(a, b LicenseCountRow) int {
			return cmp.Or(a.TS.Compare(b.TS), cmp.Compare(a.LicenseType, b.LicenseType), cmp.Compare(a.Status, b.Status))
		}), nil
}

func (s *Store) licenseCountsOnce(ctx context.Context, tenant, app string, from, to time.Time) ([]LicenseCountRow, error) {
	rows, err := s.conn.Query(ctx, s.query("license_counts_over_time"), named(tenant, app, "from", unix(from), "to", unix(to))...)
	if err != nil {
		return nil, fmt.Errorf("query license counts of tenant %q: %w", tenant, err)
	}
	defer func() { _ = rows.Close() }()
	var out []LicenseCountRow
	for rows.Next() {
		r := LicenseCountRow{TenantID: tenant, App: app}
		if err := rows.Scan(&r.TS, &r.LicenseType, &r.Status, &r.Users); err != nil {
			return nil, fmt.Errorf("query license counts of tenant %q: %w", tenant, err)
		}
		r.TS = r.TS.UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query license counts of tenant %q: %w", tenant, err)
	}
	return out, nil
}

// InactiveLicense is a license holder without activity in the window, with the evidence.
type InactiveLicense struct {
	UserID                   int64
	Name, Email, LicenseType string
	CreatedAt                time.Time
	LastActivityAt           *time.Time
	LastActivityType, Reason string // Reason: ReasonNoRecentActivity or ReasonNeverActive
}

// InactiveLicenses lists the licenses of tenant and app that the usage rule (usage.go)
// classifies inactive under p, with their reasons: never-active users first, then the oldest
// activity.
func (s *Store) InactiveLicenses(ctx context.Context, tenant, app string, p UsageParams) ([]InactiveLicense, error) {
	rows, err := s.conn.Query(ctx, s.query("inactive_licenses"), append(named(tenant, app), usageArgs(p)...)...)
	if err != nil {
		return nil, fmt.Errorf("query inactive licenses of tenant %q: %w", tenant, err)
	}
	defer func() { _ = rows.Close() }()
	var out []InactiveLicense
	for rows.Next() {
		var (
			l  InactiveLicense
			la *time.Time
		)
		if err := rows.Scan(&l.UserID, &l.Name, &l.Email, &l.LicenseType, &l.CreatedAt, &la, &l.LastActivityType, &l.Reason); err != nil {
			return nil, fmt.Errorf("query inactive licenses of tenant %q: %w", tenant, err)
		}
		l.CreatedAt, l.LastActivityAt = fromDB(l.CreatedAt), fromDBPtr(la)
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query inactive licenses of tenant %q: %w", tenant, err)
	}
	return out, nil
}

// Utilisation summarises the users and licenses of a tenant and app. Users counts every user
// not removed (including deactivated users and service accounts); Licenses the active,
// non-service users; Active + Inactive + Exempt + Unknown = Licenses; ByType counts licenses
// per license type, and Types the users not removed of each license type with their usage;
// Ratio = Active / (Licenses − Exempt) (0 without such licenses). Stored counts every user
// stored, removed ones included, ByStatus the same users by status and ServiceAccounts the
// service accounts among them.
type Utilisation struct {
	Users, Licenses, Active, Inactive, Exempt, Unknown int
	ByType                                             map[string]int
	Types                                              map[string]UsageCounts
	Ratio                                              float64
	Stored, ServiceAccounts                            int
	ByStatus                                           map[string]int
}

// Utilisation computes the utilisation of tenant and app under p with the usage rule
// (usage.go), as InactiveLicenses does.
func (s *Store) Utilisation(ctx context.Context, tenant, app string, p UsageParams) (Utilisation, error) {
	u := Utilisation{ByType: map[string]int{}, ByStatus: map[string]int{}, Types: map[string]UsageCounts{}}
	rows, err := s.conn.Query(ctx, s.query("utilisation"), append(named(tenant, app), usageArgs(p)...)...)
	if err != nil {
		return u, fmt.Errorf("query utilisation of tenant %q: %w", tenant, err)
	}
	defer func() { _ = rows.Close() }()
	for rows.Next() {
		var (
			g   utilisationGroup
			svc uint8
		)
		if err := rows.Scan(&g.typ, &g.status, &svc, &g.users, &g.licenses, &g.active, &g.inactive, &g.exempt); err != nil {
			return u, fmt.Errorf("query utilisation of tenant %q: %w", tenant, err)
		}
		g.serviceAccount = svc == 1
		u.add(g)
	}
	if err := rows.Err(); err != nil {
		return u, fmt.Errorf("query utilisation of tenant %q: %w", tenant, err)
	}
	u.finish()
	return u, nil
}

// UtilisationOf is Utilisation computed in Go from every stored row of a tenant's users
// (removed ones included), as users yields them: utilisation.sql's groups counted with the
// rule's Go form (Licensed, ClassifyUsage), which TestUsageRuleAgrees keeps equal to its SQL
// and TestUtilisationOfAgreesWithTheQuery to the query. A users sync holds its tenant's
// users already, and reading them again was one of its two ClickHouse reads
// (docs/performance.md, "Fifth session").
func UtilisationOf(users iter.Seq[UserRow], p UsageParams) Utilisation {
	type key struct {
		typ, status    string
		serviceAccount bool
	}
	groups := map[key]*utilisationGroup{}
	for r := range users {
		k := key{r.LicenseType, r.Status, r.ServiceAccount}
		g := groups[k]
		if g == nil {
			g = &utilisationGroup{typ: k.typ, status: k.status, serviceAccount: k.serviceAccount}
			groups[k] = g
		}
		g.users++
		if !Licensed(r.Status, r.ServiceAccount) {
			continue
		}
		g.licenses++
		switch usage, _ := ClassifyUsage(r, p); usage {
		case UsageActive:
			g.active++
		case UsageInactive:
			g.inactive++
		case UsageExempt:
			g.exempt++
		}
	}
	u := Utilisation{ByType: map[string]int{}, ByStatus: map[string]int{}, Types: map[string]UsageCounts{}}
	for _, g := range groups {
		u.add(*g)
	}
	u.finish()
	return u
}

// finish derives Unknown and Ratio from the groups added.
func (u *Utilisation) finish() {
	u.Unknown = u.Licenses - u.Active - u.Inactive - u.Exempt
	all := UsageCounts{Licenses: int64(u.Licenses), Active: int64(u.Active), Exempt: int64(u.Exempt)}
	u.Ratio = all.Utilisation()
}

// utilisationGroup is one row of utilisation.sql.
type utilisationGroup struct {
	typ, status                               string
	serviceAccount                            bool
	users, licenses, active, inactive, exempt uint64
}

// add counts one group of utilisation.sql.
func (u *Utilisation) add(g utilisationGroup) {
	users := int(g.users)
	u.Stored += users
	u.ByStatus[g.status] += users
	if g.serviceAccount {
		u.ServiceAccounts += users
	}
	u.Licenses += int(g.licenses)
	u.Active += int(g.active)
	u.Inactive += int(g.inactive)
	u.Exempt += int(g.exempt)
	if g.licenses > 0 {
		u.ByType[g.typ] += int(g.licenses)
	}
	if g.status == StatusRemoved {
		return
	}
	u.Users += users
	c := u.Types[g.typ]
	c.LicenseType = g.typ
	c.Users += int64(g.users)
	c.Licenses += int64(g.licenses)
	c.Active += int64(g.active)
	c.Inactive += int64(g.inactive)
	c.Exempt += int64(g.exempt)
	c.Unknown = c.Licenses - c.Active - c.Inactive - c.Exempt
	u.Types[g.typ] = c
}

// DailyActivityRow is one user's activity on one UTC day.
type DailyActivityRow struct {
	UserID      int64
	Day         time.Time // UTC midnight
	Events      uint32
	LastEventAt time.Time
}

// DailyActivity returns the deduplicated daily activity of tenant and app for the UTC days
// overlapping [from, to), ordered by day and user.
func (s *Store) DailyActivity(ctx context.Context, tenant, app string, from, to time.Time) ([]DailyActivityRow, error) {
	fd, td := dayRange(from, to)
	rows, err := s.conn.Query(ctx, s.query("daily_activity"), named(tenant, app, "from_day", fd, "to_day", td)...)
	if err != nil {
		return nil, fmt.Errorf("query daily activity of tenant %q: %w", tenant, err)
	}
	defer func() { _ = rows.Close() }()
	var out []DailyActivityRow
	for rows.Next() {
		var r DailyActivityRow
		if err := rows.Scan(&r.UserID, &r.Day, &r.Events, &r.LastEventAt); err != nil {
			return nil, fmt.Errorf("query daily activity of tenant %q: %w", tenant, err)
		}
		r.Day = time.Date(r.Day.Year(), r.Day.Month(), r.Day.Day(), 0, 0, 0, 0, time.UTC)
		r.LastEventAt = r.LastEventAt.UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query daily activity of tenant %q: %w", tenant, err)
	}
	return out, nil
}

// TopUser is a user's activity total over a range of days.
type TopUser struct {
	UserID      int64
	Name, Email string
	Events      uint64
	LastEventAt time.Time
}

// TopUsers returns the limit most active users of tenant and app over the UTC days
// overlapping [from, to), by distinct events (ties by user id), with their current name and
// email (empty when the user is not in users).
func (s *Store) TopUsers(ctx context.Context, tenant, app string, from, to time.Time, limit int) ([]TopUser, error) {
	if limit <= 0 {
		return nil, nil
	}
	fd, td := dayRange(from, to)
	rows, err := s.conn.Query(ctx, s.query("top_users"), named(tenant, app, "from_day", fd, "to_day", td, "limit", limit)...)
	if err != nil {
		return nil, fmt.Errorf("query top users of tenant %q: %w", tenant, err)
	}
	defer func() { _ = rows.Close() }()
	var out []TopUser
	for rows.Next() {
		var u TopUser
		if err := rows.Scan(&u.UserID, &u.Name, &u.Email, &u.Events, &u.LastEventAt); err != nil {
			return nil, fmt.Errorf("query top users of tenant %q: %w", tenant, err)
		}
		u.LastEventAt = u.LastEventAt.UTC()
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query top users of tenant %q: %w", tenant, err)
	}
	return out, nil
}

// SyncHealth returns the latest limit sync runs of tenant and app, newest first; read twice
// (readTwice).
func (s *Store) SyncHealth(ctx context.Context, tenant, app string, limit int) ([]SyncRunRow, error) {
	if limit <= 0 {
		return nil, nil
	}
	first, second, err := readTwice(func() ([]SyncRunRow, error) { return s.syncHealthOnce(ctx, tenant, app, limit) })
	if err != nil {
		return nil, err
	}
	out := unionBy(first, second, keyOfRun, newestRunFirst)
	return out[:min(limit, len(out))], nil
}

func (s *Store) syncHealthOnce(ctx context.Context, tenant, app string, limit int) ([]SyncRunRow, error) {
	rows, err := s.conn.Query(ctx, s.query("sync_health"), named(tenant, app, "limit", limit)...)
	if err != nil {
		return nil, fmt.Errorf("query sync health of tenant %q: %w", tenant, err)
	}
	defer func() { _ = rows.Close() }()
	var out []SyncRunRow
	for rows.Next() {
		r := SyncRunRow{TenantID: tenant, App: app}
		if err := rows.Scan(&r.RunID, &r.Kind, &r.StartedAt, &r.FinishedAt, &r.Status, &r.Users, &r.Events, &r.Requests,
			&r.Throttled, &r.ErrorCode, &r.ErrorMessage); err != nil {
			return nil, fmt.Errorf("query sync health of tenant %q: %w", tenant, err)
		}
		r.StartedAt, r.FinishedAt = fromDB(r.StartedAt), fromDB(r.FinishedAt)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query sync health of tenant %q: %w", tenant, err)
	}
	return out, nil
}

// CountAuditEvents returns the number of distinct audit events stored for tenant.
func (s *Store) CountAuditEvents(ctx context.Context, tenant string) (uint64, error) {
	var n uint64
	if err := s.conn.QueryRow(ctx, s.query("count_audit_events"), clickhouse.Named("tenant", tenant)).Scan(&n); err != nil {
		return 0, fmt.Errorf("count audit events of tenant %q: %w", tenant, err)
	}
	return n, nil
}
