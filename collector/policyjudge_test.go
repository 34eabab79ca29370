package collector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/events"
	"github.com/seatwatch/greenhouse-collector/storage"
)

// inactiveAlerts lists the subjects of the license_inactive alerts published so far.
func (b *fakeBus) inactiveAlerts() []string {
	var out []string
	for _, e := range b.envs {
		if e.Type == events.TypeAlertLicenseInactive {
			out = append(out, e.Subject)
		}
	}
	return out
}

// TestJudgedUnderTheNewestPolicy: a users sync that began under an older policy, and a
// re-judging handed an older policy, judge under the policy stored when they read the alert
// state; neither undoes a newer change's re-judging.
func TestJudgedUnderTheNewestPolicy(t *testing.T) {
	f := newSyncerFixture(t)
	a := stateAPI(t, nil)
	f.s.conns = a.conns
	ctx := t.Context()
	a.putStored(t, "acme", StateConnected)
	a.conns.store, a.conns.out = announcedNowhere{}, outputs{bus: &fakeBus{}, metrics: newMetrics()}
	put := func(pol events.Policy) storedConnection {
		sc, changed, err := a.conns.setPolicy(ctx, "acme", pol, "test", f.now)
		require.NoError(t, err)
		require.True(t, changed)
		require.NoError(t, a.conns.deliverPolicy(ctx, "acme", sc.Policy))
		sc.Policy.Pending = 0 // as announced
		return sc
	}
	rev1 := put(events.Policy{})
	require.Nil(t, f.s.syncUsers(ctx, "acme", rev1, f.gh).err)
	require.Nil(t, f.s.syncAudit(ctx, "acme", rev1, f.gh).err)
	require.Contains(t, f.bus.inactiveAlerts(), "users/3", "no activity in the 30 days observed")

	// Revision 2 exempts user 3 and is re-judged: 3 unflagged. A sync begun under revision 1
	// then reads that state; judged under revision 1 it would flag 3 again.
	rev2 := put(events.Policy{Exemptions: []events.Exemption{{UserID: 3, Reason: "on leave"}}})
	require.NoError(t, f.s.rejudge(ctx, "acme", rev2))
	f.bus.envs = nil
	require.Nil(t, f.s.syncUsers(ctx, "acme", rev1, f.gh).err)
	require.Nil(t, f.s.syncAudit(ctx, "acme", rev1, f.gh).err)
	assert.NotContains(t, f.bus.inactiveAlerts(), "users/3", "judged under revision 2, which exempts 3")
	st, _, err := f.s.alerts.get(ctx, "acme")
	require.NoError(t, err)
	assert.Equal(t, uint32(2), st.PolicyRevision, "the state records the revision it was judged under")

	// Revision 3 ends the exemption; a re-judging handed revision 2 (a PUT finishing after a
	// later one) judges revision 3: 3 is flagged again.
	put(events.Policy{})
	require.NoError(t, f.s.rejudge(ctx, "acme", rev2))
	assert.Equal(t, []string{"users/3"}, f.bus.inactiveAlerts())

	// A state judged under a newer revision than the policy read: a stale read, a conflict.
	st, rev, err := f.s.alerts.get(ctx, "acme")
	require.NoError(t, err)
	st.PolicyRevision = 9
	require.NoError(t, f.s.alerts.put(ctx, "acme", st, rev))
	_, _, _, err = f.s.judgingState(ctx, "acme", rev2)
	assert.ErrorIs(t, err, events.ErrConflict)
}

// judgeFunc is a policyJudge of a function.
type judgeFunc func(ctx context.Context, tenant string, sc storedConnection) error

func (f judgeFunc) rejudge(ctx context.Context, tenant string, sc storedConnection) error {
	return f(ctx, tenant, sc)
}

// announcedNowhere stores the rows of connection and policy changes nowhere.
type announcedNowhere struct{}

func (announcedNowhere) InsertConnectionEvent(context.Context, storage.ConnectionEventRow) error {
	return nil
}
func (announcedNowhere) InsertPolicyChange(context.Context, storage.PolicyChangeRow) error {
	return nil
}

