package collector

import (
	"context"
	"fmt"
	"iter"
	"slices"
	"time"

	"github.com/seatwatch/greenhouse-collector/connectors"
	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse"
	"github.com/seatwatch/greenhouse-collector/events"
	"github.com/seatwatch/greenhouse-collector/storage"
)

// syncUsers runs a complete users listing for a tenant: permissions, users, removal detection,
// license counts, user events, freed and inactive alerts. Order per page: publish, then store;
// the alert state and the checkpoint advance at the end.
func (s *syncer) syncUsers(ctx context.Context, tenant string, sc storedConnection, gc greenhouseClient) runResult {
	res, before := newRun(tenant, events.RunUsers, s.now()), gc.Stats()
	start := res.summary.StartedAt
	fail := func(step connectors.CheckName, err error) runResult {
		res.err = newSyncError(step, err)
		return res
	}
	cp, cpRev, err := s.checkpoints.begin(ctx, tenant, start)
	if err != nil {
		return fail(greenhouse.CheckUsers, err)
	}
	if sc.Policy != nil && sc.Policy.Pending != 0 {
		// A policy change its request could not announce (NATS or ClickHouse down then).
		if err := s.conns.deliverPolicy(ctx, tenant, sc.Policy); err != nil {
			return fail(greenhouse.CheckUsers, err)
		}
	}
	hasPerm, err := jobPermissionHolders(ctx, gc)
	if err != nil {
		return fail(greenhouse.CheckPermissions, err)
	}
	stored, readAt, err := s.firstUsersOf(ctx, tenant, cp, &cpRev)
	if err != nil {
		return fail(greenhouse.CheckUsers, err)
	}
	// The policy is read again with the alert state: a change stored since the job began
	// (and re-judged) is not undone.
	alerts, alertRev, sc, err := s.judgingState(ctx, tenant, sc)
	if err != nil {
		return fail(greenhouse.CheckUsers, err)
	}
	p := s.newUsersPass(tenant, sc, cp, start, stored.Map(), hasPerm, &alerts)
	p.readAt = readAt
	if err := gc.ListUsers(ctx, greenhouse.UserQuery{}, func(page []greenhouse.User) error { return p.page(ctx, page) }); err != nil {
		return fail(greenhouse.CheckUsers, fmt.Errorf("list users: %w", err))
	}
	if err := p.end(ctx); err != nil {
		return fail(greenhouse.CheckUsers, err)
	}
	if err := s.out.stored(s.store.InsertLicenseCounts(ctx, p.licenseCounts())); err != nil {
		return fail(greenhouse.CheckUsers, fmt.Errorf("store license counts: %w", err))
	}
	// The usage snapshot of the trends (GET …/trends) with the policy's seat figures, under
	// the rule the listing's events used, and the seat alerts it fires.
	seatEnvs, err := s.recordUsage(ctx, tenant, sc, p.params, start, p.utilisation(), &alerts)
	if err != nil {
		return fail(greenhouse.CheckUsers, err)
	}
	if err := s.out.publish(ctx, seatEnvs); err != nil {
		return fail(greenhouse.CheckUsers, fmt.Errorf("publish seat alerts: %w", err))
	}
	if err := s.alerts.put(ctx, tenant, alerts, alertRev); err != nil {
		return fail(greenhouse.CheckUsers, err)
	}
	cp.UsersSyncedAt = start
	if _, err := s.checkpoints.save(ctx, tenant, cp, cpRev); err != nil {
		return fail(greenhouse.CheckUsers, err)
	}
	res.summary.Users = p.listed
	res.countRequests(before, gc.Stats())
	return res
}

// jobPermissionHolders lists the user roles (a check of the scope; a role alone makes no
// license), job permissions and future job permissions, and returns the users holding any
// job or future-job permission.
func jobPermissionHolders(ctx context.Context, gc greenhouseClient) (map[int64]struct{}, error) {
	hasPerm := map[int64]struct{}{}
	if err := gc.ListUserRoles(ctx, func([]greenhouse.UserRole) error { return nil }); err != nil {
		return nil, fmt.Errorf("list user roles: %w", err)
	}
	if err := gc.ListJobPermissions(ctx, func(ps []greenhouse.JobPermission) error {
		return holders(hasPerm, ps, func(p greenhouse.JobPermission) int64 { return p.UserID })
	}); err != nil {
		return nil, fmt.Errorf("list job permissions: %w", err)
	}
	if err := gc.ListFutureJobPermissions(ctx, func(ps []greenhouse.FutureJobPermission) error {
		return holders(hasPerm, ps, func(p greenhouse.FutureJobPermission) int64 { return p.UserID })
	}); err != nil {
		return nil, fmt.Errorf("list future job permissions: %w", err)
	}
	return hasPerm, nil
}

