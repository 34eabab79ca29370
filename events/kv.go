package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// KV errors, for errors.Is.
var (
	// ErrNotFound: the key is absent or deleted.
	ErrNotFound = errors.New("kv: key not found")
	// ErrConflict: a compare-and-set lost (the key exists for Create, or its revision moved on
	// for Update, Delete and Modify).
	ErrConflict = errors.New("kv: revision conflict")
)

// modifyAttempts bounds the compare-and-set loop of Modify.
const modifyAttempts = 64

// KV is a typed view of one JetStream KV bucket: values are JSON-encoded T. Keys allow
// [-/_=.a-zA-Z0-9] and must not start or end with "."; the collector uses keys like
// "greenhouse.acme". Revisions are the bucket's stream sequences and drive compare-and-set.
// A KV reads its own writes (readyourwrites.go). A KV is safe for concurrent use.
type KV[T any] struct {
	kv      jetstream.KeyValue
	bucket  string
	err     error // set when the bucket name was unknown
	written writtenRevisions
}

// BucketKV returns a typed view of the bus's bucket name, one of BucketConnections,
// BucketCheckpoints, BucketAlerts and BucketLeases. For any other name every method of the
// returned KV fails with an error naming it.
func BucketKV[T any](b *Bus, name string) *KV[T] {
	kv, ok := b.buckets[name]
	if !ok {
		return &KV[T]{bucket: name, err: fmt.Errorf("kv: unknown bucket %q (want one of %s)", name, strings.Join(Buckets(), ", "))}
	}
	return &KV[T]{kv: kv, bucket: kv.Bucket()}
}

// Bucket returns the JetStream bucket name, e.g. "saas_connections".
func (k *KV[T]) Bucket() string { return k.bucket }

// Get returns the value of key and its revision. It returns an error wrapping ErrNotFound when
// the key is absent or deleted, and an error when the stored value does not decode as T.
func (k *KV[T]) Get(ctx context.Context, key string) (T, uint64, error) {
	var zero T
	if k.err != nil {
		return zero, 0, k.err
	}
	e, err := k.getAtLeast(ctx, key)
	if err != nil {
		return zero, 0, k.wrap("get", key, err)
	}
	var v T
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		return zero, 0, fmt.Errorf("kv get %s/%s: decode revision %d: %w", k.bucket, key, e.Revision(), err)
	}
	return v, e.Revision(), nil
}

// Create stores v under key only if the key is absent or deleted, and returns the new
// revision. It returns an error wrapping ErrConflict when the key exists.
func (k *KV[T]) Create(ctx context.Context, key string, v T) (uint64, error) {
	if k.err != nil {
		return 0, k.err
	}
	data, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("kv create %s/%s: encode: %w", k.bucket, key, err)
	}
	rev, err := k.kv.Create(ctx, key, data)
	if err != nil {
		return 0, k.wrap("create", key, err)
	}
	k.written.wrote(key, rev)
	return rev, nil
}

// Update stores v under key only if the key's latest revision is rev, and returns the new
// revision. It returns an error wrapping ErrConflict on a wrong revision.
func (k *KV[T]) Update(ctx context.Context, key string, v T, rev uint64) (uint64, error) {
	if k.err != nil {
		return 0, k.err
	}
	data, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("kv update %s/%s: encode: %w", k.bucket, key, err)
	}
	newRev, err := k.kv.Update(ctx, key, data, rev)
	if err != nil {
		return 0, k.wrap("update", key, err)
	}
	k.written.wrote(key, newRev)
	return newRev, nil
}

// Put stores v under key unconditionally and returns the new revision. In the leases bucket a
// Put also refreshes the entry's time to live.
func (k *KV[T]) Put(ctx context.Context, key string, v T) (uint64, error) {
	if k.err != nil {
		return 0, k.err
	}
	data, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("kv put %s/%s: encode: %w", k.bucket, key, err)
	}
	rev, err := k.kv.Put(ctx, key, data)
	if err != nil {
		return 0, k.wrap("put", key, err)
	}
	k.written.wrote(key, rev)
	return rev, nil
}

// Delete deletes key: only if its latest revision is rev, or unconditionally when rev is 0.
// It returns an error wrapping ErrConflict on a wrong revision. The bucket keeps history 1,
// so the previous value is no longer readable.
func (k *KV[T]) Delete(ctx context.Context, key string, rev uint64) error {
	if k.err != nil {
		return k.err
	}
	var opts []jetstream.KVDeleteOpt
	if rev != 0 {
		opts = append(opts, jetstream.LastRevision(rev))
	}
	k.written.forget(key)
	if err := k.kv.Delete(ctx, key, opts...); err != nil {
		return k.wrap("delete", key, err)
	}
	return nil
}