// TestRejudgeOutlivesTheRequest: a PUT's re-judging is not cancelled when its client leaves,
// and is bounded in time.
func TestRejudgeOutlivesTheRequest(t *testing.T) {
	a := stateAPI(t, nil)
	a.putStored(t, "acme", StateConnected)
	a.conns.store, a.conns.out = announcedNowhere{}, outputs{bus: &fakeBus{}, metrics: newMetrics()}
	reqCtx, leave := context.WithCancel(context.Background())
	var judged, deadline bool
	a.judge = judgeFunc(func(ctx context.Context, _ string, _ storedConnection) error {
		leave() // the client gives up while the re-judging runs
		_, deadline = ctx.Deadline()
		judged = ctx.Err() == nil
		return nil
	})
	req := httptest.NewRequestWithContext(reqCtx, http.MethodPut, "/v1/tenants/acme/connections/greenhouse/policy",
		strings.NewReader(`{"new_user_grace_days": 7}`))
	req.Header.Set("Authorization", "Bearer "+a.cfg.APIToken)
	rec := httptest.NewRecorder()
	a.testHandler().ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.True(t, judged, "the re-judging's context outlives the request's")
	assert.True(t, deadline, "and has a deadline")
}

// usersOnly is a readStore of the stored users alone.
type usersOnly struct {
	readStore
	rows []storage.UserRow
}

func (u usersOnly) CurrentUsers(_ context.Context, _, _ string, fn func(storage.UserRow) error) error {
	for _, r := range u.rows {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// TestRemovedUsersNotExemptable: an exemption by id naming a removed user is refused, naming
// its field; a current user is exempted.
func TestRemovedUsersNotExemptable(t *testing.T) {
	a := stateAPI(t, nil)
	a.putStored(t, "acme", StateConnected)
	a.conns.store, a.conns.out = announcedNowhere{}, outputs{bus: &fakeBus{}, metrics: newMetrics()}
	a.store = usersOnly{rows: []storage.UserRow{{UserID: 7, Status: storage.StatusActive}, {UserID: 8, Status: storage.StatusRemoved}}}
	rec := a.serve(http.MethodPut, "/v1/tenants/acme/connections/greenhouse/policy", `{"exemptions":[{"user_id":7,"reason":"r"},{"user_id":8,"reason":"r"}]}`)
	require.Equal(t, http.StatusBadRequest, rec.Code, rec.Body.String())
	var e struct{ Error apiError }
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e))
	assert.Equal(t, "exemptions[1].user_id", e.Error.Field)
	assert.Contains(t, e.Error.Message, "removed")
	rec = a.serve(http.MethodPut, "/v1/tenants/acme/connections/greenhouse/policy", `{"exemptions":[{"user_id":7,"reason":"r"}]}`)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
}

// flakyAnnouncer stores the policy changes' rows, or fails with failing.
type flakyAnnouncer struct {
	announcedNowhere
	failing error
	revs    []uint32
}

func (f *flakyAnnouncer) InsertPolicyChange(_ context.Context, row storage.PolicyChangeRow) error {
	if f.failing != nil {
		return f.failing
	}
	f.revs = append(f.revs, row.Revision)
	return nil
}

// TestPolicyChangesNeverDropped: a change ClickHouse cannot take stays pending with the
// policy; a further change is refused (503, nothing stored) until it is announced, then both
// revisions are announced, each once, however many changes were tried meanwhile.
func TestPolicyChangesNeverDropped(t *testing.T) {
	a := stateAPI(t, nil)
	a.putStored(t, "acme", StateConnected)
	store, bus := &flakyAnnouncer{failing: errors.New("clickhouse down")}, &fakeBus{}
	a.conns.store, a.conns.out = store, outputs{bus: bus, metrics: newMetrics()}
	put := func(days int) *httptest.ResponseRecorder {
		return a.serve(http.MethodPut, "/v1/tenants/acme/connections/greenhouse/policy", fmt.Sprintf(`{"new_user_grace_days": %d}`, days))
	}
	require.Equal(t, http.StatusOK, put(1).Code, "stored, its announcement pending")
	for days := 2; days < 2+maxOutbox+5; days++ {
		rec := put(days)
		require.Equal(t, http.StatusServiceUnavailable, rec.Code, rec.Body.String())
	}
	sc, err := a.conns.get(t.Context(), "acme")
	require.NoError(t, err)
	assert.Equal(t, uint32(1), sc.Policy.Revision, "the refused changes stored nothing")
	assert.Equal(t, uint32(1), sc.Policy.Pending)

	store.failing = nil
	require.Equal(t, http.StatusOK, put(9).Code)
	assert.Equal(t, []uint32{1, 2}, store.revs, "revision 1 announced before revision 2 is stored")
	var published []string
	for _, e := range bus.envs {
		published = append(published, e.ID)
	}
	assert.Equal(t, []string{"acme:policy:1", "acme:policy:2"}, published)
	sc, err = a.conns.get(t.Context(), "acme")
	require.NoError(t, err)
	assert.Zero(t, sc.Policy.Pending)
	assert.Equal(t, []string{"new_user_grace_days"}, sc.Policy.change("acme").Changed)
}
