package collector

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/seatwatch/greenhouse-collector/connectors"
	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse"
	"github.com/seatwatch/greenhouse-collector/events"
)

// The routes of reclaim actions (docs/api.md, "Actions"): POST accepts an action (a dry run
// is decided at once), the GETs show each user's outcome. Running them is actions.go's.

// Limits of an action request.
const (
	maxActionUsers    = 500
	maxRequestedBy    = 200
	maxActionReason   = 1000
	maxIdempotencyKey = 200
	defaultActionList = 20
	maxActionList     = 100
)

// The codes of the action routes.
const (
	codeActionsNotPermitted apiCode = "actions_not_permitted" // 409: the connection's actions check did not pass
	codeIdempotencyConflict apiCode = "idempotency_conflict"  // 409: the key names an action with another body
)

// ActionRequest is the body of POST …/actions (docs/api.md, "Actions").
type ActionRequest struct {
	Type           string  `json:"type"`
	UserIDs        []int64 `json:"user_ids"`
	RequestedBy    string  `json:"requested_by"`
	Reason         string  `json:"reason"`
	DryRun         bool    `json:"dry_run"`
	Force          bool    `json:"force"`
	IdempotencyKey string  `json:"idempotency_key"`
}

var idempotencyKeyRe = regexp.MustCompile(`^[A-Za-z0-9._:/=+-]+$`)

// validate checks an action request, naming the field of the first problem.
func (req ActionRequest) validate() *apiError {
	bad := func(code apiCode, field, msg string) *apiError {
		return &apiError{Code: code, Field: field, Message: msg}
	}
	switch {
	case req.Type == "":
		return bad(codeMissingField, "type", "type is required: deactivate or reactivate")
	case req.Type != string(events.ActionDeactivate) && req.Type != string(events.ActionReactivate):
		return bad(codeInvalidField, "type", "type must be deactivate or reactivate")
	case len(req.UserIDs) == 0:
		return bad(codeMissingField, "user_ids", "user_ids is required: 1 to 500 Greenhouse user ids")
	case len(req.UserIDs) > maxActionUsers:
		return bad(codeInvalidField, "user_ids", fmt.Sprintf("user_ids holds %d ids; at most %d are taken at once", len(req.UserIDs), maxActionUsers))
	case strings.TrimSpace(req.RequestedBy) == "":
		return bad(codeMissingField, "requested_by", "requested_by is required: the person or rule asking")
	case len(req.RequestedBy) > maxRequestedBy:
		return bad(codeInvalidField, "requested_by", fmt.Sprintf("requested_by is longer than %d bytes", maxRequestedBy))
	case len(req.Reason) > maxActionReason:
		return bad(codeInvalidField, "reason", fmt.Sprintf("reason is longer than %d bytes", maxActionReason))
	case req.IdempotencyKey == "":
		return bad(codeMissingField, "idempotency_key", "idempotency_key is required: the same key returns the first result")
	case len(req.IdempotencyKey) > maxIdempotencyKey || !idempotencyKeyRe.MatchString(req.IdempotencyKey):
		return bad(codeInvalidField, "idempotency_key", fmt.Sprintf("idempotency_key must be 1 to %d characters of A-Z a-z 0-9 . _ : / = + -", maxIdempotencyKey))
	}
	seen := make(map[int64]bool, len(req.UserIDs))
	for i, id := range req.UserIDs {
		field := fmt.Sprintf("user_ids[%d]", i)
		if id <= 0 {
			return bad(codeInvalidField, field, "user ids are positive integers")
		}
		if seen[id] {
			return bad(codeInvalidField, field, fmt.Sprintf("user %d is listed twice", id))
		}
		seen[id] = true
	}
	return nil
}

