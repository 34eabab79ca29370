package collector

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPlanDispatch(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	at := func(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }
	routine := func(name string, due time.Time) dueSync {
		return dueSync{tenant: name, ts: &tenantSchedule{}, due: due}
	}
	fresh := func(name string, due time.Time) dueSync {
		return dueSync{tenant: name, ts: &tenantSchedule{fresh: true}, due: due}
	}
	names := func(ds []dueSync) []string {
		out := make([]string, len(ds))
		for i, d := range ds {
			out[i] = d.tenant
		}
		return out
	}

	t.Run("routine runs most overdue first, asked-for runs before all", func(t *testing.T) {
		asked := fresh("asked", time.Time{})
		asked.requested = true
		due := []dueSync{routine("late", at(5)), fresh("new", at(0)), routine("later", at(9)), asked, routine("latest", at(1))}
		got := planDispatch(due, 4, 0, 0)
		// Four workers: a quarter (one) is kept for the waiting first sync.
		assert.Equal(t, []string{"asked", "latest", "late", "new"}, names(got))
	})

	t.Run("first syncs leave a quarter of the workers to routine runs, in connect order", func(t *testing.T) {
		var due []dueSync
		for i := 19; i >= 0; i-- {
			due = append(due, fresh(fmt.Sprintf("t%02d", i), at(i)))
		}
		got := planDispatch(due, 16, 0, 0)
		require.Len(t, got, 12)
		assert.Equal(t, "t00", got[0].tenant)
		assert.Equal(t, "t11", got[11].tenant)
		assert.Empty(t, planDispatch(due, 16, 12, 12), "three quarters of the workers already run first syncs")
		assert.Equal(t, []string{"t00", "t01"}, names(planDispatch(due, 16, 14, 10)))
		// A routine run that comes due finds a kept worker.
		assert.Equal(t, []string{"r"}, names(planDispatch(append(due, routine("r", at(30))), 16, 12, 12)))
	})

	t.Run("a routine backlog leaves first syncs a quarter of the workers", func(t *testing.T) {
		var due []dueSync
		for i := range 40 {
			due = append(due, routine(fmt.Sprintf("r%02d", i), at(i)))
		}
		due = append(due, fresh("new1", at(-100)), fresh("new2", at(-99)), fresh("new3", at(-98)), fresh("new4", at(-97)), fresh("new5", at(-96)))
		got := planDispatch(due, 16, 0, 0)
		require.Len(t, got, 16)
		assert.Equal(t, "r00", got[0].tenant)
		assert.Equal(t, "r11", got[11].tenant)
		assert.Equal(t, []string{"new1", "new2", "new3", "new4"}, names(got[12:]))
		// Once the reserved first syncs run, routine runs get every other worker.
		got = planDispatch(due, 16, 4, 4)
		require.Len(t, got, 12)
		assert.Equal(t, "r11", got[11].tenant)
		// With no first sync waiting, routine runs take every worker.
		assert.Len(t, planDispatch(due[:40], 16, 0, 0), 16)
	})

	t.Run("below four workers routine runs go first", func(t *testing.T) {
		due := []dueSync{routine("r", at(0)), fresh("f", at(-5))}
		assert.Equal(t, []string{"r"}, names(planDispatch(due, 1, 0, 0)))
		assert.Equal(t, []string{"f"}, names(planDispatch(due[1:], 1, 0, 0)))
		assert.Equal(t, []string{"r", "f"}, names(planDispatch(due, 2, 0, 0)))
	})

	t.Run("asked-for runs take the workers kept for first syncs", func(t *testing.T) {
		asked := routine("asked", time.Time{})
		asked.requested = true
		var due []dueSync
		for i := range 12 {
			due = append(due, routine(fmt.Sprintf("r%02d", i), at(i)))
		}
		due = append(due, fresh("new", at(0)), asked)
		got := planDispatch(due, 16, 11, 0)
		// 5 free workers, 4 kept for first syncs: the asked-for run takes one of them, the
		// routine runs none, the first sync the rest.
		assert.Equal(t, []string{"asked", "new"}, names(got))
	})
}

// planDispatch picks what sorting every due sync (dueBefore) and taking the workers in that
// order picks (the plan before keepFirst), for
// random mixes of asked-for, routine and first syncs, overdue ties and busy workers.
func TestPlanDispatchPicksAsAFullSort(t *testing.T) {
	reference := func(due []dueSync, workers, busy, freshRunning int) []dueSync {
		var routine, fresh []dueSync
		for _, d := range due {
			if d.ts.fresh && !d.requested {
				fresh = append(fresh, d)
			} else {
				routine = append(routine, d)
			}
		}
		byDue := func(l []dueSync) []dueSync { // a full sort
			sort.Slice(l, func(i, j int) bool { return dueBefore(l[i], l[j]) })
			return l
		}
		routine, fresh = byDue(routine), byDue(fresh)
		quarter := workers / 4
		reserve := 0
		if len(fresh) > 0 {
			reserve = max(0, quarter-freshRunning)
		}
		var out []dueSync
		for _, d := range routine {
			limit := workers - reserve
			if d.requested {
				limit = workers
			}
			if busy < limit {
				out, busy = append(out, d), busy+1
			}
		}
		for _, d := range fresh {
			if busy >= workers || freshRunning >= workers-quarter {
				break
			}
			out, busy, freshRunning = append(out, d), busy+1, freshRunning+1
		}
		return out
	}
	t0 := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		var due []dueSync
		for j := range rng.IntN(60) {
			d := dueSync{tenant: fmt.Sprintf("t%02d", rng.IntN(40)) + fmt.Sprint(j), ts: &tenantSchedule{fresh: rng.IntN(2) == 0},
				due: t0.Add(time.Duration(rng.IntN(5)) * time.Second), requested: rng.IntN(8) == 0}
			if rng.IntN(6) == 0 {
				d.due = time.Time{}
			}
			due = append(due, d)
		}
		workers := 1 + rng.IntN(20)
		busy, freshRunning := rng.IntN(workers+1), rng.IntN(workers+1)
		assert.Equal(t, reference(due, workers, busy, freshRunning), planDispatch(due, workers, busy, freshRunning), "case %d", i)
	}
	var first []dueSync
	for _, d := range []dueSync{{tenant: "b"}, {tenant: "a"}, {tenant: "c"}} {
		first = keepFirst(first, d, 2)
	}
	require.Len(t, first, 2)
	assert.Equal(t, "a", first[0].tenant)
	assert.Equal(t, "b", first[1].tenant)
}

