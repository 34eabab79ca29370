package collector

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/seatwatch/greenhouse-collector/connectors"
	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse"
	"github.com/seatwatch/greenhouse-collector/events"
	"github.com/seatwatch/greenhouse-collector/storage"
)

// maxBody bounds request bodies.
const maxBody = 64 << 10

// apiError is the body of every 4xx/5xx answer: {"error": {"code", "message", "field"}}.
type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// Handler returns the HTTP API.
func (s *Service) Handler() http.Handler {
	h, _ := s.handler()
	return h
}

// apiRoute is one route of the API: its pattern, the scope its token needs ("" for none) and
// the query parameters it takes (onlyParams answers 400 for any other).
type apiRoute struct {
	pattern string
	scope   Scope
	params  []string
}

// handler returns the HTTP API and its routes.
func (s *Service) handler() (http.Handler, []apiRoute) {
	mux := http.NewServeMux()
	var routes []apiRoute
	route := func(pattern string, scope Scope, h http.Handler, params ...string) {
		name := pattern[strings.IndexByte(pattern, ' ')+1:]
		handler := onlyParams(params, h)
		if scope != "" {
			handler = s.requireScope(scope, handler)
		}
		mux.Handle(pattern, s.instrument(name, handler))
		routes = append(routes, apiRoute{pattern: pattern, scope: scope, params: params})
	}
	const conn = "/v1/tenants/{tenant_id}/connections/greenhouse"
	route("PUT "+conn, ScopeConnect, http.HandlerFunc(s.putConnection))
	route("GET "+conn, ScopeConnect, http.HandlerFunc(s.getConnection))
	route("DELETE "+conn, ScopeConnect, http.HandlerFunc(s.deleteConnection))
	route("POST "+conn+"/sync", ScopeConnect, http.HandlerFunc(s.syncNow))
	route("GET /v1/connections", ScopeConnect, http.HandlerFunc(s.listConnections), "limit", "cursor")
	route("GET /v1/tenants/{tenant_id}/licenses", ScopeRead, http.HandlerFunc(s.licenses), "usage")
	route("GET /v1/tenants/{tenant_id}/usage/summary", ScopeRead, http.HandlerFunc(s.summary))
	route("GET /v1/tenants/{tenant_id}/users", ScopeRead, http.HandlerFunc(s.listUsers), usersParams...)
	route("GET /v1/tenants/{tenant_id}/users/{user_id}", ScopeRead, http.HandlerFunc(s.getUser), userParams...)
	route("GET /v1/tenants/{tenant_id}/trends", ScopeRead, http.HandlerFunc(s.trends), trendsParams...)
	route("GET /v1/tenants/{tenant_id}/sync-runs", ScopeRead, http.HandlerFunc(s.syncRuns), syncRunsParams...)
	route("GET /healthz", "", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}))
	route("GET /readyz", "", http.HandlerFunc(s.readyz))
	// The metrics name tenants: behind a token here, or on metrics-addr of their own.
	route("GET /metrics", ScopeRead, s.MetricsHandler())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, apiError{Code: "not_found", Message: fmt.Sprintf("no route %s %s", r.Method, r.URL.Path)})
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The mux would redirect an unclean path (an empty tenant id, "..", "//") to its
		// cleaned form, another route; an API answers such a path with 404 instead.
		if p := r.URL.Path; p == "" || p[0] != '/' || path.Clean(p) != p {
			writeError(w, http.StatusNotFound, apiError{Code: "not_found", Message: "no route for a path with empty or dot segments"})
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

func (s *Service) instrument(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		defer func() {
			if v := recover(); v != nil {
				s.log.Error().Str("route", route).Str("panic", fmt.Sprint(v)).Msg("api handler panicked")
				writeError(rec, http.StatusInternalServerError, apiError{Code: "internal", Message: "internal error"})
			}
			s.metrics.apiRequests.WithLabelValues(route, fmt.Sprint(rec.code)).Inc()
		}()
		h.ServeHTTP(rec, r)
	})
}

// MetricsHandler serves the Prometheus metrics (no token: the API wraps it, metrics-addr does
// not).
func (s *Service) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})
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
		writeError(w, http.StatusBadRequest, apiError{Code: "invalid_tenant_id", Message: err.Error(), Field: "tenant_id"})
		return "", false
	}
	return tenant, true
}

