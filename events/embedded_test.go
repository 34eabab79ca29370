package events_test

import (
	"context"
	"errors"
	"net"
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
		{"negative max payload", events.EmbeddedConfig{Listen: true, Dir: t.TempDir(), Port: -1, MaxPayload: -1}, "negative"},
		{"port in use", events.EmbeddedConfig{Listen: true, Dir: t.TempDir(), Port: serverPort(t, busy)}, "address already in use"},
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
	srv, err := events.StartEmbedded(events.EmbeddedConfig{Listen: true, Dir: t.TempDir(), Port: -1})
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
	err := b.Publish(t.Context(), userEvents(t, "acme", 10, 16))
	require.ErrorIs(t, err, nats.ErrConnectionClosed)
	var perr *events.PublishError
	require.True(t, errors.As(err, &perr))
	assert.Equal(t, 10, perr.Unacked)
}

// TestStartEmbeddedTakesNoNetworkClients: by default the server listens on nothing, and the
// in-process connection carries JetStream.
func TestStartEmbeddedTakesNoNetworkClients(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	srv, err := events.StartEmbedded(events.EmbeddedConfig{Dir: t.TempDir(), Port: port})
	require.NoError(t, err)
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	assert.Nil(t, srv.Addr(), "no client listener")
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err = events.Connect(ctx, srv.ClientURL(), nats.ReconnectWait(20*time.Millisecond))
	require.Error(t, err, "nothing answers on the network")

	nc, err := events.Connect(context.Background(), srv.ClientURL(), events.InProcess(srv))
	require.NoError(t, err)
	defer nc.Close()
	b := newBus(t, nc, events.Config{})
	require.NoError(t, b.Publish(t.Context(), userEvents(t, "acme", 3, 16)))
	assert.Equal(t, uint64(3), streamMsgs(t, b))
}

// TestStartEmbeddedListenRequiresToken: a listening server with a token refuses network
// clients without it; with it, network and in-process clients connect.
func TestStartEmbeddedListenRequiresToken(t *testing.T) {
	const token = "t0ken-of-this-process-only"
	srv, err := events.StartEmbedded(events.EmbeddedConfig{Dir: t.TempDir(), Listen: true, Port: -1, Token: token})
	require.NoError(t, err)
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	require.NotNil(t, srv.Addr())
	for name, opts := range map[string][]nats.Option{
		"network, no token":    nil,
		"network, wrong token": {nats.Token("guess")},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := nats.Connect(srv.ClientURL(), append(opts, nats.Timeout(2*time.Second))...)
			require.Error(t, err)
		})
	}
	for name, opts := range map[string][]nats.Option{
		"network":    {nats.Token(token)},
		"in process": {nats.Token(token), events.InProcess(srv)},
	} {
		t.Run(name, func(t *testing.T) {
			nc, err := nats.Connect(srv.ClientURL(), opts...)
			require.NoError(t, err)
			nc.Close()
		})
	}
}
