package storage_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/storage"
	"github.com/seatwatch/greenhouse-collector/storage/storagetest"
)

func i64(v int64) *int64    { return &v }
func u32p(v uint32) *uint32 { return &v }

func TestFigures(t *testing.T) {
	t.Parallel()
	counts := storage.UsageCounts{LicenseType: "basic", Users: 9, Licenses: 8, Active: 3, Inactive: 2, Exempt: 2, Unknown: 1}
	tests := []struct {
		name           string
		terms          storage.SeatTerms
		unassigned     *int64
		inactiveCost   *int64
		unassignedCost *int64
		perActive      *int64
		exceeded       bool
	}{
		{"nothing entered: unknown, never zero", storage.SeatTerms{}, nil, nil, nil, nil, false},
		{"seats only", storage.SeatTerms{SeatsPurchased: i64(10)}, i64(2), nil, nil, nil, false},
		{"price only", storage.SeatTerms{AnnualCost: i64(12000), Currency: "USD"}, nil, i64(24000), nil, nil, false},
		{"both", storage.SeatTerms{SeatsPurchased: i64(10), AnnualCost: i64(12000), Currency: "USD"}, i64(2), i64(24000), i64(24000), i64(40000), false},
		{"more assigned than bought", storage.SeatTerms{SeatsPurchased: i64(5), AnnualCost: i64(100), Currency: "USD"}, i64(0), i64(200), i64(0), i64(167), true},
		{"exactly the seats bought", storage.SeatTerms{SeatsPurchased: i64(8)}, i64(0), nil, nil, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := storage.Figures(counts, tc.terms)
			assert.Equal(t, counts, f.UsageCounts)
			assert.Equal(t, tc.unassigned, f.Unassigned, "unassigned")
			assert.Equal(t, tc.inactiveCost, f.InactiveCost, "inactive cost")
			assert.Equal(t, tc.unassignedCost, f.UnassignedCost, "unassigned cost")
			assert.Equal(t, tc.perActive, f.CostPerActiveUser(), "cost per active user (500/3 rounds to 167)")
			assert.Equal(t, tc.exceeded, f.Exceeded())
		})
	}
	assert.InDelta(t, 3.0/6, counts.Utilisation(), 1e-9, "exempt licenses are left out of utilisation")
	assert.Zero(t, storage.UsageCounts{Licenses: 2, Exempt: 2}.Utilisation())
	assert.Nil(t, storage.Figures(storage.UsageCounts{}, storage.SeatTerms{SeatsPurchased: i64(1), AnnualCost: i64(1)}).CostPerActiveUser(), "nobody active")
}

