package collector

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse"
	"github.com/seatwatch/greenhouse-collector/events"
	"github.com/seatwatch/greenhouse-collector/storage"
)

const (
	// auditRetention is how far back the Audit Log keeps events (GREENHOUSE.md 3.8); the first
	// backfill starts just inside it.
	auditRetention = 30 * 24 * time.Hour
	// auditOverlap is re-read at the start of every poll, for events indexed late; writes are
	// idempotent so the overlap costs no duplicates.
	auditOverlap = 10 * time.Minute
	// flushRows bounds the rows and events buffered during a users listing.
	flushRows = 5000
	// checkpointEvery bounds how often a long backfill saves its position.
	checkpointEvery = 5 * time.Second
)

// syncError is a failed sync step with the check it affects.
type syncError struct {
	check string // users, permissions, audit_log, credentials, admin_user; "" for an internal failure
	code  string // a check code of PRODUCT.md 4.1, or storage_unavailable / nats_unavailable
	err   error
}

// newSyncError classifies a failed step: Greenhouse's failures go on the step's check (or on
// credentials or admin_user, whatever the step), the collector's own on none.
func newSyncError(step string, err error) *syncError {
	if code := internalCode(err); code != "" {
		return &syncError{code: code, err: err}
	}
	code := greenhouse.CodeOf(err)
	return &syncError{check: checkForCode(code, step), code: string(code), err: err}
}

func (e *syncError) Error() string { return e.err.Error() }
func (e *syncError) Unwrap() error { return e.err }

// checkForCode maps a connector error code to the connect-flow check it belongs to; step is the
// check of the step that failed (users, permissions or audit_log).
func checkForCode(code greenhouse.Code, step string) string {
	switch code {
	case greenhouse.Code("invalid_client"), greenhouse.Code("legacy_api_key"):
		return "credentials"
	case greenhouse.Code("admin_user_invalid"), greenhouse.Code("admin_not_site_admin"):
		return "admin_user"
	}
	return step
}

// runResult is what one sync run did.
type runResult struct {
	summary events.SyncSummary
	err     *syncError
}

