package collector

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/seatwatch/greenhouse-collector/events"
	"github.com/seatwatch/greenhouse-collector/storage"
)

// The HTTP API (docs/api.md): routes and their middleware here, the connect flow in
// api_connect.go, the read API in api_read.go. The api depends on connections (the documents),
// the tenants' Greenhouse clients (the connect flow's checks) and ClickHouse's reads.

// readStore is what the read API and readiness ask of ClickHouse: *storage.Store.
type readStore interface {
	CurrentUsers(ctx context.Context, tenant, app string, fn func(storage.UserRow) error) error
	Utilisation(ctx context.Context, tenant, app string, p storage.UsageParams) (storage.Utilisation, error)
	Ping(ctx context.Context) error
}

// pinger answers whether a dependency is up: *events.Bus.
type pinger interface {
	Ping(ctx context.Context) error
}

// api serves the HTTP API.
type api struct {
	cfg         Config
	conns       *connections
	clients     *clientCache
	sealer      *events.Sealer
	checkpoints checkpointStore
	store       readStore
	bus         pinger
	metrics     *metrics
	log         zerolog.Logger
	now         func() time.Time
	connects    *rate.Limiter // connect requests; nil: unlimited
}

// apiCode is the code of an error answer (docs/api.md: the error body at its top, and each
// route's codes). The codes follow, by the status they answer with; a refused endpoint
// override answers codeEndpointNotAllowed.
type apiCode string

// 400: the body cannot be read as one JSON object of the request's type.
const (
	codeBodyTooLarge   apiCode = "body_too_large"
	codeInvalidBody    apiCode = "invalid_body"
	codeInvalidJSON    apiCode = "invalid_json"
	codeUnknownField   apiCode = "unknown_field"
	codeDuplicateField apiCode = "duplicate_field"
)

// 400: a value is missing or wrong.
const (
	codeInvalidTenantID apiCode = "invalid_tenant_id"
	codeInvalidField    apiCode = "invalid_field"
	codeMissingField    apiCode = "missing_field"
	codeInvalidCursor   apiCode = "invalid_cursor"
)

// 400: an endpoint override the operator's settings refuse.
const (
	codeOverrideDisabled apiCode = "endpoint_override_disabled"
	codeInsecureEndpoint apiCode = "insecure_endpoint"
)

// 401, 404, 409 and 429: the request is refused.
const (
	codeUnauthorized       apiCode = "unauthorized"
	codeNotFound           apiCode = "not_found"
	codeDisconnected       apiCode = "disconnected"
	codeTenantLimitReached apiCode = "tenant_limit_reached"
	codeTooManyRequests    apiCode = "too_many_requests"
)

// 500 and 503: the collector failed.
const (
	codeInternal    apiCode = "internal"
	codeUnavailable apiCode = "unavailable"
)

// apiError is the body of every 4xx/5xx answer: {"error": {"code", "message", "field"}}.
type apiError struct {
	Code    apiCode `json:"code"`
	Message string  `json:"message"`
	Field   string  `json:"field,omitempty"`
}

