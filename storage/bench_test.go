package storage_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/storage"
	"github.com/seatwatch/greenhouse-collector/storage/storagetest"
)

// Benchmarks; storage/bench/compare.sh runs them with the figures quoted in docs/schema.md.
//
//	BENCH_ROWS  rows per insert repetition (default 1,000,000)
//	BENCH_REPS  repetitions of each side (default 5)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// benchEvents generates n audit events of tenant with realistic repetition: unique ids, a
// pool of performers, event types and targets.
func benchEvents(tenant string, n int, start time.Time, span time.Duration, users int) []storage.AuditEventRow {
	types := []string{"action", "data_change_create", "data_change_update", "data_change_destroy", "harvest_access"}
	names := make([]string, users)
	emails := make([]string, users)
	ids := make([]string, users)
	for i := range users {
		ids[i] = strconv.Itoa(4_000_000 + i)
		names[i] = fmt.Sprintf("User %d", i)
		emails[i] = fmt.Sprintf("user%d@example.com", i)
	}
	out := make([]storage.AuditEventRow, n)
	step := span / time.Duration(n)
	for i := range out {
		u := (i * 7919) % users
		typ := types[i%len(types)]
		out[i] = storage.AuditEventRow{
			TenantID: tenant, EventID: fmt.Sprintf("%s%016x%08x", "e", uint64(i)*0x9e3779b97f4a7c15, i),
			EventTime: start.Add(time.Duration(i) * step).Truncate(time.Second), EventType: typ,
			TargetType: "application", TargetID: strconv.Itoa(90_000_000 + i%500_000),
			PerformerType: "user", PerformerID: ids[u], PerformerName: names[u], PerformerEmail: emails[u],
			PerformerIP: "10.1.2." + strconv.Itoa(u%250), RequestID: fmt.Sprintf("req-%012d", i), RequestType: "web",
			Meta: `{"changes":{"stage":["Application Review","Phone Screen"]}}`,
		}
		if typ == "harvest_access" {
			out[i].PerformerType = "api_key"
		}
	}
	return out
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// writeJSONEachRow writes rows in the JSONEachRow form clickhouse-client reads.
func writeJSONEachRow(tb testing.TB, path string, rows []storage.AuditEventRow) {
	f, err := os.Create(path)
	require.NoError(tb, err)
	w := bufio.NewWriterSize(f, 1<<20)
	enc := json.NewEncoder(w)
	now := time.Now().UTC().Format(time.DateTime)
	for _, r := range rows {
		require.NoError(tb, enc.Encode(map[string]string{
			"tenant_id": r.TenantID, "event_id": r.EventID, "event_time": r.EventTime.UTC().Format(time.DateTime),
			"event_type": r.EventType, "target_type": r.TargetType, "target_id": r.TargetID, "performer_type": r.PerformerType,
			"performer_id": r.PerformerID, "performer_name": r.PerformerName, "performer_email": r.PerformerEmail,
			"performer_ip": r.PerformerIP, "request_id": r.RequestID, "request_type": r.RequestType, "meta": r.Meta, "ingested_at": now,
		}))
	}
	require.NoError(tb, w.Flush())
	require.NoError(tb, f.Close())
}

const auditCols = "tenant_id, event_id, event_time, event_type, target_type, target_id, performer_type, performer_id, performer_name, performer_email, performer_ip, request_id, request_type, meta, ingested_at"

// clickhouseClient runs clickhouse-client against addr with stdin from file.
func clickhouseClient(tb testing.TB, addr, query, in, out string) time.Duration {
	host, port, _ := strings.Cut(addr, ":")
	cmd := exec.Command("clickhouse-client", "--host", host, "--port", port, "--query", query)
	if in != "" {
		f, err := os.Open(in)
		require.NoError(tb, err)
		defer f.Close()
		cmd.Stdin = f
	}
	if out != "" {
		f, err := os.Create(out)
		require.NoError(tb, err)
		defer f.Close()
		cmd.Stdout = f
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	require.NoError(tb, cmd.Run(), stderr.String())
	return time.Since(start)
}

// BenchmarkInsertVsClient inserts the same BENCH_ROWS audit events BENCH_REPS times each with
// InsertAuditEvents and with clickhouse-client (JSONEachRow and Native input), into an empty
// table every time, interleaved, and reports the medians and the ratios of the rates.
func BenchmarkInsertVsClient(b *testing.B) {
	if _, err := exec.LookPath("clickhouse-client"); err != nil {
		b.Skip("clickhouse-client not installed")
	}
	rows, reps := envInt("BENCH_ROWS", 1_000_000), envInt("BENCH_REPS", 5)
	addr := storagetest.Addr(b)
	// BENCH_AUDIT_BATCH and BENCH_COMPRESSION try other settings of the writer.
	s := storagetest.NewStoreWithConfig(b, storage.Config{AuditBatchRows: envInt("BENCH_AUDIT_BATCH", 0), Compression: os.Getenv("BENCH_COMPRESSION")})
	ctx := context.Background()
	events := benchEvents("bench", rows, time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC), 30*24*time.Hour, 10_000)
	dir := b.TempDir()
	jsonFile, nativeFile := filepath.Join(dir, "rows.json"), filepath.Join(dir, "rows.native")
	writeJSONEachRow(b, jsonFile, events)
	tbl := table(s, "audit_events")
	truncate := func() { require.NoError(b, s.Conn().Exec(ctx, "TRUNCATE TABLE "+tbl)) }
	count := func() uint64 { return scalar(b, s, "SELECT count() FROM "+tbl) }

	var goT, jsonT, nativeT []time.Duration
	for i := 0; i < b.N; i++ {
		for rep := range reps {
			truncate()
			start := time.Now()
			require.NoError(b, s.InsertAuditEvents(ctx, events))
			goT = append(goT, time.Since(start))
			require.Equal(b, uint64(rows), count())
			if rep == 0 && i == 0 {
				clickhouseClient(b, addr, "SELECT "+auditCols+" FROM "+tbl+" FORMAT Native", "", nativeFile)
			}

			truncate()
			jsonT = append(jsonT, clickhouseClient(b, addr, "INSERT INTO "+tbl+" ("+auditCols+") FORMAT JSONEachRow", jsonFile, ""))
			require.Equal(b, uint64(rows), count())

			truncate()
			nativeT = append(nativeT, clickhouseClient(b, addr, "INSERT INTO "+tbl+" ("+auditCols+") FORMAT Native", nativeFile, ""))
			require.Equal(b, uint64(rows), count())
		}
	}
	rate := func(d time.Duration) float64 { return float64(rows) / d.Seconds() }
	g, j, n := median(goT), median(jsonT), median(nativeT)
	b.ReportMetric(rate(g), "go_rows/s")
	b.ReportMetric(rate(j), "json_rows/s")
	b.ReportMetric(rate(n), "native_rows/s")
	b.ReportMetric(rate(g)/rate(j), "ratio_vs_json")
	b.ReportMetric(rate(g)/rate(n), "ratio_vs_native")
	b.Logf("%d rows x %d reps: InsertAuditEvents median %v (%.0f rows/s) %v; clickhouse-client JSONEachRow median %v (%.0f rows/s) %v; Native median %v (%.0f rows/s) %v",
		rows, len(goT), g, rate(g), goT, j, rate(j), jsonT, n, rate(n), nativeT)
}

// queryFixture loads, once per database, a tenant "big" with 10,000 users (three versions
// each) and 10,000,000 audit events over 30 days, plus 4 other tenants with 2,000 users and
// 500,000 events each. BENCH_DB names a database to keep between runs (default: fresh).
func queryFixture(b *testing.B) (*storage.Store, storage.UsageParams) {
	cfg := storage.Config{Database: os.Getenv("BENCH_DB")}
	s := storagetest.NewStoreWithConfig(b, cfg)
	ctx := context.Background()
	now := time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC)
	p := storage.UsageParams{Now: now, InactiveAfterDays: 30, CoverageStart: now.Add(-30 * 24 * time.Hour)}
	if n, _ := s.CountAuditEvents(ctx, "big"); n == 10_000_000 {
		return s, p
	}
	b.Logf("loading the query fixture into %s", s.Database())
	start := now.Add(-30 * 24 * time.Hour)
	tenants := map[string][2]int{"big": {10_000, 10_000_000}, "t1": {2_000, 500_000}, "t2": {2_000, 500_000}, "t3": {2_000, 500_000}, "t4": {2_000, 500_000}}
	for tenant, size := range tenants {
		users, events := size[0], size[1]
		for off := 0; off < events; off += 1_000_000 {
			b.Logf("tenant %s: events %d..%d", tenant, off, off+min(1_000_000, events-off))
			n := min(1_000_000, events-off)
			span := 30 * 24 * time.Hour
			// In seconds: span in ns times off would overflow int64.
			secs := int64(span / time.Second)
			ev := benchEvents(tenant, n, start.Add(time.Duration(secs*int64(off)/int64(events))*time.Second),
				time.Duration(secs*int64(n)/int64(events))*time.Second, users)
			for i := range ev {
				ev[i].EventID = fmt.Sprintf("%s-%d", ev[i].EventID, off)
			}
			require.NoError(b, s.InsertAuditEvents(ctx, ev))
		}
		for v := uint64(1); v <= 3; v++ {
			rows := make([]storage.UserRow, users)
			for i := range rows {
				la := now.Add(-time.Duration(i%60) * 24 * time.Hour)
				var last *time.Time
				if i%10 != 0 {
					last = &la
				}
				rows[i] = storage.UserRow{TenantID: tenant, App: "greenhouse", UserID: int64(4_000_000 + i), Name: fmt.Sprintf("User %d", i),
					Email: fmt.Sprintf("user%d@example.com", i), Status: []string{"active", "active", "active", "deactivated"}[i%4],
					LicenseType: []string{"basic", "job_admin", "site_admin"}[i%3], ServiceAccount: i%97 == 0,
					CreatedAt: start.Add(-time.Duration(i%90) * 24 * time.Hour), LastActivityAt: last, LastActivityType: "action",
					Revision: uint32(v), Version: v}
			}
			require.NoError(b, s.UpsertUsers(ctx, rows))
		}
	}
	require.Equal(b, uint64(1), scalar(b, s, "SELECT toUInt64(min(event_time) >= toDateTime(?, 'UTC') AND max(event_time) < toDateTime(?, 'UTC')) FROM "+
		table(s, "audit_events"), start.Unix(), now.Unix()), "fixture events lie in the 30 days")
	return s, p
}

