package storage

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// AuditEventRow is one Audit Log event of a tenant. EventID is the stable hash of the event
// (docs/architecture.md, exactness rule 2); the key (tenant_id, event_time, event_id) makes a
// re-inserted event a duplicate that readers and merges drop.
type AuditEventRow struct {
	TenantID, EventID string
	EventTime         time.Time
	EventType, TargetType, TargetID,
	PerformerType, PerformerID, PerformerName, PerformerEmail, PerformerIP,
	RequestID, RequestType, Meta string
}

const insertAuditSQL = `INSERT INTO {db}.audit_events (tenant_id, event_id, event_time, event_type, target_type, target_id,
 performer_type, performer_id, performer_name, performer_email, performer_ip, request_id, request_type, meta, ingested_at)`

// InsertAuditEvents writes rows and returns once they are durable in ClickHouse. Concurrent
// callers (many tenants) are group-committed: their rows are batched into one INSERT that is
// sent when Config.AuditBatchRows rows are pending or Config.AuditFlushInterval has passed,
// and on Close. Memory is bounded by Config.AuditBufferRows: a caller blocks while the buffer
// is full. A batch whose INSERT fails with a retryable error (connection refused or lost,
// timeouts, overload) is retried with backoff, with the same rows, for as long as any of its
// callers' contexts lives; the rows are idempotent by key, so a retry of an INSERT that did
// land adds nothing readers see. Each caller gets the error of its own batch, ctx.Err() when
// its context ends first, or ErrClosed after Close.
func (s *Store) InsertAuditEvents(ctx context.Context, rows []AuditEventRow) error {
	if len(rows) == 0 {
		return nil
	}
	if err := s.audit.write(ctx, rows); err != nil {
		return fmt.Errorf("insert %d audit events: %w", len(rows), err)
	}
	return nil
}

// groupReq is one caller's chunk of rows and where its outcome goes.
type groupReq[R any] struct {
	ctx  context.Context
	rows []R
	done chan error // buffered 1; receives exactly one value
}

// groupWriter group-commits the rows of many callers into one INSERT per batch (the audit
// events', and the small per-run writes of writers.go): send writes one batch's rows
// (the chunks of its callers).
type groupWriter[R any] struct {
	s       *Store
	name    string // the table, for the log
	send    func(ctx context.Context, chunks [][]R) error
	opts    groupOptions
	reqs    chan *groupReq[R]
	batches chan []*groupReq[R]
	room    *semaphore.Weighted // rows accepted but not yet finished
	quit    chan struct{}       // closed by close: flush what is pending, then stop
	abort   chan struct{}       // closed CloseTimeout after quit: stop retrying
	life    context.Context     // canceled on abort; parent of every INSERT attempt
	cancel  context.CancelFunc
	once    sync.Once
	wg      sync.WaitGroup

	inserts, rows, retries atomic.Uint64
}

// AuditStats counts the audit writer's work since Open.
type AuditStats struct {
	Inserts uint64 // successful INSERTs (each a group-committed batch)
	Rows    uint64 // rows in those INSERTs
	Retries uint64 // failed INSERT attempts that were retried
}

// AuditStats returns the audit writer's counters.
func (s *Store) AuditStats() AuditStats {
	return AuditStats{Inserts: s.audit.inserts.Load(), Rows: s.audit.rows.Load(), Retries: s.audit.retries.Load()}
}

// groupOptions size a groupWriter: rows per INSERT, how long a pending row waits for more,
// the rows accepted but unwritten (callers block beyond), and concurrent INSERTs.
type groupOptions struct {
	batchRows, bufferRows, workers int
	flushInterval                  time.Duration
	// minGap: a batch that is not full leaves no sooner than minGap after the batch before
	// it. An idle writer's row still waits flushInterval only, but under load a table gets
	// at most one INSERT per minGap, so fewer and larger parts for ClickHouse to merge
	// (docs/performance.md, "Tenth session"). A batch that a request does not fit into
	// leaves at once (the request starts the next one), gap or not.
	minGap time.Duration
	// once: a failed INSERT fails its callers at once instead of being retried, for callers
	// that keep what failed and retry it themselves (the connection outbox).
	once bool
}

func newGroupWriter[R any](s *Store, name string, opts groupOptions, send func(ctx context.Context, chunks [][]R) error) *groupWriter[R] {
	life, cancel := context.WithCancel(context.Background())
	w := &groupWriter[R]{
		s:       s,
		name:    name,
		send:    send,
		opts:    opts,
		reqs:    make(chan *groupReq[R]),
		batches: make(chan []*groupReq[R]),
		room:    semaphore.NewWeighted(int64(opts.bufferRows)),
		quit:    make(chan struct{}),
		abort:   make(chan struct{}),
		life:    life,
		cancel:  cancel,
	}
	w.wg.Add(1 + opts.workers)
	go w.accumulate()
	for range opts.workers {
		go w.work()
	}
	return w
}

