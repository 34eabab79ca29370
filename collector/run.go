package collector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/seatwatch/greenhouse-collector/connectors"
	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse"
	"github.com/seatwatch/greenhouse-collector/events"
	"github.com/seatwatch/greenhouse-collector/storage"
)

// Connection states (docs/api.md).
const (
	StateConnected    = "connected"
	StateDegraded     = "degraded"
	StateError        = "error"
	StateDisconnected = "disconnected"
)

// stateOf derives a connection's state and usage_data from its checks: any failure but the
// Audit Log's means no data can be collected (error); an Audit Log failure alone means
// degraded without usage data.
func stateOf(checks []connectors.Check) (state string, usageData bool) {
	state, usageData = StateConnected, true
	for _, c := range checks {
		if c.Status == connectors.CheckOK {
			continue
		}
		if c.Name == greenhouse.CheckAuditLog {
			usageData = false
			if state == StateConnected {
				state = StateDegraded
			}
			continue
		}
		state = StateError
	}
	return state, usageData
}

// runTenant runs a tenant's due syncs: the users listing first, then the Audit Log. It records
// each run (sync_runs, saas.sync.completed, the connection document) and returns whether each
// part succeeded.
func (s *Service) runTenant(ctx context.Context, job syncJob) (usersOK, auditOK bool, usersEnd time.Time) {
	log := s.log.With().Str("tenant", job.tenant).Logger()
	if job.runID != "" {
		// Mark the requested run as begun: a new request now queues a run of its own.
		if err := s.updateConnection(ctx, job.tenant, job.sc.Generation, func(sc *storedConnection) {
			if sc.SyncRequest == job.runID {
				sc.SyncStarted = job.runID
			}
		}); err != nil && !errors.Is(err, errStaleGeneration) {
			log.Warn().Err(err).Msg("mark requested sync started")
		}
	}
	gc, err := s.client(ctx, job.tenant, job.sc)
	if err != nil {
		// The secret cannot be opened (a sealing key removed, or the connection was altered
		// in the state store) or the stored endpoints are refused: record a failed run so that
		// the document and a requested run id say so.
		var se *syncError
		if !errors.As(err, &se) {
			se = &syncError{code: codeClientUnavailable, err: err}
		}
		kind := events.RunUsers
		if !job.users {
			kind = events.RunAudit
		}
		runID := job.runID
		if runID == "" {
			runID = uuid.NewString()
		}
		s.finishRun(ctx, job, runResult{
			summary: events.SyncSummary{TenantID: job.tenant, App: connectors.AppGreenhouse, RunID: runID, Kind: kind, StartedAt: s.now()},
			err:     se,
		})
		return false, false, time.Time{}
	}
	var results []runResult
	if job.users {
		r := s.syncUsers(ctx, job.tenant, job.sc, gc)
		r.summary.FinishedAt = s.now() // before the Audit Log part of the job
		usersEnd = r.summary.FinishedAt
		if job.runID != "" {
			r.summary.RunID = job.runID
		}
		results = append(results, r)
		usersOK = r.err == nil
	}
	if job.audit {
		if job.users && !usersOK && (results[0].err.check == greenhouse.CheckCredentials || results[0].err.check == greenhouse.CheckAdminUser) {
			// Credentials or admin user failing: the Audit Log would fail the same way.
		} else {
			r := s.syncAudit(ctx, job.tenant, job.sc, gc)
			r.summary.FinishedAt = s.now()
			if job.runID != "" {
				r.summary.RunID = job.runID // one requested sync: its parts share the run id
			}
			results = append(results, r)
			auditOK = r.err == nil
		}
	}
	if ctx.Err() != nil {
		// Shutting down: what failed, failed because of it. Nothing is recorded (the
		// checkpoint did not advance; the next owner repeats the step).
		log.Info().Msg("sync abandoned at shutdown")
		return usersOK, auditOK, usersEnd
	}
	for _, r := range results {
		s.finishRun(ctx, job, r)
	}
	return usersOK, auditOK, usersEnd
}

