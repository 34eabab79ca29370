// Package greenhouse is the connector for Greenhouse Recruiting: Harvest v3 (OAuth 2.0 client
// credentials with sub = a Site Admin) and the Audit Log. It mints and refreshes tokens, paces
// itself from Greenhouse's rate-limit headers, retries transient failures, streams bulk
// listings page by page, reads the Audit Log in time windows sized from hits, maps every
// failure to one error vocabulary, and runs the connect-flow checks. It knows nothing of NATS
// or ClickHouse.
package greenhouse

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Production base URLs (GREENHOUSE.md 3.2, 4.1).
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

var legacyKey = regexp.MustCompile(`^[0-9a-fA-F]{32}$`)

// New validates cfg and returns a client. A bare 32-hex-digit client id without secret is a
// retired v1/v2 Harvest key: ErrLegacyAPIKey.
func New(cfg Config) (*Client, error) {
	if legacyKey.MatchString(cfg.ClientID) && cfg.ClientSecret == "" {
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

// accessToken returns a valid token, minting one when none is held, the one held expires
// within refreshEarly, or it equals stale (a token Greenhouse just refused with a 401). Minting
// is single-flight: concurrent callers wait for one mint (or their ctx) and share its token.
func (c *Client) accessToken(ctx context.Context, stale string) (string, error) {
	select {
	case c.tokSem <- struct{}{}:
	case <-ctx.Done():
		return "", &APIError{Op: "mint token", Code: CodeUnavailable, Err: ctx.Err()}
	}
	defer func() { <-c.tokSem }()
	if c.token != "" && c.token != stale && c.now().Before(c.expires.Add(-refreshEarly)) {
		return c.token, nil
	}
	return c.mintLocked(ctx)
}

// mintLocked posts the client-credentials grant; c.tokSem is held.
func (c *Client) mintLocked(ctx context.Context) (string, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "sub": {strconv.FormatInt(c.cfg.AdminUserID, 10)}}
	target := c.base[kindToken].String() + "/token"
	body, _, err := c.send(ctx, "mint token", kindToken, func() (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(form.Encode()))
		if err != nil {
			return nil, err
		}
		req.SetBasicAuth(c.cfg.ClientID, c.cfg.ClientSecret)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return req, nil
	}, false)
	if err != nil {
		return "", err
	}
	tok, exp, err := decodeToken(body, c.now())
	if err != nil {
		return "", &APIError{Op: "mint token", Code: CodeUnexpectedResponse, Err: err}
	}
	c.token, c.expires = tok, exp
	c.log.Debug().Time("expires", exp).Msg("greenhouse token minted")
	return tok, nil
}

