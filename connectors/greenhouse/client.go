// Package greenhouse is the connector for Greenhouse Recruiting: Harvest v3 (OAuth 2.0 client
// credentials with sub = a Site Admin) and the Audit Log. It mints and refreshes tokens, paces
// itself from Greenhouse's rate-limit headers, retries transient failures, streams bulk
// listings page by page, reads the Audit Log in time windows sized from hits, maps every
// failure to one error vocabulary, and runs the connect-flow checks. It knows nothing of NATS
// or ClickHouse.
package greenhouse

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Production base URLs (docs/greenhouse-wire.md, "Base URLs").
const (
	DefaultAuth     = "https://auth.greenhouse.io"
	DefaultHarvest  = "https://harvest.greenhouse.io"
	DefaultAuditLog = "https://auditlog.us.greenhouse.io"
)

// Defaults, and the documented limits they come from (docs/greenhouse-wire.md):
//
//   - Each request class (token, Harvest, Audit Log, paginated Audit Log) has its own pacer in
//     a Client, and a Client is one credential, so the budgets are never shared or mixed up.
//     pacer.go says how a pacer follows whatever subset of the rate-limit headers an answer
//     carries. No reserve is kept: a credential belongs to the collector alone, requests of
//     one Client are counted locally before their answers arrive, and a reserve would only
//     cost throughput (a reserve of one is 2% of the Audit Log's 50).
//   - A 429 is waited out exactly for its Retry-After (seconds or an HTTP date), at most
//     maxRetryAfter; without Retry-After it backs off like a transient failure.
//   - Transient failures (5xx, timeouts, resets, cut bodies) are retried MaxRetries times (4)
//     with full-jitter exponential backoff from 250 ms, capped at 8 s: about 15 s in all,
//     less than one Harvest window, and never past the context's deadline.
const (
	// maxBody caps a response body: a 500-item page is far below it (a page of 500 users is
	// about 250 KiB).
	maxBody = 64 << 20
	// maxPages caps one listing: 100,000 pages of 500 is 50 million records.
	maxPages = 100_000
	// refreshEarly renews a token this long before it expires.
	refreshEarly = 60 * time.Second
	// maxRetryAfter clamps an absurd Retry-After or X-RateLimit-Reset.
	maxRetryAfter = 5 * time.Minute
	// pagedLimit and pagedWindow are the Audit Log's limit on paginated requests (3 per 30 s,
	// docs/greenhouse-wire.md); no header reports it, so it is enforced locally.
	pagedLimit  = 3
	pagedWindow = 30 * time.Second
	// defaultRetries is the number of retries of a transient failure or a 429 per request.
	defaultRetries = 4
	// maxRedirects bounds same-host redirects of the default HTTP client.
	maxRedirects = 5
)

// Endpoints are the base URLs; "" means Greenhouse production.
type Endpoints struct{ Auth, Harvest, AuditLog string }

// Config configures a Client. ClientID and ClientSecret are a "Harvest V3 (OAuth)" credential;
// AdminUserID is the numeric id of an active Site Admin, the sub of every token.
type Config struct {
	Endpoints    Endpoints
	ClientID     string
	ClientSecret string
	AdminUserID  int64
	// HTTPClient sends the requests; nil means a client with a 10 s connect timeout, a 30 s
	// response header timeout, redirects followed only on the same scheme and host, no proxy,
	// and the address checks of dial.go. A client given here replaces all of that.
	HTTPClient *http.Client
	// Logger receives a debug line per retry, throttle and token refresh; never a secret.
	Logger zerolog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// MaxRetries is the number of retries of a transient failure or a 429 per request
	// (default 4).
	MaxRetries int
	// AuditPagedLimit and AuditPagedWindow are the Audit Log's limit on paginated requests;
	// zero means the documented 3 per 30 s. Tests against a scaled simulator lower them.
	AuditPagedLimit  int
	AuditPagedWindow time.Duration
	// TokenWindow, HarvestWindow and AuditWindow are the lengths of the rate-limit windows
	// assumed where an answer names no X-RateLimit-Reset; zero means the documented 60 s, 30 s
	// and 10 s. Tests against a scaled simulator shorten them.
	TokenWindow, HarvestWindow, AuditWindow time.Duration
	// AllowInsecure accepts plain-http base URLs; without it only https is accepted.
	AllowInsecure bool
	// UnsafeAllowLoopback lets the default client connect to loopback addresses, which it
	// otherwise refuses with private, link-local and other non-global ones (dial.go). For
	// tests and the local demo against a server on this host only, never in production.
	UnsafeAllowLoopback bool
	// RootCAs verifies the servers' certificates in the default client; nil means the
	// system's roots.
	RootCAs *x509.CertPool
}

// String describes the configuration with the secret masked.
func (c Config) String() string {
	return fmt.Sprintf("{Endpoints:%+v ClientID:%s ClientSecret:*** AdminUserID:%d MaxRetries:%d}", c.Endpoints, c.ClientID, c.AdminUserID, c.MaxRetries)
}

// GoString is String: %#v must not print the secret either.
func (c Config) GoString() string { return c.String() }

// Stats count a client's requests: every HTTP request sent, every 429 received, every retry.
type Stats struct{ Requests, Throttled, Retries int64 }

