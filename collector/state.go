package collector

import (
	"time"

	"github.com/seatwatch/greenhouse-collector/events"
)

// storedConnection is a tenant's connection as kept in the connections KV bucket. The client
// secret is sealed (AES-256-GCM, bound to the tenant id) and erased on disconnect.
type storedConnection struct {
	Doc       events.Connection `json:"doc"`
	Secret    *events.Sealed    `json:"secret,omitempty"`
	Endpoints events.Endpoints  `json:"endpoints"`
	// Generation increases with every PUT: a new generation resets the tenant's schedule and
	// its Greenhouse client.
	Generation int64 `json:"generation"`
	// SyncRequest is a run id asked for through the API and not yet finished; the replica that
	// owns the tenant runs it.
	SyncRequest string `json:"sync_request,omitempty"`
	// SyncStarted is the requested run id a replica has begun: once SyncRequest equals it, a new
	// request queues a new run instead of joining the one under way.
	SyncStarted string    `json:"sync_started,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
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
func connectionKey(tenant string) string { return appName + "." + tenant }

// tenantFromKey is the inverse of connectionKey.
func tenantFromKey(key string) (string, bool) {
	const prefix = appName + "."
	if len(key) <= len(prefix) || key[:len(prefix)] != prefix {
		return "", false
	}
	return key[len(prefix):], true
}
