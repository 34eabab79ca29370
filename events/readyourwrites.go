package events

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A bucket with several replicas answers a Get from any of them (direct get), and a replica
// may not yet hold a write the leader has acknowledged: a Get right after this process's own
// Update could return the previous revision, and the compare-and-set that follows would fail.
// The cluster test found it (docs/reliability.md, "A JetStream cluster under failure"): the
// Audit Log part of a sync read back the checkpoint its users part had just written, got the
// revision before, and failed with "wrong last sequence". So a KV remembers the latest
// revision it wrote of each key, and Get asks again, briefly, while the answer is older.

// readAttempts and readBackoff bound how long Get waits for a replica to catch up with this
// process's own write: 10 attempts, 2 ms to 100 ms apart, about half a second in all.
const readAttempts = 10

func readBackoff(attempt int) time.Duration {
	return min(2*time.Millisecond<<attempt, 100*time.Millisecond)
}

// errBehind is returned (wrapped) when no replica answered with this process's own latest
// write in time.
var errBehind = errors.New("the replica answering is behind this process's own write")

// writtenRevisions is the latest revision this process wrote of each key. Deletes forget the
// key (their revision is not returned): a read after a delete is not covered.
type writtenRevisions struct {
	mu  sync.Mutex
	rev map[string]uint64
}

func (w *writtenRevisions) wrote(key string, rev uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.rev == nil {
		w.rev = map[string]uint64{}
	}
	if rev > w.rev[key] {
		w.rev[key] = rev
	}
}

func (w *writtenRevisions) forget(key string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.rev, key)
}

func (w *writtenRevisions) latest(key string) uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.rev[key]
}

// getAtLeast reads key, asking again while the answer is older than this process's own
// latest write of it. An older revision can only come from a replica behind: revisions grow,
// whoever writes. "Absent" after such a write may come from a replica behind or from another
// process's delete: after the same attempts it is believed, and the key forgotten.
func (k *KV[T]) getAtLeast(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	for attempt := 0; ; attempt++ {
		e, err := k.kv.Get(ctx, key)
		want := k.written.latest(key)
		older := want > 0 && err == nil && e.Revision() < want
		absent := want > 0 && (errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted))
		switch {
		case !older && !absent:
			return e, err
		case attempt+1 < readAttempts:
		case older:
			return nil, fmt.Errorf("%w (revision %d, got %d)", errBehind, want, e.Revision())
		default:
			k.written.forget(key)
			return e, err
		}
		if err := sleepCtx(ctx, readBackoff(attempt)); err != nil {
			return nil, err
		}
	}
}
