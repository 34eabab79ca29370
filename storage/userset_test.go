package storage_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/storage"
	"github.com/seatwatch/greenhouse-collector/storage/storagetest"
)

// A UserSet of the rows written is what CurrentUsers reads back: nanoseconds cut, times
// before 1970 kept as 1970 (the zero time for the plain times), any location read as UTC,
// nil kept nil, the last row of a user in the set being its newest version.
func TestUserSetIsTheStoredForm(t *testing.T) {
	t.Parallel()
	s := storagetest.NewStore(t)
	ctx := t.Context()
	paris := time.FixedZone("CET", 3600)
	odd := time.Date(2025, 6, 7, 8, 9, 10, 999_999_999, paris)
	old := time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)
	rows := []storage.UserRow{
		{TenantID: "set", App: "greenhouse", UserID: 3, Name: "Zoë", Email: "z@example.com", Status: "active", LicenseType: "basic",
			CreatedAt: odd, UpdatedAt: old, FirstSeenAt: time.Now(), LastSeenAt: odd.Add(time.Hour), RemovedAt: &old,
			LastActivityAt: &odd, LastActivityType: "action", Revision: 4, Version: 40, LicensedAt: &odd, SiteAdmin: true},
		{TenantID: "set", App: "greenhouse", UserID: -1, Name: "", Status: "removed", ServiceAccount: true, Version: 1},
		{TenantID: "set", App: "greenhouse", UserID: 1 << 60, Name: "Big", Status: "active", LicenseType: "site_admin", Version: 7, Revision: 1},
	}
	newer := rows[1]
	newer.Status, newer.Version, newer.Revision = "active", 2, 1
	written := append(slices.Clone(rows), newer)
	require.NoError(t, s.UpsertUsers(ctx, written))

	var stored []storage.UserRow
	require.NoError(t, s.CurrentUsers(ctx, "set", "greenhouse", func(u storage.UserRow) error { stored = append(stored, u); return nil }))
	set := storage.NewUserSet("set", "greenhouse", len(written), slices.Values(written))
	held := slices.Collect(set.All)
	require.Len(t, stored, 3)
	assert.Equal(t, stored, held)
	assert.Equal(t, 3, set.Len())
	assert.Equal(t, int64(-1), held[0].UserID, "in user_id order")
	assert.Equal(t, "active", held[0].Status, "the last row of a user wins")
	m := set.Map()
	assert.Len(t, m, 3)
	assert.Equal(t, stored[1], m[3])
	assert.Greater(t, set.Bytes(), 3*100)
}

// Rows already in id order are not sorted again, and the last row of a user still wins.
func TestUserSetSortedInputLastWins(t *testing.T) {
	rows := []storage.UserRow{{UserID: 1, Status: "active"}, {UserID: 2, Status: "active"}, {UserID: 2, Status: "deactivated"},
		{UserID: 2, Status: "removed"}, {UserID: 3, Status: "active"}}
	held := slices.Collect(storage.NewUserSet("t", "greenhouse", 0, slices.Values(rows)).All)
	require.Len(t, held, 3)
	assert.Equal(t, []int64{1, 2, 3}, []int64{held[0].UserID, held[1].UserID, held[2].UserID})
	assert.Equal(t, "removed", held[1].Status)
}

// Rows in any order, ids repeated, give the set a map by id would: every id once, in id
// order, its last row winning (the sort through positions and the moves in place).
func TestUserSetAnyOrderMatchesAMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		n := rng.IntN(300)
		rows := make([]storage.UserRow, n)
		want := map[int64]storage.UserRow{}
		for i := range rows {
			rows[i] = storage.UserRow{UserID: rng.Int64N(int64(n/2 + 1)), Version: uint64(i), Status: "active", Name: fmt.Sprint("u", i)}
			want[rows[i].UserID] = rows[i]
		}
		hint := []int{0, n, n / 2, n * 2}[round%4]
		held := slices.Collect(storage.NewUserSet("t", "greenhouse", hint, slices.Values(rows)).All)
		require.Len(t, held, len(want), "round %d", round)
		for i, u := range held {
			if i > 0 {
				require.Less(t, held[i-1].UserID, u.UserID, "round %d: in id order", round)
			}
			require.Equal(t, want[u.UserID].Version, u.Version, "round %d: the last row of user %d", round, u.UserID)
			require.Equal(t, want[u.UserID].Name, u.Name)
		}
	}
}