// connectRequest is the body of PUT …/connections/greenhouse. Pointers tell absent from zero.
type connectRequest struct {
	ClientID     *string           `json:"client_id"`
	ClientSecret *string           `json:"client_secret"`
	AdminUserID  *int64            `json:"admin_user_id"`
	APIKey       *string           `json:"api_key"` // a legacy v1/v2 Harvest key: refused with legacy_api_key
	Endpoints    *events.Endpoints `json:"endpoints"`
	Settings     *settingsRequest  `json:"settings"`
}

type settingsRequest struct {
	InactiveAfterDays *int    `json:"inactive_after_days"`
	UsersInterval     *string `json:"users_interval"`
	AuditInterval     *string `json:"audit_interval"`
}

var legacyKey = regexp.MustCompile(`^[0-9a-fA-F]{32}$`)

// decodeStrict decodes one JSON object with no unknown fields into v, mapping every failure to
// a 400 body that names the field.
func decodeStrict(r *http.Request, w http.ResponseWriter, v any) *apiError {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &apiError{Code: "body_too_large", Message: fmt.Sprintf("the body is larger than %d bytes", maxBody)}
		}
		return &apiError{Code: "invalid_body", Message: "the body could not be read"}
	}
	if e := checkObject(body); e != nil {
		return e
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var (
			ute *json.UnmarshalTypeError
			se  *json.SyntaxError
		)
		switch {
		case errors.As(err, &ute):
			return &apiError{Code: "invalid_field", Field: ute.Field, Message: fmt.Sprintf("%s must be a JSON %s, not %s", ute.Field, jsonKind(ute.Type.Kind().String()), ute.Value)}
		case errors.As(err, &se):
			return &apiError{Code: "invalid_json", Message: fmt.Sprintf("the body is not valid JSON (at byte %d)", se.Offset)}
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return &apiError{Code: "unknown_field", Field: f, Message: fmt.Sprintf("unknown field %q", f)}
		case errors.Is(err, io.EOF):
			return &apiError{Code: "invalid_json", Message: "the body is empty; a JSON object is expected"}
		}
		return &apiError{Code: "invalid_json", Message: "the body is not a valid JSON object"}
	}
	if dec.More() {
		return &apiError{Code: "invalid_json", Message: "the body holds more than one JSON value"}
	}
	return nil
}

func jsonKind(k string) string {
	switch k {
	case "int64", "int", "int32":
		return "integer"
	case "ptr", "struct":
		return "object"
	}
	return k
}

// validateConnect checks a connect request and returns the effective settings.
func (s *Service) validateConnect(req connectRequest) (events.Settings, *apiError) {
	set := events.Settings{
		InactiveAfterDays: s.cfg.DefaultInactiveAfterDays,
		UsersInterval:     durationString(s.cfg.DefaultUsersInterval),
		AuditInterval:     durationString(s.cfg.DefaultAuditInterval),
	}
	if req.APIKey == nil {
		if req.ClientID == nil || strings.TrimSpace(*req.ClientID) == "" {
			return set, &apiError{Code: "missing_field", Field: "client_id", Message: "client_id is required: the Client ID of a Harvest V3 (OAuth) credential"}
		}
		if len(*req.ClientID) > 256 {
			return set, &apiError{Code: "invalid_field", Field: "client_id", Message: "client_id is longer than 256 characters"}
		}
		legacy := legacyKey.MatchString(*req.ClientID) && (req.ClientSecret == nil || *req.ClientSecret == "")
		if !legacy && (req.ClientSecret == nil || *req.ClientSecret == "") {
			return set, &apiError{Code: "missing_field", Field: "client_secret", Message: "client_secret is required"}
		}
		if req.ClientSecret != nil && len(*req.ClientSecret) > 1024 {
			return set, &apiError{Code: "invalid_field", Field: "client_secret", Message: "client_secret is longer than 1024 characters"}
		}
	}
	if req.AdminUserID == nil {
		return set, &apiError{Code: "missing_field", Field: "admin_user_id", Message: "admin_user_id is required: the numeric Greenhouse user ID of a Site Admin"}
	}
	if *req.AdminUserID <= 0 {
		return set, &apiError{Code: "invalid_field", Field: "admin_user_id", Message: "admin_user_id must be a positive integer"}
	}
	if e := req.Endpoints; e != nil {
		for _, f := range endpointFields(*e) {
			if err := s.validateEndpoint(f.name, f.v); err != nil {
				return set, err
			}
		}
	}
	if st := req.Settings; st != nil {
		if st.InactiveAfterDays != nil {
			if d := *st.InactiveAfterDays; d < 1 || d > 365 {
				return set, &apiError{Code: "invalid_field", Field: "settings.inactive_after_days", Message: "inactive_after_days must be between 1 and 365"}
			}
			set.InactiveAfterDays = *st.InactiveAfterDays
		}
		for _, f := range []struct {
			name     string
			v        *string
			min, max time.Duration
			dst      *string
		}{
			{"settings.users_interval", st.UsersInterval, time.Minute, 24 * time.Hour, &set.UsersInterval},
			{"settings.audit_interval", st.AuditInterval, 30 * time.Second, 24 * time.Hour, &set.AuditInterval},
		} {
			if f.v == nil {
				continue
			}
			d, err := time.ParseDuration(*f.v)
			if err != nil || d < f.min || d > f.max {
				return set, &apiError{Code: "invalid_field", Field: f.name, Message: fmt.Sprintf("%s must be a duration between %s and %s, e.g. \"1h\" or \"5m\"", f.name, f.min, f.max)}
			}
			*f.dst = durationString(d)
		}
	}
	return set, nil
}

