package collector

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/seatwatch/greenhouse-collector/connectors"
	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse"
	"github.com/seatwatch/greenhouse-collector/events"
	"github.com/seatwatch/greenhouse-collector/storage"
)

// The syncer runs a tenant's due runs (a job) and records each: the users run
// (sync_users.go), the Audit Log run (sync_audit.go) and the activity both apply
// (activity.go). It depends on the small interfaces below, declared here where they are used,
// so that its steps run in tests on fakes without ClickHouse, NATS or the simulator
// (syncer_test.go).

// greenhouseClient is what a sync reads from Greenhouse: *greenhouse.Client.
type greenhouseClient interface {
	ListUsers(ctx context.Context, q greenhouse.UserQuery, fn func([]greenhouse.User) error) error
	ListUserRoles(ctx context.Context, fn func([]greenhouse.UserRole) error) error
	ListJobPermissions(ctx context.Context, fn func([]greenhouse.JobPermission) error) error
	ListFutureJobPermissions(ctx context.Context, fn func([]greenhouse.FutureJobPermission) error) error
	// AuditEvents' fn must not keep a batch's Events list once it returns (greenhouse.AuditBatch).
	AuditEvents(ctx context.Context, from, to time.Time, fn func(greenhouse.AuditBatch) error) error
	Stats() greenhouse.Stats
}

// clientSource gives a tenant's Greenhouse client for a sync: *clientCache.
type clientSource interface {
	client(ctx context.Context, tenant string, sc storedConnection) (greenhouseClient, error)
}

// syncStore is the ClickHouse a sync reads and writes: *storage.Store. A write that returned
// nil no longer reads its rows: the collector reuses the lists (passBuffers, auditRowsList).
type syncStore interface {
	CurrentUsers(ctx context.Context, tenant, app string, fn func(storage.UserRow) error) error
	UpsertUsers(ctx context.Context, rows []storage.UserRow) error
	InsertLicenseCounts(ctx context.Context, rows []storage.LicenseCountRow) error
	InsertUserChanges(ctx context.Context, rows []storage.UserChangeRow) error
	RecordUsageCounts(ctx context.Context, tenant, app string, ts time.Time, p storage.UsageParams, terms storage.PolicyTerms) ([]storage.SeatFigures, error)
	RecordUtilisation(ctx context.Context, tenant, app string, ts time.Time, u storage.Utilisation, terms storage.PolicyTerms) ([]storage.SeatFigures, error)
	InsertAuditEvents(ctx context.Context, rows []storage.AuditEventRow) error
	UserActivity(ctx context.Context, tenant string, from, to time.Time, ids []int64) ([]storage.UserActivity, error)
	RefreshDailyActivity(ctx context.Context, tenant string, days []time.Time) error
	WriteDailyActivity(ctx context.Context, tenant string, t *storage.ActivityTally) error
	InsertSyncRun(ctx context.Context, row storage.SyncRunRow) error
}

// connectionUpdater reads the tenant's connection (its policy, judgingState), writes a run's
// effects on the document, and announces its queued policy changes: *connections.
type connectionUpdater interface {
	get(ctx context.Context, tenant string) (storedConnection, error)
	update(ctx context.Context, tenant string, generation int64, fn func(*storedConnection)) error
	markSyncStarted(ctx context.Context, tenant string, generation int64, runID string) error
	deliverPolicy(ctx context.Context, tenant string, tp *tenantPolicy) error
}

// kvStore is a KV bucket of T with compare-and-set: *events.KV[T].
type kvStore[T any] interface {
	Get(ctx context.Context, key string) (T, uint64, error)
	Create(ctx context.Context, key string, v T) (uint64, error)
	Update(ctx context.Context, key string, v T, rev uint64) (uint64, error)
}

const (
	// auditRetention is how far back the Audit Log keeps events (docs/greenhouse-wire.md,
	// "Audit Log"); the first backfill starts just inside it.
	auditRetention = 30 * 24 * time.Hour
	// auditOverlap is re-read at the start of every poll, for events indexed late; writes are
	// idempotent so the overlap costs no duplicates.
	auditOverlap = 10 * time.Minute
	// flushRows bounds the rows and events buffered during a users listing.
	flushRows = 2000
	// checkpointEvery bounds how often a long backfill saves its position.
	checkpointEvery = 5 * time.Second
)