// send performs one logical request with pacing, retries of transient failures and 429s, and
// (when auth is set) a token refresh and one retry on a 401. It returns the body of a 2xx
// answer. Every error is an *APIError.
func (c *Client) send(ctx context.Context, op string, kind endpointKind, build func() (*http.Request, error), auth bool) ([]byte, http.Header, error) {
	refreshed := false
	var lastErr error
	// retry waits d before the next attempt, unless that would outlast ctx's deadline.
	retry := func(d time.Duration, attempt int, why error) error {
		if attempt >= c.cfg.MaxRetries {
			return why
		}
		if dl, ok := ctx.Deadline(); ok && c.now().Add(d).After(dl) {
			return why
		}
		c.retries.Add(1)
		c.log.Debug().Str("op", op).Int("attempt", attempt+1).Dur("wait", d).Str("code", string(CodeOf(why))).Msg("greenhouse request retried")
		if err := sleep(ctx, d); err != nil {
			return why
		}
		return nil
	}
	for attempt := 0; ; attempt++ {
		tk, err := c.pacers[kind].wait(ctx, c.now)
		if err != nil {
			return nil, nil, c.paceErr(op, err, lastErr)
		}
		req, err := build()
		if err != nil {
			return nil, nil, &APIError{Op: op, Code: CodeUnexpectedResponse, Err: err}
		}
		tok := ""
		if auth {
			if tok, err = c.accessToken(ctx, ""); err != nil {
				return nil, nil, err
			}
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		req.Header.Set("Accept", "application/json")
		c.requests.Add(1)
		resp, err := c.hc.Do(req)
		var body []byte
		if err == nil {
			body, err = io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
			_ = resp.Body.Close()
			if err == nil && len(body) > maxBody {
				return nil, nil, &APIError{Op: op, Status: resp.StatusCode, Code: CodeUnexpectedResponse, Message: fmt.Sprintf("response larger than %d MiB", maxBody>>20)}
			}
			c.pacers[kind].observe(tk, resp.Header, c.now())
		}
		if err != nil {
			// A failed connection, a timeout, or a body cut short: transient.
			if ctx.Err() != nil {
				return nil, nil, c.ctxErr(op, ctx.Err(), lastErr)
			}
			lastErr = &APIError{Op: op, Code: CodeUnavailable, Err: scrub(err)}
			if err := retry(backoff(attempt), attempt, lastErr); err != nil {
				return nil, nil, err
			}
			continue
		}
		switch {
		case resp.StatusCode >= 200 && resp.StatusCode < 300:
			return body, resp.Header, nil
		case resp.StatusCode == 429:
			c.throttled.Add(1)
			wait, ok := parseRetryAfter(resp.Header.Get("Retry-After"), c.now())
			if !ok {
				wait = backoff(attempt)
			}
			lastErr = &APIError{Op: op, Status: 429, Code: CodeRateLimited, RetryAfter: wait, Message: c.redact(errorMessage(body), tok)}
			if dl, ok := ctx.Deadline(); ok && c.now().Add(wait).After(dl) {
				return nil, nil, lastErr
			}
			if attempt >= c.cfg.MaxRetries {
				return nil, nil, lastErr
			}
			// The pacer holds every request of this class until Retry-After has passed.
			c.pacers[kind].block(c.now().Add(wait))
			c.retries.Add(1)
			c.log.Debug().Str("op", op).Dur("retry_after", wait).Msg("greenhouse request throttled")
			continue
		case resp.StatusCode == 401 && auth && !refreshed:
			refreshed = true
			c.log.Debug().Str("op", op).Msg("greenhouse token refused; refreshing")
			if _, err := c.accessToken(ctx, tok); err != nil {
				return nil, nil, err
			}
			continue
		case resp.StatusCode >= 500:
			e := classify(op, kind, resp.StatusCode, body)
			e.Message = c.redact(e.Message, tok)
			lastErr = e
			if err := retry(backoff(attempt), attempt, lastErr); err != nil {
				return nil, nil, err
			}
			continue
		default:
			e := classify(op, kind, resp.StatusCode, body)
			e.Message = c.redact(e.Message, tok)
			return nil, resp.Header, e
		}
	}
}

// redact masks the secret and the token should a server echo them in an error body.
func (c *Client) redact(msg, tok string) string {
	for _, s := range []string{c.cfg.ClientSecret, tok} {
		if len(s) >= 4 {
			msg = strings.ReplaceAll(msg, s, "***")
		}
	}
	return msg
}

// ctxErr reports a context end, keeping the failure that was being retried.
func (c *Client) ctxErr(op string, err, last error) error {
	if last != nil {
		return last
	}
	return &APIError{Op: op, Code: CodeUnavailable, Err: err}
}

// paceErr reports a pacer that could not let a request go before ctx's deadline.
func (c *Client) paceErr(op string, err, last error) error {
	if errors.Is(err, errPacedPastDeadline) {
		return &APIError{Op: op, Code: CodeRateLimited, Message: "the rate limit leaves no request before the deadline", Err: err}
	}
	return c.ctxErr(op, err, last)
}

// backoff is capped exponential backoff with full jitter: 250 ms, 500 ms, … up to 8 s.
func backoff(attempt int) time.Duration {
	d := 250 * time.Millisecond << min(attempt, 5)
	return time.Duration(rand.Int64N(int64(d))) + d/2
}

// scrub removes URLs (which could carry query values) from transport errors.
func scrub(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s %s: %w", ue.Op, redactURL(ue.URL), ue.Err)
	}
	return err
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(url)"
	}
	u.RawQuery, u.User = "", nil
	return u.String()
}

// list streams a Harvest v3 collection: the first request carries query, later requests follow
// the next link as given, which must stay on the same host.
func (c *Client) list(ctx context.Context, op, path string, query url.Values, page func([]byte) error) error {
	base := c.base[kindHarvest]
	next := base.String() + path + "?" + query.Encode()
	// Cursors seen, as 64-bit hashes: a loop is caught with 8 bytes per page kept.
	seen := map[uint64]struct{}{}
	for n := 0; next != ""; n++ {
		if n >= maxPages {
			return &APIError{Op: op, Code: CodeUnexpectedResponse, Message: fmt.Sprintf("more than %d pages", maxPages)}
		}
		target := next
		body, h, err := c.send(ctx, op, kindHarvest, func() (*http.Request, error) {
			return http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		}, true)
		if err != nil {
			return err
		}
		if err := page(body); err != nil {
			return err
		}
		next, err = nextLink(h.Get("Link"), base)
		if err != nil {
			return &APIError{Op: op, Code: CodeUnexpectedResponse, Err: err}
		}
		if next != "" {
			h := fnv.New64a()
			_, _ = h.Write([]byte(next))
			if _, dup := seen[h.Sum64()]; dup {
				return &APIError{Op: op, Code: CodeUnexpectedResponse, Message: "pagination loops: a next link repeats"}
			}
			seen[h.Sum64()] = struct{}{}
		}
	}
	return nil
}