func (s *Service) putConnection(w http.ResponseWriter, r *http.Request) {
	tenant, ok := tenantParam(w, r)
	if !ok {
		return
	}
	if s.connects != nil {
		if res := s.connects.Reserve(); res.Delay() > 0 {
			wait := res.Delay()
			res.Cancel()
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			writeError(w, http.StatusTooManyRequests, apiError{Code: "too_many_requests",
				Message: fmt.Sprintf("more than %d connect requests a minute; retry in %s", s.cfg.ConnectsPerMinute, wait.Round(time.Second))})
			return
		}
	}
	var req connectRequest
	if e := decodeStrict(r, w, &req); e != nil {
		writeError(w, http.StatusBadRequest, *e)
		return
	}
	settings, e := s.validateConnect(req)
	if e != nil {
		writeError(w, http.StatusBadRequest, *e)
		return
	}
	if s.cfg.MaxTenants > 0 {
		n, err := s.otherConnectedTenants(r.Context(), tenant)
		if err != nil {
			s.unavailable(w, err)
			return
		}
		if n >= s.cfg.MaxTenants {
			writeError(w, http.StatusConflict, apiError{Code: "tenant_limit_reached",
				Message: fmt.Sprintf("the collector already serves %d connected tenants, its limit (max-tenants); disconnect one or ask the operator", n)})
			return
		}
	}
	doc, code, err := s.connect(r.Context(), tenant, req, settings)
	if err != nil {
		s.log.Error().Err(err).Str("tenant", tenant).Msg("connect")
		writeError(w, http.StatusServiceUnavailable, apiError{Code: "unavailable", Message: "the connection could not be stored; try again"})
		return
	}
	writeJSON(w, code, doc)
}

