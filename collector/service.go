package collector

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse"
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
	Tenant, Replica, RunID, Kind, Status string
	Start, End                           time.Time
}

// Service is one collector replica: the HTTP API, the scheduler and the sync pipeline.
type Service struct {
	cfg     Config
	store   *storage.Store
	bus     *events.Bus
	sealer  *events.Sealer
	log     zerolog.Logger
	hc      *http.Client
	rootCAs *x509.CertPool
	now     func() time.Time
	metrics *metrics

	conns       *events.KV[storedConnection]
	checkpoints *events.KV[checkpoint]
	alerts      *events.KV[alertState]
	leases      *events.KV[lease]

	mu      sync.Mutex
	clients map[string]tenantClient // by tenant
	credKey []byte                  // HMAC key of credentialKey, this process's alone

	sched    *scheduler
	observer func(RunInfo)
	connects *rate.Limiter // connect requests; nil: unlimited
	tokens   *tokenSet     // API tokens with their scopes (tokens.go)
	walks    *walkStore    // snapshots of users-list walks (walks.go)
}

// tenantClient is a tenant's Greenhouse client, with the connection generation it serves and
// the key of the credential it was built from (credentialKey).
type tenantClient struct {
	generation int64
	credential [32]byte
	client     *greenhouse.Client
}

// New wires a Service. It does not start anything: Run starts the scheduler.
func New(cfg Config, deps Deps) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("collector config: %w", err)
	}
	if deps.Store == nil || deps.Bus == nil || deps.Sealer == nil {
		return nil, errors.New("collector: Store, Bus and Sealer are required")
	}
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	s := &Service{
		cfg:         cfg,
		store:       deps.Store,
		bus:         deps.Bus,
		sealer:      deps.Sealer,
		log:         deps.Logger,
		hc:          deps.HTTPClient,
		rootCAs:     deps.GreenhouseRootCAs,
		now:         func() time.Time { return now().UTC() },
		metrics:     newMetrics(),
		conns:       events.BucketKV[storedConnection](deps.Bus, "connections"),
		checkpoints: events.BucketKV[checkpoint](deps.Bus, "checkpoints"),
		alerts:      events.BucketKV[alertState](deps.Bus, "alerts"),
		leases:      events.BucketKV[lease](deps.Bus, "leases"),
		clients:     map[string]tenantClient{},
		credKey:     make([]byte, 32),
		observer:    deps.RunObserver,
	}
	if _, err := rand.Read(s.credKey); err != nil {
		return nil, fmt.Errorf("collector: credential key: %w", err)
	}
	if cfg.ConnectsPerMinute > 0 {
		s.connects = rate.NewLimiter(rate.Limit(float64(cfg.ConnectsPerMinute)/60), cfg.ConnectsPerMinute)
	}
	tokens, err := newTokenSet(cfg, deps.Logger)
	if err != nil {
		return nil, fmt.Errorf("collector: %w", err)
	}
	s.tokens = tokens
	s.walks = newWalkStore(deps.Bus)
	s.sched = newScheduler(s)
	return s, nil
}

// Run runs the scheduler (shard leases, tenant schedules, sync workers) until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	go s.tokens.watch(ctx)
	return s.sched.run(ctx)
}

