package collector

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/seatwatch/greenhouse-collector/events"
	"github.com/seatwatch/greenhouse-collector/storage"
)

// Deps are the parts a Service is wired from.
type Deps struct {
	Store      *storage.Store
	Bus        *events.Bus
	Sealer     *events.Sealer
	Logger     zerolog.Logger
	HTTPClient *http.Client // for Greenhouse; nil: the connector's default
	// GreenhouseRootCAs verifies Greenhouse's certificates in the connector's default client;
	// nil: the system's roots (tests serve https with a certificate of their own).
	GreenhouseRootCAs *x509.CertPool
	Now               func() time.Time // nil: time.Now
	// RunObserver, when set, is told about every sync run.
	RunObserver func(RunInfo)
}

// RunInfo describes one finished sync run.
type RunInfo struct {
	Tenant, Replica, RunID string
	Kind                   events.RunKind
	Status                 events.RunStatus
	Start, End             time.Time
}

// Service is one collector replica: the HTTP API and the scheduler, over the connections and
// the syncer (docs/architecture.md, "Inside the collector").
type Service struct {
	api     *api
	sched   *scheduler
	metrics *metrics
}

// New wires a Service. It does not start anything: Run starts the scheduler.
func New(cfg Config, deps Deps) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("collector config: %w", err)
	}
	if deps.Store == nil || deps.Bus == nil || deps.Sealer == nil {
		return nil, errors.New("collector: Store, Bus and Sealer are required")
	}
	clock := deps.Now
	if clock == nil {
		clock = time.Now
	}
	now := func() time.Time { return clock().UTC() }
	m := newMetrics()
	out := outputs{bus: deps.Bus, metrics: m}
	conns := &connections{kv: events.BucketKV[storedConnection](deps.Bus, events.BucketConnections), store: deps.Store,
		out: out, now: now, log: deps.Logger, retries: newOutboxRetries()}
	clients, err := newClientCache(cfg, deps.Sealer, deps.HTTPClient, deps.GreenhouseRootCAs, deps.Logger, now)
	if err != nil {
		return nil, err
	}
	checkpoints := checkpointStore{kv: events.BucketKV[checkpoint](deps.Bus, events.BucketCheckpoints)}
	acts := &actions{cfg: cfg, kv: events.BucketKV[actionDoc](deps.Bus, events.BucketActions), store: deps.Store, out: out,
		conns: conns, now: now, log: deps.Logger}
	sy := &syncer{cfg: cfg, clients: clients, store: deps.Store, out: out, conns: conns, checkpoints: checkpoints, actions: acts,
		alerts: alertStore{kv: events.BucketKV[alertState](deps.Bus, events.BucketAlerts)}, metrics: m,
		observer: deps.RunObserver, now: now, log: deps.Logger, users: newUsersCache(cfg.UsersCacheMiB << 20),
		sent: newSentMemory(maxRemembered)}
	disconnected := func(tenant string) {
		clients.drop(tenant)
		sy.users.drop(tenant)
		sy.sent.drop(tenant)
		m.forgetTenant(tenant)
	}
	s := &Service{metrics: m,
		sched: newScheduler(cfg, conns, sy, events.BucketKV[lease](deps.Bus, events.BucketLeases), disconnected, m, deps.Logger, now),
		api: &api{cfg: cfg, conns: conns, clients: clients, sealer: deps.Sealer, checkpoints: checkpoints, store: deps.Store,
			bus: deps.Bus, metrics: m, log: deps.Logger, now: now, actions: acts, judge: sy},
	}
	if cfg.ConnectsPerMinute > 0 {
		s.api.connects = rate.NewLimiter(rate.Limit(float64(cfg.ConnectsPerMinute)/60), cfg.ConnectsPerMinute)
	}
	tokens, err := newTokenSet(cfg, deps.Logger)
	if err != nil {
		return nil, fmt.Errorf("collector: %w", err)
	}
	s.api.tokens = tokens
	s.api.walks = newWalkStore(deps.Bus)
	return s, nil
}

// Run runs the scheduler (shard leases, tenant schedules, sync workers) until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	go s.api.tokens.watch(ctx)
	return s.sched.run(ctx)
}

// Handler returns the HTTP API.
func (s *Service) Handler() http.Handler {
	h, _ := s.api.handler(s.MetricsHandler())
	return h
}

// MetricsHandler serves the Prometheus metrics (no token: the API wraps it, metrics-addr does
// not).
func (s *Service) MetricsHandler() http.Handler {
	return metricsHandler(s.metrics)
}
