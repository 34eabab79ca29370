package collector

import (
	"fmt"
	"time"

	"github.com/seatwatch/greenhouse-collector/connectors"
	"github.com/seatwatch/greenhouse-collector/events"
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
	SyncedGeneration int64     `json:"synced_generation,omitempty"`
	CreatedAt        time.Time `json:"created_at"`
	// Outbox holds the changes of the document not yet both published
	// (saas.connection.changed) and stored (connection_events): they are queued in the same
	// compare-and-set as the change itself and removed once delivered, so a NATS or
	// ClickHouse failure delays them and loses none (deliverOutbox).
	Outbox []pendingChange `json:"outbox,omitempty"`
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

// checkpoint is a tenant's sync position, kept in the checkpoints KV bucket. It advances only
// after the data it covers is in ClickHouse and its events are acknowledged.
type checkpoint struct {
	Generation int64 `json:"generation"`
	// UsersSyncedAt is the start of the last complete users listing.
	UsersSyncedAt time.Time `json:"users_synced_at"`
	// BackfillFrom is where the first audit backfill started (now - retention at the time).
	BackfillFrom time.Time `json:"backfill_from"`
	// AuditThrough: every Audit Log event before it is stored.
	AuditThrough time.Time `json:"audit_through"`
	// ActivityThrough: users' last activity and daily activity reflect every event before it.
	ActivityThrough time.Time `json:"activity_through"`
	// CoverageStart is set when the first backfill completed: from then on the Audit Log is
	// known complete from BackfillFrom.
	CoverageStart time.Time `json:"coverage_start"`
	// ObservedSince is when the collector first synced the tenant.
	ObservedSince time.Time `json:"observed_since"`
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
