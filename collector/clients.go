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

	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse"
	"github.com/seatwatch/greenhouse-collector/events"
)

// clientCache holds each tenant's Greenhouse client. Clients keep the token and the pacing
// state between syncs, and across a reconnect with the same credential: Greenhouse may keep
// one live token per credential (docs/greenhouse-wire.md), and a new client would mint
// another. Clients are keyed by the connection generation they serve and by credentialKey.
type clientCache struct {
	cfg     Config
	sealer  *events.Sealer
	hc      *http.Client   // nil: the connector's default
	rootCAs *x509.CertPool // nil: the system's roots
	log     zerolog.Logger
	now     func() time.Time

	mu      sync.Mutex
	clients map[string]tenantClient // by tenant
	credKey []byte                  // HMAC key of credentialKey, this process's alone
}

// tenantClient is a tenant's Greenhouse client, with the connection generation it serves and
// the key of the credential it was built from (credentialKey).
type tenantClient struct {
	generation int64
	credential [32]byte
	client     *greenhouse.Client
}

func newClientCache(cfg Config, sealer *events.Sealer, hc *http.Client, rootCAs *x509.CertPool, log zerolog.Logger, now func() time.Time) (*clientCache, error) {
	c := &clientCache{cfg: cfg, sealer: sealer, hc: hc, rootCAs: rootCAs, log: log, now: now,
		clients: map[string]tenantClient{}, credKey: make([]byte, 32)}
	if _, err := rand.Read(c.credKey); err != nil {
		return nil, fmt.Errorf("collector: credential key: %w", err)
	}
	return c, nil
}

// client returns the tenant's Greenhouse client for a sync, building it (and unsealing the
// secret) when the connection's generation changed and the credential with it.
//
// Before a client is built, the stored endpoints are checked against the running
// configuration (endpointsRefused), and the secret opens only with the tenant, client id,
// admin user and endpoints it was sealed with (secretBinding). Either failure is a
// *syncError on the credentials check (endpoint_not_allowed, sealed_secret_mismatch): the
// connection is not used. A secret sealed under a key this replica does not hold is
// client_unavailable, the operator's to fix.
func (c *clientCache) client(ctx context.Context, tenant string, sc storedConnection) (greenhouseClient, error) {
	c.mu.Lock()
	tc, ok := c.clients[tenant]
	c.mu.Unlock()
	if ok && tc.generation == sc.Generation {
		return tc.client, nil
	}
	if sc.Secret == nil {
		return nil, fmt.Errorf("tenant %q is disconnected", tenant)
	}
	if e := c.cfg.endpointsRefused(ctx, sc.Doc.Endpoints); e != nil {
		return nil, &syncError{check: greenhouse.CheckCredentials, code: codeEndpointNotAllowed, err: fmt.Errorf("stored endpoints of tenant %q refused: %s", tenant, e.Message)}
	}
	secret, err := c.sealer.Open(*sc.Secret, secretBinding(tenant, sc.Doc))
	if errors.Is(err, events.ErrTampered) {
		return nil, &syncError{check: greenhouse.CheckCredentials, code: codeSealedSecretMismatch, err: fmt.Errorf("unseal client secret of tenant %q: %w", tenant, err)}
	}
	if err != nil {
		return nil, &syncError{code: codeClientUnavailable, err: fmt.Errorf("unseal client secret of tenant %q: %w", tenant, err)}
	}
	key := c.credentialKey(sc.Doc.ClientID, secret, sc.Doc.AdminUserID, sc.Doc.Endpoints)
	c.mu.Lock()
	defer c.mu.Unlock()
	if tc, ok := c.clients[tenant]; ok && tc.credential == key {
		tc.generation = sc.Generation
		c.clients[tenant] = tc
		return tc.client, nil
	}
	gc, err := c.build(tenant, sc.Doc.ClientID, secret, sc.Doc.AdminUserID, sc.Doc.Endpoints)
	if err != nil {
		return nil, err
	}
	c.clients[tenant] = tenantClient{generation: sc.Generation, credential: key, client: gc}
	return gc, nil
}

// forConnect returns the client a connect request's checks run on: the tenant's own when the
// credential is the one it holds (its token is reused, not a new one minted), else a new
// one, which keep then makes the tenant's once the connection is stored.
func (c *clientCache) forConnect(tenant, clientID, secret string, adminUserID int64, ep *events.Endpoints) (gc *greenhouse.Client, keep func(generation int64), err error) {
	key := c.credentialKey(clientID, secret, adminUserID, ep)
	c.mu.Lock()
	tc, ok := c.clients[tenant]
	c.mu.Unlock()
	if ok && tc.credential == key {
		gc = tc.client
	} else if gc, err = c.build(tenant, clientID, secret, adminUserID, ep); err != nil {
		return nil, nil, err
	}
	return gc, func(generation int64) {
		c.mu.Lock()
		c.clients[tenant] = tenantClient{generation: generation, credential: key, client: gc}
		c.mu.Unlock()
	}, nil
}

// credentialKey identifies a credential and where it is sent, without keeping the secret: an
// HMAC under a key of this process.
func (c *clientCache) credentialKey(clientID, secret string, adminUserID int64, endpoints *events.Endpoints) [32]byte {
	var ep events.Endpoints
	if endpoints != nil {
		ep = *endpoints
	}
	m := hmac.New(sha256.New, c.credKey)
	for _, v := range []string{clientID, secret, strconv.FormatInt(adminUserID, 10), ep.Auth, ep.Harvest, ep.AuditLog} {
		_, _ = fmt.Fprintf(m, "%d:%s", len(v), v)
	}
	var out [32]byte
	copy(out[:], m.Sum(nil))
	return out
}

// drop forgets a tenant's client (a disconnect).
func (c *clientCache) drop(tenant string) {
	c.mu.Lock()
	delete(c.clients, tenant)
	c.mu.Unlock()
}

// build makes a Greenhouse client with the configuration's transport, address rules and rate
// windows.
func (c *clientCache) build(tenant, clientID, secret string, adminUserID int64, ep *events.Endpoints) (*greenhouse.Client, error) {
	var gep greenhouse.Endpoints
	if ep != nil {
		gep = greenhouse.Endpoints{Auth: ep.Auth, Harvest: ep.Harvest, AuditLog: ep.AuditLog}
	}
	w, _ := parseWindows(c.cfg.GreenhouseWindows) // validated with the configuration
	cfg := greenhouse.Config{
		Endpoints:           gep,
		ClientID:            clientID,
		ClientSecret:        secret,
		AdminUserID:         adminUserID,
		HTTPClient:          c.hc,
		Logger:              c.log.With().Str("tenant", tenant).Logger(),
		Now:                 c.now,
		AllowInsecure:       c.cfg.AllowInsecureEndpoints,
		UnsafeAllowLoopback: c.cfg.UnsafeAllowLoopbackEndpointsForTests,
		RootCAs:             c.rootCAs,
		TokenWindow:         w.Token,
		HarvestWindow:       w.Harvest,
		AuditWindow:         w.Audit,
	}
	if w.AuditPaged > 0 {
		cfg.AuditPagedLimit, cfg.AuditPagedWindow = 3, w.AuditPaged
	}
	return greenhouse.New(cfg)
}