// connect runs the connect-flow checks and, when the credentials work, stores the connection
// (secret sealed) and announces it. It answers 200 or 422 with the document.
func (s *Service) connect(ctx context.Context, tenant string, req connectRequest, settings events.Settings) (events.Connection, int, error) {
	now := s.now()
	doc := events.Connection{TenantID: tenant, App: appName, AdminUserID: *req.AdminUserID, Settings: settings, UpdatedAt: now}
	if overridden(req.Endpoints) {
		e := *req.Endpoints
		doc.Endpoints = &e
	}
	if req.APIKey != nil || legacyKey.MatchString(*req.ClientID) && (req.ClientSecret == nil || *req.ClientSecret == "") {
		doc.State = StateError
		doc.Checks = legacyChecks()
		if req.ClientID != nil && req.APIKey == nil {
			doc.ClientID = maskLegacy(*req.ClientID)
		}
		return doc, http.StatusUnprocessableEntity, nil
	}
	doc.ClientID = *req.ClientID
	if e := s.endpointsRefused(ctx, doc.Endpoints); e != nil {
		doc.State, doc.Checks = StateError, refusedChecks(codeEndpointNotAllowed, e.Message)
		return doc, http.StatusUnprocessableEntity, nil
	}
	gc, keepClient, err := s.connectClient(tenant, *req.ClientID, *req.ClientSecret, *req.AdminUserID, doc.Endpoints)
	if err != nil {
		if greenhouse.CodeOf(err) == "legacy_api_key" {
			doc.State, doc.Checks = StateError, legacyChecks()
			return doc, http.StatusUnprocessableEntity, nil
		}
		doc.State = StateError
		doc.Checks = []connectors.Check{{Name: "credentials", Status: connectors.CheckFailed, Code: string(greenhouse.CodeOf(err)), Message: "the credential could not be used: " + err.Error()}}
		return doc, http.StatusUnprocessableEntity, nil
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.CheckTimeout)
	doc.Checks = gc.Check(cctx)
	cancel()
	if overridden(doc.Endpoints) {
		doc.Checks = withoutReplies(doc.Checks)
	}
	doc.State, doc.UsageData = stateOf(doc.Checks)
	if doc.State == StateError {
		return doc, http.StatusUnprocessableEntity, nil
	}
	sealed, err := s.sealer.Seal(*req.ClientSecret, secretBinding(tenant, doc))
	if err != nil {
		return doc, 0, fmt.Errorf("seal client secret: %w", err)
	}
	dropped := 0
	stored, _, err := s.conns.Modify(ctx, connectionKey(tenant), func(old storedConnection, exists bool) (storedConnection, error) {
		sc := storedConnection{Doc: doc, Secret: &sealed, Generation: 1, CreatedAt: now}
		previous := ""
		if exists {
			previous = old.Doc.State
			sc.Generation = old.Generation + 1
			sc.CreatedAt = old.CreatedAt
			sc.Doc.LastSync = old.Doc.LastSync
			sc.Doc.Freshness = old.Doc.Freshness
			sc.Doc.ObservedSince = old.Doc.ObservedSince
			sc.Outbox = old.Outbox
		}
		dropped = sc.queueChange(previous, connectionChanges(events.Connection{}, sc.Doc))
		return sc, nil
	})
	if err != nil {
		return doc, 0, fmt.Errorf("store connection: %w", err)
	}
	s.outboxDropped(tenant, dropped)
	keepClient(stored.Generation)
	if err := s.deliverOutbox(ctx, tenant, stored.Outbox); err != nil {
		s.log.Warn().Err(err).Str("tenant", tenant).Msg("announce connection; queued for retry")
	}
	s.log.Info().Str("tenant", tenant).Str("state", stored.Doc.State).Int64("generation", stored.Generation).Msg("connected")
	return stored.Doc, http.StatusOK, nil
}

func legacyChecks() []connectors.Check {
	checks := []connectors.Check{{Name: "credentials", Status: connectors.CheckFailed, Code: "legacy_api_key",
		Message: "This is a Harvest v1/v2 API key; those stopped working on 2026-08-31. In Greenhouse, go to Configure → Dev Center → API Credentials → Create new API credentials, choose \"Harvest V3 (OAuth)\", grant harvest:users:list, harvest:user_roles:list, harvest:user_job_permissions:list, harvest:future_job_permissions:list and Audit Log access, then connect with its client ID and secret."}}
	for _, n := range checkNames[1:] {
		checks = append(checks, connectors.Check{Name: n, Status: connectors.CheckSkipped})
	}
	return checks
}

// maskLegacy keeps a legacy key out of answers: only its last 4 characters are shown.
func maskLegacy(k string) string {
	if len(k) <= 4 {
		return "****"
	}
	return "****" + k[len(k)-4:]
}

func (s *Service) getConnection(w http.ResponseWriter, r *http.Request) {
	tenant, ok := tenantParam(w, r)
	if !ok {
		return
	}
	sc, _, err := s.conns.Get(r.Context(), connectionKey(tenant))
	if errors.Is(err, events.ErrNotFound) {
		writeError(w, http.StatusNotFound, apiError{Code: "not_found", Message: fmt.Sprintf("tenant %q has no Greenhouse connection", tenant)})
		return
	}
	if err != nil {
		s.unavailable(w, err)
		return
	}
	writeJSON(w, http.StatusOK, sc.Doc)
}