// holders adds the user of each permission to set.
func holders[P any](set map[int64]struct{}, ps []P, user func(P) int64) error {
	for _, p := range ps {
		set[user(p)] = struct{}{}
	}
	return nil
}

// firstUsersOf is usersOf for a users sync, but for a tenant without a checkpoint: none of
// its runs has stored anything yet, so there is nothing to read (a tenant's first read found
// no row and cost ClickHouse a fifth of its query CPU onboarding, docs/performance.md, "Ninth
// session"). The checkpoint is created before the sync stores anything, so that a later
// attempt reads what this one stored. Checkpoints outlive a tenant's connections.
func (s *syncer) firstUsersOf(ctx context.Context, tenant string, cp checkpoint, rev *uint64) (*storage.UserSet, time.Time, error) {
	if *rev != 0 {
		return s.usersOf(ctx, tenant)
	}
	at := s.now()
	cp.ObservedSince = time.Time{} // set by the sync's final save: observed once a sync succeeded
	n, err := s.checkpoints.save(ctx, tenant, cp, 0)
	if err != nil {
		return nil, at, err
	}
	*rev = n
	return storage.NewUserSet(tenant, connectors.AppGreenhouse, 0, slices.Values([]storage.UserRow(nil))), at, nil
}

// usersOf is the tenant's users as stored: held by the users cache for this job's tenure,
// or read from ClickHouse; with when they were read from ClickHouse. The cache no longer
// holds them: the caller keeps them again (keepUsers) once its own writes are durable.
func (s *syncer) usersOf(ctx context.Context, tenant string) (*storage.UserSet, time.Time, error) {
	set, at, ok := s.users.take(tenant, tenureOf(ctx), s.now())
	if j, _ := ctx.Value(jobUsersKey{}).(*jobUsers); j != nil && j.set != nil {
		set, at, ok = j.set, j.readAt, true
		j.set = nil
	}
	if ok {
		s.metrics.usersReads.WithLabelValues("cache").Inc()
		return set, at, nil
	}
	at = s.now()
	var rows []storage.UserRow
	if err := s.store.CurrentUsers(ctx, tenant, connectors.AppGreenhouse, func(r storage.UserRow) error {
		rows = append(rows, r)
		return nil
	}); err != nil {
		return nil, at, internal(codeStorageUnavailable, fmt.Errorf("read stored users: %w", err))
	}
	s.metrics.usersReads.WithLabelValues("clickhouse").Inc()
	return storage.NewUserSet(tenant, connectors.AppGreenhouse, len(rows), slices.Values(rows)), at, nil
}

// keepUsers hands a tenant's users, as stored once a run's writes of them are durable and
// read from ClickHouse at readAt or derived from that read, to the rest of the job (jobUsers)
// and to the users cache, if its next users sync comes before they would expire there; n is
// about how many there are.
func (s *syncer) keepUsers(ctx context.Context, tenant string, sc storedConnection, n int, users iter.Seq[storage.UserRow], readAt time.Time) {
	j, _ := ctx.Value(jobUsersKey{}).(*jobUsers)
	cache := s.users != nil && s.cfg.settingsOf(sc.Doc).usersEvery < usersCacheTTL
	if j == nil && !cache {
		return
	}
	set := storage.NewUserSet(tenant, connectors.AppGreenhouse, n, users)
	if j != nil {
		j.set, j.readAt = set, readAt
	}
	if cache {
		s.users.keep(tenant, tenureOf(ctx), set, readAt, s.now())
	}
}

// usersPass is one users listing under way: the diff against the stored users, the rows and
// events buffered until the next flush, the license counts, and the users new to it.
type usersPass struct {
	s        *syncer
	tenant   string
	sc       storedConnection
	cp       checkpoint
	start    time.Time
	params   storage.UsageParams
	diff     *userDiff
	hasPerm  map[int64]struct{}
	alerts   *alertState
	counts   map[[2]string]uint32 // license type and status → users
	bufs     *passBuffers         // where rows, changes and envs come from, nil once given back
	rows     []storage.UserRow
	changes  []storage.UserChangeRow // the history of GET …/users/{user_id}, with each user event
	envs     []events.Envelope
	newUsers []int64
	listed   int
	// written are the rows this pass stored, by user: with the stored users (diff.prev) the
	// tenant's users as stored when the pass ends, unless activity was applied (activated).
	written   map[int64]storage.UserRow
	activated bool
	readAt    time.Time // when diff.prev was read from ClickHouse (usersOf)
}

