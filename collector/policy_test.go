package collector

import (
	"fmt"
	"math"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/events"
	"github.com/seatwatch/greenhouse-collector/storage"
)

// TestPolicyBadInput: every bad policy is refused with the field at fault, as the PUT route
// decodes and checks it (decodeStrict, validatePolicy).
func TestPolicyBadInput(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	known := map[int64]bool{4080123: true, 4080124: true}
	tests := []struct {
		name, body, code, field string
	}{
		{"negative seats", `{"license_types":{"basic":{"seats_purchased":-1}}}`, "invalid_field", "license_types.basic.seats_purchased"},
		{"absurd seats", `{"license_types":{"job_admin":{"seats_purchased":1000001}}}`, "invalid_field", "license_types.job_admin.seats_purchased"},
		{"fractional seats", `{"license_types":{"basic":{"seats_purchased":3.5}}}`, "invalid_field", "license_types.basic.seats_purchased"},
		{"a float cost", `{"license_types":{"basic":{"annual_cost":480.0,"currency":"USD"}}}`, "invalid_field", "license_types.basic.annual_cost"},
		{"an integer cost", `{"license_types":{"basic":{"annual_cost":480,"currency":"USD"}}}`, "invalid_field", "license_types.basic.annual_cost"},
		{"too many decimals", `{"license_types":{"basic":{"annual_cost":"480.001","currency":"USD"}}}`, "invalid_field", "license_types.basic.annual_cost"},
		{"decimals of a currency without", `{"license_types":{"basic":{"annual_cost":"480.5","currency":"JPY"}}}`, "invalid_field", "license_types.basic.annual_cost"},
		{"an exponent", `{"license_types":{"basic":{"annual_cost":"4.8e2","currency":"USD"}}}`, "invalid_field", "license_types.basic.annual_cost"},
		{"a negative cost", `{"license_types":{"basic":{"annual_cost":"-480","currency":"USD"}}}`, "invalid_field", "license_types.basic.annual_cost"},
		{"an absurd cost", `{"license_types":{"basic":{"annual_cost":"99999999999999","currency":"USD"}}}`, "invalid_field", "license_types.basic.annual_cost"},
		{"a cost without currency", `{"license_types":{"site_admin":{"annual_cost":"480.00"}}}`, "missing_field", "license_types.site_admin.currency"},
		{"an unknown currency", `{"license_types":{"basic":{"annual_cost":"480.00","currency":"ABC"}}}`, "invalid_field", "license_types.basic.currency"},
		{"a currency in lower case", `{"license_types":{"basic":{"currency":"usd"}}}`, "invalid_field", "license_types.basic.currency"},
		{"a contract end that is no date", `{"license_types":{"basic":{"contract_end":"2027-02-30"}}}`, "invalid_field", "license_types.basic.contract_end"},
		{"a threshold of 0 days", `{"license_types":{"basic":{"inactive_after_days":0}}}`, "invalid_field", "license_types.basic.inactive_after_days"},
		{"a threshold beyond a year", `{"license_types":{"basic":{"inactive_after_days":366}}}`, "invalid_field", "license_types.basic.inactive_after_days"},
		{"an unknown license type", `{"license_types":{"premium":{"seats_purchased":1}}}`, "unknown_field", "premium"},
		{"a negative grace period", `{"new_user_grace_days":-1}`, "invalid_field", "new_user_grace_days"},
		{"a negative unused threshold", `{"seats_unused_threshold":-1}`, "invalid_field", "seats_unused_threshold"},
		{"an unknown user", `{"exemptions":[{"user_id":99,"reason":"r"}]}`, "invalid_field", "exemptions[0].user_id"},
		{"id and e-mail", `{"exemptions":[{"user_id":4080123,"email":"a@x","reason":"r"}]}`, "invalid_field", "exemptions[0]"},
		{"neither id nor e-mail", `{"exemptions":[{"reason":"r"}]}`, "missing_field", "exemptions[0].user_id"},
		{"no reason", `{"exemptions":[{"user_id":4080123,"reason":" "}]}`, "missing_field", "exemptions[0].reason"},
		{"an expired exemption", `{"exemptions":[{"user_id":4080123,"reason":"r"},{"user_id":4080124,"reason":"r","expires_at":"2026-11-22T12:00:00Z"}]}`, "invalid_field", "exemptions[1].expires_at"},
		{"an expiry that is no time", `{"exemptions":[{"user_id":4080123,"reason":"r","expires_at":"tomorrow"}]}`, "invalid_field", "exemptions[0].expires_at"},
		{"the same user twice", `{"exemptions":[{"email":"A@x","reason":"r"},{"email":"a@X","reason":"r"}]}`, "invalid_field", "exemptions[1]"},
		{"an e-mail list in one", `{"exemptions":[{"email":"a@x,b@x","reason":"r"}]}`, "invalid_field", "exemptions[0].email"},
		{"a NUL in a reason", `{"exemptions":[{"user_id":4080123,"reason":"CEO\u0000"}]}`, "invalid_field", "exemptions[0].reason"},
		{"an ESC in a reason", `{"exemptions":[{"user_id":4080123,"reason":"\u001b[31mCEO"}]}`, "invalid_field", "exemptions[0].reason"},
		{"a newline in a reason", `{"exemptions":[{"user_id":4080123,"reason":"CEO\nINFO forged"}]}`, "invalid_field", "exemptions[0].reason"},
		{"a C1 control in a reason", `{"exemptions":[{"user_id":4080123,"reason":"CEO\u0085"}]}`, "invalid_field", "exemptions[0].reason"},
		{"a right-to-left override in a reason", `{"exemptions":[{"user_id":4080123,"reason":"CEO \u202egnp.exe"}]}`, "invalid_field", "exemptions[0].reason"},
		{"a line separator in a reason", `{"exemptions":[{"user_id":4080123,"reason":"CEO\u2028x"}]}`, "invalid_field", "exemptions[0].reason"},
		{"a zero-width space in an e-mail", `{"exemptions":[{"email":"ceo\u200b@x","reason":"r"}]}`, "invalid_field", "exemptions[0].email"},
		{"a right-to-left override in an e-mail", `{"exemptions":[{"email":"\u202eceo@x","reason":"r"}]}`, "invalid_field", "exemptions[0].email"},
		{"a byte-order mark in an e-mail", `{"exemptions":[{"email":"ceo@x\ufeff","reason":"r"}]}`, "invalid_field", "exemptions[0].email"},
		{"a policy too large as JSON", bigPolicy(), "invalid_field", "exemptions"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := checkPolicyBody(t, tc.body, now, known)
			require.NotNil(t, e, "refused")
			assert.Equal(t, apiCode(tc.code), e.Code, e.Message)
			assert.Equal(t, tc.field, e.Field, e.Message)
		})
	}

	ok := `{"license_types":{"site_admin":{"seats_purchased":15,"annual_cost":"2400.00","currency":"USD","contract_end":"2027-01-31","inactive_after_days":60},
		"basic":{"seats_purchased":0,"annual_cost":"52000","currency":"JPY"}},"new_user_grace_days":14,"seats_unused_threshold":0,
		"exemptions":[{"user_id":4080123,"reason":"CEO"},{"email":"Audit@Acme.example","reason":"auditor","expires_at":"2026-12-01T09:00:00+02:00"}]}`
	var pol events.Policy
	require.Nil(t, decodeStrict(httptest.NewRequest("PUT", "/", strings.NewReader(ok)), httptest.NewRecorder(), &pol))
	require.Nil(t, validatePolicy(&pol, now, known))
	assert.Equal(t, "2026-12-01T07:00:00Z", pol.Exemptions[1].ExpiresAt, "stored in UTC")
}