// BenchmarkDashboardQueries times the dashboard queries on the query fixture's big tenant.
func BenchmarkDashboardQueries(b *testing.B) {
	s, p := queryFixture(b)
	ctx := context.Background()
	from, to := p.Now.Add(-30*24*time.Hour), p.Now
	days := make([]time.Time, 0, 31)
	for d := from; d.Before(to); d = d.Add(24 * time.Hour) {
		days = append(days, d)
	}
	require.NoError(b, s.RefreshDailyActivity(ctx, "big", days))
	cases := []struct {
		name string
		run  func() (int, error)
	}{
		{"InactiveLicenses", func() (int, error) { l, err := s.InactiveLicenses(ctx, "big", "greenhouse", p); return len(l), err }},
		{"Utilisation", func() (int, error) { u, err := s.Utilisation(ctx, "big", "greenhouse", p); return u.Licenses, err }},
		{"TopUsers", func() (int, error) { u, err := s.TopUsers(ctx, "big", "greenhouse", from, to, 20); return len(u), err }},
		{"DailyActivity", func() (int, error) {
			d, err := s.DailyActivity(ctx, "big", "greenhouse", to.Add(-24*time.Hour), to)
			return len(d), err
		}},
		{"CountAuditEvents", func() (int, error) { n, err := s.CountAuditEvents(ctx, "big"); return int(n), err }},
		{"RefreshDailyActivity1Day", func() (int, error) { return 1, s.RefreshDailyActivity(ctx, "big", days[len(days)-1:]) }},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var times []time.Duration
			var n int
			for b.Loop() {
				start := time.Now()
				var err error
				n, err = c.run()
				require.NoError(b, err)
				times = append(times, time.Since(start))
			}
			b.ReportMetric(float64(median(times).Microseconds())/1000, "median_ms")
			b.ReportMetric(float64(n), "result")
		})
	}
}
