package collector_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/collector"
	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse/simulator"
	"github.com/seatwatch/greenhouse-collector/events"
	"github.com/seatwatch/greenhouse-collector/storage"
	"github.com/seatwatch/greenhouse-collector/storage/storagetest"
)

// actionAnswer is an action as the API answers it.
type actionAnswer struct {
	ActionID     string         `json:"action_id"`
	Type         string         `json:"type"`
	Status       string         `json:"status"`
	DryRun       bool           `json:"dry_run"`
	FollowUpSync string         `json:"follow_up_sync"`
	CompletedAt  *time.Time     `json:"completed_at"`
	Counts       map[string]int `json:"counts"`
	Users        []struct {
		UserID      int64                  `json:"user_id"`
		Outcome     string                 `json:"outcome"`
		Code        string                 `json:"code"`
		HTTPStatus  int                    `json:"http_status"`
		Guards      []events.GuardDecision `json:"guards"`
		LicenseType string                 `json:"license_type"`
	} `json:"users"`
}

// outcomes maps each user of an action to "outcome" or "outcome:code".
func (a actionAnswer) outcomes() map[int64]string {
	out := map[int64]string{}
	for _, u := range a.Users {
		out[u.UserID] = u.Outcome
		if u.Code != "" {
			out[u.UserID] += ":" + u.Code
		}
	}
	return out
}

// actionUsers are the users of the simulated organisation an action test picks, by kind.
type actionUsers struct {
	admin, siteAdmin, active, deactivated int64
	inactiveBasic                         []int64 // licensed basic users the usage rule calls inactive
}

// pickActionUsers picks the users of each kind from the organisation's truth.
func pickActionUsers(t *testing.T, org *simulator.Org) actionUsers {
	t.Helper()
	truth := org.Truth()
	inactive := expectedUsage(truth, time.Now(), time.Time{})
	p := actionUsers{admin: org.Credentials().AdminUserID}
	for _, u := range truth.Users {
		switch {
		case u.ID == p.admin || u.ServiceAccount:
		case u.Status == "deactivated" && p.deactivated == 0:
			p.deactivated = u.ID
		case u.Status != "active":
		case u.SiteAdmin && p.siteAdmin == 0:
			p.siteAdmin = u.ID
		case u.LicenseType == "basic" && inactive[u.ID] != "":
			p.inactiveBasic = append(p.inactiveBasic, u.ID)
		case inactive[u.ID] == "" && u.LastActivityAt != nil && p.active == 0 && !u.SiteAdmin:
			p.active = u.ID
		}
	}
	sort.Slice(p.inactiveBasic, func(i, j int) bool { return p.inactiveBasic[i] < p.inactiveBasic[j] })
	require.True(t, p.siteAdmin != 0 && p.active != 0 && p.deactivated != 0 && len(p.inactiveBasic) >= 8, "%+v", p)
	return p
}

// postAction posts an action and returns the status and the answer.
func (e *env) postAction(tenant string, body map[string]any) (int, actionAnswer) {
	e.t.Helper()
	var a actionAnswer
	code := e.call(http.MethodPost, "/v1/tenants/"+tenant+"/actions", body, &a)
	return code, a
}

