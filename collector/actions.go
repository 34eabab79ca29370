package collector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/seatwatch/greenhouse-collector/connectors"
	"github.com/seatwatch/greenhouse-collector/events"
	"github.com/seatwatch/greenhouse-collector/storage"
)

// Reclaim actions (docs/api.md, "Actions"; docs/reliability.md, "Actions and crashes"). An
// action is a document in the actions bucket, created by the api (api_actions.go) under an id
// derived from the tenant and the idempotency key, and run on the replica that owns the
// tenant: the connection document lists the actions not yet finished (storedConnection.
// Actions), the owner's scheduler starts a run of at most cfg.ActionChunk users of one of
// them every cfg.ActionEvery, with the tenant's due syncs between, and each run goes through
// the tenant's Greenhouse client and so its Harvest pacer.
//
// Crash safety: before a user's request is sent the user is marked sending in the document;
// after Greenhouse answers, the outcome replaces the mark. A run that finds a user marked
// sending (its replica died, or its lease ended, while the request was in flight) does not
// send again blindly: it asks Greenhouse for the user, and a user already in the action's
// state is done (the earlier request took effect), any other is sent again. Outcomes reach
// NATS (saas.action.completed) and ClickHouse (actions) after they are in the document, with
// deterministic ids and keys, and are marked recorded only then: a crash repeats the
// recording, never loses it.

// actionStore is the ClickHouse an action reads and writes: *storage.Store.
type actionStore interface {
	CurrentUsers(ctx context.Context, tenant, app string, fn func(storage.UserRow) error) error
	InsertActionOutcomes(ctx context.Context, rows []storage.ActionRow) error
}

// The statuses of an action.
const (
	actionPending   = "pending"
	actionCompleted = "completed"
)

// actionDoc is one action in the actions bucket.
type actionDoc struct {
	Request     events.ActionRequested `json:"request"`
	Key         string                 `json:"idempotency_key"`
	BodyHash    string                 `json:"body_hash"`
	Status      string                 `json:"status"`
	Users       []userOutcome          `json:"users"`
	Announced   bool                   `json:"announced"` // saas.action.requested published
	CompletedAt *time.Time             `json:"completed_at,omitempty"`
	FollowUpRun string                 `json:"follow_up_run,omitempty"` // the users sync asked for after it
}

// userOutcome is one user's part of an action: undecided (Outcome ""), in flight (Sending),
// or decided.
type userOutcome struct {
	UserID  int64          `json:"user_id"`
	Outcome events.Outcome `json:"outcome,omitempty"`
	Sending bool           `json:"sending,omitempty"`
	Decision
	Recorded bool `json:"recorded,omitempty"`
}

// Decision is what a user's outcome rests on: the refusing guard or Greenhouse's error code,
// Greenhouse's answer, each guard's decision, and what the collector knew of the user before
// the action. The API shows it as it is stored (ActionUserView).
type Decision struct {
	Code           string                 `json:"code,omitempty"`
	HTTPStatus     int                    `json:"http_status,omitempty"`
	Guards         []events.GuardDecision `json:"guards"`
	LicenseType    string                 `json:"license_type,omitempty"`
	LastActivityAt *time.Time             `json:"last_activity_at"`
	DecidedAt      *time.Time             `json:"decided_at"`
}

// actionKey is an action's key in the actions bucket.
func actionKey(tenant, id string) string { return connectionKey(tenant) + "." + id }

// actions creates, runs and records reclaim actions; the api and the syncer share it.
type actions struct {
	cfg   Config
	kv    *events.KV[actionDoc]
	store actionStore
	out   outputs
	conns *connections
	now   func() time.Time
	log   zerolog.Logger
}

// get reads an action; events.ErrNotFound when there is none.
func (ac *actions) get(ctx context.Context, tenant, id string) (actionDoc, uint64, error) {
	return ac.kv.Get(ctx, actionKey(tenant, id))
}

// storedUsers reads the tenant's users as the last users sync left them, by id.
func (ac *actions) storedUsers(ctx context.Context, tenant string) (map[int64]storage.UserRow, error) {
	out := map[int64]storage.UserRow{}
	err := ac.store.CurrentUsers(ctx, tenant, connectors.AppGreenhouse, func(r storage.UserRow) error {
		out[r.UserID] = r
		return nil
	})
	return out, ac.out.stored(err)
}

// decide sets a user's decision and what the collector knew of the user before the action.
func decide(u *userOutcome, outcome events.Outcome, code string, row *storage.UserRow, at time.Time) {
	u.Outcome, u.Code, u.Sending, u.DecidedAt = outcome, code, false, &at
	if row != nil && u.LicenseType == "" {
		u.LicenseType, u.LastActivityAt = row.LicenseType, row.LastActivityAt
	}
}

// dryRun decides every user of a dry run from what the collector stores: each guard's
// decision; already_in_state for a user the last users sync saw in the action's state
// (nothing would be sent, whatever the guards say), refused when a guard refuses, else
// would_apply. Nothing is sent to Greenhouse.
func (ac *actions) dryRun(ctx context.Context, d *actionDoc, sc storedConnection) error {
	rows, err := ac.storedUsers(ctx, d.Request.TenantID)
	if err != nil {
		return err
	}
	now := ac.now()
	for i := range d.Users {
		u := &d.Users[i]
		in := ac.guardInput(d, u.UserID, rows, sc)
		var code string
		u.Guards, code = runGuards(in)
		switch {
		case in.row != nil && in.row.Status != storage.StatusRemoved && inState(d.Request.Type, in.row.Status == storage.StatusDeactivated):
			decide(u, events.OutcomeAlreadyInState, "", in.row, now)
		case code != "":
			decide(u, events.OutcomeRefused, code, in.row, now)
		default:
			decide(u, events.OutcomeWouldApply, "", in.row, now)
		}
	}
	d.Status, d.CompletedAt = actionCompleted, &now
	return nil
}

