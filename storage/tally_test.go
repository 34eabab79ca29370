package storage_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/storage"
	"github.com/seatwatch/greenhouse-collector/storage/storagetest"
)

// An ActivityTally of the events a backfill stores gives what UserActivity and
// RefreshDailyActivity read back from ClickHouse: the same rows, for random events with
// repeats, ties within a second, fractions of seconds, events just before the start and ids
// and types that are no seat use, connector ids (hex) and others. Tenant "sql" is refreshed
// from audit_events, tenant "tally" from the tally; both must have the same daily rows.
func TestActivityTallyMatchesTheQueries(t *testing.T) {
	s := storagetest.NewStore(t)
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(9, 17))
	from := time.Date(2026, 5, 3, 13, 20, 0, 400e6, time.UTC) // mid-second: the queries round up
	to := from.Add(9 * 24 * time.Hour)
	ids := []string{"1", "2", "3", "17", "40", "9223372036854775807", "9223372036854775808", "0", "-3", "12a", ""}
	types := []string{"user_logged_in", "candidate_viewed", "harvest_access", "job_updated"}
	reqs := []string{"", "sso", "GET /v3/users", "https://harvest.greenhouse.io/v3/users"}
	var rows []storage.AuditEventRow
	for i := range 3000 {
		at := from.Add(time.Duration(rng.Int64N(int64(to.Sub(from)))) - 2*time.Hour) // some before from
		if i%7 == 0 && len(rows) > 0 {
			at = rows[rng.IntN(len(rows))].EventTime.Truncate(time.Second).Add(time.Duration(rng.IntN(1000)) * time.Millisecond)
		}
		r := storage.AuditEventRow{EventID: fmt.Sprintf("%032x", rng.Uint64()%5000), EventTime: at,
			EventType: types[rng.IntN(len(types))], PerformerType: "user", PerformerID: ids[rng.IntN(len(ids))],
			RequestType: reqs[rng.IntN(len(reqs))]}
		if i%11 == 0 {
			r.PerformerType = "api_key"
		}
		rows = append(rows, r)
	}
	// The newest seat use, a second before to.
	rows = append(rows, storage.AuditEventRow{EventID: "last", EventTime: to.Add(-time.Second), EventType: "user_logged_in",
		PerformerType: "user", PerformerID: "40"})
	// User 2's newest events share a second: the greater id's type is the last (argMax of (time, id)).
	tie := to.Add(-time.Minute).Truncate(time.Second)
	rows = append(rows, storage.AuditEventRow{EventID: "tie-b", EventTime: tie.Add(100 * time.Millisecond), EventType: "job_updated", PerformerType: "user", PerformerID: "2"},
		storage.AuditEventRow{EventID: "tie-a", EventTime: tie.Add(900 * time.Millisecond), EventType: "candidate_viewed", PerformerType: "user", PerformerID: "2"})
	// An event id names one event: repeats carry the first's content, as the connector's ids do.
	byID := map[string]storage.AuditEventRow{}
	for i, r := range rows {
		if first, ok := byID[r.EventID]; ok {
			rows[i] = first
		} else {
			byID[r.EventID] = r
		}
	}
	// An event of the day before from's: neither the daily read (from's day on) nor the tally
	// counts it.
	rows = append(rows, storage.AuditEventRow{EventID: "day-before", EventTime: from.Add(-14 * time.Hour), EventType: "user_logged_in",
		PerformerType: "user", PerformerID: "3"})
	// Tenant "sql" stores what a first backfill from from stores, events just before from
	// included (Greenhouse may answer so); the tally is given the same.
	tally := storage.NewActivityTally(from)
	for i := range rows {
		rows[i].TenantID = "sql"
		tally.Add(&rows[i])
	}
	require.NoError(t, s.InsertAuditEvents(ctx, rows))
	require.True(t, tally.Spans(from, to))
	require.False(t, tally.Spans(from, to.Add(-2*time.Second)), "an event at to - 1 s, to being mid-second")
	require.False(t, tally.Spans(from.Add(time.Second), to))

	want, err := s.UserActivity(ctx, "sql", from, to, nil)
	require.NoError(t, err)
	require.NotEmpty(t, want)
	assert.Equal(t, want, tally.Users())

	var days []time.Time
	for d := from.Truncate(24 * time.Hour); d.Before(to); d = d.Add(24 * time.Hour) {
		days = append(days, d)
	}
	require.NoError(t, s.RefreshDailyActivity(ctx, "sql", days))
	require.NoError(t, s.WriteDailyActivity(ctx, "tally", tally))
	daily := func(tenant string) []string {
		r, err := s.Conn().Query(ctx, "SELECT user_id, toString(day), events, toString(last_event_at) FROM "+table(s, "user_activity_daily")+" FINAL WHERE tenant_id = ? ORDER BY day, user_id", tenant)
		require.NoError(t, err)
		defer r.Close()
		var out []string
		for r.Next() {
			var (
				uid       int64
				day, last string
				n         uint32
			)
			require.NoError(t, r.Scan(&uid, &day, &n, &last))
			out = append(out, fmt.Sprintf("%d %s %d %s", uid, day, n, last))
		}
		require.NoError(t, r.Err())
		return out
	}
	sqlRows := daily("sql")
	require.Greater(t, len(sqlRows), 20)
	assert.Equal(t, sqlRows, daily("tally"))
}
