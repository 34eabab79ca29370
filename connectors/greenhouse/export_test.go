package greenhouse

import (
	"context"
	"time"
)

// AuditEventsPaged reads [from, to) with point-in-time pagination only, as one point in time:
// the naive backfill that BenchmarkAuditBackfillNaive measures the window strategy against.
func (c *Client) AuditEventsPaged(ctx context.Context, from, to time.Time, fn func(AuditBatch) error) error {
	from, to = from.UTC().Truncate(time.Second), to.UTC().Truncate(time.Second).Add(time.Second)
	if err := c.auditPIT(ctx, from, to, map[string]time.Time{}, fn); err != nil {
		return err
	}
	return fn(AuditBatch{Through: to})
}