// syncer runs and records sync runs; see the top of this file.
type syncer struct {
	cfg         Config
	clients     clientSource
	store       syncStore
	out         outputs
	conns       connectionUpdater
	checkpoints checkpointStore
	alerts      alertStore
	actions     *actions // reclaim actions a job runs a chunk of (action_run.go); nil in tests on fakes
	metrics     *metrics
	observer    func(RunInfo) // nil: none
	users       *usersCache   // nil: every run reads its users from ClickHouse
	sent        *sentMemory   // nil: a failed step's retry publishes its events again
	now         func() time.Time
	log         zerolog.Logger
}

// syncJob is one tenant's due runs, as the scheduler starts them.
type syncJob struct {
	tenant       string
	sc           storedConnection
	users, audit bool
	fresh        bool   // the tenant's first sync under this generation
	runID        string // asked for through the API, or ""
	action       string // a reclaim action to run a chunk of after the Audit Log poll, or ""
}

// syncError is a failed sync step with the check it affects.
type syncError struct {
	check connectors.CheckName // the check it fails; "" for an internal failure
	code  greenhouse.Code      // a check code (docs/api.md), or one of the collector's own (codes.go)
	err   error
}

// newSyncError classifies a failed step: Greenhouse's failures go on the step's check (or on
// credentials or admin_user, whatever the step), the collector's own on none.
func newSyncError(step connectors.CheckName, err error) *syncError {
	if code := internalCode(err); code != "" {
		return &syncError{code: code, err: err}
	}
	code := greenhouse.CodeOf(err)
	return &syncError{check: checkForCode(code, step), code: code, err: err}
}

func (e *syncError) Error() string { return e.err.Error() }
func (e *syncError) Unwrap() error { return e.err }

// checkForCode maps a connector error code to the connect-flow check it belongs to; step is the
// check of the step that failed (users, permissions or audit_log).
func checkForCode(code greenhouse.Code, step connectors.CheckName) connectors.CheckName {
	switch code {
	case greenhouse.CodeInvalidClient, greenhouse.CodeLegacyAPIKey:
		return greenhouse.CheckCredentials
	case greenhouse.CodeAdminUserInvalid, greenhouse.CodeAdminNotSiteAdmin:
		return greenhouse.CheckAdminUser
	}
	return step
}

// runResult is what one sync run did.
type runResult struct {
	summary events.SyncSummary
	err     *syncError
}

// newRun starts the result of a run of kind.
func newRun(tenant string, kind events.RunKind, start time.Time) runResult {
	return runResult{summary: events.SyncSummary{TenantID: tenant, App: connectors.AppGreenhouse, RunID: uuid.NewString(), Kind: kind, StartedAt: start}}
}

// countRequests records the requests and 429s of the run: the client's counters after it
// minus those before.
func (r *runResult) countRequests(before, after greenhouse.Stats) {
	r.summary.Requests = int(after.Requests - before.Requests)
	r.summary.Throttled = int(after.Throttled - before.Throttled)
}

// run runs a tenant's due runs: the users listing first, then the Audit Log. It records
// each run (finish) and returns whether each part succeeded, and when the users run ended.
func (s *syncer) run(ctx context.Context, job syncJob) (usersOK, auditOK bool, usersEnd time.Time) {
	log := s.log.With().Str("tenant", job.tenant).Logger()
	if job.runID != "" {
		// Mark the requested run as begun: a new request now queues a run of its own.
		if err := s.conns.markSyncStarted(ctx, job.tenant, job.sc.Generation, job.runID); err != nil && !errors.Is(err, errStaleGeneration) {
			log.Warn().Err(err).Msg("mark requested sync started")
		}
	}
	gc, err := s.clients.client(ctx, job.tenant, job.sc)
	if err != nil {
		// The secret cannot be opened (a sealing key removed, or the connection was altered
		// in the state store) or the stored endpoints are refused: record a failed run so that
		// the document and a requested run id say so.
		s.finish(ctx, job, s.clientFailure(job, err))
		return false, false, time.Time{}
	}
	var results []runResult
	if job.users {
		r := s.remembering(ctx, job.tenant, "users", func(ctx context.Context) runResult { return s.syncUsers(ctx, job.tenant, job.sc, gc) })
		r.summary.FinishedAt = s.now() // before the Audit Log part of the job
		usersEnd = r.summary.FinishedAt
		results = append(results, job.requested(r))
		usersOK = r.err == nil
	}
	// Credentials or admin user failing: the Audit Log would fail the same way.
	if job.audit && (!job.users || usersOK || !failsEveryRun(results[0].err)) {
		r := s.remembering(ctx, job.tenant, "audit", func(ctx context.Context) runResult { return s.syncAudit(ctx, job.tenant, job.sc, gc) })
		r.summary.FinishedAt = s.now()
		results = append(results, job.requested(r))
		auditOK = r.err == nil
	}
	if cl, ok := gc.(actionClient); ok && job.action != "" && s.actions != nil {
		// After the poll, so that the guards see the newest activity.
		if err := s.actions.run(ctx, job.tenant, job.sc, job.action, cl); err != nil && ctx.Err() == nil {
			log.Warn().Err(err).Str("action_id", job.action).Msg("reclaim action")
		}
	}
	if ctx.Err() != nil {
		// Shutting down: what failed, failed because of it. Nothing is recorded (the
		// checkpoint did not advance; the next owner repeats the step).
		log.Info().Msg("sync abandoned at shutdown")
		return usersOK, auditOK, usersEnd
	}
	for _, r := range results {
		s.finish(ctx, job, r)
	}
	return usersOK, auditOK, usersEnd
}

