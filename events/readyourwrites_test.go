package events

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// laggingKV answers Get like a replica behind the leader: the first behind answers are the
// previous revision (or "absent"), then the latest.
type laggingKV struct {
	jetstream.KeyValue // other methods are not called
	rev                uint64
	behind             int
	absent             bool // behind answers say "absent" instead of the previous revision
	gets               int
}

type entry struct {
	jetstream.KeyValueEntry
	rev   uint64
	value []byte
}

func (e entry) Revision() uint64 { return e.rev }
func (e entry) Value() []byte    { return e.value }

func (l *laggingKV) Update(_ context.Context, _ string, _ []byte, last uint64) (uint64, error) {
	if last != l.rev {
		return 0, jetstream.ErrKeyRevisionMismatch
	}
	l.rev++
	return l.rev, nil
}

func (l *laggingKV) Get(context.Context, string) (jetstream.KeyValueEntry, error) {
	l.gets++
	if l.gets <= l.behind {
		if l.absent {
			return nil, jetstream.ErrKeyNotFound
		}
		return entry{rev: l.rev - 1, value: []byte(`"old"`)}, nil
	}
	return entry{rev: l.rev, value: []byte(`"new"`)}, nil
}

// TestReadYourWrites: a Get after this KV's own Update waits for an answer with that write,
// but an absent key is believed after the same attempts (another process may have deleted it).
func TestReadYourWrites(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		lag     laggingKV
		wantErr error
		want    string
	}{
		{name: "in step", lag: laggingKV{rev: 1}, want: "new"},
		{name: "a replica behind, then caught up", lag: laggingKV{rev: 1, behind: 3}, want: "new"},
		{name: "behind for too long", lag: laggingKV{rev: 1, behind: readAttempts}, wantErr: errBehind},
		{name: "absent: deleted since, or behind", lag: laggingKV{rev: 1, behind: readAttempts, absent: true}, wantErr: ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lag := tc.lag
			k := &KV[string]{kv: &lag, bucket: "test"}
			rev, err := k.Update(ctx, "k", "new", 1)
			require.NoError(t, err)
			lag.gets = 0 // count the Gets after the write
			start := time.Now()
			v, got, err := k.Get(ctx, "k")
			if tc.wantErr != nil {
				assert.ErrorIs(t, err, tc.wantErr)
				assert.Equal(t, readAttempts, lag.gets)
				assert.Less(t, time.Since(start), 2*time.Second)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, v)
			assert.Equal(t, rev, got)
			assert.Equal(t, lag.behind+1, lag.gets)
		})
	}

	t.Run("absent key forgotten", func(t *testing.T) {
		lag := laggingKV{rev: 1, behind: 1 << 30, absent: true}
		k := &KV[string]{kv: &lag, bucket: "test"}
		_, err := k.Update(ctx, "k", "new", 1)
		require.NoError(t, err)
		_, _, err = k.Get(ctx, "k")
		require.True(t, errors.Is(err, ErrNotFound))
		lag.gets = 0
		_, _, err = k.Get(ctx, "k")
		assert.ErrorIs(t, err, ErrNotFound)
		assert.Equal(t, 1, lag.gets, "no more waiting once believed")
	})
}