// waitAction polls an action until it is completed.
func (e *env) waitAction(tenant, id string) actionAnswer {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var a actionAnswer
	for time.Now().Before(deadline) {
		a = actionAnswer{}
		require.Equal(e.t, 200, e.call(http.MethodGet, "/v1/tenants/"+tenant+"/actions/"+id, nil, &a))
		if a.Status == "completed" {
			return a
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.t.Fatalf("action %s not completed within 60 s: %+v", id, a)
	return a
}

// actionEvents returns the stream's action events of one action, by id.
func actionEvents(t *testing.T, e *env, actionID string) map[string]envelope {
	out := map[string]envelope{}
	for _, ev := range decodeAll(t, streamMessages(t, e.app)) {
		if strings.HasPrefix(ev.Type, "saas.action.") && strings.Contains(ev.ID, ":action:"+actionID+":") {
			out[ev.ID] = ev
		}
	}
	return out
}

// TestActions runs reclaim actions end to end on a simulated organisation: every guard in a
// dry run (and force), idempotency, a real reclaim with partial failure and a user who
// becomes active between the request and the execution, the records (events, actions rows),
// the users sync that follows with its license_freed alerts, a reactivation, a permission
// lost after connecting, and a connection whose credential never had it.
func TestActions(t *testing.T) {
	cfg := testConfig(t, storagetest.Database(t))
	cfg.ActionChunk = 2
	cfg.ActionEvery = 1500 * time.Millisecond // each chunk's Audit Log poll reaches past the previous chunk's writes
	g := startSim(t, nil)
	org := g.addOrg(t, simulator.OrgSpec{Name: "reclaim", Seed: 71, Users: 120, Events: 3000})
	org.AddUser(simulator.NewUser{Name: "Sam Admin", Email: "sam@reclaim.example", SiteAdmin: true, CreatedAt: time.Now().AddDate(0, -3, 0)})
	e, tenant := startEnv(t, cfg), "reclaim"
	e.connect(tenant, g, org, http.StatusOK)
	e.waitConnection(tenant, 90*time.Second, syncedAndConnected)
	p := pickActionUsers(t, org)

	dry := testActionsDryRun(t, e, tenant, p)
	testActionsIdempotency(t, e, tenant, dry)
	testActionsExempt(t, e, org, tenant, p)
	testActionsReclaim(t, e, org, tenant, p)
	testActionsPermissionLost(t, e, org, tenant, p)

	// A credential without the write permission: connected as before, actions refused.
	other := g.addOrg(t, simulator.OrgSpec{Name: "readonly", Seed: 72, Users: 30, Events: 200})
	other.SetFaults(simulator.Faults{MissingScopes: []string{simulator.ScopeDeactivate}})
	doc := e.connect("readonly", g, other, http.StatusOK)
	assert.Equal(t, "connected", doc.State, "the optional check leaves the state alone")
	assert.Equal(t, "failed:actions_not_permitted", checkCodes(doc)["actions"])
	var refusal map[string]map[string]string
	require.Equal(t, 409, e.call(http.MethodPost, "/v1/tenants/readonly/actions", map[string]any{"type": "deactivate",
		"user_ids": []int64{5}, "requested_by": "ops", "idempotency_key": "ro-1"}, &refusal))
	assert.Equal(t, "actions_not_permitted", refusal["error"]["code"])
	code, _ := e.postAction("readonly", map[string]any{"type": "deactivate", "user_ids": []int64{5}, "requested_by": "ops",
		"idempotency_key": "ro-2", "dry_run": true})
	assert.Equal(t, 200, code, "a dry run sends nothing: it works without the permission")
	assert.Empty(t, other.Writes())
}

// testActionsDryRun: each guard's decision, force, and nothing sent.
func testActionsDryRun(t *testing.T, e *env, tenant string, p actionUsers) actionAnswer {
	users := []int64{p.admin, p.siteAdmin, p.active, 999999999, p.deactivated, p.inactiveBasic[0]}
	body := map[string]any{"type": "deactivate", "user_ids": users, "requested_by": "rule:inactive-30d", "reason": "inactive basic seats",
		"dry_run": true, "idempotency_key": "dry-1"}
	code, a := e.postAction(tenant, body)
	require.Equal(t, 200, code)
	assert.True(t, a.DryRun)
	assert.Equal(t, "completed", a.Status)
	assert.Equal(t, map[int64]string{
		p.admin: "refused:admin_user", p.siteAdmin: "refused:site_admin", p.active: "refused:recently_active",
		999999999: "refused:not_seen", p.deactivated: "already_in_state", p.inactiveBasic[0]: "would_apply",
	}, a.outcomes())
	for _, u := range a.Users {
		require.Len(t, u.Guards, 6, "every guard's decision")
		if u.UserID == p.siteAdmin {
			assert.Equal(t, events.GuardDecision{Guard: "site_admin", Decision: "refuse"}, u.Guards[2])
		}
	}
	assert.Equal(t, map[string]int{"refused": 4, "already_in_state": 1, "would_apply": 1}, a.Counts)

	body["force"], body["idempotency_key"] = true, "dry-force"
	code, forced := e.postAction(tenant, body)
	require.Equal(t, 200, code)
	got := forced.outcomes()
	assert.Equal(t, "would_apply", got[p.siteAdmin], "force overrides the Site Admin guard")
	assert.Equal(t, "would_apply", got[p.active], "and the inactivity window")
	assert.Equal(t, "refused:admin_user", got[p.admin], "never the admin user")
	assert.Equal(t, "refused:not_seen", got[999999999])

	evs := actionEvents(t, e, a.ActionID)
	assert.Len(t, evs, 1+len(users), "requested and one completed per user")
	assert.Contains(t, evs, tenant+":action:"+a.ActionID+":requested")
	assert.Contains(t, evs, fmt.Sprintf("%s:action:%s:user:%d", tenant, a.ActionID, p.siteAdmin))
	rows, err := e.app.Store.ActionOutcomes(t.Context(), tenant, "greenhouse", a.ActionID)
	require.NoError(t, err)
	assert.Len(t, rows, len(users))
	return a
}

// testActionsExempt: a user the license policy exempts is refused, with force too, and
// nothing is sent for them; by e-mail as by id.
func testActionsExempt(t *testing.T, e *env, org *simulator.Org, tenant string, p actionUsers) {
	byID, byEmail := p.inactiveBasic[8], p.inactiveBasic[9]
	email := ""
	for _, u := range org.Truth().Users {
		if u.ID == byEmail {
			email = u.Email
		}
	}
	require.NotEmpty(t, email)
	policy := map[string]any{"exemptions": []map[string]any{
		{"user_id": byID, "reason": "board member"}, {"email": strings.ToUpper(email), "reason": "on leave"}}}
	require.Equal(t, 200, e.call(http.MethodPut, "/v1/tenants/"+tenant+"/connections/greenhouse/policy", policy, nil))
	writes := len(org.Writes())
	for _, force := range []bool{false, true} {
		code, a := e.postAction(tenant, map[string]any{"type": "deactivate", "user_ids": []int64{byID, byEmail}, "requested_by": "ops",
			"force": force, "idempotency_key": fmt.Sprintf("exempt-%v", force)})
		require.Equal(t, 202, code)
		a = e.waitAction(tenant, a.ActionID)
		assert.Equal(t, map[int64]string{byID: "refused:exempt", byEmail: "refused:exempt"}, a.outcomes(), "force %v", force)
	}
	assert.Len(t, org.Writes(), writes, "nothing sent")
	require.Equal(t, 200, e.call(http.MethodPut, "/v1/tenants/"+tenant+"/connections/greenhouse/policy", map[string]any{}, nil))
}

// testActionsIdempotency: the same key with the same body answers the first result; with
// another body, 409.
func testActionsIdempotency(t *testing.T, e *env, tenant string, first actionAnswer) {
	var ids []int64
	for _, u := range first.Users {
		ids = append(ids, u.UserID)
	}
	body := map[string]any{"type": "deactivate", "user_ids": ids, "requested_by": "rule:inactive-30d", "reason": "inactive basic seats",
		"dry_run": true, "idempotency_key": "dry-1"}
	code, again := e.postAction(tenant, body)
	require.Equal(t, 200, code)
	assert.Equal(t, first, again, "the first result")
	body["reason"] = "another reason"
	var refusal map[string]map[string]string
	require.Equal(t, 409, e.call(http.MethodPost, "/v1/tenants/"+tenant+"/actions", body, &refusal))
	assert.Equal(t, "idempotency_conflict", refusal["error"]["code"])
	assert.Equal(t, "idempotency_key", refusal["error"]["field"])
	assert.Len(t, actionEvents(t, e, first.ActionID), 1+len(ids), "nothing recorded twice")
}

// testActionsReclaim: a real reclaim of inactive basic seats in chunks of two: one user
// becomes active at the first write and is refused, one write fails (422), the admin and a
// Site Admin are refused; the rest are deactivated once each, recorded, and the users sync
// that follows frees their licenses.
func testActionsReclaim(t *testing.T, e *env, org *simulator.Org, tenant string, p actionUsers) {
	ib := p.inactiveBasic
	org.SetFaults(simulator.Faults{ActiveOnWrite: []int64{ib[2]}, FailWrites: []int64{ib[3]}})
	users := []int64{ib[0], ib[1], ib[2], ib[3], ib[4], p.admin, p.siteAdmin}
	code, a := e.postAction(tenant, map[string]any{"type": "deactivate", "user_ids": users, "requested_by": "ops@example.com",
		"reason": "reclaim", "idempotency_key": "reclaim-1"})
	require.Equal(t, 202, code)
	assert.Equal(t, "pending", a.Status)
	// A sync asked for while the action runs is not kept waiting for it: it runs between two
	// of the action's chunks.
	var run map[string]string
	require.Equal(t, 202, e.call(http.MethodPost, "/v1/tenants/"+tenant+"/connections/greenhouse/sync", nil, &run))
	synced := e.waitRun(tenant, run["run_id"], events.RunAudit, 60*time.Second)
	a = e.waitAction(tenant, a.ActionID)
	require.NotNil(t, a.CompletedAt)
	assert.True(t, synced.FinishedAt.Before(*a.CompletedAt), "the sync ran before the action's last chunk")
	assert.Equal(t, map[int64]string{ib[0]: "done", ib[1]: "done", ib[2]: "refused:active_since_request", ib[3]: "failed:unprocessable",
		ib[4]: "done", p.admin: "refused:admin_user", p.siteAdmin: "refused:site_admin"}, a.outcomes())
	for _, u := range a.Users {
		switch u.UserID {
		case ib[0]:
			assert.Equal(t, 204, u.HTTPStatus)
			assert.Equal(t, "basic", u.LicenseType, "the license type before the action")
		case ib[3]:
			assert.Equal(t, 422, u.HTTPStatus, "Greenhouse's answer")
		}
	}
	want := []string{"deactivate " + itoa(ib[0]), "deactivate " + itoa(ib[1]), "deactivate " + itoa(ib[4])}
	assert.Equal(t, want, org.Writes(), "each accepted request sent once, nothing for refused users")

	// On the record: one requested event, one completed per user, one row per user.
	evs := actionEvents(t, e, a.ActionID)
	require.Len(t, evs, 1+len(users))
	var done events.ActionCompleted
	require.NoError(t, json.Unmarshal(evs[fmt.Sprintf("%s:action:%s:user:%d", tenant, a.ActionID, ib[0])].Data, &done))
	assert.Equal(t, events.OutcomeDone, done.Outcome)
	assert.Equal(t, "ops@example.com", done.RequestedBy)
	rows, err := e.app.Store.ActionOutcomes(t.Context(), tenant, "greenhouse", a.ActionID)
	require.NoError(t, err)
	require.Len(t, rows, len(users))
	byUser := map[int64]storage.ActionRow{}
	for _, r := range rows {
		byUser[r.UserID] = r
	}
	assert.Equal(t, "failed", byUser[ib[3]].Outcome)
	assert.EqualValues(t, 422, byUser[ib[3]].HTTPStatus)
	assert.Equal(t, "reclaim", byUser[ib[0]].Reason)

	// The users sync that follows: deactivated in ClickHouse, licenses freed.
	require.NotEmpty(t, a.FollowUpSync)
	e.waitConnection(tenant, 60*time.Second, func(c events.Connection) bool {
		return c.LastSync != nil && c.LastSync.RunID == a.FollowUpSync
	})
	freed := map[string]bool{}
	for _, ev := range decodeAll(t, streamMessages(t, e.app)) {
		if ev.Type == string(events.TypeAlertLicenseFreed) {
			freed[ev.Subject] = true
		}
	}
	for _, id := range []int64{ib[0], ib[1], ib[4]} {
		assert.True(t, freed["users/"+itoa(id)], "license_freed for user %d", id)
	}
	var lic struct {
		Licenses []events.LicenseRecord `json:"licenses"`
	}
	require.Equal(t, 200, e.call(http.MethodGet, "/v1/tenants/"+tenant+"/licenses", nil, &lic))
	for _, l := range lic.Licenses {
		assert.NotContains(t, []int64{ib[0], ib[1], ib[4]}, l.UserID, "a freed seat is no license")
	}

	// Reactivation gives one seat back.
	code, r := e.postAction(tenant, map[string]any{"type": "reactivate", "user_ids": []int64{ib[0]}, "requested_by": "ops@example.com",
		"idempotency_key": "restore-1"})
	require.Equal(t, 202, code)
	r = e.waitAction(tenant, r.ActionID)
	assert.Equal(t, map[int64]string{ib[0]: "done"}, r.outcomes())
	assert.Equal(t, "activate "+itoa(ib[0]), org.Writes()[len(org.Writes())-1])
}

// testActionsPermissionLost: a credential that loses the permission after connecting fails
// the action's first request with actions_not_permitted, and the rest without sending; the
// connection's state does not change.
func testActionsPermissionLost(t *testing.T, e *env, org *simulator.Org, tenant string, p actionUsers) {
	org.SetFaults(simulator.Faults{MissingScopes: []string{simulator.ScopeDeactivate}})
	writes := len(org.Writes())
	users := []int64{p.inactiveBasic[5], p.inactiveBasic[6], p.inactiveBasic[7]}
	code, a := e.postAction(tenant, map[string]any{"type": "deactivate", "user_ids": users, "requested_by": "ops", "idempotency_key": "lost-1"})
	require.Equal(t, 202, code)
	a = e.waitAction(tenant, a.ActionID)
	for _, u := range a.Users {
		assert.Equal(t, "failed", u.Outcome)
		assert.Equal(t, "actions_not_permitted", u.Code)
	}
	assert.Equal(t, 403, a.Users[0].HTTPStatus, "the first request's answer")
	assert.Zero(t, a.Users[2].HTTPStatus, "nothing sent for the rest")
	assert.Len(t, org.Writes(), writes)
	var doc events.Connection
	require.Equal(t, 200, e.call(http.MethodGet, "/v1/tenants/"+tenant+"/connections/greenhouse", nil, &doc))
	assert.Equal(t, collector.StateConnected, doc.State)
	org.SetFaults(simulator.Faults{})
}

// TestActionRequestsRefused: bad bodies get a 400 naming the field, an unknown tenant 404, a
// token without the act scope 403; nothing is stored for any.
func TestActionRequestsRefused(t *testing.T) {
	t.Parallel()
	e := startEnv(t, testConfig(t, storagetest.Database(t)))
	good := func() map[string]any {
		return map[string]any{"type": "deactivate", "user_ids": []int64{1, 2}, "requested_by": "ops", "idempotency_key": "k-1"}
	}
	many := make([]int64, 501)
	for i := range many {
		many[i] = int64(i + 1)
	}
	tests := []struct {
		name, field, code string
		change            func(b map[string]any)
	}{
		{"no type", "type", "missing_field", func(b map[string]any) { delete(b, "type") }},
		{"bad type", "type", "invalid_field", func(b map[string]any) { b["type"] = "delete" }},
		{"no users", "user_ids", "missing_field", func(b map[string]any) { b["user_ids"] = []int64{} }},
		{"too many users", "user_ids", "invalid_field", func(b map[string]any) { b["user_ids"] = many }},
		{"duplicate user", "user_ids[1]", "invalid_field", func(b map[string]any) { b["user_ids"] = []int64{3, 3} }},
		{"negative user", "user_ids[0]", "invalid_field", func(b map[string]any) { b["user_ids"] = []int64{-3} }},
		{"no requester", "requested_by", "missing_field", func(b map[string]any) { b["requested_by"] = "  " }},
		{"no key", "idempotency_key", "missing_field", func(b map[string]any) { delete(b, "idempotency_key") }},
		{"bad key", "idempotency_key", "invalid_field", func(b map[string]any) { b["idempotency_key"] = "a b" }},
		{"unknown field", "users", "unknown_field", func(b map[string]any) { b["users"] = 1 }},
		{"string ids", "user_ids", "invalid_field", func(b map[string]any) { b["user_ids"] = []string{"1"} }},
	}
	for _, tc := range tests {
		b := good()
		tc.change(b)
		var out map[string]map[string]string
		require.Equal(t, 400, e.call(http.MethodPost, "/v1/tenants/acme/actions", b, &out), tc.name)
		assert.Equal(t, tc.code, out["error"]["code"], tc.name)
		assert.Equal(t, tc.field, out["error"]["field"], tc.name)
	}
	var out map[string]map[string]string
	require.Equal(t, 404, e.call(http.MethodPost, "/v1/tenants/acme/actions", good(), &out), "no connection")
	require.Equal(t, 404, e.call(http.MethodGet, "/v1/tenants/acme/actions/"+strings.Repeat("0", 32), nil, &out))
	require.Equal(t, 404, e.call(http.MethodGet, "/v1/tenants/acme/actions/..", nil, &out))
	var list map[string][]any
	require.Equal(t, 200, e.call(http.MethodGet, "/v1/tenants/acme/actions", nil, &list))
	assert.Empty(t, list["actions"])
	require.Equal(t, 400, e.call(http.MethodGet, "/v1/tenants/acme/actions?limit=0", nil, &out))
	assert.Equal(t, "limit", out["error"]["field"])
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// waitRun waits until the run of this id and kind is among the tenant's stored sync runs
// (GET …/sync-runs). The connection's last_sync is not enough: the action's own Audit Log
// polls, every few hundred milliseconds, replace it before a poll of the document sees it.
func (e *env) waitRun(tenant, runID string, kind events.RunKind, timeout time.Duration) events.SyncSummary {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var page collector.SyncRunsPage
		if e.call(http.MethodGet, "/v1/tenants/"+tenant+"/sync-runs?kind="+string(kind)+"&limit=100", nil, &page) == 200 {
			for _, r := range page.Runs {
				if r.RunID == runID {
					return r
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	e.t.Fatalf("run %s (%s) of %s not stored within %s", runID, kind, tenant, timeout)
	return events.SyncSummary{}
}

// TestLargeActionWithinBudget: a 500-user action (forced, so that nearly every user is sent)
// on Greenhouse's limits scaled down a hundred times, with action-chunk 25 every 300 ms (the
// default 25 per 30 s, scaled the same): no 429, a sync asked for midway runs before the
// action ends, and each user is sent at most once.
func TestLargeActionWithinBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	cfg := testConfig(t, storagetest.Database(t))
	cfg.ActionEvery = 300 * time.Millisecond
	g := startSim(t, nil)
	org := g.addOrg(t, simulator.OrgSpec{Name: "large", Seed: 73, Users: 600, Events: 2000})
	e := startEnv(t, cfg)
	e.connect("large", g, org, http.StatusOK)
	e.waitConnection("large", 90*time.Second, syncedAndConnected)
	var ids []int64
	for _, u := range org.Truth().Users {
		if u.Status == "active" && len(ids) < 500 {
			ids = append(ids, u.ID)
		}
	}
	require.Len(t, ids, 500)
	throttled := org.Stats().Throttled
	start := time.Now()
	code, a := e.postAction("large", map[string]any{"type": "deactivate", "user_ids": ids, "requested_by": "load", "force": true,
		"idempotency_key": "large-1"})
	require.Equal(t, 202, code)
	time.Sleep(time.Second)
	var run map[string]string
	require.Equal(t, 202, e.call(http.MethodPost, "/v1/tenants/large/connections/greenhouse/sync", nil, &run))
	synced := e.waitRun("large", run["run_id"], events.RunAudit, 60*time.Second)
	syncTook := time.Since(start)
	a = e.waitAction("large", a.ActionID)
	took := time.Since(start)
	require.NotNil(t, a.CompletedAt)
	assert.True(t, synced.FinishedAt.Before(*a.CompletedAt), "the sync did not wait for the action")
	writes := org.Writes()
	seen := map[string]bool{}
	for _, w := range writes {
		assert.False(t, seen[w], "%s sent twice", w)
		seen[w] = true
	}
	assert.Greater(t, a.Counts["done"], 450, "%v", a.Counts)
	assert.Equal(t, throttled, org.Stats().Throttled, "no 429 during the action")
	t.Logf("500-user action: %d writes in %s, %v; a sync asked for 1 s in finished after %s; 429s: %d",
		len(writes), took.Round(100*time.Millisecond), a.Counts, syncTook.Round(100*time.Millisecond), org.Stats().Throttled-throttled)
}
