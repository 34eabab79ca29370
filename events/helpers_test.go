package events_test

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/events"
)

// startServer starts an embedded server on a random port with its store in a fresh directory
// and stops it at the end of the test.
func startServer(t testing.TB, dir string) *server.Server {
	t.Helper()
	srv, err := events.StartEmbedded(events.EmbeddedConfig{Listen: true, Dir: dir, Port: -1, Logger: zerolog.Nop()})
	require.NoError(t, err)
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	return srv
}

func serverPort(t testing.TB, srv *server.Server) int {
	t.Helper()
	_, p, err := net.SplitHostPort(srv.Addr().String())
	require.NoError(t, err)
	port, err := strconv.Atoi(p)
	require.NoError(t, err)
	return port
}

// connect connects with a short reconnect wait so restarts are ridden through quickly.
func connect(t testing.TB, url string) *nats.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := events.Connect(ctx, url, nats.ReconnectWait(20*time.Millisecond), nats.ReconnectJitter(0, 0))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}

func newBus(t testing.TB, nc *nats.Conn, cfg events.Config) *events.Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := events.NewBus(ctx, nc, cfg)
	require.NoError(t, err)
	return b
}

// setup is a server, a connection and a bus with the default configuration.
func setup(t testing.TB) (*server.Server, *nats.Conn, *events.Bus) {
	t.Helper()
	srv := startServer(t, t.TempDir())
	nc := connect(t, srv.ClientURL())
	return srv, nc, newBus(t, nc, events.Config{})
}

// userEvents builds n distinct saas.user.changed envelopes for tenant with data padded to
// about size bytes.
func userEvents(t testing.TB, tenant string, n, size int) []events.Envelope {
	t.Helper()
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	pad := make([]byte, size)
	for i := range pad {
		pad[i] = 'x'
	}
	envs := make([]events.Envelope, n)
	for i := range envs {
		data := events.UserChanged{
			User:     events.LicenseRecord{TenantID: tenant, App: "greenhouse", UserID: int64(i), Name: string(pad)},
			Changed:  []string{"created"},
			Revision: 1,
		}
		id := tenant + ":user:" + strconv.Itoa(i) + ":1"
		env, err := events.NewEnvelope(tenant, events.TypeUserChanged, id, "users/"+strconv.Itoa(i), at, data)
		require.NoError(t, err)
		envs[i] = env
	}
	return envs
}

func streamMsgs(t testing.TB, b *events.Bus) uint64 {
	t.Helper()
	info, err := b.StreamInfo(t.Context())
	require.NoError(t, err)
	return info.State.Msgs
}
