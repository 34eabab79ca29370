package storage_test

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/storage"
	"github.com/seatwatch/greenhouse-collector/storage/storagetest"
)

// TestPerformerIDsOutsideInt64 checks that only plainly written positive Int64 performer ids
// count as users in daily activity and user activity: toInt64OrZero of an id beyond Int64
// wraps on 18.16 (18446744073709551617 would be user 1) and is 0 on current releases, so such
// ids never reach it (docs/schema.md, "18.16 and current releases").
func TestPerformerIDsOutsideInt64(t *testing.T) {
	t.Parallel()
	s := storagetest.NewStore(t)
	ctx := t.Context()
	at := ts("2024-06-01 10:00:00")
	ids := []string{
		"1", "9223372036854775807", // counted
		"18446744073709551617", "9223372036854775808", "99999999999999999999", "-5", "0", "007", "+5", " 5", "5 ", "1e3", "abc", "",
	}
	var rows []storage.AuditEventRow
	for i, id := range ids {
		r := auditEvent("acme", i+1, at, 0, "action")
		r.PerformerID = id
		rows = append(rows, r)
	}
	require.NoError(t, s.InsertAuditEvents(ctx, rows))
	require.NoError(t, s.RefreshDailyActivity(ctx, "acme", []time.Time{at}))

	daily, err := s.DailyActivity(ctx, "acme", "greenhouse", at, at.Add(time.Hour))
	require.NoError(t, err)
	want := []storage.DailyActivityRow{
		{UserID: 1, Day: ts("2024-06-01 00:00:00"), Events: 1, LastEventAt: at},
		{UserID: math.MaxInt64, Day: ts("2024-06-01 00:00:00"), Events: 1, LastEventAt: at},
	}
	assert.Equal(t, want, daily)

	acts, err := s.UserActivity(ctx, "acme", at, at.Add(time.Second), nil)
	require.NoError(t, err)
	assert.Equal(t, []storage.UserActivity{
		{UserID: 1, Events: 1, LastEventAt: at, LastEventType: "action"},
		{UserID: math.MaxInt64, Events: 1, LastEventAt: at, LastEventType: "action"},
	}, acts)
	acts, err = s.UserActivity(ctx, "acme", at, at.Add(time.Second), []int64{1})
	require.NoError(t, err)
	assert.Equal(t, []storage.UserActivity{{UserID: 1, Events: 1, LastEventAt: at, LastEventType: "action"}}, acts)

	n, err := s.CountAuditEvents(ctx, "acme")
	require.NoError(t, err)
	assert.Equal(t, uint64(len(ids)), n, "every event is stored, whatever its performer")
}
