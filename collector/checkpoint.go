package collector

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/seatwatch/greenhouse-collector/events"
)

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
	// OverlapIDs are the ids of the stored events at or after AuditThrough less auditOverlap:
	// the next poll reads them again (the overlap) and skips them rather than storing them
	// again and re-applying activity for nothing (sync_audit.go). Empty when there were more
	// than maxOverlapIDs (then the re-read events are stored again, which is harmless).
	OverlapIDs []string `json:"overlap_ids,omitempty"`
}

// freshen copies the checkpoint's freshness into a connection document.
func (cp checkpoint) freshen(doc *events.Connection) {
	if !cp.UsersSyncedAt.IsZero() {
		t := cp.UsersSyncedAt
		doc.Freshness.UsersSyncedAt = &t
	}
	if !cp.AuditThrough.IsZero() {
		t := cp.AuditThrough
		doc.Freshness.AuditSyncedThrough = &t
	}
	if !cp.ObservedSince.IsZero() {
		t := cp.ObservedSince
		doc.ObservedSince = &t
	}
}

// checkpointStore reads and writes the tenants' checkpoints: the syncer's, and the API's
// reads for the usage rule's parameters.
type checkpointStore struct{ kv kvStore[checkpoint] }

// get reads a tenant's checkpoint; absent is the zero checkpoint with revision 0.
func (c checkpointStore) get(ctx context.Context, tenant string) (checkpoint, uint64, error) {
	cp, rev, err := c.kv.Get(ctx, connectionKey(tenant))
	if errors.Is(err, events.ErrNotFound) {
		return checkpoint{}, 0, nil
	}
	if err != nil {
		return checkpoint{}, 0, internal(codeNATSUnavailable, fmt.Errorf("read checkpoint of tenant %q: %w", tenant, err))
	}
	return cp, rev, nil
}

// begin reads a tenant's checkpoint for a run starting at start: a tenant never synced is
// observed from then on.
func (c checkpointStore) begin(ctx context.Context, tenant string, start time.Time) (checkpoint, uint64, error) {
	cp, rev, err := c.get(ctx, tenant)
	if err == nil && cp.ObservedSince.IsZero() {
		cp.ObservedSince = start
	}
	return cp, rev, err
}

// save writes a checkpoint with compare-and-set and returns the new revision.
func (c checkpointStore) save(ctx context.Context, tenant string, cp checkpoint, rev uint64) (uint64, error) {
	n, err := createOrUpdate(ctx, c.kv, connectionKey(tenant), cp, rev)
	if err != nil {
		return 0, internal(codeNATSUnavailable, fmt.Errorf("save checkpoint of tenant %q: %w", tenant, err))
	}
	return n, nil
}

// createOrUpdate writes v under key with compare-and-set: a create for revision 0, else an
// update of revision rev.
func createOrUpdate[T any](ctx context.Context, kv kvStore[T], key string, v T, rev uint64) (uint64, error) {
	if rev == 0 {
		return kv.Create(ctx, key, v)
	}
	return kv.Update(ctx, key, v, rev)
}
