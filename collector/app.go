package collector

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/seatwatch/greenhouse-collector/events"
	"github.com/seatwatch/greenhouse-collector/storage"
)

// App is a fully wired collector replica: NATS (embedded or external), ClickHouse, the
// service and its HTTP listener. cmd/collector, the demo and the end-to-end tests start it the
// same way.
type App struct {
	Service *Service
	Store   *storage.Store
	Bus     *events.Bus
	NATS    *server.Server // nil with an external NATS
	Conn    *nats.Conn
	Addr    string // the HTTP API's listening address

	cfg      Config
	log      zerolog.Logger
	listener net.Listener
	metrics  net.Listener // the metrics listener, or nil
	debug    net.Listener // the pprof listener, or nil
}

// Options are Start's optional parts.
type Options struct {
	HTTPClient *http.Client // for Greenhouse
	// GreenhouseRootCAs verifies Greenhouse's certificates (tests serving https); nil: the
	// system's roots.
	GreenhouseRootCAs *x509.CertPool
	Now               func() time.Time // clock of the service
	// RunObserver, when set, is told about every sync run (tests, instrumentation).
	RunObserver func(RunInfo)
}

// Start connects or starts everything a replica needs and opens the HTTP listener. Nothing is
// synced until Run.
func Start(ctx context.Context, cfg Config, log zerolog.Logger, opts Options) (_ *App, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	a := &App{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	if err := a.connectNATS(ctx); err != nil {
		return nil, err
	}
	if a.Store, err = storage.Open(ctx, storage.Config{
		Addr: strings.Split(cfg.ClickHouseAddr, ","), Database: cfg.ClickHouseDatabase, Cluster: cfg.ClickHouseCluster,
		Username: cfg.ClickHouseUser, Password: cfg.ClickHousePassword, Logger: log,
	}); err != nil {
		return nil, fmt.Errorf("open ClickHouse: %w", err)
	}
	if err := a.Store.Migrate(ctx); err != nil {
		return nil, fmt.Errorf("migrate ClickHouse: %w", err)
	}
	primary, keys, err := events.ParseKeys(cfg.SecretKeys)
	if err != nil {
		return nil, fmt.Errorf("secret-keys: %w", err)
	}
	sealer, err := events.NewSealer(primary, keys)
	if err != nil {
		return nil, fmt.Errorf("secret-keys: %w", err)
	}
	if a.Service, err = New(cfg, Deps{Store: a.Store, Bus: a.Bus, Sealer: sealer, Logger: log, HTTPClient: opts.HTTPClient,
		GreenhouseRootCAs: opts.GreenhouseRootCAs, Now: opts.Now, RunObserver: opts.RunObserver}); err != nil {
		return nil, err
	}
	if cfg.UnsafeAllowLoopbackEndpointsForTests {
		log.Warn().Msg("unsafe-allow-loopback-endpoints-for-tests is on: endpoint overrides may reach this host; never run so in production")
	}
	if err := a.listen(); err != nil {
		return nil, err
	}
	return a, nil
}

// connectNATS starts the embedded NATS server (without nats-url) and connects to it or to
// the external one, and sets the stream and buckets up.
func (a *App) connectNATS(ctx context.Context) error {
	cfg, log := a.cfg, a.log
	url := cfg.NATSURL
	natsOpts := natsOptions(cfg)
	if url == "" {
		// The embedded server takes this replica's in-process connection only, unless asked to
		// listen; then every client, this replica included, presents the token
		// (docs/security.md).
		token := cfg.NATSToken
		if cfg.NATSListen && token == "" {
			token = randomToken()
		}
		ns, err := events.StartEmbedded(events.EmbeddedConfig{
			Dir: filepath.Join(cfg.DataDir, "nats"), Listen: cfg.NATSListen, Host: "127.0.0.1", Port: cfg.NATSPort,
			Token: token, Logger: log,
		})
		if err != nil {
			return fmt.Errorf("start embedded NATS: %w", err)
		}
		a.NATS = ns
		url = ns.ClientURL()
		natsOpts = append(natsOpts, events.InProcess(ns))
		if token != "" {
			natsOpts = append(natsOpts, nats.Token(token))
		}
		if cfg.NATSListen {
			log.Info().Str("addr", ns.Addr().String()).Bool("generated_token", cfg.NATSToken == "").Msg("embedded NATS listening; clients need the token")
		}
	}
	var err error
	if a.Conn, err = events.Connect(ctx, url, natsOpts...); err != nil {
		return fmt.Errorf("connect to NATS: %w", err)
	}
	if a.Bus, err = events.NewBus(ctx, a.Conn, events.Config{
		Stream: "SAAS", Subjects: []string{"saas.>"}, Replicas: cfg.StreamReplicas, MaxAge: cfg.StreamMaxAge,
		DuplicateWindow: cfg.DuplicateWindow, LeaseTTL: cfg.LeaseTTL, Logger: log,
	}); err != nil {
		return fmt.Errorf("set up JetStream: %w", err)
	}
	return nil
}

// listen opens the HTTP API's listener, and the metrics and profiling listeners when set.
func (a *App) listen() error {
	cfg := a.cfg
	var err error
	if a.listener, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	a.Addr = a.listener.Addr().String()
	if cfg.MetricsAddr != "" {
		if a.metrics, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			return fmt.Errorf("listen on metrics-addr %s: %w", cfg.MetricsAddr, err)
		}
	}
	if cfg.DebugAddr != "" {
		if a.debug, err = net.Listen("tcp", cfg.DebugAddr); err != nil {
			return fmt.Errorf("listen on debug-addr %s: %w", cfg.DebugAddr, err)
		}
	}
	return nil
}