// bigPolicy is a body within the request's bound whose policy, as stored (each "<" escaped as
// \u003c), exceeds maxPolicyBytes.
func bigPolicy() string {
	var xs []string
	for i := range 30 {
		xs = append(xs, fmt.Sprintf(`{"email":"u%d@x","reason":%q}`, i, strings.Repeat("<", 400)))
	}
	return `{"exemptions":[` + strings.Join(xs, ",") + `]}`
}

// checkPolicyBody decodes and checks a policy body as the PUT route does.
func checkPolicyBody(t *testing.T, body string, now time.Time, known map[int64]bool) *apiError {
	var pol events.Policy
	if e := decodeStrict(httptest.NewRequest("PUT", "/", strings.NewReader(body)), httptest.NewRecorder(), &pol); e != nil {
		return e
	}
	return validatePolicy(&pol, now, known)
}

func TestMoney(t *testing.T) {
	for _, tc := range []struct {
		in, currency string
		minor        int64
		out          string
	}{
		{"480.00", "USD", 48000, "480.00"},
		{"480", "USD", 48000, "480.00"},
		{"0.5", "EUR", 50, "0.50"},
		{"0", "USD", 0, "0.00"},
		{"52000", "JPY", 52000, "52000"},
		{"12.345", "BHD", 12345, "12.345"},
		{"1.2345", "CLF", 12345, "1.2345"},
	} {
		v, err := parseAmount(tc.in, tc.currency)
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.minor, v, tc.in)
		assert.Equal(t, tc.out, formatAmount(v, tc.currency), tc.in)
	}
	for _, bad := range []string{"", ".5", "5.", "1,000.00", " 5", "+5", "0x10", "4.8e2", "1.001", "10000000001"} {
		_, err := parseAmount(bad, "USD")
		assert.Error(t, err, bad)
	}
	_, err := parseAmount("1", "XAU")
	assert.ErrorIs(t, err, errUnknownCurrency, "metals are no currency to pay seats in")
	assert.Equal(t, "-0.05", formatAmount(-5, "USD"))
}

