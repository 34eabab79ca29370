package collector

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/seatwatch/greenhouse-collector/connectors"
	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse"
	"github.com/seatwatch/greenhouse-collector/events"
)

// The connect flow: a tenant's connection is put (checked, sealed, stored), read, deleted,
// and asked to sync now.

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

// secret is the client secret sent, "" when none was.
func (r connectRequest) secret() string {
	if r.ClientSecret == nil {
		return ""
	}
	return *r.ClientSecret
}

// legacy reports whether the request carries a retired Harvest v1/v2 key.
func (r connectRequest) legacy() bool {
	return r.APIKey != nil || greenhouse.IsLegacyAPIKey(*r.ClientID, r.secret())
}

// validateConnect checks a connect request and returns the effective settings.
func (a *api) validateConnect(req connectRequest) (events.Settings, *apiError) {
	if req.APIKey == nil {
		if req.ClientID == nil || strings.TrimSpace(*req.ClientID) == "" {
			return events.Settings{}, &apiError{Code: codeMissingField, Field: "client_id", Message: "client_id is required: the Client ID of a Harvest V3 (OAuth) credential"}
		}
		if len(*req.ClientID) > 256 {
			return events.Settings{}, &apiError{Code: codeInvalidField, Field: "client_id", Message: "client_id is longer than 256 characters"}
		}
		if !greenhouse.IsLegacyAPIKey(*req.ClientID, req.secret()) && req.secret() == "" {
			return events.Settings{}, &apiError{Code: codeMissingField, Field: "client_secret", Message: "client_secret is required"}
		}
		if len(req.secret()) > 1024 {
			return events.Settings{}, &apiError{Code: codeInvalidField, Field: "client_secret", Message: "client_secret is longer than 1024 characters"}
		}
	}
	if req.AdminUserID == nil {
		return events.Settings{}, &apiError{Code: codeMissingField, Field: "admin_user_id", Message: "admin_user_id is required: the numeric Greenhouse user ID of a Site Admin"}
	}
	if *req.AdminUserID <= 0 {
		return events.Settings{}, &apiError{Code: codeInvalidField, Field: "admin_user_id", Message: "admin_user_id must be a positive integer"}
	}
	if e := req.Endpoints; e != nil {
		for _, f := range endpointFields(*e) {
			if err := a.cfg.validateEndpoint(f.name, f.v); err != nil {
				return events.Settings{}, err
			}
		}
	}
	return a.validateSettings(req.Settings)
}

// validateSettings checks a connect request's settings and returns them with the
// configuration's defaults where they are absent.
func (a *api) validateSettings(st *settingsRequest) (events.Settings, *apiError) {
	set := events.Settings{
		InactiveAfterDays: a.cfg.DefaultInactiveAfterDays,
		UsersInterval:     durationString(a.cfg.DefaultUsersInterval),
		AuditInterval:     durationString(a.cfg.DefaultAuditInterval),
	}
	if st == nil {
		return set, nil
	}
	if st.InactiveAfterDays != nil {
		if d := *st.InactiveAfterDays; d < 1 || d > 365 {
			return set, &apiError{Code: codeInvalidField, Field: "settings.inactive_after_days", Message: "inactive_after_days must be between 1 and 365"}
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
			return set, &apiError{Code: codeInvalidField, Field: f.name, Message: fmt.Sprintf("%s must be a duration between %s and %s, e.g. \"1h\" or \"5m\"", f.name, f.min, f.max)}
		}
		*f.dst = durationString(d)
	}
	return set, nil
}

// durationString renders a duration like the contract's settings ("1h", "5m", "90s").
func durationString(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}

func (a *api) putConnection(w http.ResponseWriter, r *http.Request) {
	tenant, ok := tenantParam(w, r)
	if !ok || !a.allowConnect(w) {
		return
	}
	var req connectRequest
	if e := decodeStrict(r, w, &req); e != nil {
		writeError(w, http.StatusBadRequest, *e)
		return
	}
	settings, e := a.validateConnect(req)
	if e != nil {
		writeError(w, http.StatusBadRequest, *e)
		return
	}
	if !a.belowTenantCap(w, r, tenant) {
		return
	}
	doc, code, err := a.connect(r.Context(), tenant, req, settings)
	if err != nil {
		a.log.Error().Err(err).Str("tenant", tenant).Msg("connect")
		writeError(w, http.StatusServiceUnavailable, apiError{Code: codeUnavailable, Message: "the connection could not be stored; try again"})
		return
	}
	writeJSON(w, code, doc)
}

// allowConnect applies connects-per-minute, answering 429 itself when it refuses.
func (a *api) allowConnect(w http.ResponseWriter) bool {
	if a.connects == nil {
		return true
	}
	res := a.connects.Reserve()
	if res.Delay() <= 0 {
		return true
	}
	wait := res.Delay()
	res.Cancel()
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
	writeError(w, http.StatusTooManyRequests, apiError{Code: codeTooManyRequests,
		Message: fmt.Sprintf("more than %d connect requests a minute; retry in %s", a.cfg.ConnectsPerMinute, wait.Round(time.Second))})
	return false
}

// belowTenantCap applies max-tenants, answering itself when it refuses or cannot tell.
func (a *api) belowTenantCap(w http.ResponseWriter, r *http.Request, tenant string) bool {
	if a.cfg.MaxTenants <= 0 {
		return true
	}
	n, err := a.conns.connectedExcept(r.Context(), tenant)
	if err != nil {
		a.unavailable(w, err)
		return false
	}
	if n >= a.cfg.MaxTenants {
		writeError(w, http.StatusConflict, apiError{Code: codeTenantLimitReached,
			Message: fmt.Sprintf("the collector already serves %d connected tenants, its limit (max-tenants); disconnect one or ask the operator", n)})
		return false
	}
	return true
}

