package collector

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse"
	"github.com/seatwatch/greenhouse-collector/events"
	"github.com/seatwatch/greenhouse-collector/storage"
)

// Running an action on the owning replica: one run decides and sends at most cfg.ActionChunk
// users (the crash-safety argument is at the top of actions.go).

// actionClient is what an action asks of Greenhouse: *greenhouse.Client.
type actionClient interface {
	LookupUsers(ctx context.Context, ids []int64) ([]greenhouse.User, error)
	SetUserStatus(ctx context.Context, id int64, to greenhouse.UserStatus) error
}

// run runs the next chunk of the tenant's action id with the tenant's Greenhouse client, then
// records what is decided; a finished action asks for a users sync and leaves the
// connection's list. An error leaves the action for the next run.
func (ac *actions) run(ctx context.Context, tenant string, sc storedConnection, id string, cl actionClient) error {
	d, rev, err := ac.get(ctx, tenant, id)
	if errors.Is(err, events.ErrNotFound) {
		return ac.unqueue(ctx, tenant, id)
	}
	if err != nil {
		return internal(codeNATSUnavailable, err)
	}
	if cur, err := ac.conns.get(ctx, tenant); err == nil {
		sc = cur // the guards read the connection as it is now (admin user, settings)
	}
	if d.Status != actionCompleted {
		if err := ac.step(ctx, &d, &rev, sc, cl); err != nil {
			return err
		}
	}
	return ac.finish(ctx, &d, rev)
}

// chunk returns the indexes of the next undecided users, at most cfg.ActionChunk.
func (ac *actions) chunk(d *actionDoc) []int {
	var idx []int
	for i, u := range d.Users {
		if u.Outcome == "" && len(idx) < ac.cfg.ActionChunk {
			idx = append(idx, i)
		}
	}
	return idx
}

// step decides the next chunk: Greenhouse's answer for its users (one look-up), then each
// user in turn (one). A failure that every further request would meet (the permission
// missing, the credential refused) fails the rest of the action without sending them.
func (ac *actions) step(ctx context.Context, d *actionDoc, rev *uint64, sc storedConnection, cl actionClient) error {
	idx := ac.chunk(d)
	if len(idx) == 0 {
		return nil
	}
	rows, err := ac.storedUsers(ctx, d.Request.TenantID)
	if err != nil {
		return err
	}
	ids := make([]int64, len(idx))
	for k, i := range idx {
		ids[k] = d.Users[i].UserID
	}
	listed, err := cl.LookupUsers(ctx, ids)
	if err != nil {
		return fmt.Errorf("look up the users of action %s: %w", d.Request.ActionID, err)
	}
	live := make(map[int64]greenhouse.User, len(listed))
	for _, u := range listed {
		live[u.ID] = u
	}
	for _, i := range idx {
		stop, err := ac.one(ctx, d, rev, i, rows, live, sc, cl)
		if err != nil {
			return err
		}
		if stop != "" {
			ac.failRest(d, stop)
			return ac.save(ctx, d, rev)
		}
	}
	return nil
}

// one decides one user right before the request: the guards on the stored row and
// Greenhouse's answer, then the request itself between the sending mark and the outcome. It
// returns the code that stops the action, if the answer was one.
func (ac *actions) one(ctx context.Context, d *actionDoc, rev *uint64, i int, rows map[int64]storage.UserRow,
	live map[int64]greenhouse.User, sc storedConnection, cl actionClient) (string, error) {
	u := &d.Users[i]
	lu, listed := live[u.UserID]
	in := ac.guardInput(d, u.UserID, rows, sc)
	in.gone, in.siteAdmin = !listed, lu.SiteAdmin
	in.exempt = in.exempt || listed && sc.Policy.exempts(u.UserID, lu.PrimaryEmail, in.now)
	var code string
	u.Guards, code = runGuards(in)
	now := ac.now()
	switch {
	case u.Sending && listed && inState(d.Request.Type, lu.Deactivated):
		// The request of an earlier run was in flight when it ended, and took effect.
		ac.log.Info().Str("tenant", d.Request.TenantID).Str("action_id", d.Request.ActionID).Int64("user_id", u.UserID).
			Msg("reclaim: an earlier run's request took effect; not sent again")
		decide(u, events.OutcomeDone, "", in.row, now)
		u.HTTPStatus = http.StatusNoContent
		return "", ac.save(ctx, d, rev)
	case listed && inState(d.Request.Type, lu.Deactivated):
		// Nothing would be sent, whatever the guards say.
		decide(u, events.OutcomeAlreadyInState, "", in.row, now)
		return "", ac.save(ctx, d, rev)
	case code != "":
		decide(u, events.OutcomeRefused, code, in.row, now)
		return "", ac.save(ctx, d, rev)
	}
	if u.Sending {
		ac.log.Info().Str("tenant", d.Request.TenantID).Str("action_id", d.Request.ActionID).Int64("user_id", u.UserID).
			Msg("reclaim: an earlier run's request did not take effect; sending it")
	}
	u.Sending = true
	if err := ac.save(ctx, d, rev); err != nil {
		return "", err
	}
	err := cl.SetUserStatus(ctx, u.UserID, writeOf(d.Request.Type))
	code = string(greenhouse.CodeOf(err))
	if err != nil && (ctx.Err() != nil || inDoubt(code)) {
		// Maybe sent, maybe not: the user stays marked sending, and the next run asks
		// Greenhouse before sending again.
		return "", fmt.Errorf("%s user %d of action %s: %w", writeOf(d.Request.Type), u.UserID, d.Request.ActionID, err)
	}
	var ae *greenhouse.APIError
	switch {
	case err == nil:
		decide(u, events.OutcomeDone, "", in.row, ac.now())
		u.HTTPStatus = http.StatusNoContent
	case errors.As(err, &ae):
		decide(u, events.OutcomeFailed, code, in.row, ac.now())
		u.HTTPStatus = ae.Status
	default:
		decide(u, events.OutcomeFailed, code, in.row, ac.now())
	}
	if err := ac.save(ctx, d, rev); err != nil || !stopsAction(code) {
		return "", err
	}
	return code, nil
}

