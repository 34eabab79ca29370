package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

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

// Ping checks that the NATS server answers within ctx.
func (b *Bus) Ping(ctx context.Context) error {
	if err := b.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("ping NATS: %w", err)
	}
	return nil
}
