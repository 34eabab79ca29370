package collector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/seatwatch/greenhouse-collector/connectors"
	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse"
	"github.com/seatwatch/greenhouse-collector/events"
	"github.com/seatwatch/greenhouse-collector/storage"
)

// This file is the one home of a connection document's lifecycle in the connections bucket:
// a connect replaces a tenant's document (a new generation), a disconnect erases its secret, a
// "sync now" marks it, runs update its checks and freshness. Every write is a compare-and-set
// that derives the state from the checks and queues the change in the document's outbox in
// the same write; deliver stores and publishes what is queued, and outboxRetries paces a
// replica's redelivery of what a request or a run could not deliver (exactness rule 7,
// docs/architecture.md).

// Connection states (docs/api.md).
const (
	StateConnected    = "connected"
	StateDegraded     = "degraded"
	StateError        = "error"
	StateDisconnected = "disconnected"
)

// storedConnection is a tenant's connection as kept in the connections KV bucket. The client
// secret is sealed (AES-256-GCM, bound to the tenant, client id, admin user and endpoints of
// Doc: secretBinding) and erased on disconnect. Doc.Endpoints is the one copy of the
// endpoints: what the API shows is what syncs use.
type storedConnection struct {
	Doc    events.Connection `json:"doc"`
	Secret *events.Sealed    `json:"secret,omitempty"`
	// Generation increases with every PUT: a new generation resets the tenant's schedule and
	// its Greenhouse client.
	Generation int64 `json:"generation"`
	// SyncRequest is a run id asked for through the API and not yet finished; the replica that
	// owns the tenant runs it.
	SyncRequest string `json:"sync_request,omitempty"`
	// SyncStarted is the requested run id a replica has begun: once SyncRequest equals it, a new
	// request queues a new run instead of joining the one under way.
	SyncStarted string `json:"sync_started,omitempty"`
	// SyncedGeneration is the generation of the last successful users sync: when it equals
	// Generation, the tenant's first sync is done and a replica that starts (or takes the shard
	// over) resumes its schedule from Doc.Freshness instead of syncing at once.
	SyncedGeneration int64 `json:"synced_generation,omitempty"`
	// Actions are the reclaim actions accepted and not yet finished (collector/actions.go):
	// the replica that owns the tenant runs them.
	Actions   []string  `json:"actions,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// Outbox holds the changes of the document not yet both published
	// (saas.connection.changed) and stored (connection_events): they are queued in the same
	// compare-and-set as the change itself and removed once delivered, so a NATS or
	// ClickHouse failure delays them and loses none (deliver).
	Outbox []pendingChange `json:"outbox,omitempty"`
	// Policy is the tenant's license policy (policy.go); nil until one is set. A connect
	// keeps it.
	Policy *tenantPolicy `json:"policy,omitempty"`
}

// pendingChange is one change of a connection document waiting for delivery.
type pendingChange struct {
	ID       string            `json:"id"` // the CloudEvent id and the connection_events event_id
	Doc      events.Connection `json:"doc"`
	Previous string            `json:"previous"`
	Changed  []string          `json:"changed"`
}

// maxOutbox bounds a connection's undelivered changes (a long outage of NATS or ClickHouse
// with a flapping connection); beyond it the oldest are dropped, and logged.
const maxOutbox = 50

// queueChange records a change of sc's document (made in the same compare-and-set) for
// delivery. It returns the number of changes dropped to stay within maxOutbox.
func (sc *storedConnection) queueChange(previous string, changed []string) int {
	if len(changed) == 0 {
		return 0
	}
	doc := sc.Doc
	doc.Checks = append([]connectors.Check(nil), sc.Doc.Checks...)
	sc.Outbox = append(sc.Outbox, pendingChange{
		ID:       fmt.Sprintf("%s:connection:%d:%d", doc.TenantID, sc.Generation, doc.UpdatedAt.UnixNano()),
		Doc:      doc,
		Previous: previous,
		Changed:  changed,
	})
	dropped := max(0, len(sc.Outbox)-maxOutbox)
	sc.Outbox = sc.Outbox[dropped:]
	return dropped
}

// stateOf derives a connection's state and usage_data from its checks: any failure but the
// Audit Log's means no data can be collected (error); an Audit Log failure alone means
// degraded without usage data.
func stateOf(checks []connectors.Check) (state string, usageData bool) {
	state, usageData = StateConnected, true
	for _, c := range checks {
		if c.Status == connectors.CheckOK {
			continue
		}
		if c.Name == greenhouse.CheckActions {
			continue // optional: reclaim actions are refused without it, nothing else changes
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

// connectionKey is the KV key of a tenant's entries in every bucket.
func connectionKey(tenant string) string { return connectors.AppGreenhouse + "." + tenant }

// tenantFromKey is the inverse of connectionKey.
func tenantFromKey(key string) (string, bool) {
	const prefix = connectors.AppGreenhouse + "."
	if len(key) <= len(prefix) || key[:len(prefix)] != prefix {
		return "", false
	}
	return key[len(prefix):], true
}

// connectionEventStore stores the rows of connection and policy changes: *storage.Store.
type connectionEventStore interface {
	InsertConnectionEvent(ctx context.Context, row storage.ConnectionEventRow) error
	policyChangeStore
}

// connections reads and writes the connection documents; see the top of this file.
type connections struct {
	kv      *events.KV[storedConnection]
	store   connectionEventStore
	out     outputs
	now     func() time.Time
	log     zerolog.Logger
	retries *outboxRetries
}

var (
	errStaleGeneration = errors.New("connection was replaced")
	errDisconnected    = errors.New("disconnected")
	errAlreadyPending  = errors.New("a requested sync is pending") // nothing to write
)

// get reads a tenant's connection; events.ErrNotFound when it has none.
func (c *connections) get(ctx context.Context, tenant string) (storedConnection, error) {
	sc, _, err := c.kv.Get(ctx, connectionKey(tenant))
	return sc, err
}

// each calls fn with every stored connection, in one pass over the bucket: a read per
// connection took 6.9 s for 10,000 tenants (docs/performance.md#scale).
func (c *connections) each(ctx context.Context, fn func(tenant string, sc storedConnection) error) error {
	return c.kv.Values(ctx, connectors.AppGreenhouse+".", func(key string, sc storedConnection, _ uint64) error {
		tenant, _ := tenantFromKey(key)
		return fn(tenant, sc)
	})
}

// connectedExcept counts the connected tenants (those with a stored secret) but tenant.
func (c *connections) connectedExcept(ctx context.Context, tenant string) (int, error) {
	n := 0
	err := c.each(ctx, func(t string, sc storedConnection) error {
		if sc.Secret != nil && t != tenant {
			n++
		}
		return nil
	})
	return n, err
}

// watch calls fn with every connection now stored, then with every change, until ctx ends.
func (c *connections) watch(ctx context.Context, fn func(tenant string, sc storedConnection, deleted bool)) error {
	return c.kv.Watch(ctx, func(key string, sc storedConnection, _ uint64, deleted bool) {
		if tenant, ok := tenantFromKey(key); ok {
			fn(tenant, sc, deleted)
		}
	})
}

// modify writes a tenant's connection with compare-and-set: fn changes it (exists says
// whether there was one) and returns how many queued changes it dropped (queueChange), which
// are logged.
func (c *connections) modify(ctx context.Context, tenant string, fn func(sc *storedConnection, exists bool) (dropped int, err error)) (storedConnection, error) {
	dropped := 0
	sc, _, err := c.kv.Modify(ctx, connectionKey(tenant), func(sc storedConnection, exists bool) (storedConnection, error) {
		var err error
		dropped, err = fn(&sc, exists)
		return sc, err
	})
	if err != nil {
		return sc, err
	}
	if dropped > 0 {
		c.log.Error().Str("tenant", tenant).Int("dropped", dropped).Int("kept", maxOutbox).
			Msg("connection changes undelivered for too long: the oldest were dropped")
	}
	return sc, nil
}

// replace stores doc, whose checks passed, as the tenant's connection with its sealed secret:
// a new generation, keeping the freshness, last run and outbox of the one it replaces, and
// the change queued. The caller delivers the outbox.
func (c *connections) replace(ctx context.Context, tenant string, doc events.Connection, sealed events.Sealed, now time.Time) (storedConnection, error) {
	return c.modify(ctx, tenant, func(sc *storedConnection, exists bool) (int, error) {
		old := *sc
		*sc = storedConnection{Doc: doc, Secret: &sealed, Generation: 1, CreatedAt: now}
		previous := ""
		if exists {
			previous = old.Doc.State
			sc.Generation = old.Generation + 1
			sc.CreatedAt = old.CreatedAt
			sc.Doc.LastSync = old.Doc.LastSync
			sc.Doc.Freshness = old.Doc.Freshness
			sc.Doc.ObservedSince = old.Doc.ObservedSince
			sc.Outbox = old.Outbox
			sc.Actions = old.Actions
			sc.Policy = old.Policy
		}
		return sc.queueChange(previous, connectionChanges(events.Connection{}, sc.Doc)), nil
	})
}

// disconnect erases a tenant's secret and pending sync request and marks it disconnected,
// queueing the change; events.ErrNotFound when it has no connection. The caller delivers the
// outbox.
func (c *connections) disconnect(ctx context.Context, tenant string) (storedConnection, error) {
	return c.modify(ctx, tenant, func(sc *storedConnection, exists bool) (int, error) {
		if !exists {
			return 0, events.ErrNotFound
		}
		previous := sc.Doc.State
		sc.Secret = nil
		sc.SyncRequest = ""
		sc.Doc.State = StateDisconnected
		sc.Doc.UsageData = false
		sc.Doc.UpdatedAt = c.now()
		if previous == StateDisconnected {
			return 0, nil
		}
		return sc.queueChange(previous, []string{"state"}), nil
	})
}

// requestSync asks the owning replica for a sync now under runID and returns the run id
// asked for: runID, or the one already asked for and not begun (one pending request at a
// time). It returns events.ErrNotFound without a connection and errDisconnected for a
// disconnected one.
func (c *connections) requestSync(ctx context.Context, tenant, runID string) (string, error) {
	_, err := c.modify(ctx, tenant, func(sc *storedConnection, exists bool) (int, error) {
		switch {
		case !exists:
			return 0, events.ErrNotFound
		case sc.Secret == nil:
			return 0, errDisconnected
		case sc.SyncRequest != "" && sc.SyncRequest != sc.SyncStarted:
			runID = sc.SyncRequest // join it
			return 0, errAlreadyPending
		}
		sc.SyncRequest = runID
		return 0, nil
	})
	if errors.Is(err, errAlreadyPending) {
		err = nil
	}
	return runID, err
}

// markSyncStarted records that the requested run runID has begun: a new request now queues a
// run of its own.
func (c *connections) markSyncStarted(ctx context.Context, tenant string, generation int64, runID string) error {
	return c.update(ctx, tenant, generation, func(sc *storedConnection) {
		if sc.SyncRequest == runID {
			sc.SyncStarted = runID
		}
	})
}

// update applies fn to a tenant's stored connection of generation with compare-and-set,
// derives the state from the checks, queues the change when the state or a check changed,
// and delivers the outbox. errStaleGeneration: the connection was replaced or disconnected
// meanwhile, and nothing was written.
func (c *connections) update(ctx context.Context, tenant string, generation int64, fn func(*storedConnection)) error {
	sc, err := c.modify(ctx, tenant, func(sc *storedConnection, exists bool) (int, error) {
		if !exists || sc.Generation != generation || sc.Secret == nil {
			return 0, errStaleGeneration
		}
		before := sc.Doc
		before.Checks = append([]connectors.Check(nil), sc.Doc.Checks...)
		fn(sc)
		sc.Doc.State, sc.Doc.UsageData = stateOf(sc.Doc.Checks)
		sc.Doc.UpdatedAt = c.now()
		return sc.queueChange(before.State, connectionChanges(before, sc.Doc)), nil
	})
	if err != nil {
		return err
	}
	if len(sc.Outbox) > 0 {
		return c.deliver(ctx, tenant, sc.Outbox)
	}
	return nil
}

// deliver stores the connection_events row and publishes saas.connection.changed of each
// change in outbox (the tenant's queued changes as last written), oldest first, and removes
// the delivered ones from the stored connection. Both are idempotent by the change's id
// (ReplacingMergeTree, JetStream deduplication), so a change delivered twice (a crash before
// its removal) is seen once. On a failure the rest stays queued: the next update of the
// document, or the owning replica's scheduler (redeliver), retries.
func (c *connections) deliver(ctx context.Context, tenant string, outbox []pendingChange) error {
	return deliverOutbox(ctx, c, tenant, "connection changes", outbox, func(p pendingChange) string { return p.ID }, c.announce,
		func(sc *storedConnection, delivered map[string]bool) error {
			sc.Outbox = slices.DeleteFunc(sc.Outbox, func(p pendingChange) bool { return delivered[p.ID] })
			return nil
		})
}

// deliverOutbox announces the items of a tenant's outbox, oldest first, until one fails, then
// removes those delivered (by their key) from the stored connection with clear. It returns the
// failure, if any (what names the items in its message).
func deliverOutbox[T any, K comparable](ctx context.Context, c *connections, tenant, what string, outbox []T, key func(T) K,
	announce func(context.Context, T) error, clear func(sc *storedConnection, delivered map[K]bool) error) error {
	delivered := map[K]bool{}
	var failed error
	for _, item := range outbox {
		if err := announce(ctx, item); err != nil {
			failed = err
			break
		}
		delivered[key(item)] = true
	}
	if len(delivered) == 0 {
		return failed
	}
	if _, _, err := c.kv.Modify(ctx, connectionKey(tenant), func(sc storedConnection, exists bool) (storedConnection, error) {
		if !exists {
			return sc, events.ErrNotFound
		}
		return sc, clear(&sc, delivered)
	}); err != nil {
		return errors.Join(failed, fmt.Errorf("clear delivered %s: %w", what, err))
	}
	return failed
}

// redeliver delivers what is queued in the tenant's stored connection now.
func (c *connections) redeliver(ctx context.Context, tenant string) error {
	sc, _, err := c.kv.Get(ctx, connectionKey(tenant))
	if err != nil {
		return fmt.Errorf("read connection: %w", err)
	}
	return c.deliver(ctx, tenant, sc.Outbox)
}

// announce stores one change's row, then publishes its event. In this order a change retried
// while ClickHouse is down (beyond JetStream's deduplication window) is not published again;
// the row is idempotent by its id whenever it is repeated.
func (c *connections) announce(ctx context.Context, p pendingChange) error {
	doc := p.Doc
	env, err := events.NewEnvelope(doc.TenantID, events.TypeConnectionChanged, p.ID, "connection", doc.UpdatedAt,
		events.ConnectionChanged{Connection: doc, PreviousState: p.Previous, Changed: p.Changed})
	if err != nil {
		return err
	}
	checks, _ := json.Marshal(doc.Checks)
	changedJSON, _ := json.Marshal(p.Changed)
	if err := c.out.stored(c.store.InsertConnectionEvent(ctx, storage.ConnectionEventRow{
		TenantID: doc.TenantID, App: connectors.AppGreenhouse, TS: doc.UpdatedAt, EventID: p.ID, State: doc.State, UsageData: doc.UsageData,
		Checks: string(checks), Changed: string(changedJSON),
	})); err != nil {
		return fmt.Errorf("store connection event: %w", err)
	}
	if err := c.out.publish(ctx, []events.Envelope{env}); err != nil {
		return fmt.Errorf("publish connection change: %w", err)
	}
	return nil
}

// outboxGrace is how long queued changes are left to the request or run that queued them
// before the scheduler delivers them; retries back off from outboxEvery to outboxMaxEvery, and
// at most outboxWorkers deliveries run at once (after an outage, thousands of tenants may have
// changes queued).
const (
	outboxGrace    = 10 * time.Second
	outboxEvery    = 15 * time.Second
	outboxMaxEvery = 5 * time.Minute
	outboxWorkers  = 4
)

// outboxRetries paces a replica's deliveries of the connection changes that their own
// request or run could not deliver (NATS or ClickHouse down at the time): the scheduler
// tracks which tenants have changes queued (track), asks which are due (due) and reports each
// delivery's end (done).
type outboxRetries struct {
	mu         sync.Mutex
	pending    map[string]*outboxRetry // tenants (connected or not) with undelivered changes
	delivering int                     // deliveries under way
}

// outboxRetry paces the deliveries of one tenant's queued changes.
type outboxRetry struct {
	tenant     string
	seen       time.Time // when the scheduler first saw changes queued; zero: not yet
	next       time.Time
	failures   int
	delivering bool
}

func newOutboxRetries() *outboxRetries {
	return &outboxRetries{pending: map[string]*outboxRetry{}}
}

// track records whether a tenant's stored connection has changes queued.
func (o *outboxRetries) track(tenant string, queued bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !queued {
		delete(o.pending, tenant)
		return
	}
	if o.pending[tenant] == nil {
		o.pending[tenant] = &outboxRetry{tenant: tenant}
	}
}

// due returns the tenants of owns whose queued changes are to be delivered now, marked as
// being delivered, at most outboxWorkers deliveries at a time; each ends with done.
func (o *outboxRetries) due(now time.Time, owns func(tenant string) bool) []*outboxRetry {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []*outboxRetry
	for tenant, r := range o.pending {
		if r.seen.IsZero() {
			r.seen, r.next = now, now.Add(outboxGrace)
		}
		if o.delivering >= outboxWorkers {
			break
		}
		if r.delivering || now.Before(r.next) || !owns(tenant) {
			continue
		}
		r.delivering = true
		o.delivering++
		out = append(out, r)
	}
	return out
}

// done ends a delivery that due started and schedules the next try.
func (o *outboxRetries) done(r *outboxRetry, failed bool, now time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.delivering--
	r.delivering = false
	if failed {
		r.failures++
	}
	r.next = now.Add(jitter(min(outboxEvery<<min(r.failures, 5), outboxMaxEvery)))
}