// Client is one tenant's Greenhouse client; safe for concurrent use.
type Client struct {
	cfg  Config
	hc   *http.Client
	base map[endpointKind]*url.URL
	log  zerolog.Logger
	now  func() time.Time

	tokSem  chan struct{} // held while a token is read or minted: one mint at a time
	token   string
	expires time.Time

	pacers map[endpointKind]*pacer
	paged  *pacer

	requests, throttled, retries atomic.Int64
	// twoPartSearchAfter is set once the Audit Log refused a Search-After of three parts.
	twoPartSearchAfter atomic.Bool
}

type endpointKind int

const (
	kindToken endpointKind = iota
	kindHarvest
	kindAudit
)

// legacyKey is the form of a retired Harvest v1/v2 API key: 32 hex digits.
var legacyKey = regexp.MustCompile(`^[0-9a-fA-F]{32}$`)

// IsLegacyAPIKey reports whether a client id and secret are a retired Harvest v1/v2 API key
// pasted as a client id: 32 hex digits and no secret. Such a key stopped working on
// 2026-08-31; New refuses it with ErrLegacyAPIKey, and the connect flow answers
// legacy_api_key before any request.
func IsLegacyAPIKey(clientID, clientSecret string) bool {
	return legacyKey.MatchString(clientID) && clientSecret == ""
}

// New validates cfg and returns a client. A bare 32-hex-digit client id without secret is a
// retired v1/v2 Harvest key: ErrLegacyAPIKey.
func New(cfg Config) (*Client, error) {
	if IsLegacyAPIKey(cfg.ClientID, cfg.ClientSecret) {
		return nil, &APIError{Op: "configure client", Code: CodeLegacyAPIKey, Message: "a Harvest v1/v2 API key was given; create a Harvest V3 (OAuth) credential"}
	}
	var errs []error
	if strings.TrimSpace(cfg.ClientID) == "" {
		errs = append(errs, errors.New("client id is empty"))
	}
	if cfg.ClientSecret == "" {
		errs = append(errs, errors.New("client secret is empty"))
	}
	if cfg.AdminUserID <= 0 {
		errs = append(errs, errors.New("admin user id must be positive"))
	}
	c := &Client{cfg: cfg, log: cfg.Logger, now: cfg.Now, base: map[endpointKind]*url.URL{}}
	for kind, raw := range map[endpointKind]string{kindToken: or(cfg.Endpoints.Auth, DefaultAuth), kindHarvest: or(cfg.Endpoints.Harvest, DefaultHarvest), kindAudit: or(cfg.Endpoints.AuditLog, DefaultAuditLog)} {
		u, err := url.Parse(strings.TrimRight(raw, "/"))
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("base URL %q is not an absolute http(s) URL", raw))
			continue
		}
		if u.Scheme == "http" && !cfg.AllowInsecure {
			errs = append(errs, fmt.Errorf("base URL %q is plain http, which is refused without AllowInsecure", raw))
			continue
		}
		c.base[kind] = u
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("configure Greenhouse client: %w", err)
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.cfg.MaxRetries <= 0 {
		c.cfg.MaxRetries = defaultRetries
	}
	c.hc = cfg.HTTPClient
	if c.hc == nil {
		// No proxy: the dialer's address checks must see the address really connected to.
		c.hc = &http.Client{
			Transport: &http.Transport{
				DialContext:           guardedDialer(cfg.UnsafeAllowLoopback).DialContext,
				TLSClientConfig:       &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12},
				TLSHandshakeTimeout:   10 * time.Second,
				ResponseHeaderTimeout: 30 * time.Second,
				MaxIdleConnsPerHost:   4,
				IdleConnTimeout:       90 * time.Second,
			},
			CheckRedirect: sameHostRedirects,
		}
	}
	c.tokSem = make(chan struct{}, 1)
	c.pacers = map[endpointKind]*pacer{}
	for kind, w := range map[endpointKind]time.Duration{kindToken: cfg.TokenWindow, kindHarvest: cfg.HarvestWindow, kindAudit: cfg.AuditWindow} {
		if w <= 0 {
			w = defaultWindows[kind]
		}
		c.pacers[kind] = newPacer(w, defaultLimits[kind])
	}
	c.paged = newLocalPacer(pagedLimit, pagedWindow)
	if cfg.AuditPagedLimit > 0 && cfg.AuditPagedWindow > 0 {
		c.paged = newLocalPacer(cfg.AuditPagedLimit, cfg.AuditPagedWindow)
	}
	return c, nil
}

// sameHostRedirects follows a redirect only on the scheme and host of the original request,
// at most maxRedirects times; anything else is returned to the caller as the 3xx answer,
// which is an unexpected response.
func sameHostRedirects(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects || req.URL.Scheme != via[0].URL.Scheme || req.URL.Host != via[0].URL.Host {
		return http.ErrUseLastResponse
	}
	return nil
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// String describes the client without its secret or token.
func (c *Client) String() string {
	return fmt.Sprintf("greenhouse.Client{ClientID:%s AdminUserID:%d Harvest:%s}", c.cfg.ClientID, c.cfg.AdminUserID, c.base[kindHarvest])
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	return Stats{Requests: c.requests.Load(), Throttled: c.throttled.Load(), Retries: c.retries.Load()}
}