// write splits rows into chunks of at most a batch, hands each to the accumulator once there
// is room, and waits for all of them.
func (w *groupWriter[R]) write(ctx context.Context, rows []R) error {
	n := w.opts.batchRows
	var pending []*groupReq[R]
	for start := 0; start < len(rows); start += n {
		chunk := rows[start:min(start+n, len(rows))]
		if err := w.room.Acquire(ctx, int64(len(chunk))); err != nil {
			return err
		}
		r := &groupReq[R]{ctx: ctx, rows: chunk, done: make(chan error, 1)}
		select {
		case w.reqs <- r:
			pending = append(pending, r)
		case <-ctx.Done():
			w.room.Release(int64(len(chunk)))
			return ctx.Err()
		case <-w.quit:
			w.room.Release(int64(len(chunk)))
			return ErrClosed
		}
	}
	var first error
	for _, r := range pending {
		select {
		case err := <-r.done:
			if err != nil && first == nil {
				first = err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return first
}

// accumulate groups requests into batches of at most batchRows rows (a larger request is a
// batch of its own). A batch is ready when it is full or when its oldest request has waited
// flushInterval, and leaves when a worker takes it: while every worker is busy with an
// INSERT, a ready batch keeps taking requests until it is full, so under load the INSERTs
// grow instead of queueing (fewer, larger parts), and a full batch holds further callers
// back. With minGap, a batch that is not full waits until minGap has passed since the last
// batch left as well.
func (w *groupWriter[R]) accumulate() {
	defer w.wg.Done()
	defer close(w.batches)
	var (
		batch []*groupReq[R]
		rows  int
		ready bool
		carry *groupReq[R] // a request that did not fit the ready batch: the next batch's first
		timer = time.NewTimer(time.Hour)
		armed bool
		left  time.Time // when the last batch left
	)
	timer.Stop()
	add := func(r *groupReq[R]) {
		if rows > 0 && rows+len(r.rows) > w.opts.batchRows {
			carry, ready = r, true
			return
		}
		batch = append(batch, r)
		rows += len(r.rows)
		if rows >= w.opts.batchRows {
			ready = true
		} else if !armed {
			timer.Reset(max(w.opts.flushInterval, time.Until(left.Add(w.opts.minGap))))
			armed = true
		}
	}
	sent := func() {
		batch, rows, ready, left = nil, 0, false, time.Now()
		if armed {
			timer.Stop()
			armed = false
		}
		if r := carry; r != nil {
			carry = nil
			add(r)
		}
	}
	for {
		var in chan *groupReq[R]
		if carry == nil && rows < w.opts.batchRows {
			in = w.reqs
		}
		var out chan []*groupReq[R]
		if ready && len(batch) > 0 {
			out = w.batches
		}
		select {
		case r := <-in:
			add(r)
		case out <- batch:
			sent()
		case <-timer.C:
			armed, ready = false, true
		case <-w.quit:
			for len(batch) > 0 {
				w.batches <- batch
				sent()
			}
			return
		}
	}
}

func (w *groupWriter[R]) work() {
	defer w.wg.Done()
	for batch := range w.batches {
		w.insert(batch)
	}
}

// finish reports err to r and returns its rows' room.
func (w *groupWriter[R]) finish(r *groupReq[R], err error) {
	r.done <- err
	w.room.Release(int64(len(r.rows)))
}

// insert writes one batch, retrying retryable failures with backoff while a caller waits.
func (w *groupWriter[R]) insert(batch []*groupReq[R]) {
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		live := batch[:0]
		for _, r := range batch {
			if err := r.ctx.Err(); err != nil {
				w.finish(r, err)
				continue
			}
			live = append(live, r)
		}
		batch = live
		if len(batch) == 0 {
			return
		}
		select {
		case <-w.abort:
			for _, r := range batch {
				w.finish(r, ErrClosed)
			}
			return
		default:
		}
		err := w.sendBatch(batch)
		if err == nil {
			w.inserts.Add(1)
			for _, r := range batch {
				w.rows.Add(uint64(len(r.rows)))
				w.finish(r, nil)
			}
			return
		}
		if w.opts.once || w.life.Err() == nil && !retryable(err) && !errors.Is(err, context.DeadlineExceeded) {
			for _, r := range batch {
				w.finish(r, err)
			}
			return
		}
		n := 0
		for _, r := range batch {
			n += len(r.rows)
		}
		w.retries.Add(1)
		w.s.log.Warn().Err(err).Str("table", w.name).Int("rows", n).Int("attempt", attempt).Dur("retry_in", backoff).Msg("insert failed; retrying")
		t := time.NewTimer(backoff + rand.N(backoff/2))
		select {
		case <-t.C:
		case <-w.abort:
			t.Stop()
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// sendBatch runs one INSERT of every row of batch.
func (w *groupWriter[R]) sendBatch(batch []*groupReq[R]) error {
	ctx, cancel := context.WithTimeout(w.life, w.s.cfg.InsertTimeout)
	defer cancel()
	chunks := make([][]R, len(batch))
	for i, r := range batch {
		chunks[i] = r.rows
	}
	return w.send(ctx, chunks)
}

// flat adapts a sender of one slice of rows to a groupWriter's send: the chunks are copied
// into one slice (a single chunk is not).
func flat[R any](send func(ctx context.Context, rows []R) error) func(ctx context.Context, chunks [][]R) error {
	return func(ctx context.Context, chunks [][]R) error {
		if len(chunks) == 1 {
			return send(ctx, chunks[0])
		}
		n := 0
		for _, c := range chunks {
			n += len(c)
		}
		rows := make([]R, 0, n)
		for _, c := range chunks {
			rows = append(rows, c...)
		}
		return send(ctx, rows)
	}
}

// sendAudit runs one INSERT of audit rows over a connection of the native pool (native.go).
func (s *Store) sendAudit(ctx context.Context, chunks [][]AuditEventRow) error {
	return s.native.insert(ctx, s.sql(insertAuditSQL), chunks)
}

// close flushes the pending requests and waits for the workers; after CloseTimeout, retries
// stop and the callers of unwritten rows get ErrClosed.
func (w *groupWriter[R]) close() {
	w.once.Do(func() {
		close(w.quit)
		done := make(chan struct{})
		go func() { w.wg.Wait(); close(done) }()
		t := time.NewTimer(w.s.cfg.CloseTimeout)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			close(w.abort)
			w.cancel()
			<-done
		}
		w.cancel()
	})
}