// client returns the tenant's Greenhouse client, building it (and unsealing the secret) when
// the connection's generation changed and the credential with it. Clients keep the token and
// the pacing state between syncs, and across a reconnect with the same credential: Greenhouse
// may keep one live token per credential (docs/greenhouse-wire.md), and a new client would
// mint another.
//
// Before a client is built, the stored endpoints are checked against the running
// configuration (endpointsRefused), and the secret opens only with the tenant, client id,
// admin user and endpoints it was sealed with (secretBinding). Either failure is a
// *syncError on the credentials check (endpoint_not_allowed, sealed_secret_mismatch): the
// connection is not used. A secret sealed under a key this replica does not hold is
// client_unavailable, the operator's to fix.
func (s *Service) client(ctx context.Context, tenant string, sc storedConnection) (*greenhouse.Client, error) {
	s.mu.Lock()
	tc, ok := s.clients[tenant]
	s.mu.Unlock()
	if ok && tc.generation == sc.Generation {
		return tc.client, nil
	}
	if sc.Secret == nil {
		return nil, fmt.Errorf("tenant %q is disconnected", tenant)
	}
	if e := s.endpointsRefused(ctx, sc.Doc.Endpoints); e != nil {
		return nil, &syncError{check: "credentials", code: codeEndpointNotAllowed, err: fmt.Errorf("stored endpoints of tenant %q refused: %s", tenant, e.Message)}
	}
	secret, err := s.sealer.Open(*sc.Secret, secretBinding(tenant, sc.Doc))
	if errors.Is(err, events.ErrTampered) {
		return nil, &syncError{check: "credentials", code: codeSealedSecretMismatch, err: fmt.Errorf("unseal client secret of tenant %q: %w", tenant, err)}
	}
	if err != nil {
		return nil, &syncError{code: codeClientUnavailable, err: fmt.Errorf("unseal client secret of tenant %q: %w", tenant, err)}
	}
	key := s.credentialKey(sc.Doc.ClientID, secret, sc.Doc.AdminUserID, sc.Doc.Endpoints)
	s.mu.Lock()
	defer s.mu.Unlock()
	if tc, ok := s.clients[tenant]; ok && tc.credential == key {
		tc.generation = sc.Generation
		s.clients[tenant] = tc
		return tc.client, nil
	}
	c, err := s.newClient(tenant, sc.Doc.ClientID, secret, sc.Doc.AdminUserID, sc.Doc.Endpoints)
	if err != nil {
		return nil, err
	}
	s.clients[tenant] = tenantClient{generation: sc.Generation, credential: key, client: c}
	return c, nil
}

// connectClient returns the client a connect request's checks run on: the tenant's own when
// the credential is the one it holds (its token is reused, not a new one minted), else a new
// one, which keep then makes the tenant's once the connection is stored.
func (s *Service) connectClient(tenant, clientID, secret string, adminUserID int64, ep *events.Endpoints) (gc *greenhouse.Client, keep func(generation int64), err error) {
	key := s.credentialKey(clientID, secret, adminUserID, ep)
	s.mu.Lock()
	tc, ok := s.clients[tenant]
	s.mu.Unlock()
	if ok && tc.credential == key {
		gc = tc.client
	} else if gc, err = s.newClient(tenant, clientID, secret, adminUserID, ep); err != nil {
		return nil, nil, err
	}
	return gc, func(generation int64) {
		s.mu.Lock()
		s.clients[tenant] = tenantClient{generation: generation, credential: key, client: gc}
		s.mu.Unlock()
	}, nil
}

// credentialKey identifies a credential and where it is sent, without keeping the secret: an
// HMAC under a key of this process.
func (s *Service) credentialKey(clientID, secret string, adminUserID int64, endpoints *events.Endpoints) [32]byte {
	var ep events.Endpoints
	if endpoints != nil {
		ep = *endpoints
	}
	m := hmac.New(sha256.New, s.credKey)
	for _, v := range []string{clientID, secret, strconv.FormatInt(adminUserID, 10), ep.Auth, ep.Harvest, ep.AuditLog} {
		_, _ = fmt.Fprintf(m, "%d:%s", len(v), v)
	}
	var out [32]byte
	copy(out[:], m.Sum(nil))
	return out
}

func (s *Service) dropClient(tenant string) {
	s.mu.Lock()
	delete(s.clients, tenant)
	s.mu.Unlock()
}

func (s *Service) newClient(tenant, clientID, secret string, adminUserID int64, ep *events.Endpoints) (*greenhouse.Client, error) {
	var gep greenhouse.Endpoints
	if ep != nil {
		gep = greenhouse.Endpoints{Auth: ep.Auth, Harvest: ep.Harvest, AuditLog: ep.AuditLog}
	}
	w, _ := parseWindows(s.cfg.GreenhouseWindows) // validated with the configuration
	cfg := greenhouse.Config{
		Endpoints:           gep,
		ClientID:            clientID,
		ClientSecret:        secret,
		AdminUserID:         adminUserID,
		HTTPClient:          s.hc,
		Logger:              s.log.With().Str("tenant", tenant).Logger(),
		Now:                 s.now,
		AllowInsecure:       s.cfg.AllowInsecureEndpoints,
		UnsafeAllowLoopback: s.cfg.UnsafeAllowLoopbackEndpointsForTests,
		RootCAs:             s.rootCAs,
		TokenWindow:         w.Token,
		HarvestWindow:       w.Harvest,
		AuditWindow:         w.Audit,
	}
	if w.AuditPaged > 0 {
		cfg.AuditPagedLimit, cfg.AuditPagedWindow = 3, w.AuditPaged
	}
	return greenhouse.New(cfg)
}