// guardInput is what the guards see of a user: the stored row, the tenant's admin user, the
// license policy now (its exemptions, and the inactivity window of the user's license type),
// and the request.
func (ac *actions) guardInput(d *actionDoc, userID int64, rows map[int64]storage.UserRow, sc storedConnection) guardInput {
	now := ac.now()
	p := storage.UsageParams{InactiveAfterDays: ac.cfg.settingsOf(sc.Doc).inactiveAfterDays}
	sc.Policy.apply(&p, now)
	in := guardInput{req: &d.Request, userID: userID, admin: sc.Doc.AdminUserID, now: now,
		inactiveAfter: time.Duration(p.InactiveAfterDays) * 24 * time.Hour, exempt: p.Exempt.Has(userID, "")}
	if row, ok := rows[userID]; ok {
		in.row, in.siteAdmin = &row, row.SiteAdmin
		in.inactiveAfter = time.Duration(p.DaysFor(row.LicenseType)) * 24 * time.Hour
		in.exempt = p.Exempt.Has(userID, row.Email)
	}
	return in
}

// writeOf is the Greenhouse write of an action type.
func writeOf(t events.ActionType) greenhouse.UserStatus {
	if t == events.ActionDeactivate {
		return greenhouse.Deactivate
	}
	return greenhouse.Activate
}

// inDoubt reports whether a failed write may have reached Greenhouse: no answer, or one the
// retries ended on (a 5xx, a 429).
func inDoubt(code string) bool {
	return code == string(greenhouse.CodeUnavailable) || code == string(greenhouse.CodeRateLimited)
}

// stopsAction reports whether every further request of the action would fail the same way.
func stopsAction(code string) bool {
	switch greenhouse.Code(code) {
	case greenhouse.CodeActionsNotPermitted, greenhouse.CodeInvalidClient, greenhouse.CodeAdminNotSiteAdmin, greenhouse.CodeAdminUserInvalid:
		return true
	}
	return false
}

// failRest fails every undecided user with code; nothing is sent for them.
func (ac *actions) failRest(d *actionDoc, code string) {
	now := ac.now()
	for i := range d.Users {
		if u := &d.Users[i]; u.Outcome == "" {
			decide(u, events.OutcomeFailed, code, nil, now)
		}
	}
}

// save writes the action with compare-and-set on rev: only the owning replica writes an
// action under way, so a conflict means another replica took the tenant over.
func (ac *actions) save(ctx context.Context, d *actionDoc, rev *uint64) error {
	next, err := ac.kv.Update(ctx, actionKey(d.Request.TenantID, d.Request.ActionID), *d, *rev)
	if err != nil {
		return internal(codeNATSUnavailable, err)
	}
	*rev = next
	return nil
}

// finish completes an action whose users are all decided (a real one asks for the users
// sync that follows it), records what is not yet recorded, and takes a completed action off
// the connection's list.
func (ac *actions) finish(ctx context.Context, d *actionDoc, rev uint64) error {
	tenant := d.Request.TenantID
	if d.Status != actionCompleted && len(ac.chunk(d)) == 0 {
		now := ac.now()
		d.Status, d.CompletedAt = actionCompleted, &now
	}
	if d.Status == actionCompleted && !d.Request.DryRun && d.FollowUpRun == "" {
		run, err := ac.conns.requestSync(ctx, tenant, uuid.NewString())
		if err != nil {
			return internal(codeNATSUnavailable, err)
		}
		d.FollowUpRun = run
	}
	recErr := ac.record(ctx, d)
	if err := ac.save(ctx, d, &rev); err != nil {
		return err
	}
	if recErr != nil {
		return recErr
	}
	if d.Status == actionCompleted {
		return ac.unqueue(ctx, tenant, d.Request.ActionID)
	}
	return nil
}
