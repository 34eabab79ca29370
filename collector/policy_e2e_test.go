package collector_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/collector"
	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse/simulator"
	"github.com/seatwatch/greenhouse-collector/events"
	"github.com/seatwatch/greenhouse-collector/storage"
)

// policyTenant is a tenant connected on the simulator and synced, with helpers for its license
// policy, summary and alerts.
type policyTenant struct {
	*connectedTenant
}

func startPolicyTenant(t *testing.T) *policyTenant {
	t.Helper()
	ct := connectTenant(t, simulator.OrgSpec{Name: "policy", Seed: 31, Users: 400, Events: 14000}, nil)
	p := &policyTenant{ct}
	ct.waitConnection(ct.tenant, 2*time.Minute, func(c events.Connection) bool {
		return c.Freshness.UsersSyncedAt != nil && c.Freshness.AuditSyncedThrough != nil && c.LastSync != nil && c.LastSync.Kind == "audit"
	})
	return p
}

// put puts a policy and requires the answer's status.
func (p *policyTenant) put(body string, want int) events.PolicyDocument {
	p.t.Helper()
	var doc events.PolicyDocument
	var raw json.RawMessage = []byte(body)
	require.Equal(p.t, want, p.call(http.MethodPut, "/v1/tenants/policy/connections/greenhouse/policy", raw, &doc), body)
	return doc
}

func (p *policyTenant) summary() collector.Summary {
	p.t.Helper()
	var s collector.Summary
	require.Equal(p.t, 200, p.call(http.MethodGet, "/v1/tenants/policy/usage/summary", nil, &s))
	return s
}

// licenses returns the license records of a usage, by user.
func (p *policyTenant) licenses(usage string) map[int64]events.LicenseRecord {
	p.t.Helper()
	var out struct {
		Licenses []events.LicenseRecord `json:"licenses"`
	}
	require.Equal(p.t, 200, p.call(http.MethodGet, "/v1/tenants/policy/licenses?usage="+usage, nil, &out))
	m := map[int64]events.LicenseRecord{}
	for _, l := range out.Licenses {
		m[l.UserID] = l
	}
	return m
}

// syncNow asks for a sync and waits until its audit run has ended.
func (p *policyTenant) syncNow() {
	p.t.Helper()
	var run map[string]string
	require.Equal(p.t, 202, p.call(http.MethodPost, "/v1/tenants/policy/connections/greenhouse/sync", nil, &run))
	p.waitConnection(p.tenant, time.Minute, func(c events.Connection) bool {
		return c.LastSync != nil && c.LastSync.RunID == run["run_id"] && c.LastSync.Kind == "audit"
	})
}

// alerts returns the alert events published for the tenant so far, by type then subject.
func (p *policyTenant) alerts() map[string]map[string][]envelope {
	p.t.Helper()
	out := map[string]map[string][]envelope{}
	for _, ev := range decodeAll(p.t, streamMessages(p.t, p.app)) {
		if !strings.HasPrefix(ev.ID, "policy:") {
			continue
		}
		if out[ev.Type] == nil {
			out[ev.Type] = map[string][]envelope{}
		}
		out[ev.Type][ev.Subject] = append(out[ev.Type][ev.Subject], ev)
	}
	return out
}

// truthCounts derives from the simulator's truth, as of asOf, each license type's licenses
// and their usage under thresholds (days by type, 30 otherwise) and exemptions.
func truthCounts(truth simulator.Truth, asOf time.Time, days map[string]int, exempt map[int64]bool) map[string]storage.UsageCounts {
	out := map[string]storage.UsageCounts{}
	for _, u := range truth.Users {
		if u.Status != "active" || u.ServiceAccount {
			continue
		}
		c := out[u.LicenseType]
		c.Licenses++
		d, ok := days[u.LicenseType]
		if !ok {
			d = 30
		}
		threshold := asOf.Add(-time.Duration(d) * 24 * time.Hour)
		switch {
		case exempt[u.ID]:
			c.Exempt++
		case u.LastActivityAt != nil && !u.LastActivityAt.Before(threshold):
			c.Active++
		case !u.CreatedAt.Truncate(time.Second).Before(threshold):
			c.Unknown++
		default:
			c.Inactive++
		}
		out[u.LicenseType] = c
	}
	return out
}

