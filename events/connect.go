package events

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
)

// Connection defaults of Connect; each can be overridden by an option passed to it.
const (
	DefaultClientName     = "greenhouse-collector"
	DefaultReconnectWait  = time.Second
	DefaultPingInterval   = 20 * time.Second
	DefaultConnectTimeout = 5 * time.Second
)

// ConnLogger returns an option that reports the connection's asynchronous errors, disconnects,
// reconnects and close through log (one line each) instead of the library's default of
// printing errors to stderr. Connect installs ConnLogger(zerolog.Nop()) unless given another.
func ConnLogger(log zerolog.Logger) nats.Option {
	return func(o *nats.Options) error {
		o.AsyncErrorCB = func(nc *nats.Conn, sub *nats.Subscription, err error) {
			ev := log.Warn().Err(err)
			if sub != nil {
				ev = ev.Str("subscription", sub.Subject)
			}
			ev.Msg("nats asynchronous error")
		}
		o.DisconnectedErrCB = func(nc *nats.Conn, err error) {
			log.Warn().Err(err).Msg("nats disconnected")
		}
		o.ReconnectedCB = func(nc *nats.Conn) {
			log.Info().Str("server", nc.ConnectedUrlRedacted()).Msg("nats reconnected")
		}
		o.ClosedCB = func(nc *nats.Conn) {
			log.Debug().Msg("nats connection closed")
		}
		return nil
	}
}

// Connect connects to NATS at url (one URL or a comma-separated list of cluster members) with
// defaults suited to a long-running service: a client name, unlimited reconnects with a
// jittered wait, a ping interval that detects dead connections within a minute, and retries
// of the first connection. opts are applied after the defaults, so they win. Connect returns
// once connected, or an error when ctx ends first or the URL or options are invalid.
func Connect(ctx context.Context, url string, opts ...nats.Option) (*nats.Conn, error) {
	defaults := []nats.Option{
		nats.Name(DefaultClientName),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(DefaultReconnectWait),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.PingInterval(DefaultPingInterval),
		nats.MaxPingsOutstanding(3),
		nats.Timeout(DefaultConnectTimeout),
		nats.RetryOnFailedConnect(true),
		ConnLogger(zerolog.Nop()),
	}
	nc, err := nats.Connect(url, append(defaults, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats: %w", err)
	}
	connected := nc.StatusChanged(nats.CONNECTED, nats.CLOSED)
	defer nc.RemoveStatusListener(connected)
	for !nc.IsConnected() {
		if nc.IsClosed() {
			return nil, fmt.Errorf("connect to nats: %w", nats.ErrConnectionClosed)
		}
		select {
		case <-connected:
		case <-ctx.Done():
			nc.Close()
			return nil, fmt.Errorf("connect to nats: %w", ctx.Err())
		}
	}
	return nc, nil
}