// settings returns the effective settings of a connection.
func (s *Service) settings(doc events.Connection) (inactiveAfterDays int, users, audit time.Duration) {
	inactiveAfterDays = doc.Settings.InactiveAfterDays
	if inactiveAfterDays <= 0 {
		inactiveAfterDays = s.cfg.DefaultInactiveAfterDays
	}
	users, err := time.ParseDuration(doc.Settings.UsersInterval)
	if err != nil || users <= 0 {
		users = s.cfg.DefaultUsersInterval
	}
	audit, err = time.ParseDuration(doc.Settings.AuditInterval)
	if err != nil || audit <= 0 {
		audit = s.cfg.DefaultAuditInterval
	}
	return inactiveAfterDays, users, audit
}

// usageParams returns the usage classification parameters of a tenant now.
//
// activityThrough is the time through which users' activity has been applied from the stored
// events (zero: not yet). Usage is judged as of then, never later: events stored but not yet
// applied (a crash between the two steps) must not make anyone look inactive.
func (s *Service) usageParams(doc events.Connection, cp checkpoint, now, activityThrough time.Time) UsageParams {
	days, _, _ := s.settings(doc)
	p := UsageParams{Now: now, InactiveAfterDays: days, CoverageStart: cp.CoverageStart}
	switch {
	case p.CoverageStart.IsZero():
	case activityThrough.IsZero():
		p.CoverageStart = now // the backfill is stored, its activity not applied: too early to judge
	case activityThrough.Before(now):
		p.Now = activityThrough
	}
	return p
}

// publish publishes envelopes and counts the outcome.
func (s *Service) publish(ctx context.Context, envs []events.Envelope) error {
	if len(envs) == 0 {
		return nil
	}
	if err := s.bus.Publish(ctx, envs); err != nil {
		if ctx.Err() == nil {
			s.metrics.publishFailures.Inc()
		}
		return internal(codeNATSUnavailable, err)
	}
	s.metrics.eventsPublished.Add(float64(len(envs)))
	return nil
}

// stored counts a failed ClickHouse write and passes its error on.
func (s *Service) stored(err error) error {
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			s.metrics.storeFailures.Inc()
		}
		return internal(codeStorageUnavailable, err)
	}
	return nil
}

// Error codes of a run that failed on the collector's own dependencies rather than on
// Greenhouse. They appear in last_sync, saas.sync.completed and sync_runs, never on a check:
// the customer's admin can do nothing about them, the operator can.
const (
	codeStorageUnavailable = "storage_unavailable" // ClickHouse read or write failed
	codeNATSUnavailable    = "nats_unavailable"    // a publish or a KV read or write failed
	codeClientUnavailable  = "client_unavailable"  // the stored secret cannot be opened (sealing key gone)
)

// internalMessage is the customer-facing message of an internal code ("" for other codes):
// the raw cause (addresses, driver errors) stays in the operator's log.
func internalMessage(code string) string {
	switch code {
	case codeStorageUnavailable:
		return "The collector's storage (ClickHouse) was unavailable; the sync is retried by itself."
	case codeNATSUnavailable:
		return "The collector's messaging (NATS) was unavailable; the sync is retried by itself."
	case codeClientUnavailable:
		return "The collector could not open the stored credential (its sealing key is not configured); the operator must restore the key, or the customer reconnect."
	}
	return ""
}

// internalError marks a failure of ClickHouse or NATS inside a sync.
type internalError struct {
	code string
	err  error
}

func (e *internalError) Error() string { return e.err.Error() }
func (e *internalError) Unwrap() error { return e.err }

// internal wraps err (nil stays nil) as a failure of the collector's own dependency.
func internal(code string, err error) error {
	if err == nil {
		return nil
	}
	var ie *internalError
	if errors.As(err, &ie) {
		return err
	}
	return &internalError{code: code, err: err}
}

// internalCode returns the code of an internalError in err's chain, or "".
func internalCode(err error) string {
	var ie *internalError
	if errors.As(err, &ie) {
		return ie.code
	}
	return ""
}
