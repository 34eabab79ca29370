package storage_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/storage"
)

// BenchmarkReadAPIQueries times the ClickHouse work of the read API's answers (docs/api.md)
// on the query fixture's big tenant (10,000 users, 10,000,000 audit events): the users list's
// first page (the walk's ids, then the page's rows with their active days), a later page, a
// user's detail (row, history, 30 days of activity) and a 30-day daily trend. It adds to the
// fixture what the read API reads besides: 30 days of daily activity, a usage snapshot every
// hour for 30 days, and three revisions per user. It reports the median and the 95th
// percentile in ms.
func BenchmarkReadAPIQueries(b *testing.B) {
	s, p := queryFixture(b)
	ctx := context.Background()
	from, to := p.Now.Add(-30*24*time.Hour), p.Now
	if scalar(b, s, "SELECT count() FROM "+table(s, "usage_counts_buffer")+" WHERE tenant_id = 'big'") == 0 {
		b.Log("adding daily activity, usage snapshots and user history to the fixture")
		var days []time.Time
		for d := from; d.Before(to); d = d.Add(24 * time.Hour) {
			days = append(days, d)
		}
		require.NoError(b, s.RefreshDailyActivity(ctx, "big", days))
		var changes []storage.UserChangeRow
		for i := 0; i < 10_000; i++ {
			for rev := uint32(1); rev <= 3; rev++ {
				changes = append(changes, storage.UserChangeRow{TenantID: "big", App: "greenhouse", UserID: int64(4_000_000 + i), Revision: rev,
					ChangedAt: from.Add(time.Duration(rev) * 24 * time.Hour), Changed: []string{"license_type"}, Status: "active",
					LicenseType: "basic", Name: "User", Email: "user@example.com", Version: uint64(rev)})
			}
		}
		require.NoError(b, s.InsertUserChanges(ctx, changes))
		for ts := from; ts.Before(to); ts = ts.Add(time.Hour) {
			_, err := s.RecordUsageCounts(ctx, "big", "greenhouse", ts, p, storage.PolicyTerms{})
			require.NoError(b, err)
		}
	}
	ids, err := s.UserIDs(ctx, "big", "greenhouse", storage.UserFilter{Usage: p}, storage.UserSort{Key: storage.SortLastActivityAt})
	require.NoError(b, err)
	require.Len(b, ids, 10_000)
	since := p.Now.AddDate(0, 0, -29)
	cases := []struct {
		name string
		run  func() (int, error)
	}{
		{"ListFirstPage", func() (int, error) { // all users by last activity, 100 a page
			ids, err := s.UserIDs(ctx, "big", "greenhouse", storage.UserFilter{Usage: p}, storage.UserSort{Key: storage.SortLastActivityAt, Desc: true})
			if err != nil {
				return 0, err
			}
			rows, err := s.UsersByID(ctx, "big", "greenhouse", ids[:100], since)
			return len(rows), err
		}},
		{"ListFirstPageFiltered", func() (int, error) { // inactive job admins matching "user 1", by name
			f := storage.UserFilter{Usages: []string{"inactive"}, LicenseTypes: []string{"job_admin"}, Query: "user 1", Usage: p}
			ids, err := s.UserIDs(ctx, "big", "greenhouse", f, storage.UserSort{Key: storage.SortName})
			if err != nil {
				return 0, err
			}
			rows, err := s.UsersByID(ctx, "big", "greenhouse", ids[:min(100, len(ids))], since)
			return len(rows), err
		}},
		{"ListLaterPage1000", func() (int, error) {
			rows, err := s.UsersByID(ctx, "big", "greenhouse", ids[5000:6000], since)
			return len(rows), err
		}},
		{"UserDetail", func() (int, error) {
			rows, err := s.UsersByID(ctx, "big", "greenhouse", ids[42:43], since)
			if err != nil {
				return 0, err
			}
			h, err := s.UserHistory(ctx, "big", "greenhouse", ids[42])
			if err != nil {
				return 0, err
			}
			d, err := s.UserDailyActivity(ctx, "big", "greenhouse", ids[42], from, to)
			return len(rows) + len(h) + len(d), err
		}},
		{"TrendDay30", func() (int, error) {
			r, err := s.UsageTrend(ctx, "big", "greenhouse", storage.BucketDay, from, to)
			return len(r), err
		}},
		{"TrendMonth", func() (int, error) {
			r, err := s.UsageTrend(ctx, "big", "greenhouse", storage.BucketMonth, from.AddDate(0, -11, 0), to)
			return len(r), err
		}},
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
			slices.Sort(times)
			b.ReportMetric(float64(median(times).Microseconds())/1000, "median_ms")
			b.ReportMetric(float64(times[(len(times)*95+99)/100-1].Microseconds())/1000, "p95_ms")
			b.ReportMetric(float64(n), "result")
		})
	}
}
