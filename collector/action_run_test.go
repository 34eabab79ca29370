package collector

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse"
	"github.com/seatwatch/greenhouse-collector/events"
	"github.com/seatwatch/greenhouse-collector/storage"
)

// fakeActionStore serves stored users and keeps the actions rows written.
type fakeActionStore struct {
	mu    sync.Mutex
	users []storage.UserRow
	rows  []storage.ActionRow
}

func (f *fakeActionStore) CurrentUsers(_ context.Context, _, _ string, fn func(storage.UserRow) error) error {
	for _, u := range f.users {
		if err := fn(u); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeActionStore) InsertActionOutcomes(_ context.Context, rows []storage.ActionRow) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rows = append(f.rows, rows...)
	return nil
}

// fakeWrites is a Greenhouse of users by id and deactivated state. A write to an id in
// failOnce is applied (when landed) or not, and answered greenhouse_unavailable, once.
type fakeWrites struct {
	mu       sync.Mutex
	off      map[int64]bool
	sent     []int64
	failOnce map[int64]bool // the value: whether the failed write landed
}

func (f *fakeWrites) LookupUsers(_ context.Context, ids []int64) ([]greenhouse.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []greenhouse.User
	for _, id := range ids {
		if off, ok := f.off[id]; ok {
			out = append(out, greenhouse.User{ID: id, Deactivated: off})
		}
	}
	return out, nil
}

func (f *fakeWrites) SetUserStatus(_ context.Context, id int64, to greenhouse.UserStatus) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, id)
	landed, fails := f.failOnce[id]
	if fails {
		delete(f.failOnce, id)
		if landed {
			f.off[id] = to == greenhouse.Deactivate
		}
		return &greenhouse.APIError{Op: "deactivate user", Status: 503, Code: greenhouse.CodeUnavailable}
	}
	f.off[id] = to == greenhouse.Deactivate
	return nil
}

// TestActionResumesUsersInDoubt: users left marked sending (a replica died with the request
// in flight) are asked about first: one whose request took effect is done without a second
// request, one whose did not is sent once; a write whose answer was lost (a 5xx the retries
// ended on) stays in doubt and is settled the same way by the next run; outcomes are
// recorded once each, and the finished action asks for a users sync and leaves the
// connection's list.
func TestActionResumesUsersInDoubt(t *testing.T) {
	ctx := context.Background()
	s := stateAPI(t, nil)
	s.putStored(t, "acme", StateConnected) // admin user 1
	bus := s.bus.(*events.Bus)
	old := time.Now().AddDate(0, -3, 0)
	store := &fakeActionStore{}
	gh := &fakeWrites{off: map[int64]bool{}, failOnce: map[int64]bool{13: true, 14: false}}
	for id := int64(10); id <= 14; id++ {
		store.users = append(store.users, storage.UserRow{UserID: id, Status: storage.StatusActive, LicenseType: "basic", LastActivityAt: &old})
		gh.off[id] = false
	}
	gh.off[10] = true // its request, in flight when the replica died, took effect
	ac := &actions{cfg: DefaultConfig(), kv: events.BucketKV[actionDoc](bus, events.BucketActions), store: store,
		out: outputs{bus: bus, metrics: newMetrics()}, conns: s.conns, now: time.Now, log: zerolog.Nop()}
	d := newActionDoc("acme", ActionRequest{Type: "deactivate", UserIDs: []int64{10, 11, 12, 13, 14}, RequestedBy: "t", IdempotencyKey: "k1"},
		time.Now().Add(-time.Minute))
	d.Users[0].Sending, d.Users[1].Sending = true, true
	id := d.Request.ActionID
	_, err := ac.kv.Create(ctx, actionKey("acme", id), d)
	require.NoError(t, err)
	require.NoError(t, ac.queue(ctx, "acme", id))
	sc, err := s.conns.get(ctx, "acme")
	require.NoError(t, err)

	err = ac.run(ctx, "acme", sc, id, gh)
	require.Error(t, err, "13's answer was lost: the run stops there")
	got, _, err := ac.get(ctx, "acme", id)
	require.NoError(t, err)
	assert.Equal(t, events.OutcomeDone, got.Users[0].Outcome, "10 took effect: done")
	assert.Equal(t, events.OutcomeDone, got.Users[1].Outcome)
	assert.Equal(t, events.OutcomeDone, got.Users[2].Outcome)
	assert.True(t, got.Users[3].Sending, "13 is in doubt")
	assert.Equal(t, events.Outcome(""), got.Users[4].Outcome, "14 not reached yet")

	gh.off[13] = true // the lost answer's write had taken effect
	require.Error(t, ac.run(ctx, "acme", sc, id, gh), "13 settled, then 14's write fails once without landing")
	require.NoError(t, ac.run(ctx, "acme", sc, id, gh))
	got, _, err = ac.get(ctx, "acme", id)
	require.NoError(t, err)
	for _, u := range got.Users {
		assert.Equal(t, events.OutcomeDone, u.Outcome, "user %d", u.UserID)
		assert.True(t, u.Recorded, "user %d", u.UserID)
	}
	assert.Equal(t, []int64{11, 12, 13, 14, 14}, gh.sent, "10 and 13 never sent again; 14 sent again after its failed write did not land")
	assert.Equal(t, actionCompleted, got.Status)
	assert.Len(t, store.rows, 5, "one row per user")
	assert.Equal(t, 5.0, counterValue(t, ac.out.metrics, "collector_action_outcomes_total"), "counted once each")
	sc, err = s.conns.get(ctx, "acme")
	require.NoError(t, err)
	assert.Empty(t, sc.Actions, "finished: off the connection's list")
	assert.Equal(t, got.FollowUpRun, sc.SyncRequest, "the users sync that follows is asked for")

	require.NoError(t, ac.run(ctx, "acme", sc, id, gh), "a run of a finished action")
	assert.Len(t, gh.sent, 5, "sends nothing")
}

// counterValue sums a counter's series in m's registry.
func counterValue(t *testing.T, m *metrics, name string) float64 {
	families, err := m.reg.Gather()
	require.NoError(t, err)
	sum := 0.0
	for _, f := range families {
		if f.GetName() == name {
			for _, mt := range f.GetMetric() {
				sum += mt.GetCounter().GetValue()
			}
		}
	}
	return sum
}
