package collector

import (
	"context"
	"fmt"
	"slices"
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
	// pending are the batches handed to the store and not yet known stored, in order;
	// failed: one of them was not stored, and the checkpoint does not move past it.
	pending []pendingInsert
	failed  bool
	// tally counts the activity of the events a tenant's first backfill stores, which then
	// need not be read back from ClickHouse (applyActivity); nil on any other poll.
	tally *storage.ActivityTally
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
	from := w.pollFrom(start)
	if cp.AuditThrough.IsZero() && cp.BackfillFrom.IsZero() {
		// The tenant's first backfill: saved before anything is stored, so that a later attempt
		// (BackfillFrom set) knows events may be stored that its tally would not see, and reads
		// the activity back instead.
		if w.rev, err = s.checkpoints.save(ctx, tenant, w.cp, w.rev); err != nil {
			return fail(err)
		}
		w.tally = storage.NewActivityTally(from)
	}
	err = gc.AuditEvents(ctx, from, start, func(b greenhouse.AuditBatch) error { return w.batch(ctx, b) })
	if derr := w.drain(ctx); err == nil && derr != nil {
		err = derr
	}
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
		if cpRev, err = s.applyPolled(ctx, tenant, sc, cp, cpRev, w.tally); err != nil {
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
// backfill's start) with the alerts it brings; tally, when not nil, is the activity of every
// event the poll stored. It returns the checkpoint's new revision.
func (s *syncer) applyPolled(ctx context.Context, tenant string, sc storedConnection, cp checkpoint, rev uint64, tally *storage.ActivityTally) (uint64, error) {
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
	if err := s.applyActivity(ctx, tenant, sc, activityRange{from, cp.AuditThrough, nil, tally}, &alerts); err != nil {
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

// maxPendingInserts bounds the batches of one poll whose INSERTs are under way: the poll
// reads the next window while ClickHouse stores the last ones, so the audit writer's group
// commit can wait for other tenants' rows (bigger parts) without slowing a backfill.
const maxPendingInserts = 8

// pendingInsert is a batch handed to the store: done receives the INSERT's outcome (nil
// done: the batch had nothing new to store).
type pendingInsert struct {
	done         chan error
	rows         *[]storage.AuditEventRow // what is being inserted, given back once stored
	through      time.Time
	stored, used int
}

// auditRowsList holds lists of audit_events rows for reuse, a few (Effective Go's leaky
// buffer): one allocated for every batch of every poll was a sixteenth of what the collector
// allocated onboarding (docs/performance.md, "Twelfth session"). It holds as many as the
// INSERTs 16 workers' polls can have under way at once (maxPendingInserts each): with 32,
// most batches still allocated theirs ("Thirteenth session"). A list goes back only once
// its INSERT succeeded (an INSERT given up on may still be read by storage's writer), cleared.
var auditRowsList = make(chan *[]storage.AuditEventRow, 96)

// maxPooledAuditRows bounds the lists kept: a batch is a page, at most 500 events.
const maxPooledAuditRows = 1024

// auditRows is a list with room for n rows, reused if one is free.
func auditRows(n int) *[]storage.AuditEventRow {
	var rows *[]storage.AuditEventRow
	select {
	case rows = <-auditRowsList:
	default:
		rows = new([]storage.AuditEventRow)
	}
	*rows = slices.Grow((*rows)[:0], n)
	return rows
}

// recycleAuditRows keeps a list whose INSERT succeeded for reuse.
func recycleAuditRows(rows *[]storage.AuditEventRow) {
	if rows == nil || cap(*rows) > maxPooledAuditRows {
		return
	}
	clear(*rows)
	*rows = (*rows)[:0]
	select {
	case auditRowsList <- rows:
	default:
	}
}

// batch hands a batch's events to the store, but those the last poll stored in its overlap
// (known), without waiting for the INSERT; settle advances the checkpoint past a batch only
// once it and every batch before it are stored, and saves it at most every checkpointEvery.
func (w *auditWriter) batch(ctx context.Context, b greenhouse.AuditBatch) error {
	p := pendingInsert{through: b.Through}
	list := auditRows(len(b.Events))
	rows := *list
	for _, e := range b.Events {
		if !e.Time.Before(w.keepFrom) {
			w.read = append(w.read, readEvent{id: e.ID, at: e.Time})
		}
		if _, ok := w.known[e.ID]; !ok {
			rows = append(rows, auditRow(w.tenant, e))
			if w.tally != nil {
				w.tally.Add(&rows[len(rows)-1])
			}
			if storage.SeatUse(e.PerformerType, e.PerformerID, e.Type, e.RequestType) {
				p.used++
			}
		}
	}
	*list = rows
	if len(rows) > 0 {
		p.stored, p.done, p.rows = len(rows), make(chan error, 1), list
		go func() { p.done <- w.s.store.InsertAuditEvents(ctx, rows) }()
	} else {
		recycleAuditRows(list)
	}
	w.pending = append(w.pending, p)
	if err := w.settle(ctx, len(w.pending)-maxPendingInserts); err != nil {
		return err
	}
	if w.s.now().Sub(w.lastSave) < checkpointEvery {
		return nil
	}
	rev, err := w.s.checkpoints.save(ctx, w.tenant, w.cp, w.rev)
	if err != nil {
		return err
	}
	w.rev, w.lastSave = rev, w.s.now()
	return nil
}

// settle takes the finished batches off the front of pending, waiting for at least the
// first wait of them (with the worker given back, idle), and advances the checkpoint to the
// last one's Through. The first failed INSERT is returned; the batches after it stay pending
// (drain waits for them) and are never counted.
func (w *auditWriter) settle(ctx context.Context, wait int) error {
	for len(w.pending) > 0 {
		p := w.pending[0]
		if p.done != nil {
			var err error
			select {
			case err = <-p.done:
			default:
				if wait <= 0 {
					return nil
				}
				idle(ctx, func() { err = <-p.done })
			}
			if err != nil && !w.failed {
				w.pending, w.failed = w.pending[1:], true
				return fmt.Errorf("store audit events: %w", w.s.out.stored(err))
			}
			if err == nil {
				recycleAuditRows(p.rows)
			}
		}
		wait--
		w.pending = w.pending[1:]
		if w.failed {
			continue
		}
		w.stored += p.stored
		w.used += p.used
		w.s.metrics.auditEvents.Add(float64(p.stored))
		if !p.through.IsZero() && p.through.After(w.cp.AuditThrough) {
			w.cp.AuditThrough = p.through
		}
	}
	return nil
}

// drain waits for every pending batch, settling those stored; it returns the first failure.
// A poll drains before it ends, however it ends: no INSERT outlives its poll.
func (w *auditWriter) drain(ctx context.Context) error {
	var first error
	for len(w.pending) > 0 {
		if err := w.settle(ctx, len(w.pending)); err != nil && first == nil {
			first = err
		}
	}
	return first
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