// syncUsers runs a complete users listing for a tenant: permissions, users, removal detection,
// license counts, user events, freed and inactive alerts. Order per page: publish, then store;
// the checkpoint advances at the end.
func (s *Service) syncUsers(ctx context.Context, tenant string, sc storedConnection, gc *greenhouse.Client) runResult {
	start := s.now()
	res := runResult{summary: events.SyncSummary{TenantID: tenant, App: appName, RunID: uuid.NewString(), Kind: "users", StartedAt: start}}
	before := gc.Stats()
	fail := func(step string, err error) runResult {
		res.err = newSyncError(step, err)
		return res
	}

	cp, cpRev, err := s.getCheckpoint(ctx, tenant)
	if err != nil {
		return fail("users", err)
	}
	if cp.ObservedSince.IsZero() {
		cp.ObservedSince = start
	}

	hasPerm := map[int64]struct{}{}
	if err := gc.ListUserRoles(ctx, func([]greenhouse.UserRole) error { return nil }); err != nil {
		return fail("permissions", fmt.Errorf("list user roles: %w", err))
	}
	if err := gc.ListJobPermissions(ctx, func(ps []greenhouse.JobPermission) error {
		for _, p := range ps {
			hasPerm[p.UserID] = struct{}{}
		}
		return nil
	}); err != nil {
		return fail("permissions", fmt.Errorf("list job permissions: %w", err))
	}
	if err := gc.ListFutureJobPermissions(ctx, func(ps []greenhouse.FutureJobPermission) error {
		for _, p := range ps {
			hasPerm[p.UserID] = struct{}{}
		}
		return nil
	}); err != nil {
		return fail("permissions", fmt.Errorf("list future job permissions: %w", err))
	}

	prev := map[int64]storage.UserRow{}
	if err := s.store.CurrentUsers(ctx, tenant, appName, func(r storage.UserRow) error {
		prev[r.UserID] = r
		return nil
	}); err != nil {
		return fail("users", internal(codeStorageUnavailable, fmt.Errorf("read stored users: %w", err)))
	}

	alerts, alertRev, err := s.getAlerts(ctx, tenant)
	if err != nil {
		return fail("users", err)
	}

	params := s.usageParams(sc.Doc, cp, start, cp.ActivityThrough)
	version := uint64(start.UnixNano())
	diff := newUserDiff(tenant, start, version, prev)
	counts := map[[2]string]uint32{}
	var (
		rows     []storage.UserRow
		changes  []storage.UserChangeRow // the history of GET …/users/{user_id}, with each user event
		envs     []events.Envelope
		newUsers []int64
	)
	flush := func() error {
		if err := s.publish(ctx, envs); err != nil {
			return fmt.Errorf("publish user events: %w", err)
		}
		// Changes before users: a crash between the two repeats the change in the next sync.
		if err := s.stored(s.store.InsertUserChanges(ctx, changes)); err != nil {
			return fmt.Errorf("store user changes: %w", err)
		}
		if err := s.stored(s.store.UpsertUsers(ctx, rows)); err != nil {
			return fmt.Errorf("store users: %w", err)
		}
		envs, rows, changes = envs[:0], rows[:0], changes[:0]
		return nil
	}
	handle := func(row storage.UserRow, ch *change) error {
		rows = append(rows, row)
		if ch == nil {
			return nil
		}
		rec := record(ch.row, params)
		env, err := events.NewEnvelope(tenant, events.TypeUserChanged, userEventID(tenant, row.UserID, row.Revision),
			fmt.Sprintf("users/%d", row.UserID), start, events.UserChanged{User: rec, Changed: ch.changed, Revision: row.Revision})
		if err != nil {
			return err
		}
		envs = append(envs, env)
		changes = append(changes, userChangeRow(ch.row, ch.changed, diff.now))
		if ch.freed {
			env, err := alertEnvelope(transition{alert: AlertLicenseFreed, seq: uint64(row.Revision), rec: rec}, params, cp.ObservedSince, start)
			if err != nil {
				return err
			}
			envs = append(envs, env)
		}
		if len(ch.changed) == 1 && ch.changed[0] == "created" {
			newUsers = append(newUsers, row.UserID)
		}
		return nil
	}
	evaluate := func(row storage.UserRow) error {
		tr, fire := alerts.evaluate(record(row, params))
		if !fire {
			return nil
		}
		env, err := alertEnvelope(tr, params, cp.ObservedSince, start)
		if err != nil {
			return err
		}
		envs = append(envs, env)
		return nil
	}

	listed := 0
	err = gc.ListUsers(ctx, greenhouse.UserQuery{}, func(page []greenhouse.User) error {
		for _, u := range page {
			_, has := hasPerm[u.ID]
			row, ch, ok := diff.apply(u, has)
			if !ok {
				continue
			}
			listed++
			counts[[2]string{row.LicenseType, row.Status}]++
			if err := handle(row, ch); err != nil {
				return err
			}
			if ch != nil && len(ch.changed) == 1 && ch.changed[0] == "created" && !cp.ActivityThrough.IsZero() {
				// A user new to this listing may have acted before: applyActivity below
				// evaluates it once its stored activity is applied, not as never active now.
				continue
			}
			if err := evaluate(row); err != nil {
				return err
			}
		}
		if len(rows) >= flushRows {
			return flush()
		}
		return nil
	})
	if err != nil {
		return fail("users", fmt.Errorf("list users: %w", err))
	}
	for _, ch := range diff.removed() {
		ch := ch
		if err := handle(ch.row, &ch); err != nil {
			return fail("users", err)
		}
		if err := evaluate(ch.row); err != nil {
			return fail("users", err)
		}
		if len(rows) >= flushRows {
			if err := flush(); err != nil {
				return fail("users", err)
			}
		}
	}
	if err := flush(); err != nil {
		return fail("users", err)
	}
	if len(newUsers) > 0 && !cp.ActivityThrough.IsZero() {
		// Users created since the last listing may have acted before they were known: give them
		// the activity already stored.
		if err := s.applyActivity(ctx, tenant, sc, cp.BackfillFrom, cp.ActivityThrough, newUsers, &alerts); err != nil {
			return fail("users", err)
		}
	}

	lc := make([]storage.LicenseCountRow, 0, len(counts))
	ts := start.Truncate(time.Second)
	for k, n := range counts {
		lc = append(lc, storage.LicenseCountRow{TenantID: tenant, App: appName, TS: ts, LicenseType: k[0], Status: k[1], Users: n})
	}
	if err := s.stored(s.store.InsertLicenseCounts(ctx, lc)); err != nil {
		return fail("users", fmt.Errorf("store license counts: %w", err))
	}
	if err := s.stored(s.store.RecordUsageCounts(ctx, tenant, appName, ts, params.storage())); err != nil {
		return fail("users", fmt.Errorf("record usage counts: %w", err))
	}
	if err := s.putAlerts(ctx, tenant, alerts, alertRev); err != nil {
		return fail("users", err)
	}
	cp.UsersSyncedAt = start
	if err := s.putCheckpoint(ctx, tenant, cp, cpRev); err != nil {
		return fail("users", err)
	}
	after := gc.Stats()
	res.summary.Users = listed
	res.summary.Requests = int(after.Requests - before.Requests)
	res.summary.Throttled = int(after.Throttled - before.Throttled)
	return res
}

