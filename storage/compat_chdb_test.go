//go:build chdb

// The compatibility test: every migration and every query of this package, with
// representative data, on ClickHouse 18.16 (the server at $CLICKHOUSE_ADDR, through
// clickhouse-client) and on a current release in process (chdb, libchdb.so at
// $CHDB_LIB_PATH), results compared row by row. deploy/local/compat-test.sh runs it
// (docs/schema.md, "18.16 and current releases"); it is not part of the default build.

package storage

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	chdb "github.com/chdb-io/chdb-go/chdb-purego"
	"github.com/seatwatch/greenhouse-collector/connectors"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// compatEngine runs one statement and returns its result as ClickHouse's TabSeparated text.
type compatEngine interface {
	run(q string) (string, error)
}

// serverEngine is the 18.16 server: statements through clickhouse-client (its own
// TabSeparated output); the bound queries are also run through clickhouse-go with their real
// arguments, to show that the literal text compared here is what the driver sends.
type serverEngine struct {
	host, port string
	conn       driver.Conn
}

func (e *serverEngine) run(q string) (string, error) {
	out, err := exec.Command("clickhouse-client", "--host", e.host, "--port", e.port, "--format", "TabSeparated", "--query", q).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

type chdbEngine struct{ conn chdb.ChdbConn }

func (e *chdbEngine) run(q string) (string, error) {
	res, err := e.conn.Query(q, "TabSeparated")
	if err != nil {
		return "", err
	}
	defer res.Free()
	if err := res.Error(); err != nil {
		return "", err
	}
	return string(res.Buf()), nil
}

// literal renders a bound argument as clickhouse-go binds it client-side: strings quoted
// with backslash escapes, numbers as they are.
func literal(v any) string {
	switch x := v.(type) {
	case string:
		return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(x) + "'"
	default:
		return fmt.Sprint(x)
	}
}

var namedParam = regexp.MustCompile(`^@([A-Za-z_][A-Za-z0-9_]*)`)

// render binds args into q outside quoted strings: clickhouse.Named values replace @name,
// the others replace ? in order.
func render(q string, args ...any) string {
	named := map[string]any{}
	var pos []any
	for _, a := range args {
		if n, ok := a.(driver.NamedValue); ok {
			named[n.Name] = n.Value
		} else {
			pos = append(pos, a)
		}
	}
	var b strings.Builder
	quoted := false
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case quoted && c == '\\' && i+1 < len(q):
			b.WriteByte(c)
			i++
			b.WriteByte(q[i])
			continue
		case c == '\'':
			quoted = !quoted
		case !quoted && c == '?' && len(pos) > 0:
			b.WriteString(literal(pos[0]))
			pos = pos[1:]
			continue
		case !quoted && c == '@':
			if m := namedParam.FindStringSubmatch(q[i:]); m != nil {
				if v, ok := named[m[1]]; ok {
					b.WriteString(literal(v))
					i += len(m[0]) - 1
					continue
				}
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}

// compatStep is one statement of the test. A query's rows are compared in order, or sorted
// when the statement has no ORDER BY.
type compatStep struct {
	name   string
	sql    string // with {db}
	args   []any
	query  bool
	sorted bool
}

const compatDB = "compat"

func (c compatStep) text() string {
	return render(strings.ReplaceAll(c.sql, "{db}", "`"+compatDB+"`"), c.args...)
}

// compatSteps are the statements, in order: the migrations, the fixture, the writers' SQL,
// every dashboard query and the migrator's and inspectors' reads.
func compatSteps(t *testing.T) []compatStep {
	var steps []compatStep
	add := func(name, sql string, query bool, args ...any) {
		steps = append(steps, compatStep{name: name, sql: sql, args: args, query: query})
	}
	add("schema_migrations", schemaMigrationsDDL, false)
	migs, err := loadMigrations(migrationsFS, "migrations")
	require.NoError(t, err)
	for _, m := range migs {
		for i, st := range m.statements {
			// As the migrator runs it on a fresh database (18.16 has no ADD COLUMN IF NOT EXISTS).
			add(fmt.Sprintf("migration %04d_%s statement %d", m.version, m.name, i+1), plainAddColumn(st), false)
		}
		add(fmt.Sprintf("record migration %04d", m.version), "INSERT INTO {db}.schema_migrations (version, name, checksum, applied_at) VALUES", false)
		steps[len(steps)-1].sql += fmt.Sprintf(" (%d, '%s', '%s', toDateTime(1717200000, 'UTC'))", m.version, m.name, m.checksum)
	}
	add("read schema_migrations", `SELECT version, any(checksum) FROM {db}.schema_migrations GROUP BY version ORDER BY version`, true)
	add("column lookup", `SELECT count() FROM system.columns WHERE database = ? AND table = ? AND name = ?`, true, compatDB, "users", "last_activity_type")

	// Fixture. Each INSERT is a part of its own: FINAL and uniqExact work over unmerged parts.
	for _, ins := range compatFixture {
		add("insert "+ins[:strings.Index(ins, " (")], "INSERT INTO {db}."+ins, false)
	}
	// The writers' SQL: daily activity recomputed for two days, twice (a replay: the newer
	// version wins), then user activity with and without an id filter.
	days := "'2024-06-01','2024-06-02'"
	for i, version := range []uint64{1000, 2000} {
		// RefreshDailyActivity reads dailyActivitySQL's rows and inserts them with the app and
		// version; here in one statement, so that both engines store the same rows.
		refresh := `INSERT INTO {db}.user_activity_daily (tenant_id, app, user_id, day, events, last_event_at, version)
SELECT 'acme', ?, uid, d, events, last_event_at, toUInt64(?) FROM (` + fmt.Sprintf(dailyActivitySQL, days) + `)`
		add(fmt.Sprintf("refresh daily activity %d", i+1), refresh, false,
			connectors.AppGreenhouse, version, "acme", int64(1717200000), int64(1717372800))
	}
	add("daily activity", fmt.Sprintf(dailyActivitySQL, days)+" ORDER BY uid, d", true, "acme", int64(1717200000), int64(1717372800))
	add("user activity", fmt.Sprintf(userActivitySQL, ""), true, "acme", int64(1717200000), int64(1717459200))
	add("user activity of ids", fmt.Sprintf(userActivitySQL, "AND toInt64OrZero(performer_id) IN (1,3,99)"), true, "acme", int64(1717200000), int64(1717459200))
	add("current users", currentUsersSQL, true, "acme", "greenhouse")

	// The dashboard queries, each with the parameters the Go methods bind.
	q := func(name string) string {
		b, err := queriesFS.ReadFile("queries/" + name + ".sql")
		require.NoError(t, err)
		// As loadQueries: without comment lines (a quote in a comment is no string), with
		// the usage rule's placeholders.
		var sb strings.Builder
		for _, line := range strings.Split(string(b), "\n") {
			if !strings.HasPrefix(strings.TrimSpace(line), "--") {
				sb.WriteString(line + "\n")
			}
		}
		return usagePlaceholders.Replace(sb.String())
	}
	nm := func(tenant, app string, more ...any) []any { return named(tenant, app, more...) }
	now := time.Date(2024, 6, 30, 12, 0, 0, 0, time.UTC)
	for _, p := range []UsageParams{
		{Now: now, InactiveAfterDays: 30, CoverageStart: time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)},
		{Now: now, InactiveAfterDays: 30},
		{Now: now, InactiveAfterDays: 60, CoverageStart: time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)},
	} {
		covered := b2u(p.coveredFor(""))
		add(fmt.Sprintf("inactive licenses (%d days, covered %d)", p.InactiveAfterDays, covered), q("inactive_licenses"), true,
			append(nm("acme", "greenhouse"), usageArgs(p)...)...)
		add(fmt.Sprintf("utilisation (%d days, covered %d)", p.InactiveAfterDays, covered), q("utilisation"), true,
			append(nm("acme", "greenhouse"), usageArgs(p)...)...)
	}
	add("license counts over time", q("license_counts_over_time"), true, nm("acme", "greenhouse", "from", int64(1714557600), "to", int64(1717200001))...)
	for _, r := range [][2]string{{"2024-06-01", "2024-06-03"}, {"2024-06-02", "2024-06-04"}, {"2024-01-01", "2024-12-31"}} {
		add("daily activity "+r[0]+" to "+r[1], q("daily_activity"), true, nm("acme", "greenhouse", "from_day", r[0], "to_day", r[1])...)
		for _, limit := range []int{10, 1} {
			add(fmt.Sprintf("top users %s to %s limit %d", r[0], r[1], limit), q("top_users"), true,
				nm("acme", "greenhouse", "from_day", r[0], "to_day", r[1], "limit", limit)...)
		}
	}
	for _, limit := range []int{10, 2} {
		add(fmt.Sprintf("sync health limit %d", limit), q("sync_health"), true, nm("acme", "greenhouse", "limit", limit)...)
	}
	for _, tenant := range []string{"acme", "other", "none"} {
		add("count audit events of "+tenant, q("count_audit_events"), true, clickhouse.Named("tenant", tenant))
	}
	// The read API's queries (storage/read.go), each with the parameters its method binds.
	readP := UsageParams{Now: now, InactiveAfterDays: 30, CoverageStart: time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)}
	yes := true
	for _, f := range []UserFilter{
		{Usage: readP},
		{Usages: []string{UsageInactive, UsageUnknown}, Licensed: &yes, Usage: readP},
		{Statuses: []string{StatusActive, StatusDeactivated}, LicenseTypes: []string{"basic"}, Query: "AD", Usage: readP},
	} {
		for _, o := range []UserSort{{Key: "name"}, {Key: "last_activity_at", Desc: true}} {
			order, err := o.clause()
			require.NoError(t, err)
			walk := strings.ReplaceAll(strings.ReplaceAll(q("users_walk"), "{user_filter}", q("user_filter")), "{order}", order)
			add(fmt.Sprintf("users walk %v by %s", f.Usages, order), walk, true, f.args("acme", "greenhouse")...)
		}
	}
	add("users by id", strings.ReplaceAll(q("users_by_id"), "{ids}", "1,3,7,99"), true, nm("acme", "greenhouse", "since_day", "2024-06-01")...)
	steps[len(steps)-1].sorted = true // in no particular order (UsersByID)
	add("user history", q("user_history"), true, nm("acme", "greenhouse", "user", int64(1))...)
	add("user daily activity", q("user_daily_activity"), true, nm("acme", "greenhouse", "user", int64(1), "from_day", "2024-06-01", "to_day", "2024-06-30")...)
	// The usage rule under a license policy: a threshold per license type, a grace period,
	// exemptions by id and by e-mail.
	policyP := readP
	policyP.DaysByType = map[string]int{LicenseSiteAdmin: 60, LicenseBasic: 10}
	policyP.GraceDays = 25 // user 4, created 20 days before, is in it
	policyP.Exempt = Exemptions{IDs: []int64{2}, Emails: []string{"fi@x"}}
	add("utilisation under a policy", q("utilisation"), true, append(nm("acme", "greenhouse"), usageArgs(policyP)...)...)
	add("inactive licenses under a policy", q("inactive_licenses"), true, append(nm("acme", "greenhouse"), usageArgs(policyP)...)...)
	add("waste over time", q("waste_over_time"), true, nm("acme", "greenhouse", "from", int64(1719705600), "to", int64(1719792000))...)
	for _, bucket := range []string{"day", "week", "month"} {
		add("usage trend by "+bucket, q("usage_trend"), true, nm("acme", "greenhouse", "bucket", bucket, "from", int64(1717200000), "to", int64(1719792000))...)
	}
	add("sync runs page", strings.ReplaceAll(q("sync_runs_page"), "{limit}", "LIMIT 2"), true,
		nm("acme", "greenhouse", "kind", "", "status", "", "after", 0, "after_ts", int64(0), "after_run", "")...)
	add("action outcomes", q("action_outcomes"), true, nm("acme", "greenhouse", "action", "a1")...)
	// The inspectors (RowCounts, DumpText) after the buffers are flushed and the merges are
	// forced, so that row counts depend neither on when a Buffer table flushed (5 seconds
	// after its first row, somewhere in this test) nor on when background merges ran.
	for _, table := range Tables {
		if buffered[table] {
			add("flush "+table+"_buffer", "OPTIMIZE TABLE {db}."+table+"_buffer", false)
		}
	}
	for _, table := range Tables {
		add("optimize "+table, "OPTIMIZE TABLE {db}."+table+" FINAL", false)
	}
	for _, table := range Tables {
		add("row count of "+table, "SELECT count() FROM {db}."+table, true)
		add("dump of "+table, "SELECT * FROM {db}."+table, true)
		steps[len(steps)-1].sorted = true
	}
	return steps
}