// Purge deletes key and every stored revision of it, leaving only a delete marker; Get then
// returns ErrNotFound. Use it when a tenant disconnects. Only sealed values ever reach the
// disk; the server reclaims the space of purged messages when it compacts the file block.
func (k *KV[T]) Purge(ctx context.Context, key string) error {
	if k.err != nil {
		return k.err
	}
	k.written.forget(key)
	if err := k.kv.Purge(ctx, key); err != nil {
		return k.wrap("purge", key, err)
	}
	return nil
}

// Keys calls fn with every key that starts with prefix ("" = all keys), streaming them from
// the server; deleted keys are skipped and each key is reported once. It stops at and returns
// the first error of fn (wrapped), or ctx's error.
func (k *KV[T]) Keys(ctx context.Context, prefix string, fn func(key string) error) error {
	if k.err != nil {
		return k.err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		lister jetstream.KeyLister
		err    error
	)
	if filter := keyFilter(prefix); filter == ">" {
		lister, err = k.kv.ListKeys(ctx)
	} else {
		lister, err = k.kv.ListKeysFiltered(ctx, filter)
	}
	if err != nil {
		return k.wrap("list keys", prefix, err)
	}
	keys := lister.Keys()
	defer func() {
		_ = lister.Stop()
		cancel()
		// Unblock the lister's goroutine if it is mid-send; it exits once ctx is cancelled.
		go func() {
			for range keys {
			}
		}()
	}()
	seen := make(map[string]struct{})
	for key := range keys {
		if !strings.HasPrefix(key, prefix) {
			continue
		}
		if _, dup := seen[key]; dup {
			continue
		}
		seen[key] = struct{}{}
		if err := fn(key); err != nil {
			return fmt.Errorf("kv list keys %s/%s*: %w", k.bucket, prefix, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("kv list keys %s/%s*: %w", k.bucket, prefix, err)
	}
	return nil
}

// keyFilter returns the subject filter that covers every key with the given string prefix:
// the prefix's complete tokens followed by ">".
func keyFilter(prefix string) string {
	i := strings.LastIndexByte(prefix, '.')
	if i < 0 {
		return ">"
	}
	return prefix[:i+1] + ">"
}

// Modify applies fn to the current value of key (exists is false, and v the zero value, when
// the key is absent or deleted) and stores the result with compare-and-set, repeating on
// conflicts (up to 64 attempts with jittered backoff). It returns the stored value and its
// revision, fn's error (wrapped) if fn fails, or an error wrapping ErrConflict when every
// attempt lost.
func (k *KV[T]) Modify(ctx context.Context, key string, fn func(v T, exists bool) (T, error)) (T, uint64, error) {
	var zero T
	if k.err != nil {
		return zero, 0, k.err
	}
	var lastErr error
	for attempt := 0; attempt < modifyAttempts; attempt++ {
		if attempt > 0 {
			if err := sleepCtx(ctx, modifyBackoff(attempt)); err != nil {
				return zero, 0, fmt.Errorf("kv modify %s/%s: %w", k.bucket, key, err)
			}
		}
		cur, rev, err := k.Get(ctx, key)
		exists := err == nil
		if err != nil && !errors.Is(err, ErrNotFound) {
			return zero, 0, fmt.Errorf("kv modify %s/%s: %w", k.bucket, key, err)
		}
		next, err := fn(cur, exists)
		if err != nil {
			return zero, 0, fmt.Errorf("kv modify %s/%s: %w", k.bucket, key, err)
		}
		var newRev uint64
		if exists {
			newRev, err = k.Update(ctx, key, next, rev)
		} else {
			newRev, err = k.Create(ctx, key, next)
		}
		if err == nil {
			return next, newRev, nil
		}
		if !errors.Is(err, ErrConflict) {
			return zero, 0, fmt.Errorf("kv modify %s/%s: %w", k.bucket, key, err)
		}
		lastErr = err
	}
	return zero, 0, fmt.Errorf("kv modify %s/%s: gave up after %d attempts: %w", k.bucket, key, modifyAttempts, lastErr)
}

func modifyBackoff(attempt int) time.Duration {
	ceiling := time.Millisecond << min(attempt, 6) // 2ms … 64ms
	return time.Duration(rand.Int64N(int64(ceiling))) + time.Millisecond/2
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// wrap maps the library's errors to ErrNotFound and ErrConflict and names the operation.
func (k *KV[T]) wrap(op, key string, err error) error {
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		return fmt.Errorf("kv %s %s/%s: %w", op, k.bucket, key, ErrNotFound)
	case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch):
		return fmt.Errorf("kv %s %s/%s: %w: %w", op, k.bucket, key, ErrConflict, err)
	}
	return fmt.Errorf("kv %s %s/%s: %w", op, k.bucket, key, err)
}