// TestUsageSnapshotAndWaste: a users sync's snapshot holds the policy's figures, and the
// documented waste query recomputes the same costs from the counts and the policy's history.
func TestUsageSnapshotAndWaste(t *testing.T) {
	t.Parallel()
	s := storagetest.NewStore(t)
	ctx := t.Context()
	require.NoError(t, s.UpsertUsers(ctx, fixtureUsers()))
	params := storage.UsageParams{Now: fixNow, InactiveAfterDays: 30, CoverageStart: ts("2024-05-01 00:00:00"),
		Exempt: storage.Exemptions{IDs: []int64{6}}}
	terms := storage.PolicyTerms{Revision: 2, ByType: map[string]storage.SeatTerms{
		"basic":      {SeatsPurchased: i64(10), AnnualCost: i64(12000), Currency: "USD"},
		"job_admin":  {SeatsPurchased: i64(1)},
		"site_admin": {AnnualCost: i64(50000), Currency: "EUR"},
	}}
	require.NoError(t, s.InsertPolicyChange(ctx, storage.PolicyChangeRow{TenantID: "acme", App: "greenhouse", Revision: 2,
		ChangedAt: ts("2024-06-30 10:00:00"), ChangedBy: "dashboard", Changed: []string{"license_types.basic.seats_purchased", "exemptions"},
		Policy: `{"new_user_grace_days":0}`, Terms: terms.ByType, InactiveAfterDays: map[string]int{"site_admin": 60}}))

	// A snapshot before any policy (revision 0), one under revision 2, replayed.
	_, err := s.RecordUsageCounts(ctx, "acme", "greenhouse", ts("2024-06-30 09:00:00"), params, storage.PolicyTerms{})
	require.NoError(t, err)
	var figs []storage.SeatFigures
	for range 2 {
		figs, err = s.RecordUsageCounts(ctx, "acme", "greenhouse", ts("2024-06-30 11:00:00"), params, terms)
		require.NoError(t, err)
	}
	want := []storage.SeatFigures{
		{UsageCounts: storage.UsageCounts{LicenseType: "site_admin", Users: 1, Licenses: 1, Active: 1}, SeatTerms: terms.ByType["site_admin"],
			InactiveCost: i64(0)},
		{UsageCounts: storage.UsageCounts{LicenseType: "job_admin", Users: 1, Licenses: 1, Inactive: 1}, SeatTerms: terms.ByType["job_admin"],
			Unassigned: i64(0)},
		{UsageCounts: storage.UsageCounts{LicenseType: "basic", Users: 6, Licenses: 4, Active: 1, Inactive: 1, Exempt: 1, Unknown: 1},
			SeatTerms: terms.ByType["basic"], Unassigned: i64(6), InactiveCost: i64(12000), UnassignedCost: i64(72000)},
	}
	assert.Equal(t, want, figs)

	trend, err := s.UsageTrend(ctx, "acme", "greenhouse", storage.BucketDay, ts("2024-06-30 00:00:00"), ts("2024-07-01 00:00:00"))
	require.NoError(t, err)
	require.Len(t, trend, 3)
	assert.Equal(t, storage.UsageCountRow{TS: ts("2024-06-30 11:00:00"), LicenseType: "basic", Users: 6, Licenses: 4, Active: 1, Inactive: 1, Exempt: 1, Unknown: 1}, trend[0])

	waste, err := s.WasteOverTime(ctx, "acme", "greenhouse", ts("2024-06-30 00:00:00"), ts("2024-07-01 00:00:00"))
	require.NoError(t, err)
	assert.Equal(t, []storage.WasteRow{
		{TS: ts("2024-06-30 09:00:00"), LicenseType: "basic", Inactive: 1},
		{TS: ts("2024-06-30 09:00:00"), LicenseType: "job_admin", Inactive: 1},
		{TS: ts("2024-06-30 09:00:00"), LicenseType: "site_admin"},
		{TS: ts("2024-06-30 11:00:00"), LicenseType: "basic", PolicyRevision: 2, Inactive: 1, Unassigned: u32p(6), Currency: "USD",
			InactiveCost: i64(12000), UnassignedCost: i64(72000)},
		{TS: ts("2024-06-30 11:00:00"), LicenseType: "job_admin", PolicyRevision: 2, Inactive: 1, Unassigned: u32p(0)},
		{TS: ts("2024-06-30 11:00:00"), LicenseType: "site_admin", PolicyRevision: 2, Currency: "EUR", InactiveCost: i64(0)},
	}, waste, "recomputed from the counts and the policy then in force, equal to the stored figures")

	changes, err := s.PolicyChanges(ctx, "acme", "greenhouse")
	require.NoError(t, err)
	require.Len(t, changes, 1)
	assert.Equal(t, storage.PolicyChangeRow{TenantID: "acme", App: "greenhouse", Revision: 2, ChangedAt: ts("2024-06-30 10:00:00"),
		ChangedBy: "dashboard", Changed: []string{"license_types.basic.seats_purchased", "exemptions"}, Policy: `{"new_user_grace_days":0}`}, changes[0])
}

// TestWasteBeyondInt64: a cost beyond Int64 minor units (billions of inactive licenses at the
// highest price) is NULL in the waste over time, never a wrapped number; the same in Go.
func TestWasteBeyondInt64(t *testing.T) {
	t.Parallel()
	s := storagetest.NewStore(t)
	ctx := t.Context()
	price := int64(1_000_000_000_000)
	terms := map[string]storage.SeatTerms{"basic": {SeatsPurchased: i64(10), AnnualCost: &price, Currency: "USD"}}
	require.NoError(t, s.InsertPolicyChange(ctx, storage.PolicyChangeRow{TenantID: "acme", App: "greenhouse", Revision: 1,
		ChangedAt: ts("2024-06-30 10:00:00"), ChangedBy: "dashboard", Policy: `{}`, Terms: terms}))
	for i, inactive := range []uint32{9_000_000, 4_000_000_000} {
		b, err := s.Conn().PrepareBatch(ctx, "INSERT INTO "+table(s, "usage_counts")+" (tenant_id, app, ts, license_type, users, licenses, inactive, policy_revision)")
		require.NoError(t, err)
		require.NoError(t, b.Append("acme", "greenhouse", ts(fmt.Sprintf("2024-06-30 %02d:00:00", 11+i)), "basic", inactive, inactive, inactive, uint32(1)))
		require.NoError(t, b.Send())
	}
	waste, err := s.WasteOverTime(ctx, "acme", "greenhouse", ts("2024-06-30 00:00:00"), ts("2024-07-01 00:00:00"))
	require.NoError(t, err)
	require.Len(t, waste, 2)
	assert.Equal(t, i64(9_000_000*price), waste[0].InactiveCost, "within Int64")
	assert.Nil(t, waste[1].InactiveCost, "4×10^21: beyond Int64, unknown")
	assert.Equal(t, i64(0), waste[1].UnassignedCost)
	assert.Nil(t, storage.Figures(storage.UsageCounts{Licenses: 4_000_000_000, Inactive: 4_000_000_000}, terms["basic"]).InactiveCost)
}