// compatFixture is the representative data: several versions of users (NULL and non-NULL
// activity, removed, deactivated, service accounts, another tenant and app; user 7's older
// version is active and its newer deactivated, so a filter on status applied before FINAL
// merges the versions would list it), a replayed
// license-count snapshot, audit events re-read (the same row twice), events that are no one's
// use of a seat (API requests, harvest_access, a non-user performer) and performer ids outside
// Int64, runs, connection events.
var compatFixture = []string{
	`users (tenant_id, app, user_id, name, email, status, license_type, site_admin, service_account, created_at, updated_at, first_seen_at, last_seen_at, removed_at, last_activity_at, last_activity_type, revision, version) VALUES
 ('acme','greenhouse',1,'Ada','ada@x','active','basic',0,0,'2024-01-01 00:00:00','2024-01-01 00:00:00','2024-01-01 00:00:00','2024-06-30 00:00:00',NULL,'2024-06-20 10:00:00','action',1,100),
 ('acme','greenhouse',2,'Bob','bob@x','active','job_admin',0,0,'2024-01-01 00:00:00','2024-01-01 00:00:00','2024-01-01 00:00:00','2024-06-30 00:00:00',NULL,'2024-05-01 09:00:00','action',1,100),
 ('acme','greenhouse',3,'Cy','cy@x','active','basic',0,0,'2024-01-01 00:00:00','2024-01-01 00:00:00','2024-01-01 00:00:00','2024-06-30 00:00:00',NULL,NULL,'',1,100),
 ('acme','greenhouse',4,'Di','di@x','active','basic',0,0,'2024-06-10 00:00:00','2024-06-10 00:00:00','2024-06-10 00:00:00','2024-06-30 00:00:00',NULL,NULL,'',1,100),
 ('acme','greenhouse',5,'Ed','ed@x','active','site_admin',1,0,'2024-01-01 00:00:00','2024-01-01 00:00:00','2024-01-01 00:00:00','2024-06-30 00:00:00',NULL,'2024-05-31 12:00:00','action',1,100),
 ('acme','greenhouse',6,'Fi','fi@x','active','basic',0,0,'2024-01-01 00:00:00','2024-01-01 00:00:00','2024-01-01 00:00:00','2024-06-30 00:00:00',NULL,'2024-05-31 11:59:59','action',1,100),
 ('acme','greenhouse',7,'Gu','gu@x','deactivated','basic',0,0,'2024-01-01 00:00:00','2024-01-01 00:00:00','2024-01-01 00:00:00','2024-06-30 00:00:00',NULL,NULL,'',1,100),
 ('acme','greenhouse',8,'Bot','','active','basic',0,1,'2024-01-01 00:00:00','2024-01-01 00:00:00','2024-01-01 00:00:00','2024-06-30 00:00:00',NULL,NULL,'',1,100),
 ('other','greenhouse',1,'Zed','z@x','active','basic',0,0,'2024-01-01 00:00:00','2024-01-01 00:00:00','2024-01-01 00:00:00','2024-06-30 00:00:00',NULL,NULL,'',1,100),
 ('acme','lever',1,'Lev','l@x','active','basic',0,0,'2024-01-01 00:00:00','2024-01-01 00:00:00','2024-01-01 00:00:00','2024-06-30 00:00:00',NULL,NULL,'',1,100)`,
	`users (tenant_id, app, user_id, name, email, status, license_type, site_admin, service_account, created_at, updated_at, first_seen_at, last_seen_at, removed_at, last_activity_at, last_activity_type, revision, version) VALUES
 ('acme','greenhouse',1,'Ada Old','ada@x','active','basic',0,0,'2024-01-01 00:00:00','2024-01-01 00:00:00','2024-01-01 00:00:00','2024-06-01 00:00:00',NULL,NULL,'',0,50),
 ('acme','greenhouse',9,'Ivy','ivy@x','removed','basic',0,0,'2024-01-01 00:00:00','2024-01-01 00:00:00','2024-01-01 00:00:00','2024-06-30 00:00:00','2024-06-29 00:00:00','2024-06-01 00:00:00','action',2,200),
 ('acme','greenhouse',3,'Cy','cy@x','active','basic',0,0,'2024-01-01 00:00:00','2024-01-01 00:00:00','2024-01-01 00:00:00','2024-06-30 00:00:00',NULL,'2024-06-02 08:00:00','action',2,300),
 ('acme','greenhouse',7,'Gu','gu@x','active','basic',0,0,'2024-01-01 00:00:00','2024-01-01 00:00:00','2024-01-01 00:00:00','2024-05-01 00:00:00',NULL,NULL,'',0,50)`,
	`usage_counts (tenant_id, app, ts, license_type, users, licenses, active, inactive, unknown, exempt, policy_revision,
 seats_purchased, unassigned, currency, annual_cost, inactive_cost, unassigned_cost) VALUES
 ('acme','greenhouse','2024-06-30 09:00:00','basic',6,4,1,2,1,0,0,NULL,NULL,'',NULL,NULL,NULL),
 ('acme','greenhouse','2024-06-30 11:00:00','basic',6,4,1,1,1,1,2,10,6,'USD',12000,12000,72000),
 ('acme','greenhouse','2024-06-30 11:00:00','job_admin',1,1,0,1,0,0,2,1,0,'',NULL,NULL,NULL),
 ('acme','greenhouse','2024-06-30 11:00:00','site_admin',1,1,1,0,0,0,2,NULL,NULL,'EUR',50000,0,NULL)`,
	`policy_changes (tenant_id, app, revision, changed_at, changed_by, changed, policy, license_types, seats_purchased,
 annual_costs, currencies, inactive_after_days) VALUES
 ('acme','greenhouse',2,'2024-06-30 10:00:00','dashboard','["exemptions"]','{}',['site_admin','job_admin','basic'],[-1,1,10],[50000,-1,12000],['EUR','','USD'],[60,0,0])`,
	`license_counts (tenant_id, app, ts, license_type, status, users) VALUES
 ('acme','greenhouse','2024-05-01 10:00:00','basic','active',10), ('acme','greenhouse','2024-05-01 10:00:00','site_admin','active',2),
 ('acme','greenhouse','2024-05-01 11:00:00','basic','active',11), ('acme','greenhouse','2024-05-31 23:59:59','basic','active',12),
 ('acme','greenhouse','2024-06-01 00:00:01','basic','active',13), ('other','greenhouse','2024-05-01 10:00:00','basic','active',99)`,
	// Again, through the buffer (docs/schema.md, "Buffers"): the readers keep one row per key.
	`license_counts_buffer (tenant_id, app, ts, license_type, status, users) VALUES
 ('acme','greenhouse','2024-05-01 11:00:00','basic','active',11)`,
	// A snapshot written again at one ts with other figures: the higher version wins.
	`usage_counts_buffer (tenant_id, app, ts, license_type, users, licenses, active, inactive, unknown, exempt, policy_revision,
 seats_purchased, unassigned, currency, annual_cost, inactive_cost, unassigned_cost, version) VALUES
 ('acme','greenhouse','2024-06-30 09:00:00','basic',6,4,2,1,1,0,0,NULL,NULL,'',NULL,NULL,NULL,7)`,
	`audit_events (tenant_id, event_id, event_time, event_type, target_type, target_id, performer_type, performer_id, performer_name, performer_email, performer_ip, request_id, request_type, meta, ingested_at) VALUES
 ('acme','e01','2024-06-01 09:00:00','action','job','1','user','1','Ada','ada@x','10.0.0.1','r1','ui','{}','2024-06-01 09:00:00'),
 ('acme','e02','2024-06-01 10:00:00','update','job','2','user','1','Ada','ada@x','10.0.0.1','r2','ui','{}','2024-06-01 10:00:00'),
 ('acme','e03','2024-06-01 23:59:59','action','job','3','user','1','Ada','ada@x','10.0.0.1','r3','ui','{}','2024-06-02 00:00:00'),
 ('acme','e04','2024-06-02 00:00:00','action','job','4','user','1','Ada','ada@x','10.0.0.1','r4','ui','{}','2024-06-02 00:00:00'),
 ('acme','e05','2024-06-01 12:00:00','action','job','5','user','2','Bob','bob@x','10.0.0.2','r5','ui','{}','2024-06-01 12:00:00'),
 ('acme','e06','2024-06-03 12:00:00','action','job','6','user','2','Bob','bob@x','10.0.0.2','r6','ui','{}','2024-06-03 12:00:00'),
 ('acme','e07','2024-06-01 12:00:00','action','job','7','user','3','Cy','cy@x','10.0.0.3','r7','ui','{}','2024-06-01 12:00:00'),
 ('acme','e07b','2024-06-01 12:00:00','update','job','7','user','3','Cy','cy@x','10.0.0.3','r7b','ui','{}','2024-06-01 12:00:00'),
 ('acme','e08','2024-06-01 13:00:00','action','job','8','user','99','Ghost','g@x','10.0.0.9','r8','ui','{}','2024-06-01 13:00:00'),
 ('acme','e09','2024-06-01 14:00:00','action','job','9','api_key','7','Key','','10.0.0.4','r9','ui','{}','2024-06-01 14:00:00'),
 ('acme','e10','2024-06-01 15:00:00','harvest_access','job','10','user','2','Bob','bob@x','10.0.0.2','r10','ui','{}','2024-06-01 15:00:00'),
 ('acme','e11','2024-06-01 16:00:00','action','job','11','user','2','Bob','bob@x','10.0.0.2','r11','GET /v3/users','{}','2024-06-01 16:00:00'),
 ('acme','e12','2024-06-01 17:00:00','action','job','12','user','2','Bob','bob@x','10.0.0.2','r12','https://harvest.greenhouse.io/v3/jobs','{}','2024-06-01 17:00:00'),
 ('acme','e13','2024-06-01 18:00:00','action','job','13','user','18446744073709551617','Wrap','w@x','10.0.0.5','r13','ui','{}','2024-06-01 18:00:00'),
 ('acme','e14','2024-06-01 18:00:01','action','job','14','user','9223372036854775808','Over','o@x','10.0.0.5','r14','ui','{}','2024-06-01 18:00:01'),
 ('acme','e15','2024-06-01 18:00:02','action','job','15','user','9223372036854775807','Max','m@x','10.0.0.5','r15','ui','{}','2024-06-01 18:00:02'),
 ('acme','e16','2024-06-01 18:00:03','action','job','16','user','-5','Neg','n@x','10.0.0.5','r16','ui','{}','2024-06-01 18:00:03'),
 ('acme','e17','2024-06-01 18:00:04','action','job','17','user','abc','Abc','a@x','10.0.0.5','r17','ui','{}','2024-06-01 18:00:04'),
 ('acme','e18','2024-06-01 18:00:05','action','job','18','user','007','Bond','b@x','10.0.0.5','r18','ui','{}','2024-06-01 18:00:05'),
 ('acme','e19','2024-05-31 23:59:59','action','job','19','user','1','Ada','ada@x','10.0.0.1','r19','ui','{}','2024-06-01 00:00:00'),
 ('other','e01','2024-06-01 09:00:00','action','job','1','user','1','Zed','z@x','10.0.0.8','r1','ui','{}','2024-06-01 09:00:00')`,
	`audit_events (tenant_id, event_id, event_time, event_type, target_type, target_id, performer_type, performer_id, performer_name, performer_email, performer_ip, request_id, request_type, meta, ingested_at) VALUES
 ('acme','e01','2024-06-01 09:00:00','action','job','1','user','1','Ada','ada@x','10.0.0.1','r1','ui','{}','2024-06-01 09:05:00'),
 ('acme','e04','2024-06-02 00:00:00','action','job','4','user','1','Ada','ada@x','10.0.0.1','r4','ui','{}','2024-06-02 00:05:00')`,
	`sync_runs (tenant_id, app, run_id, kind, started_at, finished_at, status, users, events, requests, throttled, error_code, error_message) VALUES
 ('acme','greenhouse','r1','users','2024-05-01 10:00:00','2024-05-01 10:01:00','succeeded',10,0,3,0,'',''),
 ('acme','greenhouse','r2','audit','2024-05-01 11:00:00','2024-05-01 11:01:00','failed',0,5,4,1,'rate_limited','slow down'),
 ('acme','greenhouse','r3','users','2024-05-01 12:00:00','2024-05-01 12:01:00','succeeded',11,0,0,0,'',''),
 ('other','greenhouse','x','users','2024-05-01 13:00:00','1970-01-01 00:00:00','succeeded',0,0,0,0,'','')`,
	`sync_runs_buffer (tenant_id, app, run_id, kind, started_at, finished_at, status, users, events, requests, throttled, error_code, error_message) VALUES
 ('acme','greenhouse','r2','audit','2024-05-01 11:00:00','2024-05-01 11:01:00','failed',0,5,4,1,'rate_limited','slow down')`,
	`connection_events (tenant_id, app, ts, event_id, state, usage_data, checks, changed) VALUES
 ('acme','greenhouse','2024-05-01 10:00:00','e1','degraded',0,'[{"name":"audit_log","status":"failed"}]','state'),
 ('acme','greenhouse','2024-05-01 11:00:00','e2','connected',1,'[]','state,usage_data')`,
	`actions (tenant_id, app, action_id, user_id, type, requested_by, reason, requested_at, dry_run, force, outcome, code, http_status, guards, license_type, last_activity_at, decided_at) VALUES
 ('acme','greenhouse','a1',1,'deactivate','ops','inactive','2024-06-30 10:00:00',0,0,'done','',204,'[]','basic','2024-03-01 10:00:00','2024-06-30 10:00:05'),
 ('acme','greenhouse','a1',2,'deactivate','ops','inactive','2024-06-30 10:00:00',0,0,'refused','recently_active',0,'[]','job_admin',NULL,'2024-06-30 10:00:06')`,
	`actions (tenant_id, app, action_id, user_id, type, requested_by, reason, requested_at, dry_run, force, outcome, code, http_status, guards, license_type, last_activity_at, decided_at) VALUES
 ('acme','greenhouse','a1',1,'deactivate','ops','inactive','2024-06-30 10:00:00',0,0,'done','',204,'[]','basic','2024-03-01 10:00:00','2024-06-30 10:00:05')`,
}

