package collector

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/connectors"
	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse"
	"github.com/seatwatch/greenhouse-collector/events"
	"github.com/seatwatch/greenhouse-collector/storage"
)

// The syncer's steps on fakes of its small interfaces: no ClickHouse, NATS or simulator.

// fakeGreenhouse serves fixed users, job permissions and audit events.
type fakeGreenhouse struct {
	users    []greenhouse.User
	perms    []greenhouse.JobPermission
	audit    []greenhouse.AuditEvent
	permsErr error
	requests int64
	// perEvent: AuditEvents delivers each event in a batch of its own, through its time.
	perEvent bool
}

func (f *fakeGreenhouse) ListUsers(_ context.Context, _ greenhouse.UserQuery, fn func([]greenhouse.User) error) error {
	f.requests++
	return fn(f.users)
}

func (f *fakeGreenhouse) ListUserRoles(_ context.Context, fn func([]greenhouse.UserRole) error) error {
	f.requests++
	return fn(nil)
}

func (f *fakeGreenhouse) ListJobPermissions(_ context.Context, fn func([]greenhouse.JobPermission) error) error {
	f.requests++
	if f.permsErr != nil {
		return f.permsErr
	}
	return fn(f.perms)
}

func (f *fakeGreenhouse) ListFutureJobPermissions(_ context.Context, fn func([]greenhouse.FutureJobPermission) error) error {
	f.requests++
	return fn(nil)
}

func (f *fakeGreenhouse) AuditEvents(_ context.Context, from, to time.Time, fn func(greenhouse.AuditBatch) error) error {
	f.requests++
	var evs []greenhouse.AuditEvent
	for _, e := range f.audit {
		if !e.Time.Before(from) && e.Time.Before(to) {
			evs = append(evs, e)
		}
	}
	if f.perEvent {
		for _, e := range evs {
			if err := fn(greenhouse.AuditBatch{Events: []greenhouse.AuditEvent{e}, Through: e.Time.Add(time.Second)}); err != nil {
				return err
			}
		}
		evs = nil
	}
	return fn(greenhouse.AuditBatch{Events: evs, Through: to})
}

func (f *fakeGreenhouse) Stats() greenhouse.Stats { return greenhouse.Stats{Requests: f.requests} }

// fakeStore keeps users by id and the other rows as written.
type fakeStore struct {
	users   map[int64]storage.UserRow
	counts  []storage.LicenseCountRow
	audit   []storage.AuditEventRow
	runs    []storage.SyncRunRow
	days    []time.Time
	tallies []*storage.ActivityTally // WriteDailyActivity's
	changes []storage.UserChangeRow
	// usageCounts are the usage_counts snapshots recorded, as tenant@ts.
	usageCounts []string
	counted     *storage.Utilisation // the last utilisation a users sync counted itself
	failing     error                // every write fails with it
	// auditMu guards audit: a poll's INSERTs run concurrently. An InsertAuditEvents of the
	// event failAuditID fails with errAuditFailed.
	auditMu     sync.Mutex
	failAuditID string
	usersReads  int // CurrentUsers calls
	// beforeWrite, when set, is called before each audit, user change or users write is
	// stored (as a crash then would find the KV state).
	beforeWrite func()
}

var errAuditFailed = errors.New("audit insert failed")