// handler returns the HTTP API. A new route is one line here, its handler in the file of its
// kind (api_connect.go, api_read.go), its documentation in docs/api.md (TestAPIDocExamples).
func (a *api) handler(metrics http.Handler) http.Handler {
	mux := http.NewServeMux()
	route := func(pattern string, auth bool, h http.HandlerFunc) {
		name := pattern[strings.IndexByte(pattern, ' ')+1:]
		var handler http.Handler = h
		if auth {
			handler = a.requireToken(h)
		}
		mux.Handle(pattern, a.instrument(name, handler))
	}
	const conn = "/v1/tenants/{tenant_id}/connections/greenhouse"
	route("PUT "+conn, true, a.putConnection)
	route("GET "+conn, true, a.getConnection)
	route("DELETE "+conn, true, a.deleteConnection)
	route("POST "+conn+"/sync", true, a.syncNow)
	route("GET /v1/connections", true, a.listConnections)
	route("GET /v1/tenants/{tenant_id}/licenses", true, a.licenses)
	route("GET /v1/tenants/{tenant_id}/usage/summary", true, a.summary)
	route("GET /healthz", false, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	route("GET /readyz", false, a.readyz)
	// The metrics name tenants: behind the token here, or on metrics-addr of their own.
	mux.Handle("GET /metrics", a.requireToken(metrics))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, apiError{Code: codeNotFound, Message: fmt.Sprintf("no route %s %s", r.Method, r.URL.Path)})
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The mux would redirect an unclean path (an empty tenant id, "..", "//") to its
		// cleaned form, another route; an API answers such a path with 404 instead.
		if p := r.URL.Path; p == "" || p[0] != '/' || path.Clean(p) != p {
			writeError(w, http.StatusNotFound, apiError{Code: codeNotFound, Message: "no route for a path with empty or dot segments"})
			return
		}
		mux.ServeHTTP(w, r)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) { r.code = code; r.ResponseWriter.WriteHeader(code) }

// instrument counts a route's answers by status and turns a handler's panic into a 500.
func (a *api) instrument(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		defer func() {
			if v := recover(); v != nil {
				a.log.Error().Str("route", route).Str("panic", fmt.Sprint(v)).Msg("api handler panicked")
				writeError(rec, http.StatusInternalServerError, apiError{Code: codeInternal, Message: "internal error"})
			}
			a.metrics.apiRequests.WithLabelValues(route, fmt.Sprint(rec.code)).Inc()
		}()
		h.ServeHTTP(rec, r)
	})
}

// metricsHandler serves the Prometheus metrics (no token: the API wraps it, metrics-addr does
// not).
func metricsHandler(m *metrics) http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// requireToken checks the bearer token in constant time. The scheme is case-insensitive
// (RFC 7235: "bearer" and "BEARER" are "Bearer").
func (a *api) requireToken(h http.Handler) http.Handler {
	want := []byte(a.cfg.APIToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		match := subtle.ConstantTimeCompare([]byte(strings.TrimLeft(token, " ")), want) == 1
		if !match || !strings.EqualFold(scheme, "Bearer") {
			w.Header().Set("WWW-Authenticate", `Bearer realm="collector"`)
			writeError(w, http.StatusUnauthorized, apiError{Code: codeUnauthorized, Message: "missing or wrong bearer token"})
			return
		}
		h.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, e apiError) {
	writeJSON(w, code, map[string]apiError{"error": e})
}

// tenantParam validates the tenant_id path parameter, answering 400 itself when it is bad.
func tenantParam(w http.ResponseWriter, r *http.Request) (string, bool) {
	tenant := r.PathValue("tenant_id")
	if err := ValidateTenantID(tenant); err != nil {
		writeError(w, http.StatusBadRequest, apiError{Code: codeInvalidTenantID, Message: err.Error(), Field: "tenant_id"})
		return "", false
	}
	return tenant, true
}

// noConnection answers 404 for a tenant without a connection.
func noConnection(w http.ResponseWriter, tenant string) {
	writeError(w, http.StatusNotFound, apiError{Code: codeNotFound, Message: fmt.Sprintf("tenant %q has no Greenhouse connection", tenant)})
}

// unavailable answers 503 for a state store that failed, logging why.
func (a *api) unavailable(w http.ResponseWriter, err error) {
	a.log.Error().Err(err).Msg("api")
	writeError(w, http.StatusServiceUnavailable, apiError{Code: codeUnavailable, Message: "state store unavailable; try again"})
}

func (a *api) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	checks := map[string]string{"clickhouse": "ok", "nats": "ok"}
	code := http.StatusOK
	if err := a.store.Ping(ctx); err != nil {
		checks["clickhouse"], code = "unreachable", http.StatusServiceUnavailable
	}
	if err := a.bus.Ping(ctx); err != nil {
		checks["nats"], code = "unreachable", http.StatusServiceUnavailable
	}
	writeJSON(w, code, checks)
}