func (s *Service) unavailable(w http.ResponseWriter, err error) {
	s.log.Error().Err(err).Msg("api")
	writeError(w, http.StatusServiceUnavailable, apiError{Code: "unavailable", Message: "state store unavailable; try again"})
}

func (s *Service) deleteConnection(w http.ResponseWriter, r *http.Request) {
	tenant, ok := tenantParam(w, r)
	if !ok {
		return
	}
	dropped := 0
	sc, _, err := s.conns.Modify(r.Context(), connectionKey(tenant), func(sc storedConnection, exists bool) (storedConnection, error) {
		if !exists {
			return sc, events.ErrNotFound
		}
		previous := sc.Doc.State
		sc.Secret = nil
		sc.SyncRequest = ""
		sc.Doc.State = StateDisconnected
		sc.Doc.UsageData = false
		sc.Doc.UpdatedAt = s.now()
		if previous != StateDisconnected {
			dropped = sc.queueChange(previous, []string{"state"})
		}
		return sc, nil
	})
	if errors.Is(err, events.ErrNotFound) {
		writeError(w, http.StatusNotFound, apiError{Code: "not_found", Message: fmt.Sprintf("tenant %q has no Greenhouse connection", tenant)})
		return
	}
	if err != nil {
		s.unavailable(w, err)
		return
	}
	s.dropClient(tenant)
	s.outboxDropped(tenant, dropped)
	if len(sc.Outbox) > 0 {
		if err := s.deliverOutbox(r.Context(), tenant, sc.Outbox); err != nil {
			s.log.Warn().Err(err).Str("tenant", tenant).Msg("announce disconnect; queued for retry")
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Service) syncNow(w http.ResponseWriter, r *http.Request) {
	tenant, ok := tenantParam(w, r)
	if !ok {
		return
	}
	runID := uuid.NewString()
	_, _, err := s.conns.Modify(r.Context(), connectionKey(tenant), func(sc storedConnection, exists bool) (storedConnection, error) {
		if !exists {
			return sc, events.ErrNotFound
		}
		if sc.Secret == nil {
			return sc, errDisconnected
		}
		if sc.SyncRequest != "" && sc.SyncRequest != sc.SyncStarted {
			runID = sc.SyncRequest // one pending request at a time: join it
			return sc, errAlreadyPending
		}
		sc.SyncRequest = runID
		return sc, nil
	})
	if errors.Is(err, errAlreadyPending) {
		err = nil
	}
	switch {
	case errors.Is(err, events.ErrNotFound):
		writeError(w, http.StatusNotFound, apiError{Code: "not_found", Message: fmt.Sprintf("tenant %q has no Greenhouse connection", tenant)})
	case errors.Is(err, errDisconnected):
		writeError(w, http.StatusConflict, apiError{Code: "disconnected", Message: "the connection is disconnected; connect it again first"})
	case err != nil:
		s.unavailable(w, err)
	default:
		writeJSON(w, http.StatusAccepted, map[string]string{"run_id": runID})
	}
}

var (
	errDisconnected   = errors.New("disconnected")
	errAlreadyPending = errors.New("a requested sync is pending") // nothing to write
)

// otherConnectedTenants counts the connected tenants (those with a stored secret) but tenant.
func (s *Service) otherConnectedTenants(ctx context.Context, tenant string) (int, error) {
	n := 0
	err := s.conns.Values(ctx, appName+".", func(key string, sc storedConnection, _ uint64) error {
		if sc.Secret != nil && key != connectionKey(tenant) {
			n++
		}
		return nil
	})
	return n, err
}

// Pages of GET /v1/connections.
const (
	defaultConnectionsPage = 100
	maxConnectionsPage     = 1000
)

// connectionsPage is the body of GET /v1/connections.
type connectionsPage struct {
	Connections []events.Connection `json:"connections"`
	// NextCursor, when set, asks for the next page (?cursor=); absent on the last page.
	NextCursor string `json:"next_cursor,omitempty"`
}

// stateRank orders the needs-attention list: error, degraded, disconnected, connected.
var stateRank = map[string]int{StateError: 0, StateDegraded: 1, StateDisconnected: 2, StateConnected: 3}

func (s *Service) listConnections(w http.ResponseWriter, r *http.Request) {
	limit, after, e := pageParams(r.URL.Query())
	if e != nil {
		writeError(w, http.StatusBadRequest, *e)
		return
	}
	out := []events.Connection{}
	// One pass over the bucket: a read per connection took 6.9 s for 10,000 tenants
	// (docs/performance.md#scale).
	err := s.conns.Values(r.Context(), appName+".", func(_ string, sc storedConnection, _ uint64) error {
		out = append(out, sc.Doc)
		return nil
	})
	if err != nil {
		s.unavailable(w, err)
		return
	}
	// Those needing attention first: error, degraded, disconnected, connected; then by tenant.
	sortConnections(out, stateRank)
	start := 0
	if after != nil {
		start = sort.Search(len(out), func(i int) bool {
			ri := stateRank[out[i].State]
			return ri > after.rank || ri == after.rank && out[i].TenantID > after.tenant
		})
	}
	page := connectionsPage{Connections: out[start:min(start+limit, len(out))]}
	if end := start + limit; end < len(out) {
		last := out[end-1]
		page.NextCursor = encodeCursor(pageCursor{rank: stateRank[last.State], tenant: last.TenantID})
	}
	writeJSON(w, http.StatusOK, page)
}

// pageCursor is the position after which a page of GET /v1/connections starts: the last
// connection of the previous page, by state rank and tenant id. A connection whose state
// changes between two pages may be shown twice or not at all.
type pageCursor struct {
	rank   int
	tenant string
}

func encodeCursor(c pageCursor) string {
	return base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf("c1:%d:%s", c.rank, c.tenant)))
}

