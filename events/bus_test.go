package events_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/events"
)

func TestNewBusStreamConfig(t *testing.T) {
	srv := startServer(t, t.TempDir())
	nc := connect(t, srv.ClientURL())

	// Each step runs NewBus against the same server: the first creates, later ones update.
	steps := []struct {
		name string
		cfg  events.Config
		want func(*testing.T, jetstream.StreamConfig)
	}{
		{
			name: "created with defaults",
			cfg:  events.Config{},
			want: func(t *testing.T, c jetstream.StreamConfig) {
				assert.Equal(t, "SAAS", c.Name)
				assert.Equal(t, []string{"saas.>"}, c.Subjects)
				assert.Equal(t, jetstream.FileStorage, c.Storage)
				assert.Equal(t, jetstream.LimitsPolicy, c.Retention)
				assert.Equal(t, jetstream.DiscardOld, c.Discard)
				assert.Equal(t, 2*time.Minute, c.Duplicates)
				assert.Equal(t, time.Duration(0), c.MaxAge)
				assert.Equal(t, int64(-1), c.MaxBytes)
				assert.Equal(t, 1, c.Replicas)
			},
		},
		{
			name: "updated limits and window",
			cfg:  events.Config{MaxAge: 72 * time.Hour, MaxBytes: 1 << 30, DuplicateWindow: 2 * time.Hour},
			want: func(t *testing.T, c jetstream.StreamConfig) {
				assert.Equal(t, 72*time.Hour, c.MaxAge)
				assert.Equal(t, int64(1<<30), c.MaxBytes)
				assert.Equal(t, 2*time.Hour, c.Duplicates)
				assert.Equal(t, jetstream.FileStorage, c.Storage)
			},
		},
		{
			name: "window capped at max age",
			cfg:  events.Config{MaxAge: 2 * time.Minute},
			want: func(t *testing.T, c jetstream.StreamConfig) {
				assert.Equal(t, 2*time.Minute, c.MaxAge)
				assert.Equal(t, 2*time.Minute, c.Duplicates)
				assert.Equal(t, int64(-1), c.MaxBytes)
			},
		},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			b := newBus(t, nc, step.cfg)
			info, err := b.StreamInfo(t.Context())
			require.NoError(t, err)
			step.want(t, info.Config)
		})
	}
}

func TestNewBusBuckets(t *testing.T) {
	_, _, b := setup(t)
	ctx := t.Context()
	for _, name := range events.Buckets() {
		t.Run(name, func(t *testing.T) {
			kv, err := b.JetStream().KeyValue(ctx, "saas_"+name)
			require.NoError(t, err)
			st, err := kv.Status(ctx)
			require.NoError(t, err)
			assert.Equal(t, jetstream.FileStorage, st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Storage)
			wantTTL, wantHistory := time.Duration(0), int64(1)
			if name == events.BucketLeases {
				wantTTL, wantHistory = events.DefaultLeaseTTL, events.LeaseHistory
			}
			assert.Equal(t, wantTTL, st.TTL())
			assert.Equal(t, wantHistory, st.History())
		})
	}
}

func TestNewBusInvalidConfig(t *testing.T) {
	_, nc, _ := setup(t)
	tests := []struct {
		name string
		cfg  events.Config
	}{
		{"stream name with dot", events.Config{Stream: "SA.AS"}},
		{"kv prefix with space", events.Config{KVPrefix: "my saas"}},
		{"negative max in flight", events.Config{MaxInFlight: -1}},
		{"negative max age", events.Config{MaxAge: -time.Second}},
		{"sub-second lease ttl", events.Config{LeaseTTL: 10 * time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := events.NewBus(t.Context(), nc, tt.cfg)
			assert.Error(t, err)
		})
	}
}

func TestPublishDeduplicates(t *testing.T) {
	_, _, b := setup(t)
	ctx := t.Context()
	envs := userEvents(t, "acme", 1, 16)

	require.NoError(t, b.Publish(ctx, envs))
	require.NoError(t, b.Publish(ctx, envs), "a republished message is acknowledged as a duplicate")
	require.NoError(t, b.Publish(ctx, append(envs, envs[0])), "twice in one call")
	assert.Equal(t, uint64(1), streamMsgs(t, b))
	assert.Equal(t, uint64(4), b.Stats().Acked)
	assert.Equal(t, uint64(3), b.Stats().Duplicates)

	// The stored message is the envelope, on the tenant's subject, with the id as Nats-Msg-Id.
	stream, err := b.JetStream().Stream(ctx, "SAAS")
	require.NoError(t, err)
	msg, err := stream.GetLastMsgForSubject(ctx, "saas.acme.greenhouse.user")
	require.NoError(t, err)
	assert.Equal(t, envs[0].ID, msg.Header.Get(jetstream.MsgIDHeader))
	assert.JSONEq(t, string(mustJSON(t, envs[0])), string(msg.Data))
}