// syncAudit polls the Audit Log from the checkpoint (the first time: a 30-day backfill), stores
// the events window by window, then applies the new activity to users and daily figures.
func (s *Service) syncAudit(ctx context.Context, tenant string, sc storedConnection, gc *greenhouse.Client) runResult {
	start := s.now()
	res := runResult{summary: events.SyncSummary{TenantID: tenant, App: appName, RunID: uuid.NewString(), Kind: "audit", StartedAt: start}}
	before := gc.Stats()
	fail := func(err error) runResult {
		res.err = newSyncError("audit_log", err)
		after := gc.Stats()
		res.summary.Requests = int(after.Requests - before.Requests)
		res.summary.Throttled = int(after.Throttled - before.Throttled)
		return res
	}
	cp, cpRev, err := s.getCheckpoint(ctx, tenant)
	if err != nil {
		return fail(err)
	}
	if cp.ObservedSince.IsZero() {
		cp.ObservedSince = start
	}
	// Activity is up to date when the last poll applied everything it stored.
	activityCurrent := !cp.ActivityThrough.IsZero() && !cp.ActivityThrough.Before(cp.AuditThrough)
	from := cp.AuditThrough.Add(-auditOverlap)
	if cp.AuditThrough.IsZero() {
		// First poll: backfill everything the Audit Log still keeps (30 days): the tenant's
		// usage is known from then on.
		cp.BackfillFrom = start.Add(-auditRetention).Truncate(time.Second)
		from = cp.BackfillFrom
	}
	if earliest := start.Add(-auditRetention).Truncate(time.Second); from.Before(earliest) {
		from = earliest
	}
	lastSave := s.now()
	stored := 0
	err = gc.AuditEvents(ctx, from, start, func(b greenhouse.AuditBatch) error {
		if len(b.Events) > 0 {
			rows := make([]storage.AuditEventRow, len(b.Events))
			for i, e := range b.Events {
				rows[i] = auditRow(tenant, e)
			}
			if err := s.stored(s.store.InsertAuditEvents(ctx, rows)); err != nil {
				return fmt.Errorf("store audit events: %w", err)
			}
			stored += len(rows)
			s.metrics.auditEvents.Add(float64(len(rows)))
		}
		if !b.Through.IsZero() && b.Through.After(cp.AuditThrough) {
			cp.AuditThrough = b.Through
			if s.now().Sub(lastSave) >= checkpointEvery {
				rev, err := s.saveCheckpoint(ctx, tenant, cp, cpRev)
				if err != nil {
					return err
				}
				cpRev, lastSave = rev, s.now()
			}
		}
		return nil
	})
	res.summary.Events = stored
	if err != nil {
		// Keep what is durable: the checkpoint already reflects stored windows.
		if rev, serr := s.saveCheckpoint(ctx, tenant, cp, cpRev); serr == nil {
			cpRev = rev
		}
		return fail(fmt.Errorf("read audit log: %w", err))
	}
	if cp.AuditThrough.Before(start) {
		cp.AuditThrough = start
	}
	if cp.CoverageStart.IsZero() {
		cp.CoverageStart = cp.BackfillFrom
	}
	// Nothing new and nothing pending: last activity and daily figures cannot have changed,
	// so the poll skips re-reading them (the bulk of a poll's ClickHouse cost at scale,
	// docs/performance.md#scale). Usage that changes with time alone (a license crossing the
	// inactivity threshold) is evaluated by the users sync.
	if stored > 0 || !activityCurrent {
		rev, err := s.saveCheckpoint(ctx, tenant, cp, cpRev)
		if err != nil {
			return fail(err)
		}
		cpRev = rev
		alerts, alertRev, err := s.getAlerts(ctx, tenant)
		if err != nil {
			return fail(err)
		}
		actFrom := cp.ActivityThrough.Add(-auditOverlap)
		if cp.ActivityThrough.IsZero() {
			actFrom = cp.BackfillFrom
		}
		if err := s.applyActivity(ctx, tenant, sc, actFrom, cp.AuditThrough, nil, &alerts); err != nil {
			return fail(err)
		}
		if err := s.putAlerts(ctx, tenant, alerts, alertRev); err != nil {
			return fail(err)
		}
	}
	cp.ActivityThrough = cp.AuditThrough
	if _, err := s.saveCheckpoint(ctx, tenant, cp, cpRev); err != nil {
		return fail(err)
	}
	after := gc.Stats()
	res.summary.Requests = int(after.Requests - before.Requests)
	res.summary.Throttled = int(after.Throttled - before.Throttled)
	return res
}