func decodeCursor(raw string) (pageCursor, bool) {
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil {
		return pageCursor{}, false
	}
	parts := strings.SplitN(string(b), ":", 3)
	if len(parts) != 3 || parts[0] != "c1" {
		return pageCursor{}, false
	}
	rank, err := strconv.Atoi(parts[1])
	if err != nil || rank < 0 || rank > 3 || ValidateTenantID(parts[2]) != nil {
		return pageCursor{}, false
	}
	return pageCursor{rank: rank, tenant: parts[2]}, true
}

// pageParams reads ?limit= (1 to maxConnectionsPage, default defaultConnectionsPage) and
// ?cursor= (a next_cursor of an earlier page).
func pageParams(q url.Values) (int, *pageCursor, *apiError) {
	limit := defaultConnectionsPage
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxConnectionsPage {
			return 0, nil, &apiError{Code: "invalid_field", Field: "limit", Message: fmt.Sprintf("limit must be an integer from 1 to %d", maxConnectionsPage)}
		}
		limit = n
	}
	if v := q.Get("cursor"); v != "" {
		c, ok := decodeCursor(v)
		if !ok {
			return 0, nil, &apiError{Code: "invalid_cursor", Field: "cursor", Message: "cursor must be the next_cursor of an earlier page"}
		}
		return limit, &c, nil
	}
	return limit, nil, nil
}

// tenantUsage loads what classifying a tenant's users needs.
func (s *Service) tenantUsage(ctx context.Context, tenant string) (storedConnection, UsageParams, error) {
	sc, _, err := s.conns.Get(ctx, connectionKey(tenant))
	if err != nil {
		return sc, UsageParams{}, err
	}
	cp, _, err := s.getCheckpoint(ctx, tenant)
	if err != nil {
		return sc, UsageParams{}, err
	}
	return sc, s.usageParams(sc.Doc, cp, s.now(), cp.ActivityThrough), nil
}

