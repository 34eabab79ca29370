package storage_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/connectors"
	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse/simulator"
	"github.com/seatwatch/greenhouse-collector/storage"
	"github.com/seatwatch/greenhouse-collector/storage/storagetest"
)

// TestSeatUseSQLAgreesWithTheSimulator: the rule of what counts as a person's use of a seat
// (docs/events.md, "What counts as use") has one home in SQL (storage.SeatUseSQL); the
// simulator's ground truth uses simulator.SeatUse. Both judge the same events alike, among
// them the admin user's own API traffic, which must not make the admin look active.
func TestSeatUseSQLAgreesWithTheSimulator(t *testing.T) {
	t.Parallel()
	s := storagetest.NewStore(t)
	ctx := t.Context()
	cases := []struct{ performer, event, request string }{
		{"user", "action", "email_settings#create_organization_email"},
		{"user", "data_change_update", "users#update"},
		{"user", "data_change_create", "people#change_application_state"},
		{"user", "harvest_access", "/v3/users?per_page=500"},
		{"user", "harvest_access", "users#index"},
		{"user", "data_change_update", "/v3/users/123"},
		{"user", "data_change_update", "/v1/candidates/123456"},
		{"user", "data_change_create", "https://harvest.greenhouse.io/v3/notes"},
		{"user", "data_change_create", "http://harvest.greenhouse.io/v3/notes"},
		{"user", "action", "GET /v3/users"},
		{"user", "action", "PATCH https://harvest.greenhouse.io/v3/users/1"},
		{"user", "action", "get /v3/users"},
		{"user", "action", " /v3/users"},
		{"user", "action", "GET  /v3/users"},
		{"user", "action", ""},
		{"user", "action", "Report Viewed"},
		{"api_key", "harvest_access", "/v3/users"},
		{"api_key", "data_change_update", "users#update"},
		{"greenhouse_internal", "action", "jobs#update"},
	}
	at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	var rows []storage.AuditEventRow
	for i, c := range cases {
		rows = append(rows, storage.AuditEventRow{TenantID: "seat", EventID: fmt.Sprintf("e%d", i), EventTime: at,
			EventType: c.event, PerformerType: c.performer, PerformerID: fmt.Sprint(i + 1), RequestType: c.request})
	}
	require.NoError(t, s.InsertAuditEvents(ctx, rows))
	acts, err := s.UserActivity(ctx, "seat", at.Add(-time.Hour), at.Add(time.Hour), nil)
	require.NoError(t, err)
	active := map[int64]bool{}
	for _, a := range acts {
		active[a.UserID] = true
	}
	for i, c := range cases {
		assert.Equal(t, simulator.SeatUse(c.performer, c.event, c.request), active[int64(i+1)], "%+v", c)
		assert.Equal(t, active[int64(i+1)], storage.SeatUse(c.performer, fmt.Sprint(i+1), c.event, c.request), "storage.SeatUse: %+v", c)
	}
	require.NoError(t, s.RefreshDailyActivity(ctx, "seat", []time.Time{at}))
	daily, err := s.DailyActivity(ctx, "seat", connectors.AppGreenhouse, at, at)
	require.NoError(t, err)
	assert.Len(t, daily, len(active), "daily activity follows the same rule")
	for _, d := range daily {
		assert.True(t, active[d.UserID], "user %d", d.UserID)
	}
}
