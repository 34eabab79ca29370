package greenhouse_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse"
	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse/simulator"
)

// TestSetUserStatus: deactivate and activate as documented (204 either way, idempotent), a 422
// for an unknown id, actions_not_permitted for a credential without the write permission,
// and LookupUsers seeing the new state.
func TestSetUserStatus(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, fastOptions(), simulator.OrgSpec{Name: "acme", Seed: 21, Users: 20, Events: 20})
	c := f.client(t)
	var target int64
	for _, u := range f.org.Truth().Users {
		if u.Status == "active" && !u.SiteAdmin && u.ID != f.org.Credentials().AdminUserID {
			target = u.ID
			break
		}
	}
	require.NotZero(t, target)
	require.NoError(t, c.SetUserStatus(ctx, target, greenhouse.Deactivate))
	require.NoError(t, c.SetUserStatus(ctx, target, greenhouse.Deactivate), "idempotent: 204 again")
	got, err := c.LookupUsers(ctx, []int64{target})
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.True(t, got[0].Deactivated)
	require.NoError(t, c.SetUserStatus(ctx, target, greenhouse.Activate))
	got, err = c.LookupUsers(ctx, []int64{target})
	require.NoError(t, err)
	assert.False(t, got[0].Deactivated)
	assert.Equal(t, []string{"deactivate " + itoa(target), "deactivate " + itoa(target), "activate " + itoa(target)}, f.org.Writes())

	err = c.SetUserStatus(ctx, 999999999, greenhouse.Deactivate)
	assert.Equal(t, greenhouse.CodeUnprocessable, greenhouse.CodeOf(err))

	f.org.SetFaults(simulator.Faults{MissingScopes: []string{simulator.ScopeDeactivate}})
	c2 := f.client(t)
	err = c2.SetUserStatus(ctx, target, greenhouse.Deactivate)
	assert.ErrorIs(t, err, greenhouse.ErrActionsNotPermitted)
	require.NoError(t, c2.SetUserStatus(ctx, target, greenhouse.Activate), "activate keeps its own scope")
	assert.Len(t, f.org.Writes(), 4, "the refused write changed nothing")
	assert.Error(t, c.SetUserStatus(ctx, target, "remove"))
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