func (s *Service) licenses(w http.ResponseWriter, r *http.Request) {
	tenant, ok := tenantParam(w, r)
	if !ok {
		return
	}
	filter := r.URL.Query().Get("usage")
	switch filter {
	case "":
		filter = "all"
	case "all", UsageActive, UsageInactive, UsageUnknown:
	default:
		writeError(w, http.StatusBadRequest, apiError{Code: "invalid_field", Field: "usage", Message: "usage must be one of inactive, active, unknown, all"})
		return
	}
	_, params, err := s.tenantUsage(r.Context(), tenant)
	if errors.Is(err, events.ErrNotFound) {
		writeError(w, http.StatusNotFound, apiError{Code: "not_found", Message: fmt.Sprintf("tenant %q has no Greenhouse connection", tenant)})
		return
	}
	if err != nil {
		s.unavailable(w, err)
		return
	}
	out := []events.LicenseRecord{}
	err = s.store.CurrentUsers(r.Context(), tenant, appName, func(row storage.UserRow) error {
		rec := record(row, params)
		if !rec.Licensed || (filter != "all" && rec.Usage != filter) {
			return nil
		}
		out = append(out, rec)
		return nil
	})
	if err != nil {
		s.unavailable(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"tenant_id": tenant, "usage": filter, "count": len(out), "licenses": out})
}

// Summary is the body of GET /v1/tenants/{tenant_id}/usage/summary.
type Summary struct {
	TenantID          string           `json:"tenant_id"`
	App               string           `json:"app"`
	Users             int              `json:"users"`
	UsersByStatus     map[string]int   `json:"users_by_status"`
	ServiceAccounts   int              `json:"service_accounts"`
	Licenses          int              `json:"licenses"`
	LicensesByType    map[string]int   `json:"licenses_by_type"`
	Active            int              `json:"active"`
	Inactive          int              `json:"inactive"`
	Unknown           int              `json:"unknown"`
	Utilisation       float64          `json:"utilisation"`
	InactiveAfterDays int              `json:"inactive_after_days"`
	UsageData         bool             `json:"usage_data"`
	ObservedSince     *time.Time       `json:"observed_since"`
	Freshness         events.Freshness `json:"freshness"`
	State             string           `json:"state"`
	AsOf              time.Time        `json:"as_of"`
}

func (s *Service) summary(w http.ResponseWriter, r *http.Request) {
	tenant, ok := tenantParam(w, r)
	if !ok {
		return
	}
	sc, params, err := s.tenantUsage(r.Context(), tenant)
	if errors.Is(err, events.ErrNotFound) {
		writeError(w, http.StatusNotFound, apiError{Code: "not_found", Message: fmt.Sprintf("tenant %q has no Greenhouse connection", tenant)})
		return
	}
	if err != nil {
		s.unavailable(w, err)
		return
	}
	sum := Summary{
		TenantID: tenant, App: appName, UsersByStatus: map[string]int{}, LicensesByType: map[string]int{},
		InactiveAfterDays: params.InactiveAfterDays, UsageData: sc.Doc.UsageData, ObservedSince: sc.Doc.ObservedSince,
		Freshness: sc.Doc.Freshness, State: sc.Doc.State, AsOf: params.Now,
	}
	err = s.store.CurrentUsers(r.Context(), tenant, appName, func(row storage.UserRow) error {
		sum.Users++
		sum.UsersByStatus[row.Status]++
		if row.ServiceAccount {
			sum.ServiceAccounts++
		}
		rec := record(row, params)
		if !rec.Licensed {
			return nil
		}
		sum.Licenses++
		sum.LicensesByType[rec.LicenseType]++
		switch rec.Usage {
		case UsageActive:
			sum.Active++
		case UsageInactive:
			sum.Inactive++
		default:
			sum.Unknown++
		}
		return nil
	})
	if err != nil {
		s.unavailable(w, err)
		return
	}
	if sum.Licenses > 0 {
		sum.Utilisation = float64(sum.Active) / float64(sum.Licenses)
	}
	writeJSON(w, http.StatusOK, sum)
}

func (s *Service) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	checks := map[string]string{"clickhouse": "ok", "nats": "ok"}
	code := http.StatusOK
	if err := s.store.Ping(ctx); err != nil {
		checks["clickhouse"], code = "unreachable", http.StatusServiceUnavailable
	}
	if err := s.bus.Ping(ctx); err != nil {
		checks["nats"], code = "unreachable", http.StatusServiceUnavailable
	}
	writeJSON(w, code, checks)
}

func sortConnections(cs []events.Connection, rank map[string]int) {
	sort.Slice(cs, func(i, j int) bool {
		ri, rj := rank[cs[i].State], rank[cs[j].State]
		if ri != rj {
			return ri < rj
		}
		return cs[i].TenantID < cs[j].TenantID
	})
}