// Dispatches between two full looks take the due syncs from the candidates the last full look
// kept: those started since, no longer due or gone are dropped, a tenant a connection change
// made due is added once; a full look is needed when the candidates are older than a tick,
// or too few for the free workers while the full look left due syncs out.
func TestDispatchCandidates(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	sch := &scheduler{tenants: map[string]*tenantSchedule{}, workers: newWorkerPool(2)} // keeps 8 of each kind
	owned := []bool{true, false}
	add := func(name string, ts *tenantSchedule) *tenantSchedule {
		sch.tenants[name] = ts
		return ts
	}
	for i := range 20 {
		ago := now.Add(-time.Duration(i) * time.Second) // f19 connected first
		add(fmt.Sprintf("f%02d", i), &tenantSchedule{fresh: true, nextUsers: ago, nextAudit: ago})
	}
	add("routine", &tenantSchedule{nextUsers: now.Add(time.Hour), nextAudit: now.Add(-time.Minute)})
	add("elsewhere", &tenantSchedule{shard: 1, nextAudit: now.Add(-time.Hour)})
	add("running", &tenantSchedule{running: true, nextAudit: now.Add(-time.Hour)})
	names := func(ds []dueSync) []string {
		out := make([]string, len(ds))
		for i, d := range ds {
			out[i] = d.tenant
		}
		sort.Strings(out)
		return out
	}

	due := sch.dueTenants(now, owned)
	assert.Len(t, due, 21, "every owned tenant due and not running")
	assert.Equal(t, []string{"f12", "f13", "f14", "f15", "f16", "f17", "f18", "f19", "routine"}, names(sch.cands))
	assert.True(t, sch.candCut)

	sch.tenants["f19"].running = true                                                      // started
	sch.tenants["f18"].fresh, sch.tenants["f18"].nextUsers = false, now.Add(time.Hour)     // synced
	sch.tenants["f18"].nextAudit = now.Add(time.Hour)                                      //
	delete(sch.tenants, "f17")                                                             // disconnected
	sch.tenants["f16"] = &tenantSchedule{fresh: true, nextUsers: now, nextAudit: now}      // reconnected: another schedule
	asked := add("asked", &tenantSchedule{nextUsers: time.Time{}, nextAudit: time.Time{}}) // a sync now
	sch.candidate("asked", asked)
	sch.candidate("asked", asked)
	got, ok := sch.dueCandidates(now, owned)
	require.True(t, ok)
	assert.Equal(t, []string{"asked", "f12", "f13", "f14", "f15", "routine"}, names(got))

	for _, c := range sch.cands {
		c.ts.running = true
	}
	_, ok = sch.dueCandidates(now, owned)
	assert.False(t, ok, "none left for the two free workers, and others are due: a full look")
	sch.dueTenants(now, owned)
	sch.candCut = false
	got, ok = sch.dueCandidates(now, owned)
	assert.True(t, ok, "fewer than the free workers, but the full look kept every due sync")
	assert.Len(t, got, len(sch.cands))
	sch.candAt = time.Now().Add(-candidateTTL)
	_, ok = sch.dueCandidates(now, owned)
	assert.False(t, ok, "a tick old: a full look")
}

// TestRescheduleAbandonedJob: a job whose context ended (its shard's lease lost) did not fail
// and recorded nothing: all of it stays due, even a users sync that finished before the
// cancel, without a backoff and without counting a failure, and the tenant is a dispatch
// candidate.
func TestRescheduleAbandonedJob(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 51, 12, 0, time.UTC)
	due := now.Add(-time.Second)
	setup := func() (*scheduler, *tenantSchedule) {
		ts := &tenantSchedule{running: true, nextUsers: due, nextAudit: due}
		sch := &scheduler{cfg: DefaultConfig(), tenants: map[string]*tenantSchedule{"acme": ts},
			now: func() time.Time { return now }}
		sch.fence.cancels = map[string]context.CancelFunc{}
		return sch, ts
	}
	job := syncJob{tenant: "acme", users: true, audit: true}
	usersEvery := DefaultConfig().DefaultUsersInterval

	sch, ts := setup()
	sch.reschedule(job, true, false, now, true)
	assert.False(t, ts.running)
	assert.Zero(t, ts.failures, "abandoned is not failed")
	assert.Equal(t, due, ts.nextAudit, "the Audit Log poll it did not finish stays due")
	assert.Equal(t, due, ts.nextUsers, "so does its users sync, finished but not recorded")
	assert.Len(t, sch.cands, 1)

	sch, ts = setup()
	sch.reschedule(job, true, false, now, false)
	assert.WithinDuration(t, now.Add(usersEvery), ts.nextUsers, usersEvery/10+time.Second, "a recorded users sync: an interval on")
	assert.Equal(t, 1, ts.failures, "failed")
	assert.WithinDuration(t, now.Add(30*time.Second), ts.nextAudit, 3*time.Second+time.Millisecond, "a backoff")
}
