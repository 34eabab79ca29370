package storage_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/storage"
	"github.com/seatwatch/greenhouse-collector/storage/storagetest"
)

// TestActionOutcomesRoundTrip: outcomes are stored and read back by user id, a null last
// activity stays null, another action's and tenant's rows stay apart, and a row written again
// (a replay after a crash) replaces itself.
func TestActionOutcomesRoundTrip(t *testing.T) {
	t.Parallel()
	s := storagetest.NewStore(t)
	ctx := t.Context()
	base := storage.ActionRow{TenantID: "acme", App: "greenhouse", ActionID: "a1", Type: "deactivate", RequestedBy: "rule:inactive-90d",
		Reason: "inactive", RequestedAt: ts("2026-03-01 10:00:00"), DecidedAt: ts("2026-03-01 10:00:05"), Guards: `[]`}
	done := base
	done.UserID, done.Outcome, done.HTTPStatus, done.LicenseType, done.LastActivityAt = 7, "done", 204, "basic", ptr(ts("2025-11-02 08:00:00"))
	refused := base
	refused.UserID, refused.Outcome, refused.Code, refused.LicenseType, refused.Force = 3, "refused", "site_admin", "site_admin", true
	other := done
	other.TenantID = "globex"
	require.NoError(t, s.InsertActionOutcomes(ctx, []storage.ActionRow{done, refused, other}))
	require.NoError(t, s.InsertActionOutcomes(ctx, []storage.ActionRow{done}), "a replay")
	require.NoError(t, s.InsertActionOutcomes(ctx, nil))

	got, err := s.ActionOutcomes(ctx, "acme", "greenhouse", "a1")
	require.NoError(t, err)
	assert.Equal(t, []storage.ActionRow{refused, done}, got)
	assert.EqualValues(t, 4, scalar(t, s, "SELECT count() FROM "+table(s, "actions")), "rows are only inserted")
	none, err := s.ActionOutcomes(ctx, "acme", "greenhouse", "a2")
	require.NoError(t, err)
	assert.Empty(t, none)
}