// finishRun records one run: its row, its event, and its effect on the connection document.
func (s *Service) finishRun(ctx context.Context, job syncJob, r runResult) {
	log := s.log.With().Str("tenant", job.tenant).Str("run_id", r.summary.RunID).Str("kind", string(r.summary.Kind)).Logger()
	sum := r.summary
	if sum.FinishedAt.IsZero() {
		sum.FinishedAt = s.now()
	}
	sum.Status = events.RunSucceeded
	if r.err != nil {
		sum.Status = events.RunFailed
		sum.ErrorCode = string(r.err.code)
		sum.ErrorMessage = r.err.Error()
		if msg := internalMessage(r.err.code); msg != "" {
			sum.ErrorMessage = msg // a plain sentence for the customer; the log below keeps the cause
		} else if overridden(job.sc.Doc.Endpoints) || r.err.code == codeSealedSecretMismatch || r.err.code == codeEndpointNotAllowed {
			// An overridden endpoint's reply (which the error may quote) never reaches the
			// API; nor do the details of a refused connection (docs/security.md).
			sum.ErrorMessage = checkCodeMessage(r.err.code)
		}
	}
	s.metrics.observeRun(sum)
	if s.observer != nil {
		s.observer(RunInfo{Tenant: job.tenant, Replica: s.cfg.ReplicaID, RunID: sum.RunID, Kind: sum.Kind, Status: sum.Status, Start: sum.StartedAt, End: sum.FinishedAt})
	}
	ev := log.Info()
	if r.err != nil {
		ev = log.Warn().Str("error_code", sum.ErrorCode).Str("error", r.err.Error())
	}
	ev.Int("users", sum.Users).Int("events", sum.Events).Int("requests", sum.Requests).Int("throttled", sum.Throttled).
		Dur("took", sum.FinishedAt.Sub(sum.StartedAt)).Msg("sync finished")

	if err := s.store.InsertSyncRun(ctx, storage.SyncRunRow{
		TenantID: job.tenant, App: connectors.AppGreenhouse, RunID: sum.RunID, Kind: string(sum.Kind), StartedAt: sum.StartedAt, FinishedAt: sum.FinishedAt,
		Status: string(sum.Status), Users: uint32(sum.Users), Events: uint32(sum.Events), Requests: uint32(sum.Requests),
		Throttled: uint32(sum.Throttled), ErrorCode: sum.ErrorCode, ErrorMessage: sum.ErrorMessage,
	}); err != nil {
		log.Warn().Err(err).Msg("store sync run")
	}
	env, err := events.NewEnvelope(job.tenant, events.TypeSyncCompleted, fmt.Sprintf("%s:sync:%s:%s", job.tenant, sum.RunID, sum.Kind),
		"sync/"+sum.RunID, sum.FinishedAt, sum)
	if err == nil {
		err = s.publish(ctx, []events.Envelope{env})
	}
	if err != nil {
		log.Warn().Err(err).Msg("publish sync completed")
	}

	cp, _, _ := s.getCheckpoint(ctx, job.tenant)
	if err := s.updateConnection(ctx, job.tenant, job.sc.Generation, func(sc *storedConnection) {
		last := sum
		last.TenantID, last.App = "", ""
		sc.Doc.LastSync = &last
		if !cp.UsersSyncedAt.IsZero() {
			t := cp.UsersSyncedAt
			sc.Doc.Freshness.UsersSyncedAt = &t
		}
		if !cp.AuditThrough.IsZero() {
			t := cp.AuditThrough
			sc.Doc.Freshness.AuditSyncedThrough = &t
		}
		if !cp.ObservedSince.IsZero() {
			t := cp.ObservedSince
			sc.Doc.ObservedSince = &t
		}
		if job.runID != "" && sc.SyncRequest == job.runID {
			sc.SyncRequest = ""
		}
		if job.runID != "" && sc.SyncStarted == job.runID {
			sc.SyncStarted = ""
		}
		if r.err == nil && sum.Kind == events.RunUsers {
			sc.SyncedGeneration = sc.Generation
		}
		if r.err == nil {
			// Success clears the checks this run exercised.
			for i, c := range sc.Doc.Checks {
				if c.Status == connectors.CheckOK {
					continue
				}
				if (sum.Kind == events.RunUsers && c.Name != greenhouse.CheckAuditLog) || (sum.Kind == events.RunAudit && c.Name == greenhouse.CheckAuditLog) {
					sc.Doc.Checks[i] = connectors.Check{Name: c.Name, Status: connectors.CheckOK}
				}
			}
			return
		}
		code := r.err.code
		for i, c := range sc.Doc.Checks {
			if r.err.check != "" && c.Name == r.err.check {
				sc.Doc.Checks[i] = connectors.Check{Name: c.Name, Status: connectors.CheckFailed, Code: string(code), Message: checkCodeMessage(code)}
			}
		}
	}); err != nil && !errors.Is(err, errStaleGeneration) {
		log.Warn().Err(err).Msg("update connection")
	}
}

var errStaleGeneration = errors.New("connection was replaced")

// updateConnection applies fn to a tenant's stored connection with compare-and-set, derives
// the state from the checks, and publishes saas.connection.changed and a connection_events row
// when the state or a check changed.
func (s *Service) updateConnection(ctx context.Context, tenant string, generation int64, fn func(*storedConnection)) error {
	dropped := 0
	sc, _, err := s.conns.Modify(ctx, connectionKey(tenant), func(sc storedConnection, exists bool) (storedConnection, error) {
		if !exists || sc.Generation != generation || sc.Secret == nil {
			return sc, errStaleGeneration
		}
		before := sc.Doc
		before.Checks = append([]connectors.Check(nil), sc.Doc.Checks...)
		fn(&sc)
		sc.Doc.State, sc.Doc.UsageData = stateOf(sc.Doc.Checks)
		sc.Doc.UpdatedAt = s.now()
		dropped = sc.queueChange(before.State, connectionChanges(before, sc.Doc))
		return sc, nil
	})
	if err != nil {
		return err
	}
	s.outboxDropped(tenant, dropped)
	if len(sc.Outbox) > 0 {
		return s.deliverOutbox(ctx, tenant, sc.Outbox)
	}
	return nil
}