// connect runs the connect-flow checks and, when the credentials work, stores the connection
// (secret sealed) and announces it. It answers 200 or 422 with the document.
func (a *api) connect(ctx context.Context, tenant string, req connectRequest, settings events.Settings) (events.Connection, int, error) {
	now := a.now()
	doc := events.Connection{TenantID: tenant, App: connectors.AppGreenhouse, AdminUserID: *req.AdminUserID, Settings: settings, UpdatedAt: now}
	if overridden(req.Endpoints) {
		e := *req.Endpoints
		doc.Endpoints = &e
	}
	if req.legacy() {
		doc.State, doc.Checks = StateError, greenhouse.LegacyKeyChecks()
		if req.ClientID != nil && req.APIKey == nil {
			doc.ClientID = maskLegacy(*req.ClientID)
		}
		return doc, http.StatusUnprocessableEntity, nil
	}
	doc.ClientID = *req.ClientID
	if e := a.cfg.endpointsRefused(ctx, doc.Endpoints); e != nil {
		doc.State, doc.Checks = StateError, greenhouse.CredentialsRefused(codeEndpointNotAllowed, e.Message)
		return doc, http.StatusUnprocessableEntity, nil
	}
	gc, keepClient, err := a.clients.forConnect(tenant, *req.ClientID, *req.ClientSecret, *req.AdminUserID, doc.Endpoints)
	if err != nil {
		doc.State, doc.Checks = StateError, unusableChecks(err)
		return doc, http.StatusUnprocessableEntity, nil
	}
	cctx, cancel := context.WithTimeout(ctx, a.cfg.CheckTimeout)
	doc.Checks = gc.Check(cctx)
	cancel()
	if overridden(doc.Endpoints) {
		doc.Checks = withoutReplies(doc.Checks)
	}
	doc.State, doc.UsageData = stateOf(doc.Checks)
	if doc.State == StateError {
		return doc, http.StatusUnprocessableEntity, nil
	}
	sealed, err := a.sealer.Seal(*req.ClientSecret, secretBinding(tenant, doc))
	if err != nil {
		return doc, 0, fmt.Errorf("seal client secret: %w", err)
	}
	stored, err := a.conns.replace(ctx, tenant, doc, sealed, now)
	if err != nil {
		return doc, 0, fmt.Errorf("store connection: %w", err)
	}
	keepClient(stored.Generation)
	if err := a.conns.deliver(ctx, tenant, stored.Outbox); err != nil {
		a.log.Warn().Err(err).Str("tenant", tenant).Msg("announce connection; queued for retry")
	}
	a.log.Info().Str("tenant", tenant).Str("state", stored.Doc.State).Int64("generation", stored.Generation).Msg("connected")
	return stored.Doc, http.StatusOK, nil
}

// unusableChecks are the checks of a credential the connector refused to build a client with.
func unusableChecks(err error) []connectors.Check {
	if greenhouse.CodeOf(err) == greenhouse.CodeLegacyAPIKey {
		return greenhouse.LegacyKeyChecks()
	}
	return []connectors.Check{{Name: greenhouse.CheckCredentials, Status: connectors.CheckFailed, Code: string(greenhouse.CodeOf(err)), Message: credentialUnusableMessage(err)}}
}

// maskLegacy keeps a legacy key out of answers: only its last 4 characters are shown.
func maskLegacy(k string) string {
	if len(k) <= 4 {
		return "****"
	}
	return "****" + k[len(k)-4:]
}

func (a *api) getConnection(w http.ResponseWriter, r *http.Request) {
	tenant, ok := tenantParam(w, r)
	if !ok {
		return
	}
	sc, err := a.conns.get(r.Context(), tenant)
	a.answer(w, tenant, err, func() { writeJSON(w, http.StatusOK, sc.Doc) })
}

func (a *api) deleteConnection(w http.ResponseWriter, r *http.Request) {
	tenant, ok := tenantParam(w, r)
	if !ok {
		return
	}
	sc, err := a.conns.disconnect(r.Context(), tenant)
	a.answer(w, tenant, err, func() {
		a.clients.drop(tenant)
		if len(sc.Outbox) > 0 {
			if err := a.conns.deliver(r.Context(), tenant, sc.Outbox); err != nil {
				a.log.Warn().Err(err).Str("tenant", tenant).Msg("announce disconnect; queued for retry")
			}
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

func (a *api) syncNow(w http.ResponseWriter, r *http.Request) {
	tenant, ok := tenantParam(w, r)
	if !ok {
		return
	}
	runID, err := a.conns.requestSync(r.Context(), tenant, uuid.NewString())
	a.answer(w, tenant, err, func() { writeJSON(w, http.StatusAccepted, map[string]string{"run_id": runID}) })
}

// answer answers a request on a tenant's connection that ended with err: 404 without a
// connection, 409 for a disconnected one, 503 when the state store failed; success answers
// when there was no error.
func (a *api) answer(w http.ResponseWriter, tenant string, err error, success func()) {
	switch {
	case errors.Is(err, events.ErrNotFound):
		noConnection(w, tenant)
	case errors.Is(err, errDisconnected):
		writeError(w, http.StatusConflict, apiError{Code: codeDisconnected, Message: "the connection is disconnected; connect it again first"})
	case err != nil:
		a.unavailable(w, err)
	default:
		success()
	}
}
