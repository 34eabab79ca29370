package events

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
)

// DefaultMaxPayload is the embedded server's default maximum message size (8 MiB).
const DefaultMaxPayload = 8 << 20

// embeddedReadyTimeout bounds how long StartEmbedded waits for the server (including the
// JetStream recovery of an existing store directory) to accept connections.
const embeddedReadyTimeout = 30 * time.Second

// EmbeddedConfig configures an embedded single-node NATS server with JetStream.
type EmbeddedConfig struct {
	Dir string // JetStream store directory; required
	// Listen opens a client port (Host, Port) to network clients. Without it the server
	// listens on nothing and takes in-process connections only (InProcess): no other process
	// can reach the state store (docs/security.md).
	Listen     bool
	Host       string         // listen address; "" = 127.0.0.1
	Port       int            // client port; 0 = 4222, -1 = a random free port
	Token      string         // when set, every client (in-process ones too) must present it (nats.Token)
	MaxPayload int32          // maximum message size; 0 = DefaultMaxPayload
	Logger     zerolog.Logger // server log lines; the zero value logs nothing
}

// InProcess is the connect option for a server started by StartEmbedded: the connection is
// made in memory, without the network (the URL given to Connect is then only a label).
func InProcess(srv *server.Server) nats.Option { return nats.InProcessServer(srv) }

// StartEmbedded starts a NATS server with JetStream enabled and its store in cfg.Dir, and
// waits until it accepts connections. It returns an error (and leaves nothing running) when
// the configuration is invalid or the server does not become ready. The caller stops it with
// Shutdown and WaitForShutdown. With cfg.Listen, ClientURL gives the address to connect to;
// without it, clients connect with the InProcess option.
func StartEmbedded(cfg EmbeddedConfig) (*server.Server, error) {
	if cfg.Dir == "" {
		return nil, errors.New("start embedded nats: store directory is required")
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.Port == 0 {
		cfg.Port = server.DEFAULT_PORT
	}
	if cfg.MaxPayload == 0 {
		cfg.MaxPayload = DefaultMaxPayload
	}
	if cfg.MaxPayload < 0 {
		return nil, fmt.Errorf("start embedded nats: max payload %d is negative", cfg.MaxPayload)
	}
	opts := &server.Options{
		Host:          cfg.Host,
		Port:          cfg.Port,
		DontListen:    !cfg.Listen,
		Authorization: cfg.Token,
		JetStream:     true,
		StoreDir:      cfg.Dir,
		MaxPayload:    cfg.MaxPayload,
		NoSigs:        true,
	}
	where := fmt.Sprintf("on %s:%d", cfg.Host, cfg.Port)
	if !cfg.Listen {
		where = "in process"
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("start embedded nats: %w", err)
	}
	logger := &serverLogger{log: cfg.Logger.With().Str("component", "nats-server").Logger()}
	srv.SetLoggerV2(logger, false, false, false)
	go srv.Start()
	// Poll readiness in short steps so that a fatal start error (such as a port in use, which
	// the server only logs) fails at once instead of after the whole timeout.
	deadline := time.Now().Add(embeddedReadyTimeout)
	for !srv.ReadyForConnections(50 * time.Millisecond) {
		fatal := logger.fatal()
		if fatal == "" && time.Now().Before(deadline) {
			continue
		}
		srv.Shutdown()
		srv.WaitForShutdown()
		if fatal != "" {
			return nil, fmt.Errorf("start embedded nats %s: %s", where, fatal)
		}
		return nil, fmt.Errorf("start embedded nats %s: not ready after %s", where, embeddedReadyTimeout)
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("start embedded nats: jetstream did not start (store %q): %s", cfg.Dir, logger.fatal())
	}
	return srv, nil
}

// serverLogger adapts zerolog to the nats-server logger interface. A fatal message is logged
// as an error and remembered (never exits) so that StartEmbedded can return it.
type serverLogger struct {
	log zerolog.Logger

	mu        sync.Mutex
	lastFatal string
}

func (l *serverLogger) fatal() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastFatal
}

// Noticef logs at info level.
func (l *serverLogger) Noticef(format string, v ...any) { l.log.Info().Msgf(format, v...) }

// Warnf logs at warn level.
func (l *serverLogger) Warnf(format string, v ...any) { l.log.Warn().Msgf(format, v...) }

// Fatalf logs at error level and remembers the message.
func (l *serverLogger) Fatalf(format string, v ...any) {
	msg := strings.TrimSpace(fmt.Sprintf(format, v...))
	l.mu.Lock()
	l.lastFatal = msg
	l.mu.Unlock()
	l.log.Error().Bool("fatal", true).Msg(msg)
}

// Errorf logs at error level.
func (l *serverLogger) Errorf(format string, v ...any) { l.log.Error().Msgf(format, v...) }

// Debugf logs at debug level.
func (l *serverLogger) Debugf(format string, v ...any) { l.log.Debug().Msgf(format, v...) }

// Tracef logs at trace level.
func (l *serverLogger) Tracef(format string, v ...any) { l.log.Trace().Msgf(format, v...) }
