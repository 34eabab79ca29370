package collector

import (
	"context"
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

// readStore is what the read API and readiness ask of ClickHouse: *storage.Store. The
// licenses and summary (api_read.go) read the users and the utilisation; the users list and
// detail (api_users.go, csv.go), trends (api_trends.go) and sync runs (api_syncruns.go) the
// queries of storage/read.go.
type readStore interface {
	CurrentUsers(ctx context.Context, tenant, app string, fn func(storage.UserRow) error) error
	Utilisation(ctx context.Context, tenant, app string, p storage.UsageParams) (storage.Utilisation, error)
	UserIDs(ctx context.Context, tenant, app string, f storage.UserFilter, o storage.UserSort) ([]int64, error)
	UsersByID(ctx context.Context, tenant, app string, ids []int64, since time.Time) ([]storage.ListedUser, error)
	ExportUsers(ctx context.Context, tenant, app string, f storage.UserFilter, o storage.UserSort, since time.Time, fn func(storage.ListedUser) error) error
	UserHistory(ctx context.Context, tenant, app string, userID int64) ([]storage.UserChangeRow, error)
	UserDailyActivity(ctx context.Context, tenant, app string, userID int64, from, to time.Time) ([]storage.DailyActivityRow, error)
	UsageTrend(ctx context.Context, tenant, app, bucket string, from, to time.Time) ([]storage.UsageCountRow, error)
	SyncRuns(ctx context.Context, tenant, app string, f storage.SyncRunFilter, limit int, fn func(storage.SyncRunRow) error) error
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
	tokens      *tokenSet     // API tokens with their scopes (tokens.go); nil: api-token alone
	walks       *walkStore    // snapshots of users-list walks (walks.go)
	actions     *actions      // reclaim actions (actions.go, api_actions.go)
	judge       policyJudge   // re-judges a tenant whose policy changed (policy.go); nil: not at once
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
	codeInvalidTenantID  apiCode = "invalid_tenant_id"
	codeInvalidField     apiCode = "invalid_field"
	codeMissingField     apiCode = "missing_field"
	codeInvalidCursor    apiCode = "invalid_cursor"
	codeInvalidQuery     apiCode = "invalid_query"     // a query string that does not parse
	codeUnknownParameter apiCode = "unknown_parameter" // a query parameter the route does not take
)

// 400: an endpoint override the operator's settings refuse.
const (
	codeOverrideDisabled apiCode = "endpoint_override_disabled"
	codeInsecureEndpoint apiCode = "insecure_endpoint"
)

// 401, 403, 404, 409, 410 and 429: the request is refused (410: a users-list cursor whose
// walk expired).
const (
	codeUnauthorized       apiCode = "unauthorized"
	codeForbidden          apiCode = "forbidden"
	codeNotFound           apiCode = "not_found"
	codeDisconnected       apiCode = "disconnected"
	codeCursorExpired      apiCode = "cursor_expired"
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

// apiRoute is one route of the API: its pattern, the scope its token needs ("" for none) and
// the query parameters it takes (onlyParams answers 400 for any other).
type apiRoute struct {
	pattern string
	scope   Scope
	params  []string
}

// handler returns the HTTP API and its routes. A new route is one line here, its handler in
// the file of its kind (api_connect.go, api_policy.go, api_read.go, api_users.go,
// api_trends.go, api_syncruns.go, api_actions.go), its documentation in docs/api.md (TestAPIDocExamples) and
// docs/openapi.yaml (TestOpenAPI…).
func (a *api) handler(metrics http.Handler) (http.Handler, []apiRoute) {
	mux := http.NewServeMux()
	var routes []apiRoute
	route := func(pattern string, scope Scope, h http.Handler, params ...string) {
		name := pattern[strings.IndexByte(pattern, ' ')+1:]
		handler := onlyParams(params, h)
		if scope != "" {
			handler = a.requireScope(scope, handler)
		}
		mux.Handle(pattern, a.instrument(name, handler))
		routes = append(routes, apiRoute{pattern: pattern, scope: scope, params: params})
	}
	const conn = "/v1/tenants/{tenant_id}/connections/greenhouse"
	route("PUT "+conn, ScopeConnect, http.HandlerFunc(a.putConnection))
	route("GET "+conn, ScopeConnect, http.HandlerFunc(a.getConnection))
	route("DELETE "+conn, ScopeConnect, http.HandlerFunc(a.deleteConnection))
	route("POST "+conn+"/sync", ScopeConnect, http.HandlerFunc(a.syncNow))
	route("GET "+conn+"/policy", ScopeRead, http.HandlerFunc(a.getPolicy))
	route("PUT "+conn+"/policy", ScopeConnect, http.HandlerFunc(a.putPolicy))
	route("GET /v1/connections", ScopeConnect, http.HandlerFunc(a.listConnections), "limit", "cursor")
	route("GET /v1/tenants/{tenant_id}/licenses", ScopeRead, http.HandlerFunc(a.licenses), "usage")
	route("GET /v1/tenants/{tenant_id}/usage/summary", ScopeRead, http.HandlerFunc(a.summary))
	route("GET /v1/tenants/{tenant_id}/users", ScopeRead, http.HandlerFunc(a.listUsers), usersParams...)
	route("GET /v1/tenants/{tenant_id}/users/{user_id}", ScopeRead, http.HandlerFunc(a.getUser), userParams...)
	route("GET /v1/tenants/{tenant_id}/trends", ScopeRead, http.HandlerFunc(a.trends), trendsParams...)
	route("GET /v1/tenants/{tenant_id}/sync-runs", ScopeRead, http.HandlerFunc(a.syncRuns), syncRunsParams...)
	route("POST /v1/tenants/{tenant_id}/actions", ScopeAct, http.HandlerFunc(a.postAction))
	route("GET /v1/tenants/{tenant_id}/actions", ScopeRead, http.HandlerFunc(a.listActions), "limit")
	route("GET /v1/tenants/{tenant_id}/actions/{action_id}", ScopeRead, http.HandlerFunc(a.getAction))
	route("GET /healthz", "", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}))
	route("GET /readyz", "", http.HandlerFunc(a.readyz))
	// The metrics name tenants: behind a token here, or on metrics-addr of their own.
	route("GET /metrics", ScopeRead, metrics)
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
	}), routes
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

