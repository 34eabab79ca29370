package collector

import (
	"context"
	"fmt"
	"time"

	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse"
	"github.com/seatwatch/greenhouse-collector/events"
	"github.com/seatwatch/greenhouse-collector/storage"
)

// auditWriter stores an Audit Log poll's batches and advances its checkpoint.
type auditWriter struct {
	s        *syncer
	tenant   string
	cp       checkpoint
	rev      uint64
	lastSave time.Time
	stored   int
	used     int // of the stored events, those that are a use of a seat (storage.SeatUse)
	// known are the events the last poll stored in this poll's overlap (checkpoint.OverlapIDs);
	// read are the events read by this poll, for the next poll's.
	known map[string]struct{}
	read  []readEvent
	// keepFrom: an event before it cannot be in the next poll's overlap (the checkpoint ends
	// at or after the poll's start).
	keepFrom time.Time
}

// readEvent is an event read by a poll: its id and time.
type readEvent struct {
	id string
	at time.Time
}

// maxOverlapIDs bounds checkpoint.OverlapIDs (the checkpoint is a KV value of its own).
const maxOverlapIDs = 2000

// syncAudit polls the Audit Log from the checkpoint (the first time: a 30-day backfill), stores
// the events window by window, then applies the new activity to users and daily figures.
func (s *syncer) syncAudit(ctx context.Context, tenant string, sc storedConnection, gc greenhouseClient) runResult {
	res, before := newRun(tenant, events.RunAudit, s.now()), gc.Stats()
	start := res.summary.StartedAt
	fail := func(err error) runResult {
		res.err = newSyncError(greenhouse.CheckAuditLog, err)
		res.countRequests(before, gc.Stats())
		return res
	}
	cp, cpRev, err := s.checkpoints.begin(ctx, tenant, start)
	if err != nil {
		return fail(err)
	}
	// Activity is up to date when the last poll applied everything it stored.
	activityCurrent := !cp.ActivityThrough.IsZero() && !cp.ActivityThrough.Before(cp.AuditThrough)
	w := &auditWriter{s: s, tenant: tenant, cp: cp, rev: cpRev, lastSave: s.now(),
		known: make(map[string]struct{}, len(cp.OverlapIDs)), keepFrom: start.Add(-auditOverlap)}
	for _, id := range cp.OverlapIDs {
		w.known[id] = struct{}{}
	}
	err = gc.AuditEvents(ctx, w.pollFrom(start), start, func(b greenhouse.AuditBatch) error { return w.batch(ctx, b) })
	res.summary.Events = w.stored
	if err != nil {
		// Keep what is durable: the checkpoint already reflects stored windows.
		_, _ = s.checkpoints.save(ctx, tenant, w.cp, w.rev)
		return fail(fmt.Errorf("read audit log: %w", err))
	}
	cp, cpRev = w.cp, w.rev
	if cp.AuditThrough.Before(start) {
		cp.AuditThrough = start
	}
	if cp.CoverageStart.IsZero() {
		cp.CoverageStart = cp.BackfillFrom
	}
	cp.OverlapIDs = w.overlap(cp.AuditThrough.Add(-auditOverlap))
	// No new use of a seat and nothing pending: last activity and daily figures cannot have
	// changed, so the poll skips re-reading them (the bulk of a poll's ClickHouse cost at
	// scale, docs/performance.md#scale). New events that are no use of a seat (the collector's
	// own Harvest reads are logged as harvest_access) change neither. Usage that changes with
	// time alone (a license crossing the inactivity threshold) is evaluated by the users sync.
	if w.used > 0 || !activityCurrent {
		if cpRev, err = s.applyPolled(ctx, tenant, sc, cp, cpRev); err != nil {
			return fail(err)
		}
	}
	cp.ActivityThrough = cp.AuditThrough
	if _, err := s.checkpoints.save(ctx, tenant, cp, cpRev); err != nil {
		return fail(err)
	}
	res.countRequests(before, gc.Stats())
	return res
}

// applyPolled saves the checkpoint of a poll whose events are stored, then applies their
// activity (from where the last application ended, less auditOverlap; the first time from the
// backfill's start) with the alerts it brings. It returns the checkpoint's new revision.
func (s *syncer) applyPolled(ctx context.Context, tenant string, sc storedConnection, cp checkpoint, rev uint64) (uint64, error) {
	rev, err := s.checkpoints.save(ctx, tenant, cp, rev)
	if err != nil {
		return rev, err
	}
	alerts, alertRev, sc, err := s.judgingState(ctx, tenant, sc)
	if err != nil {
		return rev, err
	}
	from := cp.ActivityThrough.Add(-auditOverlap)
	if cp.ActivityThrough.IsZero() {
		from = cp.BackfillFrom
	}
	if err := s.applyActivity(ctx, tenant, sc, from, cp.AuditThrough, nil, &alerts); err != nil {
		return rev, err
	}
	return rev, s.alerts.put(ctx, tenant, alerts, alertRev)
}

// pollFrom is where a poll starting at start reads from: the checkpoint less auditOverlap, or
// on the first poll everything the Audit Log still keeps (30 days), from then on the tenant's
// usage is known; never before the retention.
func (w *auditWriter) pollFrom(start time.Time) time.Time {
	from := w.cp.AuditThrough.Add(-auditOverlap)
	if w.cp.AuditThrough.IsZero() {
		w.cp.BackfillFrom = start.Add(-auditRetention).Truncate(time.Second)
		from = w.cp.BackfillFrom
	}
	if earliest := start.Add(-auditRetention).Truncate(time.Second); from.Before(earliest) {
		from = earliest
	}
	return from
}

// overlap returns the ids of the events this poll read at or after from (all stored: read
// and stored, or known from the last poll), or nil when there are more than maxOverlapIDs.
func (w *auditWriter) overlap(from time.Time) []string {
	var ids []string
	for _, e := range w.read {
		if e.at.Before(from) {
			continue
		}
		if len(ids) == maxOverlapIDs {
			return nil
		}
		ids = append(ids, e.id)
	}
	return ids
}

// batch stores a batch's events, but those the last poll stored in its overlap (known), then
// advances the checkpoint to its Through, saving it at most every checkpointEvery.
func (w *auditWriter) batch(ctx context.Context, b greenhouse.AuditBatch) error {
	s := w.s
	rows := make([]storage.AuditEventRow, 0, len(b.Events))
	for _, e := range b.Events {
		if !e.Time.Before(w.keepFrom) {
			w.read = append(w.read, readEvent{id: e.ID, at: e.Time})
		}
		if _, ok := w.known[e.ID]; !ok {
			rows = append(rows, auditRow(w.tenant, e))
			if storage.SeatUse(e.PerformerType, e.PerformerID, e.Type, e.RequestType) {
				w.used++
			}
		}
	}
	if len(rows) > 0 {
		if err := s.out.stored(s.store.InsertAuditEvents(ctx, rows)); err != nil {
			return fmt.Errorf("store audit events: %w", err)
		}
		w.stored += len(rows)
		s.metrics.auditEvents.Add(float64(len(rows)))
	}
	if b.Through.IsZero() || !b.Through.After(w.cp.AuditThrough) {
		return nil
	}
	w.cp.AuditThrough = b.Through
	if s.now().Sub(w.lastSave) < checkpointEvery {
		return nil
	}
	rev, err := s.checkpoints.save(ctx, w.tenant, w.cp, w.rev)
	if err != nil {
		return err
	}
	w.rev, w.lastSave = rev, s.now()
	return nil
}

// auditRow is the audit_events row of an Audit Log event.
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