func (f *fakeStore) CurrentUsers(_ context.Context, _, _ string, fn func(storage.UserRow) error) error {
	f.usersReads++
	ids := make([]int64, 0, len(f.users))
	for id := range f.users {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		if err := fn(f.users[id]); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeStore) UpsertUsers(_ context.Context, rows []storage.UserRow) error {
	if f.beforeWrite != nil {
		f.beforeWrite()
	}
	for _, r := range rows {
		f.users[r.UserID] = r
	}
	return f.failing
}

func (f *fakeStore) InsertLicenseCounts(_ context.Context, rows []storage.LicenseCountRow) error {
	f.counts = append(f.counts, rows...)
	return f.failing
}

func (f *fakeStore) InsertAuditEvents(_ context.Context, rows []storage.AuditEventRow) error {
	f.auditMu.Lock()
	defer f.auditMu.Unlock()
	if f.beforeWrite != nil {
		f.beforeWrite()
	}
	for _, r := range rows {
		if r.EventID == f.failAuditID {
			return errAuditFailed
		}
	}
	f.audit = append(f.audit, rows...)
	return f.failing
}

// UserActivity counts every stored event of a numeric performer as use.
func (f *fakeStore) UserActivity(_ context.Context, _ string, from, to time.Time, _ []int64) ([]storage.UserActivity, error) {
	by := map[int64]*storage.UserActivity{}
	for _, e := range f.audit {
		id, err := strconv.ParseInt(e.PerformerID, 10, 64)
		if err != nil || e.EventTime.Before(from) || !e.EventTime.Before(to) {
			continue
		}
		a := by[id]
		if a == nil {
			a = &storage.UserActivity{UserID: id}
			by[id] = a
		}
		a.Events++
		if e.EventTime.After(a.LastEventAt) {
			a.LastEventAt, a.LastEventType = e.EventTime, e.EventType
		}
	}
	var out []storage.UserActivity
	for _, a := range by {
		out = append(out, *a)
	}
	return out, nil
}

func (f *fakeStore) RefreshDailyActivity(_ context.Context, _ string, days []time.Time) error {
	f.days = append(f.days, days...)
	return f.failing
}

func (f *fakeStore) WriteDailyActivity(_ context.Context, _ string, t *storage.ActivityTally) error {
	f.tallies = append(f.tallies, t)
	return f.failing
}

func (f *fakeStore) InsertSyncRun(_ context.Context, row storage.SyncRunRow) error {
	f.runs = append(f.runs, row)
	return f.failing
}

// fakeBus records what is published.
type fakeBus struct {
	envs []events.Envelope
	err  error
}

func (b *fakeBus) Publish(_ context.Context, envs []events.Envelope) error {
	if b.err != nil {
		return b.err
	}
	b.envs = append(b.envs, envs...)
	return nil
}

func (b *fakeBus) types() map[events.Type]int {
	out := map[events.Type]int{}
	for _, e := range b.envs {
		out[e.Type]++
	}
	return out
}

// memKV is a KV bucket in memory with revisions.
type memKV[T any] struct {
	vals map[string]T
	revs map[string]uint64
}

func newMemKV[T any]() *memKV[T] { return &memKV[T]{vals: map[string]T{}, revs: map[string]uint64{}} }

func (m *memKV[T]) Get(_ context.Context, key string) (T, uint64, error) {
	v, ok := m.vals[key]
	if !ok {
		return v, 0, events.ErrNotFound
	}
	return v, m.revs[key], nil
}

func (m *memKV[T]) Create(_ context.Context, key string, v T) (uint64, error) {
	if _, ok := m.vals[key]; ok {
		return 0, events.ErrConflict
	}
	m.vals[key], m.revs[key] = v, 1
	return 1, nil
}

func (m *memKV[T]) Update(_ context.Context, key string, v T, rev uint64) (uint64, error) {
	if m.revs[key] != rev {
		return 0, events.ErrConflict
	}
	m.vals[key] = v
	m.revs[key]++
	return m.revs[key], nil
}

// syncerFixture is a syncer on fakes at a fixed time.
type syncerFixture struct {
	s     *syncer
	gh    *fakeGreenhouse
	store *fakeStore
	bus   *fakeBus
	cps   *memKV[checkpoint]
	now   time.Time
}

func newSyncerFixture(t *testing.T) *syncerFixture {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	f := &syncerFixture{gh: &fakeGreenhouse{}, store: &fakeStore{users: map[int64]storage.UserRow{}}, bus: &fakeBus{},
		cps: newMemKV[checkpoint](), now: now}
	created := now.AddDate(0, -6, 0)
	f.gh.users = []greenhouse.User{
		{ID: 1, Name: "Admin", PrimaryEmail: "a@x", SiteAdmin: true, CreatedAt: created},
		{ID: 2, Name: "Recruiter", PrimaryEmail: "r@x", CreatedAt: created},
		{ID: 3, Name: "Interviewer", PrimaryEmail: "i@x", CreatedAt: created},
		{ID: 4, Name: "Bot", ServiceAccount: true, CreatedAt: created},
	}
	f.gh.perms = []greenhouse.JobPermission{{ID: 1, JobID: 9, UserID: 2, RoleID: 1}}
	f.s = &syncer{cfg: DefaultConfig(), store: f.store, out: outputs{bus: f.bus, metrics: newMetrics()},
		checkpoints: checkpointStore{kv: f.cps}, alerts: alertStore{kv: newMemKV[alertState]()}, metrics: newMetrics(),
		now: func() time.Time { return f.now }, log: zerolog.New(zerolog.NewTestWriter(t)), users: newUsersCache(64 << 20)}
	return f
}

// usersReads is collector_users_reads_total of a source.
func usersReads(t *testing.T, m *metrics, source string) float64 {
	var d dto.Metric
	require.NoError(t, m.usersReads.WithLabelValues(source).Write(&d))
	return d.GetCounter().GetValue()
}

// assertCacheIsStored checks that the users cache holds the tenant's users as the store has
// them (in the form ClickHouse returns them), if it holds them at all.
func (f *syncerFixture) assertCacheIsStored(t *testing.T, tenant string) bool {
	t.Helper()
	f.s.users.mu.Lock()
	e, ok := f.s.users.entries[tenant]
	f.s.users.mu.Unlock()
	if !ok {
		return false
	}
	want := storage.NewUserSet(tenant, connectors.AppGreenhouse, len(f.store.users), maps.Values(f.store.users))
	return assert.Equal(t, slices.Collect(want.All), slices.Collect(e.set.All), "the cache holds the users as stored")
}

func TestSyncUsersOnFakes(t *testing.T) {
	f := newSyncerFixture(t)
	ctx := t.Context()
	r := f.s.syncUsers(ctx, "acme", storedConnection{}, f.gh)
	require.Nil(t, r.err)
	assert.Equal(t, events.RunUsers, r.summary.Kind)
	assert.Equal(t, 4, r.summary.Users)
	assert.Equal(t, 4, r.summary.Requests, "roles, job and future job permissions, users")
	assert.Equal(t, map[events.Type]int{events.TypeUserChanged: 4}, f.bus.types(), "one saas.user.changed per user; no usage data, no alert")
	assert.Equal(t, LicenseSiteAdmin, f.store.users[1].LicenseType)
	assert.Equal(t, LicenseJobAdmin, f.store.users[2].LicenseType)
	assert.Equal(t, LicenseBasic, f.store.users[3].LicenseType)
	assert.Len(t, f.store.counts, 3, "site_admin, job_admin and basic (the service account among them), all active")
	assert.Len(t, f.store.changes, 4, "a user_changes row with each saas.user.changed")
	assert.Equal(t, []string{"acme@" + f.now.Truncate(time.Second).Format(time.RFC3339)}, f.store.usageCounts, "one usage_counts snapshot, at the sync's start")
	cp, _, err := f.cps.Get(ctx, connectionKey("acme"))
	require.NoError(t, err)
	assert.Equal(t, f.now, cp.UsersSyncedAt)
	assert.Equal(t, f.now, cp.ObservedSince)

	// An hour later user 3 is deactivated and user 2 gone: two changes, two freed licenses.
	f.now = f.now.Add(time.Hour)
	f.gh.users[2].Deactivated = true
	f.gh.users = append(f.gh.users[:1], f.gh.users[2:]...)
	f.bus.envs = nil
	r = f.s.syncUsers(ctx, "acme", storedConnection{}, f.gh)
	require.Nil(t, r.err)
	assert.Equal(t, map[events.Type]int{events.TypeUserChanged: 2, events.TypeAlertLicenseFreed: 2}, f.bus.types())
	assert.Equal(t, storage.StatusRemoved, f.store.users[2].Status)
	assert.Equal(t, storage.StatusDeactivated, f.store.users[3].Status)
	require.Len(t, f.store.changes, 6, "the two changes join the history")
	for _, c := range f.store.changes[4:] {
		assert.Equal(t, f.store.users[c.UserID].Revision, c.Revision, "the change's revision is the row's")
		assert.Equal(t, f.store.users[c.UserID].Status, c.Status)
	}
	assert.Len(t, f.store.usageCounts, 2)
}

func TestSyncUsersFailuresOnFakes(t *testing.T) {
	t.Run("Greenhouse refuses the permissions: the permissions check", func(t *testing.T) {
		f := newSyncerFixture(t)
		f.gh.permsErr = greenhouse.ErrMissingScope
		r := f.s.syncUsers(t.Context(), "acme", storedConnection{}, f.gh)
		require.NotNil(t, r.err)
		assert.Equal(t, greenhouse.CheckPermissions, r.err.check)
		assert.Equal(t, greenhouse.CodeMissingScope, r.err.code)
	})
	t.Run("NATS refuses: the collector's own failure, on no check, the checkpoint unmoved", func(t *testing.T) {
		f := newSyncerFixture(t)
		f.bus.err = errors.New("nats: timeout")
		r := f.s.syncUsers(t.Context(), "acme", storedConnection{}, f.gh)
		require.NotNil(t, r.err)
		assert.Equal(t, codeNATSUnavailable, r.err.code)
		assert.Empty(t, r.err.check)
		cp, _, err := f.cps.Get(t.Context(), connectionKey("acme"))
		require.NoError(t, err, "created before anything was stored (firstUsersOf)")
		assert.True(t, cp.UsersSyncedAt.IsZero(), "the checkpoint did not advance")
		assert.Empty(t, f.store.users, "rows are stored after their events are published")
		assert.Empty(t, f.store.changes, "and so are the user changes")
		assert.Empty(t, f.store.usageCounts)
	})
}

func TestSyncAuditOnFakes(t *testing.T) {
	f := newSyncerFixture(t)
	ctx := t.Context()
	require.Nil(t, f.s.syncUsers(ctx, "acme", storedConnection{}, f.gh).err)
	f.gh.audit = []greenhouse.AuditEvent{
		{ID: "e1", Time: f.now.Add(-40 * 24 * time.Hour), Type: "action", PerformerType: "user", PerformerID: "2"}, // beyond the retention
		{ID: "e2", Time: f.now.Add(-2 * 24 * time.Hour), Type: "action", PerformerType: "user", PerformerID: "2"},
		{ID: "e3", Time: f.now.Add(-time.Hour), Type: "action", PerformerType: "user", PerformerID: "1"},
	}
	r := f.s.syncAudit(ctx, "acme", storedConnection{}, f.gh)
	require.Nil(t, r.err)
	assert.Equal(t, events.RunAudit, r.summary.Kind)
	assert.Equal(t, 2, r.summary.Events, "the 30-day backfill")
	cp, _, err := f.cps.Get(ctx, connectionKey("acme"))
	require.NoError(t, err)
	assert.Equal(t, f.now, cp.AuditThrough)
	assert.Equal(t, f.now, cp.ActivityThrough)
	assert.Equal(t, f.now.Add(-auditRetention), cp.BackfillFrom)
	assert.Equal(t, cp.BackfillFrom, cp.CoverageStart, "usage is known from the backfill's start")
	require.NotNil(t, f.store.users[2].LastActivityAt)
	assert.Equal(t, f.now.Add(-2*24*time.Hour), *f.store.users[2].LastActivityAt)
	assert.Equal(t, 2, f.bus.types()[events.TypeUsageUpdated])
	// The first backfill counted the activity it stored: nothing read back.
	assert.Empty(t, f.store.days, "no daily activity read back")
	require.Len(t, f.store.tallies, 1)
	users := f.store.tallies[0].Users()
	require.Len(t, users, 2)
	assert.Equal(t, []int64{1, 2}, []int64{users[0].UserID, users[1].UserID})
	assert.Equal(t, f.now.Add(-2*24*time.Hour), users[1].LastEventAt)
}

func (f *fakeStore) InsertUserChanges(_ context.Context, rows []storage.UserChangeRow) error {
	if f.beforeWrite != nil {
		f.beforeWrite()
	}
	f.changes = append(f.changes, rows...)
	return f.failing
}

// RecordUsageCounts counts the stored users with the usage rule in Go (storage.UtilisationOf,
// which TestUtilisationOfAgreesWithTheQuery keeps equal to the SQL of *storage.Store) and
// returns their figures.
func (f *fakeStore) RecordUsageCounts(_ context.Context, tenant, _ string, ts time.Time, p storage.UsageParams, terms storage.PolicyTerms) ([]storage.SeatFigures, error) {
	f.usageCounts = append(f.usageCounts, tenant+"@"+ts.Format(time.RFC3339))
	return f.utilisation(p).Figures(terms), f.failing
}

// RecordUtilisation records the counts a users sync made itself (counted: the last of them).
func (f *fakeStore) RecordUtilisation(_ context.Context, tenant, _ string, ts time.Time, u storage.Utilisation, terms storage.PolicyTerms) ([]storage.SeatFigures, error) {
	f.usageCounts = append(f.usageCounts, tenant+"@"+ts.Format(time.RFC3339))
	f.counted = &u
	return u.Figures(terms), f.failing
}

// utilisation counts the stored users under p.
func (f *fakeStore) utilisation(p storage.UsageParams) storage.Utilisation {
	return storage.UtilisationOf(maps.Values(f.users), p)
}

// A listing that changes nothing writes no user row; the users' last_seen_at is read as of
// the tenant's last complete listing (lastSeen), and a user removed later keeps the last
// listing that saw it.
// A poll hands its batches to the store without waiting for each INSERT; the checkpoint
// still never moves past a batch that was not stored, though later batches were.
func TestSyncAuditCheckpointStopsBeforeAnUnstoredBatch(t *testing.T) {
	f := newSyncerFixture(t)
	ctx := t.Context()
	require.Nil(t, f.s.syncUsers(ctx, "acme", storedConnection{}, f.gh).err)
	f.gh.perEvent = true
	for d := 5; d >= 1; d-- {
		f.gh.audit = append(f.gh.audit, greenhouse.AuditEvent{ID: fmt.Sprintf("e%d", d), Time: f.now.Add(-time.Duration(d) * 24 * time.Hour),
			Type: "action", PerformerType: "user", PerformerID: "2"})
	}
	f.store.failAuditID = "e4" // the second batch
	r := f.s.syncAudit(ctx, "acme", storedConnection{}, f.gh)
	require.NotNil(t, r.err)
	assert.ErrorIs(t, r.err, errAuditFailed)
	cp, _, err := f.cps.Get(ctx, connectionKey("acme"))
	require.NoError(t, err)
	assert.Equal(t, f.gh.audit[0].Time.Add(time.Second), cp.AuditThrough, "through the first batch, the last stored before the failure")
	assert.True(t, cp.ActivityThrough.IsZero())

	f.store.failAuditID = ""
	r = f.s.syncAudit(ctx, "acme", storedConnection{}, f.gh)
	require.Nil(t, r.err)
	cp, _, err = f.cps.Get(ctx, connectionKey("acme"))
	require.NoError(t, err)
	assert.Equal(t, f.now, cp.AuditThrough)
	stored := map[string]bool{}
	for _, e := range f.store.audit {
		stored[e.EventID] = true
	}
	assert.Len(t, stored, 5, "every event stored in the end")
	assert.Empty(t, f.store.tallies, "the second attempt continues a backfill: no tally")
	assert.Len(t, f.store.days, 31, "it reads the activity of every day backfilled back")
}

// A tenant's first users sync has nothing stored to read: it creates the checkpoint before it
// stores a user, and the next sync (or a retry of the first) reads what is stored.
func TestFirstUsersSyncReadsNothing(t *testing.T) {
	f := newSyncerFixture(t)
	ctx := t.Context()
	f.store.failing = errors.New("clickhouse refused the write")
	created := false
	f.store.beforeWrite = func() {
		_, rev, err := f.cps.Get(ctx, connectionKey("acme"))
		created = err == nil && rev != 0
	}
	require.NotNil(t, f.s.syncUsers(ctx, "acme", storedConnection{}, f.gh).err)
	assert.True(t, created, "the checkpoint existed when the first users were stored")
	f.store.beforeWrite = nil
	assert.Zero(t, f.store.usersReads, "a first sync reads no users")
	cp, rev, err := f.cps.Get(ctx, connectionKey("acme"))
	require.NoError(t, err)
	assert.NotZero(t, rev, "the checkpoint was created before the users were written")
	assert.True(t, cp.UsersSyncedAt.IsZero())
	assert.True(t, cp.ObservedSince.IsZero(), "observed only once a sync succeeded")

	f.store.failing = nil
	require.Nil(t, f.s.syncUsers(ctx, "acme", storedConnection{}, f.gh).err)
	assert.Equal(t, 1, f.store.usersReads, "the retry reads what the first attempt may have stored")
}

// A first backfill that stored nothing durable still leaves its start in the checkpoint: the
// next attempt may find events stored that it does not read (the first attempt started
// earlier), so it reads the activity back rather than counting what it stores.
func TestSyncAuditRetriedBackfillReadsActivityBack(t *testing.T) {
	f := newSyncerFixture(t)
	ctx := t.Context()
	require.Nil(t, f.s.syncUsers(ctx, "acme", storedConnection{}, f.gh).err)
	f.gh.audit = []greenhouse.AuditEvent{{ID: "e1", Time: f.now.Add(-2 * 24 * time.Hour), Type: "action", PerformerType: "user", PerformerID: "2"}}
	f.store.failAuditID = "e1"
	var atInsert checkpoint // as a replica killed during the INSERT would leave it
	f.store.beforeWrite = func() {
		if atInsert.BackfillFrom.IsZero() {
			atInsert, _, _ = f.cps.Get(ctx, connectionKey("acme"))
		}
	}
	require.NotNil(t, f.s.syncAudit(ctx, "acme", storedConnection{}, f.gh).err)
	assert.Equal(t, f.now.Add(-auditRetention), atInsert.BackfillFrom, "saved before the first INSERT")
	assert.True(t, atInsert.AuditThrough.IsZero())

	f.store.failAuditID = ""
	f.now = f.now.Add(time.Minute)
	require.Nil(t, f.s.syncAudit(ctx, "acme", storedConnection{}, f.gh).err)
	assert.Empty(t, f.store.tallies)
	assert.Len(t, f.store.days, 31)
	require.NotNil(t, f.store.users[2].LastActivityAt)
}

func TestSyncUsersWritesOnlyChanges(t *testing.T) {
	f := newSyncerFixture(t)
	ctx := t.Context()
	require.Nil(t, f.s.syncUsers(ctx, "acme", storedConnection{}, f.gh).err)
	first := f.now.Truncate(time.Second)
	writes := 0
	f.s.store = &countingStore{fakeStore: f.store, upserts: &writes}

	f.now = f.now.Add(time.Hour)
	require.Nil(t, f.s.syncUsers(ctx, "acme", storedConnection{}, f.gh).err)
	assert.Zero(t, writes, "no user changed: no user row written")
	assert.Equal(t, first, f.store.users[3].LastSeenAt, "the stored row is the first listing's")
	cp, _, err := f.cps.Get(ctx, connectionKey("acme"))
	require.NoError(t, err)
	p := usageParams(f.s.cfg.settingsOf(events.Connection{}), nil, cp, f.now, cp.ActivityThrough)
	assert.Equal(t, f.now.Truncate(time.Second), record(f.store.users[3], p).LastSeenAt, "read as of the last listing")

	second := f.now.Truncate(time.Second)
	f.now = f.now.Add(time.Hour)
	f.gh.users = f.gh.users[:2] // users 3 and 4 are gone
	require.Nil(t, f.s.syncUsers(ctx, "acme", storedConnection{}, f.gh).err)
	assert.Equal(t, 2, writes, "the two removed users")
	assert.Equal(t, storage.StatusRemoved, f.store.users[3].Status)
	assert.Equal(t, second, f.store.users[3].LastSeenAt, "removed: last seen in the listing before")
}

// A users sync counts the tenant's utilisation from the users it read and wrote instead of
// reading them again; the counts are those of the users as stored after the sync (changed,
// removed, with stored activity). When new users' stored activity is applied, it reads them.
func TestSyncUsersCountsUtilisationAsStored(t *testing.T) {
	f := newSyncerFixture(t)
	ctx := t.Context()
	var cached []float64                       // per sync, its reads of the users from the cache
	f.s.cfg.DefaultUsersInterval = time.Minute // the users cache keeps the users of tenants synced so often
	sync := func(t *testing.T) *storage.Utilisation {
		t.Helper()
		cp, _, err := f.cps.Get(ctx, connectionKey("acme"))
		if errors.Is(err, events.ErrNotFound) {
			err = nil
		}
		require.NoError(t, err)
		f.store.counted = nil
		reads := usersReads(t, f.s.metrics, "cache")
		require.Nil(t, f.s.syncUsers(ctx, "acme", storedConnection{}, f.gh).err)
		assert.True(t, f.assertCacheIsStored(t, "acme"), "kept after the sync")
		cached = append(cached, usersReads(t, f.s.metrics, "cache")-reads)
		if f.store.counted != nil {
			p := usageParams(f.s.cfg.settingsOf(events.Connection{}), nil, cp, f.now, cp.ActivityThrough)
			assert.Equal(t, f.store.utilisation(p), *f.store.counted, "counted as stored")
		}
		return f.store.counted
	}
	u := sync(t)
	require.NotNil(t, u, "the first listing: every user new, no activity to apply")
	assert.Equal(t, []int{4, 3, 0, 0, 0, 3}, []int{u.Users, u.Licenses, u.Active, u.Inactive, u.Exempt, u.Unknown}, "no usage data yet")

	f.gh.audit = []greenhouse.AuditEvent{
		{ID: "e2", Time: f.now.Add(-2 * 24 * time.Hour), Type: "action", PerformerType: "user", PerformerID: "2"},
		{ID: "e3", Time: f.now.Add(-time.Hour), Type: "action", PerformerType: "user", PerformerID: "1"},
	}
	require.Nil(t, f.s.syncAudit(ctx, "acme", storedConnection{}, f.gh).err)
	f.now = f.now.Add(2 * time.Minute)
	u = sync(t)
	require.NotNil(t, u)
	assert.Equal(t, 2, u.Active, "the stored activity of users 1 and 2")

	f.now = f.now.Add(2 * time.Minute)
	f.gh.users[2].Deactivated = true
	f.gh.users = f.gh.users[:3] // the bot is gone
	u = sync(t)
	require.NotNil(t, u)
	assert.Equal(t, []int{3, 2, 2, 4}, []int{u.Users, u.Licenses, u.Active, u.Stored}, "a deactivated and a removed user")

	f.now = f.now.Add(2 * time.Minute)
	f.gh.users = append(f.gh.users, greenhouse.User{ID: 5, Name: "New", PrimaryEmail: "n@x", CreatedAt: f.now.Add(-time.Hour)})
	before := len(f.store.usageCounts)
	assert.Nil(t, sync(t), "a new user's stored activity applied: counted by the store")
	assert.Len(t, f.store.usageCounts, before+1, "the snapshot is still recorded")
	assert.Equal(t, []float64{0, 1, 1, 2}, cached, "the first sync reads the store, the others the cache (the last twice: its activity pass too)")
}

// countingStore counts the user rows written.
type countingStore struct {
	*fakeStore
	upserts *int
}

func (c *countingStore) UpsertUsers(ctx context.Context, rows []storage.UserRow) error {
	*c.upserts += len(rows)
	return c.fakeStore.UpsertUsers(ctx, rows)
}

// A poll re-reads the events of its overlap (auditOverlap) that the poll before stored: it
// stores none of them again and skips the activity pass; an event new to the overlap is stored.
func TestSyncAuditSkipsTheStoredOverlap(t *testing.T) {
	f := newSyncerFixture(t)
	ctx := t.Context()
	require.Nil(t, f.s.syncUsers(ctx, "acme", storedConnection{}, f.gh).err)
	f.gh.audit = []greenhouse.AuditEvent{
		{ID: "e1", Time: f.now.Add(-2 * time.Minute), Type: "action", PerformerType: "user", PerformerID: "2"},
		{ID: "e2", Time: f.now.Add(-20 * time.Minute), Type: "action", PerformerType: "user", PerformerID: "1"},
	}
	require.Nil(t, f.s.syncAudit(ctx, "acme", storedConnection{}, f.gh).err)
	require.Len(t, f.store.audit, 2)
	cp, _, err := f.cps.Get(ctx, connectionKey("acme"))
	require.NoError(t, err)
	assert.Equal(t, []string{"e1"}, cp.OverlapIDs, "e2 is older than the next poll's overlap")
	days := len(f.store.days)

	f.now = f.now.Add(time.Minute)
	r := f.s.syncAudit(ctx, "acme", storedConnection{}, f.gh)
	require.Nil(t, r.err)
	assert.Zero(t, r.summary.Events, "e1 re-read in the overlap, not stored again")
	assert.Len(t, f.store.audit, 2)
	assert.Len(t, f.store.days, days, "nothing new: no activity pass")

	// An event indexed late, inside the overlap, is new: stored and applied.
	f.now = f.now.Add(time.Minute)
	f.gh.audit = append(f.gh.audit, greenhouse.AuditEvent{ID: "e3", Time: f.now.Add(-3 * time.Minute), Type: "action", PerformerType: "user", PerformerID: "3"})
	r = f.s.syncAudit(ctx, "acme", storedConnection{}, f.gh)
	require.Nil(t, r.err)
	assert.Equal(t, 1, r.summary.Events)
	assert.Len(t, f.store.audit, 3)
	assert.Greater(t, len(f.store.days), days)
	require.NotNil(t, f.store.users[3].LastActivityAt)
	cp, _, err = f.cps.Get(ctx, connectionKey("acme"))
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"e1", "e3"}, cp.OverlapIDs)
}

// A poll whose new events are no use of a seat (the collector's own Harvest reads) stores them
// and skips the activity pass: nobody's activity can have changed.
func TestSyncAuditStoresAPIAccessWithoutActivityPass(t *testing.T) {
	f := newSyncerFixture(t)
	ctx := t.Context()
	require.Nil(t, f.s.syncUsers(ctx, "acme", storedConnection{}, f.gh).err)
	require.Nil(t, f.s.syncAudit(ctx, "acme", storedConnection{}, f.gh).err) // the backfill: nothing
	days := len(f.store.days)
	f.now = f.now.Add(time.Minute)
	f.gh.audit = []greenhouse.AuditEvent{{ID: "h1", Time: f.now.Add(-30 * time.Second), Type: "harvest_access",
		PerformerType: "user", PerformerID: "1", RequestType: "/v3/users?per_page=500"}}
	r := f.s.syncAudit(ctx, "acme", storedConnection{}, f.gh)
	require.Nil(t, r.err)
	assert.Equal(t, 1, r.summary.Events, "stored")
	assert.Len(t, f.store.audit, 1)
	assert.Len(t, f.store.days, days, "no activity pass")
}