// tokenSet returns the api's tokens; an api built without New (tests of the request checks)
// has api-token alone.
func (a *api) tokenSet() *tokenSet {
	if a.tokens != nil {
		return a.tokens
	}
	t := &tokenSet{legacy: a.cfg.APIToken}
	_ = t.Reload()
	return t
}

// requireScope lets a request through when it presents a bearer token with scope
// (tokens.go): 401 unauthorized without a known token, 403 forbidden naming the scope when
// the token lacks it. Tokens are compared by SHA-256 digest in constant time. The scheme is
// case-insensitive (RFC 7235: "bearer" and "BEARER" are "Bearer").
func (a *api) requireScope(scope Scope, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, value, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		tok, ok := a.tokenSet().lookup(strings.TrimLeft(value, " "))
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			w.Header().Set("WWW-Authenticate", `Bearer realm="collector"`)
			writeError(w, http.StatusUnauthorized, apiError{Code: codeUnauthorized, Message: "missing or wrong bearer token"})
			return
		}
		if !tok.scopes[scope] {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="collector", error="insufficient_scope", scope=%q`, scope))
			writeError(w, http.StatusForbidden, apiError{Code: codeForbidden,
				Message: fmt.Sprintf("this route needs a token with the %s scope; token %q has %s", scope, tok.name, tok.scopeList())})
			return
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tokenNameKey{}, tok.name)))
	})
}

// tokenNameKey is the context key of the name of the token a request presented.
type tokenNameKey struct{}

// tokenName is the name of the token the request presented (requireScope), "" on a route
// without a token.
func tokenName(r *http.Request) string {
	name, _ := r.Context().Value(tokenNameKey{}).(string)
	return name
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