func TestCompatibility(t *testing.T) {
	addr := os.Getenv("CLICKHOUSE_ADDR")
	if addr == "" {
		t.Fatal("CLICKHOUSE_ADDR (an 18.16 server) is required; run deploy/local/compat-test.sh")
	}
	host, port, ok := strings.Cut(addr, ":")
	require.True(t, ok, "CLICKHOUSE_ADDR is host:port")
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}})
	require.NoError(t, err)
	defer conn.Close()
	old := &serverEngine{host: host, port: port, conn: conn}
	cc, err := chdb.NewConnection(1, []string{"--path=" + t.TempDir()})
	require.NoError(t, err)
	defer cc.Close()
	cur := &chdbEngine{conn: cc}

	versions := map[string]string{}
	for name, e := range map[string]compatEngine{"server": old, "chdb": cur} {
		v, err := e.run("SELECT version()")
		require.NoError(t, err, name)
		versions[name] = strings.TrimSpace(v)
		_, err = e.run("DROP DATABASE IF EXISTS `" + compatDB + "`")
		require.NoError(t, err, name)
		// What Open runs.
		_, err = e.run("CREATE DATABASE IF NOT EXISTS `" + compatDB + "`")
		require.NoError(t, err, name)
	}
	t.Logf("ClickHouse %s (server) and %s (chdb)", versions["server"], versions["chdb"])
	for name, e := range map[string]compatEngine{"server": old, "chdb": cur} {
		tz, err := e.run("SELECT timezone()")
		require.NoError(t, err)
		t.Logf("%s time zone: %s", name, strings.TrimSpace(tz))
	}
	require.True(t, strings.HasPrefix(versions["server"], "18.16"), "the server is 18.16")

	// The one known difference: the database engine CREATE DATABASE picks (docs/schema.md).
	engineQ := "SELECT engine FROM system.databases WHERE name = '" + compatDB + "'"
	oldEngine, err := old.run(engineQ)
	require.NoError(t, err)
	curEngine, err := cur.run(engineQ)
	require.NoError(t, err)
	assert.Equal(t, "Ordinary", strings.TrimSpace(oldEngine))
	assert.Equal(t, "Atomic", strings.TrimSpace(curEngine))

	ctx := context.Background()
	compared := 0
	for _, st := range compatSteps(t) {
		text := st.text()
		a, errA := old.run(text)
		b, errB := cur.run(text)
		if !assert.NoError(t, errA, "%s on %s:\n%s", st.name, versions["server"], text) ||
			!assert.NoError(t, errB, "%s on %s:\n%s", st.name, versions["chdb"], text) {
			continue
		}
		if !st.query {
			continue
		}
		// 18.16 prints the DateTime of Unix time 0 as 0000-00-00 00:00:00, current releases as
		// 1970-01-01 00:00:00: the same value, which the driver reads as the same time.
		a = strings.ReplaceAll(a, "0000-00-00 00:00:00", "1970-01-01 00:00:00")
		if st.sorted {
			a, b = sortLines(a), sortLines(b)
		}
		if assert.Equal(t, a, b, "%s: rows differ (server %s, then chdb %s)\n%s", st.name, versions["server"], versions["chdb"], text) {
			compared++
		}
		if len(st.args) > 0 {
			// The rendered text means what the driver sends with the real arguments.
			bound, err := scanAll(ctx, conn, strings.ReplaceAll(st.sql, "{db}", "`"+compatDB+"`"), st.args...)
			require.NoError(t, err, st.name)
			literal, err := scanAll(ctx, conn, text)
			require.NoError(t, err, st.name)
			assert.Equal(t, bound, literal, "%s: the rendered query differs from the driver's binding", st.name)
		}
		t.Logf("%s: %d rows", st.name, strings.Count(a, "\n"))
	}
	t.Logf("%d queries gave the same rows on %s and %s", compared, versions["server"], versions["chdb"])

	// top_users.sql before its subqueries had aliases: refused by the current release.
	unaliased := strings.NewReplacer(") AS activity\n", ")\n", ") AS current_users USING", ") USING").Replace(string(mustRead(t, "queries/top_users.sql")))
	require.NotContains(t, unaliased, " AS activity")
	q := compatStep{sql: unaliased, args: named("acme", "greenhouse", "from_day", "2024-06-01", "to_day", "2024-06-03", "limit", 10)}.text()
	_, err = old.run(q)
	assert.NoError(t, err, "18.16 takes unaliased subqueries")
	_, err = cur.run(q)
	if assert.Error(t, err, "the current release refuses unaliased subqueries") {
		assert.Contains(t, err.Error(), "ALIAS_REQUIRED")
	}

	// The replicated schema (Config.Cluster): no ZooKeeper or cluster here, so it cannot run;
	// it parses on the current release (EXPLAIN AST) and on 18.16 fails for want of the
	// cluster, not of syntax (code 62).
	s := &Store{cfg: Config{Database: compatDB + "_replicated", Cluster: "compat_cluster"}, db: "`" + compatDB + "_replicated`"}
	ddl := []string{s.createDatabaseSQL(), s.ddl(schemaMigrationsDDL)}
	migs, err := loadMigrations(migrationsFS, "migrations")
	require.NoError(t, err)
	for _, m := range migs {
		for _, st := range m.statements {
			ddl = append(ddl, s.ddl(plainAddColumn(st)))
		}
	}
	for _, st := range ddl {
		_, err := cur.run("EXPLAIN AST " + st)
		assert.NoError(t, err, "replicated DDL on %s:\n%s", versions["chdb"], st)
		_, err = old.run(st)
		if assert.Error(t, err, st) {
			assert.NotContains(t, err.Error(), "Code: 62", "replicated DDL on %s:\n%s", versions["server"], st)
		}
	}
	t.Logf("replicated schema: %d statements parse on both", len(ddl))
}

func mustRead(t *testing.T, name string) []byte {
	b, err := queriesFS.ReadFile(name)
	require.NoError(t, err)
	return b
}

func sortLines(s string) string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// scanAll runs a query through clickhouse-go and returns its rows as printed values.
func scanAll(ctx context.Context, conn driver.Conn, q string, args ...any) ([]string, error) {
	rows, err := conn.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols := rows.ColumnTypes()
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		for i, c := range cols {
			vals[i] = reflect.New(c.ScanType()).Interface()
		}
		if err := rows.Scan(vals...); err != nil {
			return nil, err
		}
		var b strings.Builder
		for _, v := range vals {
			e := reflect.ValueOf(v).Elem()
			if e.Kind() == reflect.Pointer && !e.IsNil() {
				e = e.Elem() // a Nullable column's value, not its address
			}
			fmt.Fprintf(&b, "%v\t", e.Interface())
		}
		out = append(out, b.String())
	}
	return out, rows.Err()
}
