package storage_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/storage"
)

func ts(s string) time.Time {
	t, err := time.Parse(time.DateTime, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func ptr(t time.Time) *time.Time { return &t }

// scalar runs a query returning one UInt64.
func scalar(t testing.TB, s *storage.Store, q string, args ...any) uint64 {
	t.Helper()
	var n uint64
	require.NoError(t, s.Conn().QueryRow(t.Context(), q, args...).Scan(&n), q)
	return n
}

func table(s *storage.Store, name string) string { return fmt.Sprintf("`%s`.%s", s.Database(), name) }

// auditEvent builds an event of a user performer.
func auditEvent(tenant string, id int, at time.Time, user int64, typ string) storage.AuditEventRow {
	return storage.AuditEventRow{
		TenantID: tenant, EventID: fmt.Sprintf("%032x", id), EventTime: at, EventType: typ,
		TargetType: "job", TargetID: fmt.Sprint(id % 97), PerformerType: "user", PerformerID: fmt.Sprint(user),
		PerformerName: fmt.Sprintf("User %d", user), PerformerEmail: fmt.Sprintf("u%d@example.com", user),
		PerformerIP: "10.0.0.1", RequestID: fmt.Sprintf("req-%d", id), RequestType: "harvest_api", Meta: `{"k":"v"}`,
	}
}