func (s *Service) outboxDropped(tenant string, n int) {
	if n > 0 {
		s.log.Error().Str("tenant", tenant).Int("dropped", n).Int("kept", maxOutbox).
			Msg("connection changes undelivered for too long: the oldest were dropped")
	}
}

// connectionChanges names what changed between two documents: state, usage_data, check:<name>.
func connectionChanges(a, b events.Connection) []string {
	var out []string
	if a.State != b.State {
		out = append(out, "state")
	}
	if a.UsageData != b.UsageData {
		out = append(out, "usage_data")
	}
	prev := map[connectors.CheckName]connectors.Check{}
	for _, c := range a.Checks {
		prev[c.Name] = c
	}
	for _, c := range b.Checks {
		if p := prev[c.Name]; p.Status != c.Status || p.Code != c.Code {
			out = append(out, "check:"+string(c.Name))
		}
	}
	return out
}

// deliverOutbox stores the connection_events row and publishes saas.connection.changed of each
// change in outbox (the tenant's queued changes as last written), oldest first, and removes
// the delivered ones from the stored connection. Both are idempotent by the change's id
// (ReplacingMergeTree, JetStream deduplication), so a change delivered twice (a crash before
// its removal) is seen once. On a failure the rest stays queued: the next update of the
// document, or the owning replica's scheduler (redeliverOutbox), retries.
func (s *Service) deliverOutbox(ctx context.Context, tenant string, outbox []pendingChange) error {
	delivered := map[string]bool{}
	var failed error
	for _, p := range outbox {
		if err := s.announce(ctx, p); err != nil {
			failed = err
			break
		}
		delivered[p.ID] = true
	}
	if len(delivered) > 0 {
		if _, _, err := s.conns.Modify(ctx, connectionKey(tenant), func(sc storedConnection, exists bool) (storedConnection, error) {
			if !exists {
				return sc, events.ErrNotFound
			}
			sc.Outbox = slices.DeleteFunc(sc.Outbox, func(p pendingChange) bool { return delivered[p.ID] })
			return sc, nil
		}); err != nil {
			return errors.Join(failed, fmt.Errorf("clear delivered connection changes: %w", err))
		}
	}
	return failed
}

// redeliverOutbox delivers what is queued in the tenant's stored connection now.
func (s *Service) redeliverOutbox(ctx context.Context, tenant string) error {
	sc, _, err := s.conns.Get(ctx, connectionKey(tenant))
	if err != nil {
		return fmt.Errorf("read connection: %w", err)
	}
	return s.deliverOutbox(ctx, tenant, sc.Outbox)
}

// announce stores one change's row, then publishes its event. In this order a change retried
// while ClickHouse is down (beyond JetStream's deduplication window) is not published again;
// the row is idempotent by its id whenever it is repeated.
func (s *Service) announce(ctx context.Context, p pendingChange) error {
	doc := p.Doc
	env, err := events.NewEnvelope(doc.TenantID, events.TypeConnectionChanged, p.ID, "connection", doc.UpdatedAt,
		events.ConnectionChanged{Connection: doc, PreviousState: p.Previous, Changed: p.Changed})
	if err != nil {
		return err
	}
	checks, _ := json.Marshal(doc.Checks)
	changedJSON, _ := json.Marshal(p.Changed)
	if err := s.stored(s.store.InsertConnectionEvent(ctx, storage.ConnectionEventRow{
		TenantID: doc.TenantID, App: connectors.AppGreenhouse, TS: doc.UpdatedAt, EventID: p.ID, State: doc.State, UsageData: doc.UsageData,
		Checks: string(checks), Changed: string(changedJSON),
	})); err != nil {
		return fmt.Errorf("store connection event: %w", err)
	}
	if err := s.publish(ctx, []events.Envelope{env}); err != nil {
		return fmt.Errorf("publish connection change: %w", err)
	}
	return nil
}

// newChecks returns the checks of a fresh document: all ok.
func okChecks() []connectors.Check {
	out := make([]connectors.Check, len(greenhouse.CheckNames))
	for i, n := range greenhouse.CheckNames {
		out[i] = connectors.Check{Name: n, Status: connectors.CheckOK}
	}
	return out
}

// durationString renders a duration like the contract's settings ("1h", "5m", "90s").
func durationString(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}