var linkPart = regexp.MustCompile(`<([^>]*)>\s*;([^,]*)`)

// nextLink returns the rel="next" URL of a Link header, "" when there is none. A next link on
// another scheme or host is an error: it is never followed.
func nextLink(header string, base *url.URL) (string, error) {
	if strings.TrimSpace(header) == "" {
		return "", nil
	}
	if len(header) > 16<<10 {
		return "", errors.New("Link header too long")
	}
	for _, m := range linkPart.FindAllStringSubmatch(header, -1) {
		params := strings.ToLower(strings.ReplaceAll(m[2], " ", ""))
		if !strings.Contains(params, `rel="next"`) && !strings.Contains(params, "rel=next") {
			continue
		}
		if strings.TrimSpace(m[1]) == "" {
			return "", nil
		}
		u, err := base.Parse(m[1])
		if err != nil {
			return "", fmt.Errorf("invalid next link: %w", err)
		}
		if u.Scheme != base.Scheme || u.Host != base.Host {
			return "", fmt.Errorf("next link points to another host (%s://%s)", u.Scheme, u.Host)
		}
		return u.String(), nil
	}
	return "", nil
}

// ListUsers streams users (service accounts included), 500 per page. A zero query lists
// everyone; otherwise a two-sided updated_at window.
func (c *Client) ListUsers(ctx context.Context, q UserQuery, fn func([]User) error) error {
	v := url.Values{"per_page": {"500"}, "show_service_accounts": {"true"}}
	if !q.UpdatedFrom.IsZero() || !q.UpdatedTo.IsZero() {
		var parts []string
		if !q.UpdatedFrom.IsZero() {
			parts = append(parts, "gte", q.UpdatedFrom.UTC().Format(time.RFC3339))
		}
		if !q.UpdatedTo.IsZero() {
			parts = append(parts, "lte", q.UpdatedTo.UTC().Format(time.RFC3339))
		}
		v.Set("updated_at", strings.Join(parts, "|"))
	}
	return c.list(ctx, "list users", "/v3/users", v, func(b []byte) error {
		users, err := decodeUsers(b)
		if err != nil {
			return &APIError{Op: "list users", Code: CodeUnexpectedResponse, Err: err}
		}
		return fn(users)
	})
}

// ListUserRoles streams the user roles.
func (c *Client) ListUserRoles(ctx context.Context, fn func([]UserRole) error) error {
	return c.list(ctx, "list user roles", "/v3/user_roles", url.Values{"per_page": {"500"}}, func(b []byte) error {
		var rs []UserRole
		if err := decodeArray(b, &rs); err != nil {
			return &APIError{Op: "list user roles", Code: CodeUnexpectedResponse, Err: err}
		}
		return fn(rs)
	})
}

// ListJobPermissions streams every user job permission.
func (c *Client) ListJobPermissions(ctx context.Context, fn func([]JobPermission) error) error {
	return c.list(ctx, "list user job permissions", "/v3/user_job_permissions", url.Values{"per_page": {"500"}}, func(b []byte) error {
		var ps []JobPermission
		if err := decodeArray(b, &ps); err != nil {
			return &APIError{Op: "list user job permissions", Code: CodeUnexpectedResponse, Err: err}
		}
		return fn(ps)
	})
}

// ListFutureJobPermissions streams every future job permission.
func (c *Client) ListFutureJobPermissions(ctx context.Context, fn func([]FutureJobPermission) error) error {
	return c.list(ctx, "list future job permissions", "/v3/future_job_permissions", url.Values{"per_page": {"500"}}, func(b []byte) error {
		var ps []FutureJobPermission
		if err := decodeArray(b, &ps); err != nil {
			return &APIError{Op: "list future job permissions", Code: CodeUnexpectedResponse, Err: err}
		}
		return fn(ps)
	})
}