// passBuffers are the lists a usersPass keeps its rows and events in between two flushes,
// reused from pass to pass: grown anew by every pass, they were a tenth of what the
// collector allocated onboarding, and garbage the collector paid for (docs/performance.md,
// "Twelfth session"). A pass gives them back only once its writes succeeded (a write given up
// on may still be read by storage's writer), each element cleared by the flush that wrote it.
type passBuffers struct {
	rows    []storage.UserRow
	changes []storage.UserChangeRow
	envs    []events.Envelope
}

// passBufferList holds the lists given back, a few only (Effective Go's leaky buffer): a
// sync.Pool kept every list of the passes that ended between two collections, 100 MB more
// in use at the end of a 2,000-tenant onboarding, which a memory limit makes the collector
// pay for in collections.
//
// More passes can be under way than there are workers (a pass waiting for its INSERT gives its
// worker back), so the list holds 32: with 8, most passes of a 10,000-tenant onboarding
// allocated theirs (docs/performance.md, "Thirteenth session").
var passBufferList = make(chan *passBuffers, 32)

// passRows bounds the lists kept: a flush holds flushRows rows and a page more (per_page=500),
// as grown by append; a user has up to two events in handle and one more in evaluate,
// rarely more than two in all.
const passRows = 2 * flushRows

func (s *syncer) newUsersPass(tenant string, sc storedConnection, cp checkpoint, start time.Time, prev map[int64]storage.UserRow, hasPerm map[int64]struct{}, alerts *alertState) *usersPass {
	var b *passBuffers
	select {
	case b = <-passBufferList:
	default:
		b = new(passBuffers)
	}
	p := &usersPass{
		s: s, tenant: tenant, sc: sc, cp: cp, start: start,
		params:  usageParams(s.cfg.settingsOf(sc.Doc), sc.Policy, cp, start, cp.ActivityThrough),
		diff:    newUserDiff(tenant, start, uint64(start.UnixNano()), prev),
		hasPerm: hasPerm, alerts: alerts, counts: map[[2]string]uint32{}, written: map[int64]storage.UserRow{},
		bufs: b, rows: b.rows[:0], changes: b.changes[:0], envs: b.envs[:0],
	}
	p.diff.listedAt = p.params.ListedAt
	return p
}

// release gives the pass's lists back for another pass, everything in them flushed and
// cleared.
func (p *usersPass) release() {
	b := p.bufs
	if b == nil || len(p.rows)+len(p.changes)+len(p.envs) > 0 {
		return
	}
	p.bufs = nil
	if cap(p.rows) > passRows || cap(p.changes) > passRows || cap(p.envs) > 2*passRows {
		return
	}
	b.rows, b.changes, b.envs = p.rows, p.changes, p.envs
	p.rows, p.changes, p.envs = nil, nil, nil
	select {
	case passBufferList <- b:
	default:
	}
}

// page merges one page of the listing, and flushes when flushRows are buffered.
func (p *usersPass) page(ctx context.Context, page []greenhouse.User) error {
	for _, u := range page {
		_, has := p.hasPerm[u.ID]
		row, ch, ok := p.diff.apply(u, has)
		if !ok {
			continue
		}
		p.listed++
		p.counts[[2]string{row.LicenseType, row.Status}]++
		if err := p.handle(row, ch); err != nil {
			return err
		}
		if ch.created() && !p.cp.ActivityThrough.IsZero() {
			// A user new to this listing may have acted before: applyActivity (end)
			// evaluates it once its stored activity is applied, not as never active now.
			continue
		}
		if err := p.evaluate(row); err != nil {
			return err
		}
	}
	if len(p.rows) >= flushRows {
		return p.flush(ctx)
	}
	return nil
}

// end completes the listing: the users no longer listed are removed, everything buffered is
// flushed, and users created since the last listing get the activity already stored (they
// may have acted before they were known).
func (p *usersPass) end(ctx context.Context) error {
	for _, ch := range p.diff.removed() {
		if err := p.handle(ch.row, &ch); err != nil {
			return err
		}
		if err := p.evaluate(ch.row); err != nil {
			return err
		}
		if len(p.rows) >= flushRows {
			if err := p.flush(ctx); err != nil {
				return err
			}
		}
	}
	if err := p.flush(ctx); err != nil {
		return err
	}
	p.release()
	p.s.keepUsers(ctx, p.tenant, p.sc, len(p.diff.prev)+len(p.newUsers), p.stored, p.readAt)
	if len(p.newUsers) > 0 && !p.cp.ActivityThrough.IsZero() {
		p.activated = true
		return p.s.applyActivity(ctx, p.tenant, p.sc, activityRange{from: p.cp.BackfillFrom, through: p.cp.ActivityThrough, ids: p.newUsers}, p.alerts)
	}
	return nil
}

