package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// Watch calls fn with every current entry of the bucket and then with every change, until ctx
// ends (nil) or the watch fails. A value that does not decode is reported as deleted rather
// than stopping the watch.
func (k *KV[T]) Watch(ctx context.Context, fn func(key string, v T, rev uint64, deleted bool)) error {
	if k.err != nil {
		return k.err
	}
	w, err := k.kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch bucket %s: %w", k.kv.Bucket(), err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return errors.New("watch of bucket " + k.kv.Bucket() + " ended")
			}
			if e == nil {
				continue // the initial values have all been delivered
			}
			var v T
			deleted := e.Operation() != jetstream.KeyValuePut
			if !deleted {
				if err := json.Unmarshal(e.Value(), &v); err != nil {
					deleted = true
				}
			}
			fn(e.Key(), v, e.Revision(), deleted)
		}
	}
}

// Values calls fn with the current value of every key that starts with prefix ("" = all
// keys), in one pass over the bucket (one ordered consumer, not a request per key), and
// returns once every current value was given. Deleted keys are skipped; a value that does not
// decode fails with an error naming its key. It stops at and returns the first error of fn
// (wrapped), or ctx's error.
func (k *KV[T]) Values(ctx context.Context, prefix string, fn func(key string, v T, rev uint64) error) error {
	if k.err != nil {
		return k.err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		w   jetstream.KeyWatcher
		err error
	)
	if filter := keyFilter(prefix); filter == ">" {
		w, err = k.kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	} else {
		w, err = k.kv.Watch(ctx, filter, jetstream.IgnoreDeletes())
	}
	if err != nil {
		return k.wrap("read values", prefix, err)
	}
	defer func() {
		_ = w.Stop()
		// The watcher's delivery may be blocked on a full Updates channel when we return
		// early: drain it so that its goroutine ends.
		go func() {
			for range w.Updates() {
			}
		}()
	}()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("kv read values %s/%s*: %w", k.bucket, prefix, ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("kv read values %s/%s*: the watch ended early", k.bucket, prefix)
			}
			if e == nil {
				return nil // every current value was delivered
			}
			if e.Operation() != jetstream.KeyValuePut || !strings.HasPrefix(e.Key(), prefix) {
				continue
			}
			var v T
			if err := json.Unmarshal(e.Value(), &v); err != nil {
				return fmt.Errorf("kv read values %s/%s: decode: %w", k.bucket, e.Key(), err)
			}
			if err := fn(e.Key(), v, e.Revision()); err != nil {
				return fmt.Errorf("kv read values %s/%s*: %w", k.bucket, prefix, err)
			}
		}
	}
}

// Ping checks that the NATS server answers within ctx.
func (b *Bus) Ping(ctx context.Context) error {
	if err := b.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("ping NATS: %w", err)
	}
	return nil
}