// hash is the digest of what the request asks, which the same idempotency key must repeat.
func (req ActionRequest) hash() string {
	b, _ := json.Marshal(req)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// postAction accepts an action: 202 with the action pending (the owning replica runs it), 200
// with a dry run's decisions, or the first answer's action again for a key already used
// with the same body.
func (a *api) postAction(w http.ResponseWriter, r *http.Request) {
	tenant, ok := tenantParam(w, r)
	if !ok {
		return
	}
	var req ActionRequest
	if e := decodeStrict(r, w, &req); e != nil {
		writeError(w, http.StatusBadRequest, *e)
		return
	}
	if e := req.validate(); e != nil {
		writeError(w, http.StatusBadRequest, *e)
		return
	}
	sc, err := a.conns.get(r.Context(), tenant)
	if err == nil && sc.Secret == nil {
		err = errDisconnected
	}
	if err != nil {
		a.answer(w, tenant, err, nil)
		return
	}
	if !req.DryRun && !actionsPermitted(sc) {
		writeError(w, http.StatusConflict, apiError{Code: codeActionsNotPermitted, Message: actionsRefusedMessage})
		return
	}
	d, code, e := a.acceptAction(r.Context(), tenant, req, sc)
	if e != nil {
		writeError(w, code, *e)
		return
	}
	writeJSON(w, code, viewAction(d))
}

// actionsRefusedMessage answers an action on a connection whose actions check did not pass.
const actionsRefusedMessage = "this connection's credential has not shown that it may deactivate and activate users (its actions check did not pass): grant the permission in Greenhouse and connect again; dry runs work without it"

// actionsPermitted reports whether the connection's optional actions check passed.
func actionsPermitted(sc storedConnection) bool {
	for _, c := range sc.Doc.Checks {
		if c.Name == greenhouse.CheckActions {
			return c.Status == connectors.CheckOK
		}
	}
	return false
}

// acceptAction stores a new action (deciding a dry run first), records and queues it, and
// returns it with the status to answer; for a key already used, the stored action (200) or a
// 409 when the body differs.
func (a *api) acceptAction(ctx context.Context, tenant string, req ActionRequest, sc storedConnection) (actionDoc, int, *apiError) {
	ac := a.actions
	d := newActionDoc(tenant, req, a.now())
	if req.DryRun {
		if err := ac.dryRun(ctx, &d, sc); err != nil {
			a.log.Error().Err(err).Str("tenant", tenant).Msg("dry run")
			return d, http.StatusServiceUnavailable, &apiError{Code: codeUnavailable, Message: "the stored users could not be read; try again"}
		}
	}
	rev, err := ac.kv.Create(ctx, actionKey(tenant, d.Request.ActionID), d)
	if errors.Is(err, events.ErrConflict) {
		return a.repeatAction(ctx, tenant, d)
	}
	if err != nil {
		a.log.Error().Err(err).Str("tenant", tenant).Msg("store action")
		return d, http.StatusServiceUnavailable, &apiError{Code: codeUnavailable, Message: "the action could not be stored; try again"}
	}
	status := http.StatusAccepted
	if req.DryRun {
		status = http.StatusOK
	}
	// Record now; what fails here, the owning replica records when it runs the action.
	recorded := ac.record(ctx, &d) == nil && ac.save(ctx, &d, &rev) == nil
	if !req.DryRun || !recorded {
		if err := ac.queue(ctx, tenant, d.Request.ActionID); err != nil {
			a.log.Error().Err(err).Str("tenant", tenant).Str("action_id", d.Request.ActionID).Msg("queue action")
			return d, http.StatusServiceUnavailable, &apiError{Code: codeUnavailable, Message: "the action is stored but could not be queued; repeat the request with the same idempotency_key"}
		}
	}
	return d, status, nil
}

// repeatAction answers a key already used: the stored action when the body is the same (queued
// again should the first request have stopped before), 409 when it differs.
func (a *api) repeatAction(ctx context.Context, tenant string, d actionDoc) (actionDoc, int, *apiError) {
	first, _, err := a.actions.get(ctx, tenant, d.Request.ActionID)
	if err != nil {
		a.log.Error().Err(err).Str("tenant", tenant).Msg("read action")
		return d, http.StatusServiceUnavailable, &apiError{Code: codeUnavailable, Message: "state store unavailable; try again"}
	}
	if first.BodyHash != d.BodyHash {
		return d, http.StatusConflict, &apiError{Code: codeIdempotencyConflict, Field: "idempotency_key",
			Message: "this idempotency_key was used for an action with another body; use a new key"}
	}
	if first.Status != actionCompleted || !first.Announced {
		if err := a.actions.queue(ctx, tenant, first.Request.ActionID); err != nil {
			return first, http.StatusServiceUnavailable, &apiError{Code: codeUnavailable, Message: "the action could not be queued; try again"}
		}
	}
	return first, http.StatusOK, nil
}

// actionID is the id of the action a tenant asked for under an idempotency key: the same key
// names the same action, on every replica.
func actionID(tenant, key string) string {
	h := sha256.Sum256([]byte(tenant + "\x00" + key))
	return hex.EncodeToString(h[:16])
}

// newActionDoc is the document of an accepted request, every user undecided.
func newActionDoc(tenant string, req ActionRequest, now time.Time) actionDoc {
	id := actionID(tenant, req.IdempotencyKey)
	d := actionDoc{Key: req.IdempotencyKey, BodyHash: req.hash(), Status: actionPending,
		Request: events.ActionRequested{TenantID: tenant, App: connectors.AppGreenhouse, ActionID: id, Type: events.ActionType(req.Type),
			UserIDs: req.UserIDs, RequestedBy: req.RequestedBy, Reason: req.Reason, DryRun: req.DryRun, Force: req.Force, RequestedAt: now}}
	for _, u := range req.UserIDs {
		d.Users = append(d.Users, userOutcome{UserID: u})
	}
	return d
}

// ActionView is an action as the API shows it (docs/api.md, "Actions").
type ActionView struct {
	ActionID       string           `json:"action_id"`
	IdempotencyKey string           `json:"idempotency_key"`
	Type           string           `json:"type"`
	Status         string           `json:"status"`
	RequestedBy    string           `json:"requested_by"`
	Reason         string           `json:"reason"`
	DryRun         bool             `json:"dry_run"`
	Force          bool             `json:"force"`
	RequestedAt    time.Time        `json:"requested_at"`
	CompletedAt    *time.Time       `json:"completed_at"`
	FollowUpSync   string           `json:"follow_up_sync,omitempty"`
	Counts         map[string]int   `json:"counts"`
	Users          []ActionUserView `json:"users"`
}

// ActionUserView is one user's outcome as the API shows it; pending until decided.
type ActionUserView struct {
	UserID  int64  `json:"user_id"`
	Outcome string `json:"outcome"`
	Decision
}

// viewAction shows an action.
func viewAction(d actionDoc) ActionView {
	v := ActionView{ActionID: d.Request.ActionID, IdempotencyKey: d.Key, Type: string(d.Request.Type), Status: d.Status,
		RequestedBy: d.Request.RequestedBy, Reason: d.Request.Reason, DryRun: d.Request.DryRun, Force: d.Request.Force,
		RequestedAt: d.Request.RequestedAt, CompletedAt: d.CompletedAt, FollowUpSync: d.FollowUpRun, Counts: map[string]int{},
		Users: make([]ActionUserView, 0, len(d.Users))}
	for _, u := range d.Users {
		o := string(u.Outcome)
		if o == "" {
			o = "pending"
		}
		if u.Guards == nil {
			u.Guards = []events.GuardDecision{}
		}
		v.Counts[o]++
		v.Users = append(v.Users, ActionUserView{UserID: u.UserID, Outcome: o, Decision: u.Decision})
	}
	return v
}

// ActionsPage is the answer of GET …/actions: the newest actions first.
type ActionsPage struct {
	Actions []ActionView `json:"actions"`
}

var actionIDRe = regexp.MustCompile(`^[0-9a-f]{32}$`)

// getAction answers one action with each user's outcome.
func (a *api) getAction(w http.ResponseWriter, r *http.Request) {
	tenant, ok := tenantParam(w, r)
	if !ok {
		return
	}
	id := r.PathValue("action_id")
	if !actionIDRe.MatchString(id) {
		writeError(w, http.StatusNotFound, apiError{Code: codeNotFound, Message: fmt.Sprintf("tenant %q has no action %q", tenant, id)})
		return
	}
	d, _, err := a.actions.get(r.Context(), tenant, id)
	switch {
	case errors.Is(err, events.ErrNotFound):
		writeError(w, http.StatusNotFound, apiError{Code: codeNotFound, Message: fmt.Sprintf("tenant %q has no action %q", tenant, id)})
	case err != nil:
		a.unavailable(w, err)
	default:
		writeJSON(w, http.StatusOK, viewAction(d))
	}
}

// listActions answers the tenant's newest actions (?limit=, 1 to 100, default 20), each with
// its users' outcomes.
func (a *api) listActions(w http.ResponseWriter, r *http.Request) {
	tenant, ok := tenantParam(w, r)
	if !ok {
		return
	}
	limit := defaultActionList
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxActionList {
			writeError(w, http.StatusBadRequest, apiError{Code: codeInvalidField, Field: "limit", Message: fmt.Sprintf("limit must be an integer from 1 to %d", maxActionList)})
			return
		}
		limit = n
	}
	var docs []actionDoc
	err := a.actions.kv.Values(r.Context(), connectionKey(tenant)+".", func(_ string, d actionDoc, _ uint64) error {
		docs = append(docs, d)
		return nil
	})
	if err != nil {
		a.unavailable(w, err)
		return
	}
	sort.Slice(docs, func(i, j int) bool { return docs[i].Request.RequestedAt.After(docs[j].Request.RequestedAt) })
	out := make([]ActionView, 0, min(limit, len(docs)))
	for _, d := range docs[:min(limit, len(docs))] {
		out = append(out, viewAction(d))
	}
	writeJSON(w, http.StatusOK, ActionsPage{Actions: out})
}