func TestPolicyChanges(t *testing.T) {
	seats := int64(10)
	days := 60
	a := events.Policy{NewUserGraceDays: 7}
	b := a
	b.LicenseTypes.Basic.SeatsPurchased = &seats
	b.LicenseTypes.SiteAdmin.InactiveAfterDays = &days
	b.Exemptions = []events.Exemption{{UserID: 1, Reason: "r"}}
	assert.Equal(t, []string{"license_types.site_admin.inactive_after_days", "license_types.basic.seats_purchased", "exemptions"}, policyChanges(a, b))
	assert.Empty(t, policyChanges(b, b))
	same := int64(10)
	c := b
	c.LicenseTypes.Basic.SeatsPurchased = &same
	assert.Empty(t, policyChanges(b, c), "equal values behind other pointers")
}

// TestPolicyInTheUsageRule: the policy's thresholds, grace period and exemptions reach the
// usage rule's parameters; an exemption ends at its expiry.
func TestPolicyInTheUsageRule(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	days := 60
	tp := &tenantPolicy{Revision: 2, Policy: events.Policy{NewUserGraceDays: 14, Exemptions: []events.Exemption{
		{UserID: 7, Reason: "r", ExpiresAt: now.Add(time.Hour).Format(time.RFC3339)},
		{Email: "Boss@Acme.example", Reason: "r"},
	}}}
	tp.Policy.LicenseTypes.JobAdmin.InactiveAfterDays = &days
	cp := checkpoint{CoverageStart: now.AddDate(0, 0, -90), ActivityThrough: now}
	p := usageParams(DefaultConfig().settingsOf(events.Connection{}), tp, cp, now, now)
	assert.Equal(t, 60, p.DaysFor(LicenseJobAdmin))
	assert.Equal(t, 30, p.DaysFor(LicenseBasic))
	assert.Equal(t, 14, p.GraceDays)
	assert.True(t, tp.exempts(7, "", now))
	assert.True(t, tp.exempts(8, "boss@acme.example", now))
	assert.False(t, tp.exempts(8, "", now))
	assert.False(t, tp.exempts(7, "", now.Add(time.Hour)), "expired")
	later := usageParams(DefaultConfig().settingsOf(events.Connection{}), tp, cp, now.Add(2*time.Hour), now.Add(2*time.Hour))
	usage, _ := storage.ClassifyUsage(storage.UserRow{UserID: 7, CreatedAt: now.AddDate(-1, 0, 0)}, later)
	assert.Equal(t, storage.UsageInactive, usage, "judged again once the exemption expired")
	var none *tenantPolicy
	assert.False(t, none.exempts(7, "", now))
	assert.Equal(t, storage.PolicyTerms{}, none.terms())
}