// applyActivity recomputes, from the stored events in [from, through), each user's newest
// activity and the daily activity of the days touched; users whose last activity advanced
// get a saas.usage.updated event and a new row, and every license holder's usage is
// re-evaluated for alerts. Only users in ids are considered when ids is non-empty.
func (s *Service) applyActivity(ctx context.Context, tenant string, sc storedConnection, from, through time.Time, ids []int64, alerts *alertState) error {
	if !through.After(from) {
		return nil
	}
	acts, err := s.store.UserActivity(ctx, tenant, from, through, ids)
	if err != nil {
		return internal(codeStorageUnavailable, fmt.Errorf("read user activity: %w", err))
	}
	if len(ids) == 0 {
		var days []time.Time
		for d := from.UTC().Truncate(24 * time.Hour); d.Before(through); d = d.Add(24 * time.Hour) {
			days = append(days, d)
		}
		if err := s.stored(s.store.RefreshDailyActivity(ctx, tenant, days)); err != nil {
			return fmt.Errorf("refresh daily activity: %w", err)
		}
	}
	byUser := make(map[int64]storage.UserActivity, len(acts))
	for _, a := range acts {
		byUser[a.UserID] = a
	}
	cp, _, err := s.getCheckpoint(ctx, tenant)
	if err != nil {
		return err
	}
	now := s.now()
	params := s.usageParams(sc.Doc, cp, now, through)
	version := uint64(now.UnixNano())
	var (
		rows []storage.UserRow
		envs []events.Envelope
	)
	err = s.store.CurrentUsers(ctx, tenant, appName, func(r storage.UserRow) error {
		if a, ok := byUser[r.UserID]; ok && (r.LastActivityAt == nil || a.LastEventAt.After(*r.LastActivityAt)) {
			prevAt := r.LastActivityAt
			at := a.LastEventAt.UTC()
			r.LastActivityAt = &at
			r.LastActivityType = a.LastEventType
			r.Version = version
			rows = append(rows, r)
			env, err := events.NewEnvelope(tenant, events.TypeUsageUpdated,
				fmt.Sprintf("%s:usage:%d:%d", tenant, r.UserID, at.Unix()), fmt.Sprintf("users/%d", r.UserID), now,
				events.UsageUpdated{TenantID: tenant, App: appName, UserID: r.UserID, LastActivityAt: at, LastEventType: a.LastEventType,
					PreviousActivityAt: prevAt, EventsInPoll: int(a.Events)})
			if err != nil {
				return err
			}
			envs = append(envs, env)
		}
		if r.Status == StatusRemoved {
			return nil
		}
		tr, fire := alerts.evaluate(record(r, params))
		if fire {
			env, err := alertEnvelope(tr, params, cp.ObservedSince, now)
			if err != nil {
				return err
			}
			envs = append(envs, env)
		}
		return nil
	})
	if err != nil {
		return internal(codeStorageUnavailable, fmt.Errorf("apply activity: %w", err))
	}
	if err := s.publish(ctx, envs); err != nil {
		return fmt.Errorf("publish usage events: %w", err)
	}
	if err := s.stored(s.store.UpsertUsers(ctx, rows)); err != nil {
		return fmt.Errorf("store user activity: %w", err)
	}
	return nil
}