// auditQuery fetches one page of /events for [from, to) without paging.
func (c *Client) auditQuery(ctx context.Context, from, to time.Time, size int, pitID, searchAfter string, paging bool) (auditPage, error) {
	v := url.Values{"after_time": {auditTime(from)}, "before_time": {auditTime(to)}, "size": {strconv.Itoa(size)}}
	if paging {
		v.Set("paging", "true")
		if _, err := c.paged.wait(ctx, c.now); err != nil {
			return auditPage{}, c.paceErr("read audit log", err, nil)
		}
	}
	target := c.base[kindAudit].String() + "/events?" + v.Encode()
	body, _, err := c.send(ctx, "read audit log", kindAudit, func() (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Size", strconv.Itoa(size))
		if pitID != "" {
			req.Header.Set("Pit-Id", pitID)
		}
		if searchAfter != "" {
			req.Header.Set("Search-After", searchAfter)
		}
		return req, nil
	}, true)
	if err != nil {
		return auditPage{}, err
	}
	p, err := decodeAuditPage(body)
	if err != nil {
		return auditPage{}, &APIError{Op: "read audit log", Code: CodeUnexpectedResponse, Err: err}
	}
	return p, nil
}

func auditTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

const (
	auditPageSize = 500
	// auditTarget is the number of events a window is sized for: below the page size, so a
	// window whose density was estimated a little low still fits one request.
	auditTarget = 400
)

// AuditEvents delivers every Audit Log event in [from, to), oldest window first, each once.
// Windows are read without paging, size=500; a window with more hits than one page is split
// into ceil(hits/400) parts and the next window is sized from the density seen, so an ordinary
// window costs one request; a one-second window still too dense is read with point-in-time
// pagination (3 requests per 30 s). Windows overlap by one second and events are deduplicated
// by ID within the call. Each batch's events are sorted by time; a batch with a non-zero
// Through means every event in [from, Through) has been delivered, and Through never passes
// to. fn's error is returned as is; every other error is an *APIError.
func (c *Client) AuditEvents(ctx context.Context, from, to time.Time, fn func(AuditBatch) error) error {
	from, to = from.UTC().Truncate(time.Second), to.UTC()
	if !to.After(from) {
		return nil
	}
	// The API takes whole seconds: the last window ends at the second after to, and Through
	// is clamped to to.
	limit := to
	if to.Truncate(time.Second).Before(to) {
		to = to.Truncate(time.Second).Add(time.Second)
	}
	through := func(end time.Time) time.Time {
		if end.After(limit) {
			return limit
		}
		return end
	}
	// seen holds the ids delivered in the current overlap (pruned after each window), so
	// memory follows the window, not the range.
	seen := map[string]time.Time{}
	width := to.Sub(from)
	for start := from; start.Before(to); {
		end := start.Add(width)
		if end.After(to) {
			end = to
		}
		// Windows overlap by one second at their start: the API's boundary semantics are not
		// documented, and duplicates are dropped by id.
		qFrom := start
		if start.After(from) {
			qFrom = start.Add(-time.Second)
		}
		p, err := c.auditQuery(ctx, qFrom, end, auditPageSize, "", "", false)
		if err != nil {
			return err
		}
		// hits is not documented (a total, a capped total, or the page's count): a full page
		// is never taken as the whole window, whatever hits says.
		if p.Hits > len(p.Results) || len(p.Results) >= auditPageSize {
			span := end.Sub(start)
			if span <= time.Second {
				if err := c.auditPIT(ctx, qFrom, end, seen, fn); err != nil {
					return err
				}
				if err := fn(AuditBatch{Through: through(end)}); err != nil {
					return err
				}
				prune(seen, end.Add(-time.Second))
				start = end
				continue
			}
			// Split: at least in two, so that a server answering fewer results than asked
			// still makes progress.
			parts := max(2, (p.Hits+auditTarget-1)/auditTarget)
			width = max(time.Second, (span / time.Duration(parts)).Truncate(time.Second))
			continue
		}
		if err := fn(AuditBatch{Events: dedup(p.Results, seen), Through: through(end)}); err != nil {
			return err
		}
		prune(seen, end.Add(-time.Second))
		start = end
		// Size the next window from the density seen here.
		if p.Hits > 0 {
			w := time.Duration(float64(end.Sub(qFrom)) * auditTarget / float64(p.Hits))
			width = max(time.Second, min(w, to.Sub(from)).Truncate(time.Second))
		} else {
			width = max(width*2, time.Second)
		}
	}
	return nil
}