// remembering runs a sync step with the tenant's sentMemory: the step does not publish again
// what its failed runs published, and a failure of this run remembers what it published.
func (s *syncer) remembering(ctx context.Context, tenant, step string, run func(context.Context) runResult) runResult {
	ctx, t := s.sent.begin(ctx, tenant, step, s.now())
	r := run(ctx)
	s.sent.end(tenant, step, t, r.err == nil, s.now())
	return r
}

// requested gives a run of a requested job the job's run id: one requested sync, its parts
// share the id.
func (job syncJob) requested(r runResult) runResult {
	if job.runID != "" {
		r.summary.RunID = job.runID
	}
	return r
}

// failsEveryRun reports whether a failure is of the credentials or the admin user, which
// every request of every run would meet.
func failsEveryRun(e *syncError) bool {
	return e.check == greenhouse.CheckCredentials || e.check == greenhouse.CheckAdminUser
}

// clientFailure is the failed run of a job whose Greenhouse client could not be had.
func (s *syncer) clientFailure(job syncJob, err error) runResult {
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
	return runResult{
		summary: events.SyncSummary{TenantID: job.tenant, App: connectors.AppGreenhouse, RunID: runID, Kind: kind, StartedAt: s.now()},
		err:     se,
	}
}

// finish records one run: its summary in the metrics, the observer and the log, its
// sync_runs row and saas.sync.completed event, and its effect on the connection document.
func (s *syncer) finish(ctx context.Context, job syncJob, r runResult) {
	log := s.log.With().Str("tenant", job.tenant).Str("run_id", r.summary.RunID).Str("kind", string(r.summary.Kind)).Logger()
	sum := s.summarize(job, r)
	s.report(log, job.tenant, sum, r.err)
	s.recordRun(ctx, log, job.tenant, sum)
	s.applyRun(ctx, log, job, sum, r.err)
}

// summarize completes a run's summary: its end, status, and error code and message.
func (s *syncer) summarize(job syncJob, r runResult) events.SyncSummary {
	sum := r.summary
	if sum.FinishedAt.IsZero() {
		sum.FinishedAt = s.now()
	}
	sum.Status = events.RunSucceeded
	if r.err == nil {
		return sum
	}
	sum.Status = events.RunFailed
	sum.ErrorCode = string(r.err.code)
	sum.ErrorMessage = r.err.Error()
	if msg := internalMessage(r.err.code); msg != "" {
		sum.ErrorMessage = msg // a plain sentence for the customer; the log keeps the cause
	} else if overridden(job.sc.Doc.Endpoints) || r.err.code == codeSealedSecretMismatch || r.err.code == codeEndpointNotAllowed {
		// An overridden endpoint's reply (which the error may quote) never reaches the
		// API; nor do the details of a refused connection (docs/security.md).
		sum.ErrorMessage = checkCodeMessage(r.err.code)
	}
	return sum
}