// cents writes minor units of a two-digit currency.
func cents(v int64) string { return fmt.Sprintf("%d.%02d", v/100, v%100) }

// TestLicensePolicy runs each rule of the license policy end to end against the simulator:
// seats, cost and waste against the truth; a change re-judging at once with each alert once;
// an exemption suppressing an alert until it expires; per-type thresholds and the grace
// period; bad input changing nothing.
func TestLicensePolicy(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	p := startPolicyTenant(t)
	truth := p.org.Truth()
	before := p.summary()
	require.Zero(t, before.PolicyRevision)
	require.Empty(t, before.Waste, "no policy: no money")
	require.NotNil(t, before.ActivityKnownSince, "after the backfill")
	require.NotNil(t, before.ObservedSince)
	known := *before.ActivityKnownSince
	assert.True(t, known.Before(*before.ObservedSince), "the backfill reaches before the first listing")
	reasons := map[string]int{}
	for _, l := range p.licenses("inactive") {
		reasons[l.Reason]++
		switch l.Reason {
		case "never_active":
			assert.False(t, l.CreatedAt.Before(known), "never_active: created within the activity known, %d", l.UserID)
		case "no_activity_observed":
			assert.True(t, l.CreatedAt.Before(known), "no_activity_observed: created before the activity known, %d", l.UserID)
		}
	}
	assert.Positive(t, reasons["no_activity_observed"]+reasons["never_active"], "the reasons are checked against activity_known_since")
	for _, typ := range []string{"site_admin", "job_admin", "basic"} {
		s := before.Seats[typ]
		assert.Nil(t, s.SeatsPurchased, "unset is unknown, never zero")
		assert.Nil(t, s.InactiveCost)
	}

	t.Run("seats, cost and waste equal the truth", func(t *testing.T) { p.seatsAndWaste(t, truth) })
	t.Run("a change re-judges at once and alerts once", func(t *testing.T) { p.rejudgesAtOnce(t) })
	t.Run("an exemption suppresses the alert until it expires", func(t *testing.T) { p.exemption(t) })
	t.Run("grace period", func(t *testing.T) { p.gracePeriod(t) })
	t.Run("bad input changes nothing", func(t *testing.T) { p.badInput(t) })
}