// TestSeatAlertsOncePerTransition: each seat alert fires when its condition begins, not while
// it holds; the condition ending fires nothing, and its coming back is a new transition.
func TestSeatAlertsOncePerTransition(t *testing.T) {
	seats := int64(10)
	fig := func(licenses int64) []storage.SeatFigures {
		return []storage.SeatFigures{storage.Figures(storage.UsageCounts{LicenseType: LicenseBasic, Licenses: licenses},
			storage.SeatTerms{SeatsPurchased: &seats})}
	}
	threshold := 3
	var st alertState
	fired := func(licenses int64) []string {
		var out []string
		for _, tr := range st.evaluateSeats(fig(licenses), &threshold) {
			out = append(out, fmt.Sprintf("%s:%d", tr.alert, tr.seq))
		}
		return out
	}
	assert.Equal(t, []string{"seats_unused:1"}, fired(5), "5 of 10 unassigned, above 3")
	assert.Empty(t, fired(6), "still above")
	assert.Empty(t, fired(8), "2 unassigned: ends, silently")
	assert.Equal(t, []string{"seats_exceeded:1"}, fired(11))
	assert.Empty(t, fired(12))
	assert.Equal(t, []string{"seats_unused:2"}, fired(2), "back above the threshold: a new transition")
	assert.Empty(t, st.evaluateSeats(fig(2), nil), "no threshold: never unused")
	assert.Equal(t, seatAlertState{ExceededSeq: 1, UnusedSeq: 2}, st.Seats[LicenseBasic], "nothing holds; the sequence numbers stay, so ids never repeat")
	st = alertState{}
	assert.Empty(t, st.evaluateSeats(fig(5), nil))
	assert.Empty(t, st.Seats, "a license type that never fired is not kept")
}

// TestWasteUnknownAndOverflow: a currency's unassigned cost (and total) is null when a type
// priced in it has no seats entered (unknown, never zero), and so is a figure or a sum beyond
// int64 minor units, at absurd counts and prices.
func TestWasteUnknownAndOverflow(t *testing.T) {
	price, seats := int64(48000), int64(10)
	fig := func(typ string, inactive int64, seats *int64, price int64) storage.SeatFigures {
		return storage.Figures(storage.UsageCounts{LicenseType: typ, Licenses: inactive + 1, Active: 1, Inactive: inactive},
			storage.SeatTerms{SeatsPurchased: seats, AnnualCost: &price, Currency: "USD"})
	}
	_, waste := seatSummaries([]storage.SeatFigures{fig(LicenseJobAdmin, 2, &seats, price), fig(LicenseBasic, 3, nil, price)}, storage.UsageParams{}, nil)
	require.Len(t, waste, 1)
	assert.Equal(t, Waste{Currency: "USD", InactiveCost: ptrTo("2400.00")}, waste[0], "basic's seats unknown: its unassigned cost, and the total, unknown")

	_, waste = seatSummaries([]storage.SeatFigures{fig(LicenseJobAdmin, 2, &seats, price)}, storage.UsageParams{}, nil)
	assert.Equal(t, Waste{Currency: "USD", InactiveCost: ptrTo("960.00"), UnassignedCost: ptrTo("3360.00"), Total: ptrTo("4320.00")}, waste[0])

	const maxPrice = maxMinorUnits
	huge := fig(LicenseBasic, 10_000_000, &seats, maxPrice) // 10^7 × 10^12 > 2^63
	assert.Nil(t, huge.InactiveCost, "beyond int64: unknown")
	big := fig(LicenseSiteAdmin, 5_000_000, &seats, maxPrice) // 5×10^18 each: their sum overflows
	require.NotNil(t, big.InactiveCost)
	sums, waste := seatSummaries([]storage.SeatFigures{big, fig(LicenseJobAdmin, 5_000_000, &seats, maxPrice)}, storage.UsageParams{}, nil)
	assert.Nil(t, waste[0].InactiveCost, "the sum beyond int64: unknown")
	assert.Nil(t, waste[0].Total)
	assert.Equal(t, ptrTo("50000000000000000.00"), sums[LicenseSiteAdmin].InactiveCost)
	millionSeats := int64(maxSeats)
	assert.NotNil(t, storage.Figures(storage.UsageCounts{Active: 1}, storage.SeatTerms{SeatsPurchased: &millionSeats, AnnualCost: ptrTo(int64(maxPrice))}).CostPerActiveUser(),
		"the bounds of a policy stay within int64")
	assert.Nil(t, storage.AddMinor(ptrTo(int64(math.MaxInt64)), ptrTo(int64(1))))
	assert.Nil(t, storage.MulMinor(math.MaxInt64, 2))
}

func ptrTo[T any](v T) *T { return &v }