// handle buffers a changed user's row with its saas.user.changed event and, for a freed
// license, its license_freed alert. An unchanged user is not written again: its stored
// last_seen_at is read as of the tenant's last complete listing (UsageParams.ListedAt,
// docs/schema.md, users), so a listing that changes nothing writes no user row.
func (p *usersPass) handle(row storage.UserRow, ch *change) error {
	if ch == nil {
		return nil
	}
	p.rows = append(p.rows, row)
	p.written[row.UserID] = row
	rec := record(ch.row, p.params)
	env, err := events.NewEnvelope(p.tenant, events.TypeUserChanged, userEventID(p.tenant, row.UserID, row.Revision),
		fmt.Sprintf("users/%d", row.UserID), p.start, events.UserChanged{User: rec, Changed: ch.changed, Revision: row.Revision})
	if err != nil {
		return err
	}
	p.envs = append(p.envs, env)
	p.changes = append(p.changes, userChangeRow(ch.row, ch.changed, p.diff.now))
	if ch.freed {
		env, err := alertEnvelope(transition{alert: AlertLicenseFreed, seq: uint64(row.Revision), rec: rec}, p.params, p.cp.ObservedSince, p.start)
		if err != nil {
			return err
		}
		p.envs = append(p.envs, env)
	}
	if ch.created() {
		p.newUsers = append(p.newUsers, row.UserID)
	}
	return nil
}

// evaluate buffers the alert of a user's usage transition, if any.
func (p *usersPass) evaluate(row storage.UserRow) error {
	env, fire, err := p.alerts.judge(record(row, p.params), p.params, p.cp.ObservedSince, p.start, "")
	if fire {
		p.envs = append(p.envs, env)
	}
	return err
}

// flush publishes the buffered events, then stores the buffered user changes and rows.
func (p *usersPass) flush(ctx context.Context) error {
	if err := p.s.out.publish(ctx, p.envs); err != nil {
		return fmt.Errorf("publish user events: %w", err)
	}
	// Changes before users: a crash between the two repeats the change in the next sync.
	// Under load each waits for its table's next INSERT (up to storage's UserInsertGap): the
	// worker is given back meanwhile.
	var err error
	idle(ctx, func() {
		if err = p.s.out.stored(p.s.store.InsertUserChanges(ctx, p.changes)); err != nil {
			err = fmt.Errorf("store user changes: %w", err)
		} else if err = p.s.out.stored(p.s.store.UpsertUsers(ctx, p.rows)); err != nil {
			err = fmt.Errorf("store users: %w", err)
		}
	})
	if err != nil {
		return err
	}
	clear(p.envs)
	clear(p.rows)
	clear(p.changes)
	p.envs, p.rows, p.changes = p.envs[:0], p.rows[:0], p.changes[:0]
	return nil
}

// stored yields the tenant's users as stored once the pass's writes are: the stored users
// (diff.prev) with the rows it wrote instead of theirs, and those it created.
func (p *usersPass) stored(yield func(storage.UserRow) bool) {
	for id, r := range p.diff.prev {
		if w, ok := p.written[id]; ok {
			r = w
		}
		if !yield(r) {
			return
		}
	}
	for id, w := range p.written {
		if _, ok := p.diff.prev[id]; !ok && !yield(w) {
			return
		}
	}
}

// utilisation is the tenant's utilisation under the pass's usage rule, counted from the users
// it read and wrote (storage.UtilisationOf), or nil when applying the activity of new users
// changed stored rows it does not hold: then it is read from ClickHouse.
func (p *usersPass) utilisation() *storage.Utilisation {
	if p.activated {
		return nil
	}
	u := storage.UtilisationOf(p.stored, p.params)
	return &u
}

// licenseCounts are the listing's users by license type and status, at its start.
func (p *usersPass) licenseCounts() []storage.LicenseCountRow {
	lc := make([]storage.LicenseCountRow, 0, len(p.counts))
	ts := p.start.Truncate(time.Second)
	for k, n := range p.counts {
		lc = append(lc, storage.LicenseCountRow{TenantID: p.tenant, App: connectors.AppGreenhouse, TS: ts, LicenseType: k[0], Status: k[1], Users: n})
	}
	return lc
}

// userChangeRow is the user_changes row of a user's new revision: what changed and the state
// after it, at the users sync that saw it (docs/schema.md, user_changes).
func userChangeRow(row storage.UserRow, changed []string, at time.Time) storage.UserChangeRow {
	return storage.UserChangeRow{
		TenantID: row.TenantID, App: row.App, UserID: row.UserID, Revision: row.Revision, ChangedAt: at,
		Changed: changed, Status: row.Status, LicenseType: row.LicenseType, SiteAdmin: row.SiteAdmin,
		ServiceAccount: row.ServiceAccount, Name: row.Name, Email: row.Email, Version: row.Version,
	}
}