// inState reports whether a user whose deactivated flag is deactivated is already where an
// action of type t would put them.
func inState(t events.ActionType, deactivated bool) bool {
	return deactivated == (t == events.ActionDeactivate)
}

// record publishes what of an action is not yet recorded (saas.action.requested, each decided
// user's saas.action.completed) and writes the users' actions rows, then marks them recorded
// in d; the caller stores d. Ids and keys are deterministic: recording again is harmless.
func (ac *actions) record(ctx context.Context, d *actionDoc) error {
	tenant, req := d.Request.TenantID, d.Request
	var envs []events.Envelope
	if !d.Announced {
		env, err := events.NewEnvelope(tenant, events.TypeActionRequested, fmt.Sprintf("%s:action:%s:requested", tenant, req.ActionID),
			"actions/"+req.ActionID, req.RequestedAt, req)
		if err != nil {
			return err
		}
		envs = append(envs, env)
	}
	var rows []storage.ActionRow
	var recorded []int
	for i, u := range d.Users {
		if u.Outcome == "" || u.Recorded {
			continue
		}
		env, row, err := outcomeRecord(req, u)
		if err != nil {
			return err
		}
		envs, rows, recorded = append(envs, env), append(rows, row), append(recorded, i)
	}
	if err := ac.out.publish(ctx, envs); err != nil {
		return err
	}
	if err := ac.out.stored(ac.store.InsertActionOutcomes(ctx, rows)); err != nil {
		return err
	}
	d.Announced = true
	for _, i := range recorded {
		d.Users[i].Recorded = true
		ac.out.metrics.actionOutcomes.WithLabelValues(string(req.Type), string(d.Users[i].Outcome)).Inc()
	}
	return nil
}

// outcomeRecord is a decided user's saas.action.completed event and actions row.
func outcomeRecord(req events.ActionRequested, u userOutcome) (events.Envelope, storage.ActionRow, error) {
	data := events.ActionCompleted{TenantID: req.TenantID, App: connectors.AppGreenhouse, ActionID: req.ActionID, Type: req.Type,
		UserID: u.UserID, Outcome: u.Outcome, Code: u.Code, HTTPStatus: u.HTTPStatus, Guards: u.Guards, LicenseType: u.LicenseType,
		LastActivityAt: u.LastActivityAt, RequestedBy: req.RequestedBy, DryRun: req.DryRun, RequestedAt: req.RequestedAt, DecidedAt: *u.DecidedAt}
	if data.Guards == nil {
		data.Guards = []events.GuardDecision{}
	}
	env, err := events.NewEnvelope(req.TenantID, events.TypeActionCompleted,
		fmt.Sprintf("%s:action:%s:user:%d", req.TenantID, req.ActionID, u.UserID), "users/"+strconv.FormatInt(u.UserID, 10), data.DecidedAt, data)
	if err != nil {
		return events.Envelope{}, storage.ActionRow{}, err
	}
	guards, _ := json.Marshal(data.Guards)
	row := storage.ActionRow{TenantID: req.TenantID, App: connectors.AppGreenhouse, ActionID: req.ActionID, UserID: u.UserID,
		Type: string(req.Type), RequestedBy: req.RequestedBy, Reason: req.Reason, RequestedAt: req.RequestedAt, DryRun: req.DryRun,
		Force: req.Force, Outcome: string(u.Outcome), Code: u.Code, HTTPStatus: uint16(u.HTTPStatus), Guards: string(guards),
		LicenseType: u.LicenseType, LastActivityAt: u.LastActivityAt, DecidedAt: data.DecidedAt}
	return env, row, nil
}

// queue lists an action in the tenant's connection as not yet finished: the owning replica's
// scheduler runs it.
func (ac *actions) queue(ctx context.Context, tenant, id string) error {
	_, err := ac.conns.modify(ctx, tenant, func(sc *storedConnection, exists bool) (int, error) {
		if !exists {
			return 0, events.ErrNotFound
		}
		for _, a := range sc.Actions {
			if a == id {
				return 0, errAlreadyPending
			}
		}
		sc.Actions = append(sc.Actions, id)
		return 0, nil
	})
	if errors.Is(err, errAlreadyPending) {
		return nil
	}
	return err
}

// unqueue removes a finished (or vanished) action from the tenant's connection.
func (ac *actions) unqueue(ctx context.Context, tenant, id string) error {
	_, err := ac.conns.modify(ctx, tenant, func(sc *storedConnection, exists bool) (int, error) {
		if !exists {
			return 0, errAlreadyPending // nothing to write
		}
		kept := sc.Actions[:0:0]
		for _, a := range sc.Actions {
			if a != id {
				kept = append(kept, a)
			}
		}
		if len(kept) == len(sc.Actions) {
			return 0, errAlreadyPending
		}
		sc.Actions = kept
		return 0, nil
	})
	if errors.Is(err, errAlreadyPending) {
		return nil
	}
	return err
}