// seatsAndWaste: a policy with seats and prices gives the figures the truth implies, a
// snapshot with the same figures, one seats_exceeded and one seats_unused, and
// saas.policy.changed with a policy_changes row.
func (p *policyTenant) seatsAndWaste(t *testing.T, truth simulator.Truth) {
	want := truthCounts(truth, p.summary().AsOf, nil, nil)
	seats := map[string]int64{"site_admin": want["site_admin"].Licenses + 2, "job_admin": want["job_admin"].Licenses - 1, "basic": want["basic"].Licenses + 20}
	price := map[string]int64{"site_admin": 240000, "job_admin": 120000, "basic": 48000}
	body := fmt.Sprintf(`{"license_types": {
		"site_admin": {"seats_purchased": %d, "annual_cost": %q, "currency": "USD"},
		"job_admin": {"seats_purchased": %d, "annual_cost": %q, "currency": "USD", "contract_end": "2027-01-31"},
		"basic": {"seats_purchased": %d, "annual_cost": %q, "currency": "USD"}},
		"seats_unused_threshold": 5}`,
		seats["site_admin"], cents(price["site_admin"]), seats["job_admin"], cents(price["job_admin"]), seats["basic"], cents(price["basic"]))
	doc := p.put(body, 200)
	assert.Equal(t, uint32(1), doc.Revision)
	assert.Equal(t, "api-token", doc.UpdatedBy, "who changed it: the token's name")

	sum := p.summary()
	want = truthCounts(p.org.Truth(), sum.AsOf, nil, nil)
	var inactiveCost, unassignedCost int64
	for typ, w := range want {
		s := sum.Seats[typ]
		assert.Equal(t, []int64{w.Licenses, w.Active, w.Inactive, w.Unknown, 0}, []int64{s.Assigned, s.Active, s.Inactive, s.Unknown, s.Exempt}, typ)
		require.NotNil(t, s.SeatsPurchased, typ)
		unassigned := max(seats[typ]-w.Licenses, 0)
		assert.Equal(t, unassigned, *s.Unassigned, typ)
		require.NotNil(t, s.InactiveCost, typ)
		assert.Equal(t, cents(w.Inactive*price[typ]), *s.InactiveCost, typ)
		assert.Equal(t, cents(unassigned*price[typ]), *s.UnassignedCost, typ)
		if w.Active > 0 {
			assert.Equal(t, cents((2*seats[typ]*price[typ]+w.Active)/(2*w.Active)), *s.CostPerActiveUser, typ)
		}
		inactiveCost += w.Inactive * price[typ]
		unassignedCost += unassigned * price[typ]
	}
	assert.Equal(t, "2027-01-31", sum.Seats["job_admin"].ContractEnd)
	assert.Equal(t, []collector.Waste{{Currency: "USD", InactiveCost: ptr(cents(inactiveCost)), UnassignedCost: ptr(cents(unassignedCost)),
		Total: ptr(cents(inactiveCost + unassignedCost))}}, sum.Waste)

	alerts := p.alerts()
	assert.Len(t, alerts[string(events.TypeAlertSeatsExceeded)]["license_types/job_admin"], 1, "job_admin: one seat short")
	assert.Len(t, alerts[string(events.TypeAlertSeatsExceeded)], 1)
	assert.Len(t, alerts[string(events.TypeAlertSeatsUnused)]["license_types/basic"], 1, "basic: 20 unassigned, above 5")
	assert.Len(t, alerts[string(events.TypeAlertSeatsUnused)], 1, "site_admin: 2 unassigned, not above 5")
	changed := alerts[string(events.TypePolicyChanged)]["policy"]
	require.Len(t, changed, 1)
	var pc events.PolicyChanged
	require.NoError(t, json.Unmarshal(changed[0].Data, &pc))
	assert.Equal(t, "api-token", pc.ChangedBy)
	assert.Contains(t, pc.Changed, "license_types.basic.seats_purchased")

	// A users sync later: the same figures again, and no alert repeated.
	p.syncNow()
	assert.Equal(t, alerts[string(events.TypeAlertSeatsExceeded)], p.alerts()[string(events.TypeAlertSeatsExceeded)], "not repeated")
	ctx := context.Background()
	rows, err := p.app.Store.PolicyChanges(ctx, "policy", "greenhouse")
	require.NoError(t, err)
	require.Len(t, rows, 1)
	assert.Equal(t, "api-token", rows[0].ChangedBy)
	waste, err := p.app.Store.WasteOverTime(ctx, "policy", "greenhouse", time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	require.NoError(t, err)
	last := map[string]storage.WasteRow{}
	for _, w := range waste {
		last[w.LicenseType] = w
	}
	assert.Equal(t, uint32(1), last["basic"].PolicyRevision)
	require.NotNil(t, last["basic"].InactiveCost)
	assert.Equal(t, sum.Seats["basic"].InactiveCost, ptr(cents(*last["basic"].InactiveCost)), "the snapshot's waste, recomputed from the policy's history")
}

func ptr[T any](v T) *T { return &v }

// rejudgesAtOnce: a shorter basic threshold flags at once, without a sync, the basic licenses
// idle for 3 days (and only them, an exempt one left alone), each once; putting it again
// changes nothing; going back fires license_active with reason policy_changed, once each.
func (p *policyTenant) rejudgesAtOnce(t *testing.T) {
	base := p.licenses("inactive")
	sum := p.summary()
	truth := p.org.Truth()
	var spared int64
	for _, u := range truth.Users {
		if u.Status == "active" && !u.ServiceAccount && u.LicenseType == "basic" && u.LastActivityAt != nil &&
			sum.AsOf.Sub(*u.LastActivityAt) > 5*24*time.Hour && sum.AsOf.Sub(*u.LastActivityAt) < 25*24*time.Hour {
			spared = u.ID
			break
		}
	}
	require.NotZero(t, spared)
	short := fmt.Sprintf(`{"license_types": {"basic": {"inactive_after_days": 3}}, "exemptions": [{"user_id": %d, "reason": "on leave"}]}`, spared)
	doc := p.put(short, 200)
	assert.Equal(t, uint32(2), doc.Revision)

	sum = p.summary()
	want := truthCounts(p.org.Truth(), sum.AsOf, map[string]int{"basic": 3}, map[int64]bool{spared: true})
	assert.Equal(t, want["basic"].Inactive, sum.Seats["basic"].Inactive, "judged at once under 3 days")
	assert.Equal(t, int64(1), sum.Seats["basic"].Exempt)
	assert.Equal(t, 3, sum.Seats["basic"].InactiveAfterDays)
	assert.Equal(t, want["site_admin"].Inactive, sum.Seats["site_admin"].Inactive, "site_admin keeps 30 days")
	now := p.licenses("inactive")
	newly := 0
	alerts := p.alerts()[string(events.TypeAlertLicenseInactive)]
	for id, l := range now {
		if _, was := base[id]; was {
			continue
		}
		newly++
		assert.Equal(t, "basic", l.LicenseType)
		assert.Len(t, alerts[fmt.Sprintf("users/%d", id)], 1, "user %d: one license_inactive at once", id)
	}
	assert.Positive(t, newly, "the shorter threshold flags licenses at once")
	assert.Empty(t, alerts[fmt.Sprintf("users/%d", spared)], "the exempt user is not flagged")

	again := p.put(short, 200)
	assert.Equal(t, uint32(2), again.Revision, "the same policy again is no change")
	assert.Equal(t, alerts, p.alerts()[string(events.TypeAlertLicenseInactive)], "and fires nothing")

	p.put(fmt.Sprintf(`{"exemptions": [{"user_id": %d, "reason": "on leave"}]}`, spared), 200)
	active := p.alerts()[string(events.TypeAlertLicenseActive)]
	activeNow := p.licenses("active")
	resumed := 0
	for id := range now {
		if _, was := base[id]; was {
			continue
		}
		got := active[fmt.Sprintf("users/%d", id)]
		if _, ok := activeNow[id]; !ok {
			// Too new for 30 days: unknown, which changes no alert.
			assert.Empty(t, got, "user %d", id)
			continue
		}
		resumed++
		if assert.Len(t, got, 1, "user %d: one license_active", id) {
			var a events.Alert
			require.NoError(t, json.Unmarshal(got[0].Data, &a))
			assert.Equal(t, "policy_changed", a.Reason)
		}
	}
	assert.Positive(t, resumed)
	assert.Equal(t, base, p.licenses("inactive"), "back to the tenant's 30 days")
}

// exemption: an inactive, alerted license exempted by e-mail is exempt at once without an
// alert, left out of utilisation; when the exemption expires the next users sync flags it
// again with a second license_inactive.
func (p *policyTenant) exemption(t *testing.T) {
	inactive := p.licenses("inactive")
	var x events.LicenseRecord
	for _, l := range inactive {
		if l.Email != "" {
			x = l
			break
		}
	}
	require.NotZero(t, x.UserID)
	subject := fmt.Sprintf("users/%d", x.UserID)
	require.Len(t, p.alerts()[string(events.TypeAlertLicenseInactive)][subject], 1)
	expires := time.Now().Add(4 * time.Second).UTC().Truncate(time.Second)
	p.put(fmt.Sprintf(`{"exemptions": [{"email": %q, "reason": "board member", "expires_at": %q}]}`,
		strings.ToUpper(x.Email), expires.Format(time.RFC3339)), 200)
	exempt := p.licenses("exempt")
	assert.Contains(t, exempt, x.UserID)
	assert.NotContains(t, p.licenses("inactive"), x.UserID)
	sum := p.summary()
	assert.Equal(t, 1, sum.Exempt)
	assert.InDelta(t, float64(sum.Active)/float64(sum.Licenses-1), sum.Utilisation, 1e-9, "left out of utilisation")
	var listed collector.UsersPage
	require.Equal(t, 200, p.call(http.MethodGet, "/v1/tenants/policy/users?exempt=true", nil, &listed))
	require.Len(t, listed.Users, 1)
	assert.Equal(t, x.UserID, listed.Users[0].UserID)
	assert.Len(t, p.alerts()[string(events.TypeAlertLicenseInactive)][subject], 1, "no alert while exempt")

	time.Sleep(time.Until(expires) + time.Second)
	p.syncNow()
	got := p.alerts()[string(events.TypeAlertLicenseInactive)][subject]
	require.Len(t, got, 2, "the expiry brings the alert back, once")
	var a events.Alert
	require.NoError(t, json.Unmarshal(got[1].Data, &a))
	assert.Equal(t, uint64(2), a.Transition)
	assert.Contains(t, p.licenses("inactive"), x.UserID)
	p.syncNow()
	assert.Len(t, p.alerts()[string(events.TypeAlertLicenseInactive)][subject], 2, "not repeated")
}

// gracePeriod: under a 3-day basic threshold, a new user created 10 days ago who never acted
// is inactive, unless created within the grace period; a deactivated user activated now is
// first licensed now and in grace, whatever its age. Shortening the grace flags them at once.
func (p *policyTenant) gracePeriod(t *testing.T) {
	newcomer := p.org.AddUser(simulator.NewUser{Name: "Nora Newcomer", Email: "nora@policy.example", CreatedAt: time.Now().Add(-10 * 24 * time.Hour)})
	var returner int64
	for _, u := range p.org.Truth().Users {
		if u.Status == "deactivated" && !u.ServiceAccount && u.LicenseType == "basic" && time.Since(u.CreatedAt) > 60*24*time.Hour && u.LastActivityAt == nil {
			returner = u.ID
			break
		}
	}
	require.NotZero(t, returner)
	require.NoError(t, p.org.ActivateUser(returner))
	p.put(`{"license_types": {"basic": {"inactive_after_days": 3}}, "new_user_grace_days": 14}`, 200)
	p.syncNow()
	unknown := p.licenses("unknown")
	for _, id := range []int64{newcomer, returner} {
		if assert.Contains(t, unknown, id) {
			assert.Equal(t, "grace_period", unknown[id].Reason, "user %d", id)
		}
		assert.Empty(t, p.alerts()[string(events.TypeAlertLicenseInactive)][fmt.Sprintf("users/%d", id)])
	}

	p.put(`{"license_types": {"basic": {"inactive_after_days": 3}}, "new_user_grace_days": 7}`, 200)
	inactive := p.licenses("inactive")
	if assert.Contains(t, inactive, newcomer, "created 10 days ago: out of a 7-day grace") {
		assert.Equal(t, "never_active", inactive[newcomer].Reason, "created within the observed history: truly never active")
	}
	assert.Len(t, p.alerts()[string(events.TypeAlertLicenseInactive)][fmt.Sprintf("users/%d", newcomer)], 1, "flagged at once")
	assert.Contains(t, p.licenses("unknown"), returner, "first licensed today: still in grace")
	p.put(`{}`, 200)
}

// badInput: a document with a good part and a bad one is refused whole, naming the field.
func (p *policyTenant) badInput(t *testing.T) {
	var before events.PolicyDocument
	require.Equal(t, 200, p.call(http.MethodGet, "/v1/tenants/policy/connections/greenhouse/policy", nil, &before))
	for body, field := range map[string]string{
		`{"license_types": {"basic": {"seats_purchased": 10}}, "exemptions": [{"user_id": 1, "reason": "nobody"}]}`:                 "exemptions[0].user_id",
		`{"license_types": {"basic": {"seats_purchased": 10, "annual_cost": 480.5, "currency": "USD"}}}`:                            "license_types.basic.annual_cost",
		`{"license_types": {"basic": {"annual_cost": "480.00", "currency": "XYZ"}}}`:                                                "license_types.basic.currency",
		`{"license_types": {"site_admin": {"seats_purchased": 2000000}}}`:                                                           "license_types.site_admin.seats_purchased",
		`{"new_user_grace_days": 7, "exemptions": [{"email": "a@b.example", "reason": "r", "expires_at": "2020-01-01T00:00:00Z"}]}`: "exemptions[0].expires_at",
	} {
		var e struct {
			Error struct{ Code, Field string } `json:"error"`
		}
		var raw json.RawMessage = []byte(body)
		require.Equal(t, 400, p.call(http.MethodPut, "/v1/tenants/policy/connections/greenhouse/policy", raw, &e), body)
		assert.Equal(t, field, e.Error.Field, body)
	}
	var after events.PolicyDocument
	require.Equal(t, 200, p.call(http.MethodGet, "/v1/tenants/policy/connections/greenhouse/policy", nil, &after))
	assert.Equal(t, before, after, "nothing stored changed")
	assert.Equal(t, 404, p.call(http.MethodPut, "/v1/tenants/nobody/connections/greenhouse/policy", json.RawMessage(`{}`), nil))
}
