package storage_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/storage"
	"github.com/seatwatch/greenhouse-collector/storage/storagetest"
)

// TestInsertAuditEventsRoundTrip writes events whose every column differs (empty strings,
// multi-byte text, a long meta, times at the edges of a second) through the native writer in
// batches of uneven sizes, so that its reused columns are refilled larger and smaller than
// before, and reads every column back.
func TestInsertAuditEventsRoundTrip(t *testing.T) {
	s := storagetest.NewStoreWithConfig(t, storage.Config{AuditBatchRows: 7, AuditWorkers: 2})
	ctx := t.Context()
	base := ts("2024-06-30 23:59:59")
	var want []storage.AuditEventRow
	for i := range 60 {
		e := storage.AuditEventRow{
			TenantID: fmt.Sprintf("tenant-%d", i%3), EventID: fmt.Sprintf("%032x", i),
			EventTime: base.Add(time.Duration(i) * time.Second), EventType: fmt.Sprintf("type_%d", i%5),
			TargetType: strings.Repeat("t", i%4), TargetID: fmt.Sprint(i * 7), PerformerType: "user",
			PerformerID: fmt.Sprint(1000 + i), PerformerName: fmt.Sprintf("Zoë Ünal %d 名前", i),
			PerformerEmail: fmt.Sprintf("z%d@example.com", i), PerformerIP: fmt.Sprintf("10.0.%d.1", i),
			RequestID: fmt.Sprintf("req-%d", i), RequestType: "GET /v3/users",
			Meta: `{"k":"` + strings.Repeat("x", (i*977)%5000) + `"}`,
		}
		if i%11 == 0 {
			e.PerformerName, e.PerformerEmail, e.Meta = "", "", ""
		}
		want = append(want, e)
	}
	// Callers of different sizes at once: one large, several small, group-committed together.
	var wg sync.WaitGroup
	for _, part := range [][2]int{{0, 31}, {31, 32}, {32, 40}, {40, 41}, {41, 60}} {
		wg.Go(func() { require.NoError(t, s.InsertAuditEvents(ctx, want[part[0]:part[1]])) })
	}
	wg.Wait()

	rows, err := s.Conn().Query(ctx, `SELECT tenant_id, event_id, event_time, event_type, target_type, target_id,
 performer_type, performer_id, performer_name, performer_email, performer_ip, request_id, request_type, meta, ingested_at
 FROM `+table(s, "audit_events")+` ORDER BY event_id`)
	require.NoError(t, err)
	defer rows.Close()
	var got []storage.AuditEventRow
	for rows.Next() {
		var e storage.AuditEventRow
		var ingested time.Time
		require.NoError(t, rows.Scan(&e.TenantID, &e.EventID, &e.EventTime, &e.EventType, &e.TargetType, &e.TargetID,
			&e.PerformerType, &e.PerformerID, &e.PerformerName, &e.PerformerEmail, &e.PerformerIP, &e.RequestID,
			&e.RequestType, &e.Meta, &ingested))
		require.WithinDuration(t, time.Now(), ingested, time.Minute)
		e.EventTime = e.EventTime.UTC()
		got = append(got, e)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, want, got)
	require.GreaterOrEqual(t, s.AuditStats().Inserts, uint64(9), "60 rows in batches of at most 7")
}