// Calls one after another reuse the buffer, messages and headers of the calls before them
// (after all their acks): every stored message is still its own envelope under its own id,
// whatever the sizes of the calls and their events.
func TestPublishReusedMessagesKeepTheirContent(t *testing.T) {
	_, _, b := setup(t)
	ctx := t.Context()
	stream, err := b.JetStream().Stream(ctx, "SAAS")
	require.NoError(t, err)
	want := map[string][]byte{}
	for call, n := range []int{7, 2, 9, 1, 5} {
		envs := userEvents(t, fmt.Sprint("t", call), n, 16+300*(call%2))
		require.NoError(t, b.Publish(ctx, envs))
		for _, env := range envs {
			want[env.ID] = mustJSON(t, env)
		}
	}
	require.Equal(t, uint64(len(want)), streamMsgs(t, b), "no id dropped as a duplicate of a reused header")
	for seq := uint64(1); seq <= uint64(len(want)); seq++ {
		msg, err := stream.GetMsg(ctx, seq)
		require.NoError(t, err)
		id := msg.Header.Get(jetstream.MsgIDHeader)
		require.Contains(t, want, id)
		assert.JSONEq(t, string(want[id]), string(msg.Data), "message %d (%s)", seq, id)
		assert.Equal(t, events.Subject(strings.Split(id, ":")[0], events.TypeUserChanged), msg.Subject)
		delete(want, id)
	}
}

func TestPublishRejectsInvalidEnvelope(t *testing.T) {
	_, _, b := setup(t)
	envs := userEvents(t, "acme", 3, 16)
	envs[1].Tenant = "bad tenant"
	err := b.Publish(t.Context(), envs)
	require.ErrorIs(t, err, events.ErrInvalidEnvelope)
	assert.Equal(t, uint64(0), streamMsgs(t, b), "nothing is published when one envelope is invalid")
}

func TestPublishRidesThroughServerRestart(t *testing.T) {
	const total = 5000
	dir := t.TempDir()
	srv, err := events.StartEmbedded(events.EmbeddedConfig{Listen: true, Dir: dir, Port: -1})
	require.NoError(t, err)
	port := serverPort(t, srv)
	var (
		mu      sync.Mutex
		current = srv
	)
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		current.Shutdown()
		current.WaitForShutdown()
	})
	nc := connect(t, srv.ClientURL())
	b := newBus(t, nc, events.Config{MaxInFlight: 256, AckTimeout: 2 * time.Second})
	envs := userEvents(t, "acme", total, 400)

	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- b.Publish(ctx, envs) }()

	// Wait for the publisher to be well under way, then stop the server under it.
	var midPublish bool
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
waiting:
	for {
		select {
		case err := <-done:
			done <- err
			break waiting
		case <-tick.C:
			if b.Stats().Acked >= total/5 {
				midPublish = true
				break waiting
			}
		}
	}
	require.True(t, midPublish, "the publisher finished before the server could be stopped")
	srv.Shutdown()
	srv.WaitForShutdown()
	ackedAtShutdown := b.Stats().Acked
	restarted, err := events.StartEmbedded(events.EmbeddedConfig{Listen: true, Dir: dir, Port: port})
	require.NoError(t, err)
	mu.Lock()
	current = restarted
	mu.Unlock()

	require.NoError(t, <-done)
	assert.Less(t, ackedAtShutdown, uint64(total), "the server stopped before every message was acknowledged")
	assert.Equal(t, uint64(total), streamMsgs(t, b), "exactly every message once: no loss, no duplicate")
	t.Logf("acked at shutdown %d, stats after: %+v", ackedAtShutdown, b.Stats())
}

func TestPublishHonoursContext(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration // 0: cancelled before the call
		wantErr error
	}{
		{"cancelled before", 0, context.Canceled},
		{"deadline while the server is down", 300 * time.Millisecond, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _, b := setup(t)
			srv.Shutdown()
			srv.WaitForShutdown()
			envs := userEvents(t, "acme", 100, 16)

			var (
				ctx    context.Context
				cancel context.CancelFunc
			)
			if tt.timeout == 0 {
				ctx, cancel = context.WithCancel(context.Background())
				cancel()
			} else {
				ctx, cancel = context.WithTimeout(context.Background(), tt.timeout)
			}
			defer cancel()
			start := time.Now()
			err := b.Publish(ctx, envs)
			require.Error(t, err)
			assert.ErrorIs(t, err, tt.wantErr)
			var perr *events.PublishError
			require.True(t, errors.As(err, &perr))
			assert.Equal(t, 100, perr.Total)
			assert.Equal(t, 100, perr.Unacked)
			assert.Contains(t, err.Error(), "100 of 100 messages not acknowledged")
			assert.Less(t, time.Since(start), tt.timeout+2*time.Second, "returns promptly when ctx ends")
		})
	}
}