// natsOptions are the connect options of an external NATS: credentials and TLS. A tls:// URL,
// or a server that requires TLS, is verified against the system's roots or nats-ca.
func natsOptions(cfg Config) []nats.Option {
	var opts []nats.Option
	if cfg.NATSCreds != "" {
		opts = append(opts, nats.UserCredentials(cfg.NATSCreds))
	}
	if cfg.NATSCA != "" {
		opts = append(opts, nats.RootCAs(cfg.NATSCA))
	}
	if cfg.NATSCert != "" {
		opts = append(opts, nats.ClientCert(cfg.NATSCert, cfg.NATSKey))
	}
	return opts
}

// randomToken is a token of 32 random bytes.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read does not fail
	return base64.RawURLEncoding.EncodeToString(b)
}

// MetricsAddr returns the metrics listener's address, or "" when there is none.
func (a *App) MetricsAddr() string {
	if a.metrics == nil {
		return ""
	}
	return a.metrics.Addr().String()
}

// DebugAddr returns the pprof listener's address, or "" when there is none.
func (a *App) DebugAddr() string {
	if a.debug == nil {
		return ""
	}
	return a.debug.Addr().String()
}

// debugHandler serves Go's profiles (the scale runs use the heap profile to see where memory
// goes).
func debugHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// Run serves the API and runs the scheduler until ctx ends, then shuts the HTTP server down
// gracefully (in-flight syncs end first: their checkpoints stay consistent).
func (a *App) Run(ctx context.Context) error {
	srv := &http.Server{Handler: a.Service.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, WriteTimeout: 2 * time.Minute}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(a.listener) }()
	a.log.Info().Str("addr", a.Addr).Msg("HTTP API listening")
	var met *http.Server
	if a.metrics != nil {
		met = &http.Server{Handler: a.Service.MetricsHandler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = met.Serve(a.metrics) }()
		a.log.Info().Str("addr", a.MetricsAddr()).Msg("metrics listener")
	}
	var dbg *http.Server
	if a.debug != nil {
		dbg = &http.Server{Handler: debugHandler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = dbg.Serve(a.debug) }()
		a.log.Info().Str("addr", a.DebugAddr()).Msg("profiling listener")
	}
	runErr := a.Service.Run(ctx)
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	shutErr := srv.Shutdown(sctx)
	if dbg != nil {
		_ = dbg.Close()
	}
	if met != nil {
		_ = met.Close()
	}
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve HTTP: %w", err)
	}
	return errors.Join(runErr, shutErr)
}

// Close releases what Start opened.
func (a *App) Close() {
	if a.listener != nil {
		_ = a.listener.Close()
	}
	if a.debug != nil {
		_ = a.debug.Close()
	}
	if a.metrics != nil {
		_ = a.metrics.Close()
	}
	if a.Store != nil {
		_ = a.Store.Close()
	}
	if a.Conn != nil {
		_ = a.Conn.Drain()
	}
	if a.NATS != nil {
		a.NATS.Shutdown()
		a.NATS.WaitForShutdown()
	}
}
