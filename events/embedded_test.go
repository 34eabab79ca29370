package events_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/events"
)

func TestStartEmbeddedErrors(t *testing.T) {
	busy := startServer(t, t.TempDir())
	tests := []struct {
		name string
		cfg  events.EmbeddedConfig
		want string
	}{
		{"no store directory", events.EmbeddedConfig{Port: -1}, "store directory is required"},
		{"negative max payload", events.EmbeddedConfig{Dir: t.TempDir(), Port: -1, MaxPayload: -1}, "negative"},
		{"port in use", events.EmbeddedConfig{Dir: t.TempDir(), Port: serverPort(t, busy)}, "address already in use"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			srv, err := events.StartEmbedded(tt.cfg)
			require.Error(t, err)
			assert.Nil(t, srv)
			assert.Contains(t, err.Error(), tt.want)
			assert.Less(t, time.Since(start), 10*time.Second, "fails fast")
		})
	}
}

func TestStartEmbeddedServes(t *testing.T) {
	srv := startServer(t, t.TempDir())
	assert.True(t, srv.JetStreamEnabled())
	nc := connect(t, srv.ClientURL())
	assert.Equal(t, int64(events.DefaultMaxPayload), nc.MaxPayload())
}

func TestConnectHonoursContext(t *testing.T) {
	// A server that is gone: nothing listens on its port any more.
	srv, err := events.StartEmbedded(events.EmbeddedConfig{Dir: t.TempDir(), Port: -1})
	require.NoError(t, err)
	url := srv.ClientURL()
	srv.Shutdown()
	srv.WaitForShutdown()

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	nc, err := events.Connect(ctx, url, nats.ReconnectWait(20*time.Millisecond))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Nil(t, nc)
	assert.Less(t, time.Since(start), 5*time.Second)

	_, err = events.Connect(context.Background(), "not a url ::")
	assert.Error(t, err)
}

func TestPublishOnClosedConnection(t *testing.T) {
	_, nc, b := setup(t)
	nc.Close()
	err := b.Publish(testCtx(t), userEvents(t, "acme", 10, 16))
	require.ErrorIs(t, err, nats.ErrConnectionClosed)
	var perr *events.PublishError
	require.True(t, errors.As(err, &perr))
	assert.Equal(t, 10, perr.Unacked)
}