// dedup drops the events already seen, records the others, and sorts them by time.
func dedup(in []AuditEvent, seen map[string]time.Time) []AuditEvent {
	out := in[:0]
	for _, e := range in {
		if _, ok := seen[e.ID]; ok {
			continue
		}
		seen[e.ID] = e.Time
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b AuditEvent) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// prune forgets the ids of events before t: the next window starts at t.
func prune(seen map[string]time.Time, t time.Time) {
	for id, at := range seen {
		if at.Before(t) {
			delete(seen, id)
		}
	}
}

// auditPIT reads a window with point-in-time pagination. When the point in time expires, or
// the API refuses a Search-After value it gave, it opens a new one resuming at the last
// position (paging=true with Search-After and no Pit-Id), or from the window's start when the
// position itself was refused; should the API start over, the events already delivered are
// dropped by id. It gives up after three restarts in a row that deliver nothing new.
func (c *Client) auditPIT(ctx context.Context, from, to time.Time, seen map[string]time.Time, fn func(AuditBatch) error) error {
	resume := ""
	for stalls := 0; ; {
		last, progressed, err := c.auditPITOnce(ctx, from, to, resume, seen, fn)
		if err == nil || !restartablePIT(err) || refusedPosition(err) && resume == "" && last == "" {
			return err // done, or a failure a restart would only repeat
		}
		switch {
		case expiredPIT(err) && last != "":
			resume = last
		case !expiredPIT(err):
			resume = "" // the position was refused: start the window over
		}
		if progressed {
			stalls = 0
		} else if stalls++; stalls >= 3 {
			return err
		}
	}
}

// expiredPIT reports whether err is the Audit Log's answer to an expired point in time: the
// words "Pit_Id has expired" with no documented status, so recognised by message on any 4xx
// (docs/greenhouse-wire.md).
func expiredPIT(err error) bool {
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status < 400 || ae.Status > 499 || ae.Status == 401 || ae.Status == 429 {
		return false
	}
	m := strings.ToLower(ae.Message)
	return strings.Contains(m, "pit") && (strings.Contains(m, "expire") || strings.Contains(m, "invalid") || strings.Contains(m, "not found"))
}

// refusedPosition reports whether err is a validation answer (400 or 422) to a continuation
// request, such as a Search-After value the API does not take back.
func refusedPosition(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && (ae.Status == 400 || ae.Status == 422) && !expiredPIT(err)
}

// restartablePIT reports whether a point-in-time read that failed with err may start again.
func restartablePIT(err error) bool { return expiredPIT(err) || refusedPosition(err) }

// auditPITOnce pages through one point in time, starting at resume ("" = the start). It
// returns the last position reached and whether it delivered new events.
func (c *Client) auditPITOnce(ctx context.Context, from, to time.Time, resume string, seen map[string]time.Time, fn func(AuditBatch) error) (last string, progressed bool, err error) {
	p, err := c.auditContinue(ctx, from, to, "", resume)
	if err != nil {
		return "", false, err
	}
	for pages := 0; ; pages++ {
		if pages > maxPages {
			return last, progressed, &APIError{Op: "read audit log", Code: CodeUnexpectedResponse, Message: "too many pages"}
		}
		if evs := dedup(p.Results, seen); len(evs) > 0 {
			progressed = true
			if err := fn(AuditBatch{Events: evs}); err != nil {
				return last, progressed, err
			}
		}
		if p.Paging == nil || p.Paging.Next == "" || len(p.Results) == 0 {
			return last, progressed, nil
		}
		last = p.Paging.Next
		if p, err = c.auditContinue(ctx, from, to, p.Paging.PitID, p.Paging.Next); err != nil {
			return last, progressed, err
		}
	}
}

// auditContinue requests a paginated page at the position searchAfter, as given; if the API
// refuses a value of more than two parts it asks again with the first two, and keeps to two
// parts from then on (public clients disagree on the form the API takes back).
func (c *Client) auditContinue(ctx context.Context, from, to time.Time, pitID, searchAfter string) (auditPage, error) {
	if c.twoPartSearchAfter.Load() {
		searchAfter = twoParts(searchAfter)
	}
	p, err := c.auditQuery(ctx, from, to, auditPageSize, pitID, searchAfter, true)
	if err != nil && refusedPosition(err) && twoParts(searchAfter) != searchAfter {
		c.twoPartSearchAfter.Store(true)
		c.log.Debug().Msg("audit log refused a Search-After of more than two parts; sending two")
		return c.auditQuery(ctx, from, to, auditPageSize, pitID, twoParts(searchAfter), true)
	}
	return p, err
}

// Check runs the connect-flow checks within ctx (and at most 25 s).
func (c *Client) Check(ctx context.Context) []Check {
	ctx, cancel := context.WithTimeout(ctx, 25*time.Second)
	defer cancel()
	return c.check(ctx)
}

// probe is a single GET for the checks.
func (c *Client) probe(ctx context.Context, op string, kind endpointKind, target string) ([]byte, error) {
	body, _, err := c.send(ctx, op, kind, func() (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	}, true)
	return body, err
}