func auditRow(tenant string, e greenhouse.AuditEvent) storage.AuditEventRow {
	return storage.AuditEventRow{
		TenantID:       tenant,
		EventID:        e.ID,
		EventTime:      e.Time.UTC(),
		EventType:      e.Type,
		TargetType:     e.TargetType,
		TargetID:       e.TargetID,
		PerformerType:  e.PerformerType,
		PerformerID:    e.PerformerID,
		PerformerName:  e.PerformerName,
		PerformerEmail: e.PerformerEmail,
		PerformerIP:    e.PerformerIP,
		RequestID:      e.RequestID,
		RequestType:    e.RequestType,
		Meta:           e.Meta,
	}
}

// getCheckpoint reads a tenant's checkpoint; absent is the zero checkpoint with revision 0.
func (s *Service) getCheckpoint(ctx context.Context, tenant string) (checkpoint, uint64, error) {
	cp, rev, err := s.checkpoints.Get(ctx, connectionKey(tenant))
	if errors.Is(err, events.ErrNotFound) {
		return checkpoint{}, 0, nil
	}
	if err != nil {
		return checkpoint{}, 0, internal(codeNATSUnavailable, fmt.Errorf("read checkpoint of tenant %q: %w", tenant, err))
	}
	return cp, rev, nil
}

// saveCheckpoint writes a checkpoint with compare-and-set and returns the new revision.
func (s *Service) saveCheckpoint(ctx context.Context, tenant string, cp checkpoint, rev uint64) (uint64, error) {
	var (
		n   uint64
		err error
	)
	if rev == 0 {
		n, err = s.checkpoints.Create(ctx, connectionKey(tenant), cp)
	} else {
		n, err = s.checkpoints.Update(ctx, connectionKey(tenant), cp, rev)
	}
	if err != nil {
		return 0, internal(codeNATSUnavailable, fmt.Errorf("save checkpoint of tenant %q: %w", tenant, err))
	}
	return n, nil
}

func (s *Service) putCheckpoint(ctx context.Context, tenant string, cp checkpoint, rev uint64) error {
	_, err := s.saveCheckpoint(ctx, tenant, cp, rev)
	return err
}

func (s *Service) getAlerts(ctx context.Context, tenant string) (alertState, uint64, error) {
	st, rev, err := s.alerts.Get(ctx, connectionKey(tenant))
	if errors.Is(err, events.ErrNotFound) {
		return alertState{Users: map[string]alertUser{}}, 0, nil
	}
	if err != nil {
		return alertState{}, 0, internal(codeNATSUnavailable, fmt.Errorf("read alert state of tenant %q: %w", tenant, err))
	}
	if st.Users == nil {
		st.Users = map[string]alertUser{}
	}
	return st, rev, nil
}

func (s *Service) putAlerts(ctx context.Context, tenant string, st alertState, rev uint64) error {
	var err error
	if rev == 0 {
		_, err = s.alerts.Create(ctx, connectionKey(tenant), st)
	} else {
		_, err = s.alerts.Update(ctx, connectionKey(tenant), st, rev)
	}
	if err != nil {
		return internal(codeNATSUnavailable, fmt.Errorf("save alert state of tenant %q: %w", tenant, err))
	}
	return nil
}