// report tells the metrics, the observer and the log about a finished run.
func (s *syncer) report(log zerolog.Logger, tenant string, sum events.SyncSummary, runErr *syncError) {
	s.metrics.observeRun(sum)
	if s.observer != nil {
		s.observer(RunInfo{Tenant: tenant, Replica: s.cfg.ReplicaID, RunID: sum.RunID, Kind: sum.Kind, Status: sum.Status, Start: sum.StartedAt, End: sum.FinishedAt})
	}
	ev := log.Info()
	if runErr != nil {
		ev = log.Warn().Str("error_code", sum.ErrorCode).Str("error", runErr.Error())
	}
	ev.Int("users", sum.Users).Int("events", sum.Events).Int("requests", sum.Requests).Int("throttled", sum.Throttled).
		Dur("took", sum.FinishedAt.Sub(sum.StartedAt)).Msg("sync finished")
}

// recordRun stores the run's sync_runs row and publishes its saas.sync.completed; a failure
// of either is logged, not retried.
func (s *syncer) recordRun(ctx context.Context, log zerolog.Logger, tenant string, sum events.SyncSummary) {
	row := storage.SyncRunRow{
		TenantID: tenant, App: connectors.AppGreenhouse, RunID: sum.RunID, Kind: string(sum.Kind), StartedAt: sum.StartedAt, FinishedAt: sum.FinishedAt,
		Status: string(sum.Status), Users: uint32(sum.Users), Events: uint32(sum.Events), Requests: uint32(sum.Requests),
		Throttled: uint32(sum.Throttled), ErrorCode: sum.ErrorCode, ErrorMessage: sum.ErrorMessage,
	}
	var err error
	idle(ctx, func() { err = s.store.InsertSyncRun(ctx, row) })
	if err != nil {
		log.Warn().Err(err).Msg("store sync run")
	}
	env, err := events.NewEnvelope(tenant, events.TypeSyncCompleted, fmt.Sprintf("%s:sync:%s:%s", tenant, sum.RunID, sum.Kind),
		"sync/"+sum.RunID, sum.FinishedAt, sum)
	if err == nil {
		err = s.out.publish(ctx, []events.Envelope{env})
	}
	if err != nil {
		log.Warn().Err(err).Msg("publish sync completed")
	}
}

// applyRun writes a run into the connection document: last_sync, the freshness and first
// sync time of the checkpoint, the end of a requested run, and the checks (a success clears
// those the run exercised, clearedBy; a failure fails its check).
func (s *syncer) applyRun(ctx context.Context, log zerolog.Logger, job syncJob, sum events.SyncSummary, runErr *syncError) {
	cp, _, _ := s.checkpoints.get(ctx, job.tenant)
	if err := s.conns.update(ctx, job.tenant, job.sc.Generation, func(sc *storedConnection) {
		last := sum
		last.TenantID, last.App = "", ""
		sc.Doc.LastSync = &last
		cp.freshen(&sc.Doc)
		if job.runID != "" && sc.SyncRequest == job.runID {
			sc.SyncRequest = ""
		}
		if job.runID != "" && sc.SyncStarted == job.runID {
			sc.SyncStarted = ""
		}
		if runErr == nil && sum.Kind == events.RunUsers {
			sc.SyncedGeneration = sc.Generation
		}
		for i, c := range sc.Doc.Checks {
			switch {
			case runErr == nil && c.Status != connectors.CheckOK && clearedBy(sum.Kind, c.Name):
				sc.Doc.Checks[i] = connectors.Check{Name: c.Name, Status: connectors.CheckOK}
			case runErr != nil && runErr.check != "" && c.Name == runErr.check:
				sc.Doc.Checks[i] = connectors.Check{Name: c.Name, Status: connectors.CheckFailed, Code: string(runErr.code), Message: checkCodeMessage(runErr.code)}
			}
		}
	}); err != nil && !errors.Is(err, errStaleGeneration) {
		log.Warn().Err(err).Msg("update connection")
	}
}

// clearedBy reports whether a successful run of kind clears a failed check: a users run
// exercises every check but the Audit Log's and the optional actions check (which only a
// connect runs), an Audit Log run the Audit Log's.
func clearedBy(kind events.RunKind, check connectors.CheckName) bool {
	switch kind {
	case events.RunUsers:
		return check != greenhouse.CheckAuditLog && check != greenhouse.CheckActions
	case events.RunAudit:
		return check == greenhouse.CheckAuditLog
	}
	return false
}
