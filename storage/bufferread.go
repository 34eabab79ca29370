package storage

import (
	"cmp"
	"slices"
	"time"
)

// readTwice runs read twice, one after the other, and returns both results. The readers of
// the tables written through Buffer tables (docs/schema.md, "Buffers") read so: a read
// through a Buffer table is not atomic, since ClickHouse takes the table's parts when the
// query starts and reads the buffer when the query's stream for it runs, so a flush in
// between hides the rows it moves from that read. The flush holds the buffer until those
// rows are in a part of the table, so they are in the table before that read ends, and in
// the second read. Every row whose write returned before the first read began is in one of
// the two. A read failing with a retryable error (a pooled connection found closed, an
// overloaded server) is tried again (retryRead): it is idempotent.
func readTwice[T any](read func() ([]T, error)) (first, second []T, err error) {
	if first, err = retryRead(read); err != nil {
		return nil, nil, err
	}
	if second, err = retryRead(read); err != nil {
		return nil, nil, err
	}
	return first, second, nil
}

// readAttempts is how often retryRead runs a read that keeps failing with a retryable error;
// readPause is the pause before the second attempt, doubled before the third.
const (
	readAttempts = 3
	readPause    = 50 * time.Millisecond
)

// retryRead runs read, and again (readAttempts in all, after a short pause) while it fails
// with a retryable error (retryable): every read it serves is idempotent (readTwice's, and a
// sync's). At 10,000 tenants onboarding a pooled connection found closed ("use of closed
// network connection") failed 29 runs, and one retry was not always enough: a CI run saw the
// retry fail the same way (docs/performance.md, "Eighth session"). clickhouse-go closes a
// connection that failed, so each attempt takes another from the pool or dials a new one.
func retryRead[T any](read func() (T, error)) (T, error) {
	v, err := read()
	pause := readPause
	for range readAttempts - 1 {
		if !retryable(err) {
			break
		}
		time.Sleep(pause)
		pause *= 2
		v, err = read()
	}
	return v, err
}

// unionBy returns second's rows and those of first whose key second lacks, ordered by less.
func unionBy[T any, K comparable](first, second []T, key func(T) K, less func(a, b T) int) []T {
	seen := make(map[K]struct{}, len(second))
	for _, r := range second {
		seen[key(r)] = struct{}{}
	}
	out := slices.Clone(second)
	for _, r := range first {
		if _, ok := seen[key(r)]; !ok {
			out = append(out, r)
		}
	}
	slices.SortStableFunc(out, less)
	return out
}

// BucketStart is the start of t's bucket (UTC), as usage_trend.sql groups: its day, the
// Monday of its ISO week, or the first of its month.
func BucketStart(t time.Time, bucket string) time.Time {
	t = t.UTC()
	d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	switch bucket {
	case BucketWeek:
		return d.AddDate(0, 0, -((int(d.Weekday()) + 6) % 7))
	case BucketMonth:
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	}
	return d
}

// lastOfEachBucket keeps, of rows ordered by time, those of the last snapshot of each bucket.
func lastOfEachBucket(rows []UsageCountRow, bucket string) []UsageCountRow {
	last := map[time.Time]time.Time{}
	for _, r := range rows {
		b := BucketStart(r.TS, bucket)
		if r.TS.After(last[b]) {
			last[b] = r.TS
		}
	}
	var out []UsageCountRow
	for _, r := range rows {
		if r.TS.Equal(last[BucketStart(r.TS, bucket)]) {
			out = append(out, r)
		}
	}
	return out
}

// tsType is the key of a snapshot's row of one license type (usage_counts, and the waste
// computed from it); byTSType orders such keys as the queries do.
type tsType struct {
	ts  time.Time
	typ string
}

func byTSType(a, b tsType) int { return cmp.Or(a.ts.Compare(b.ts), cmp.Compare(a.typ, b.typ)) }

// newestRunFirst orders sync runs as sync_health.sql and sync_runs_page.sql do: by start,
// then run id, descending.
func newestRunFirst(a, b SyncRunRow) int {
	if c := b.StartedAt.Compare(a.StartedAt); c != 0 {
		return c
	}
	return cmp.Compare(b.RunID, a.RunID)
}

// runKey is the sorting key of sync_runs (within a tenant and app).
type runKey struct {
	started time.Time
	run     string
}

func keyOfRun(r SyncRunRow) runKey { return runKey{r.StartedAt, r.RunID} }
