package collector

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/seatwatch/greenhouse-collector/connectors"
	"github.com/seatwatch/greenhouse-collector/events"
	"github.com/seatwatch/greenhouse-collector/storage"
)

// The license policy's routes (docs/api.md, "License policy"): GET and PUT
// …/connections/greenhouse/policy. A PUT is checked whole before anything is stored, then
// stored as a new revision, announced, and re-judges the tenant at once (policy.go).

// policyJudge re-judges a tenant's licenses under its stored policy: *syncer (rejudge).
type policyJudge interface {
	rejudge(ctx context.Context, tenant string, sc storedConnection) error
}

// rejudgeTimeout bounds a PUT's re-judging, which outlives the request.
const rejudgeTimeout = 2 * time.Minute

func (a *api) getPolicy(w http.ResponseWriter, r *http.Request) {
	tenant, ok := tenantParam(w, r)
	if !ok {
		return
	}
	sc, err := a.conns.get(r.Context(), tenant)
	a.answer(w, tenant, err, func() { writeJSON(w, http.StatusOK, sc.Policy.document(tenant)) })
}

func (a *api) putPolicy(w http.ResponseWriter, r *http.Request) {
	tenant, ok := tenantParam(w, r)
	if !ok {
		return
	}
	var pol events.Policy
	if e := decodeStrict(r, w, &pol); e != nil {
		writeError(w, http.StatusBadRequest, *e)
		return
	}
	ctx := r.Context()
	sc, err := a.conns.get(ctx, tenant)
	if err == nil && sc.Secret == nil {
		err = errDisconnected
	}
	if err != nil {
		a.answer(w, tenant, err, nil)
		return
	}
	if err := a.conns.deliverPolicy(ctx, tenant, sc.Policy); err != nil {
		// The previous change is still to be announced: no new revision until it is.
		a.log.Warn().Err(err).Str("tenant", tenant).Msg("announce the previous policy change")
		writeError(w, http.StatusServiceUnavailable, apiError{Code: codeUnavailable, Message: errPolicyPending.Error() + " (NATS or ClickHouse unavailable); try again"})
		return
	}
	known, err := a.exemptable(ctx, tenant, pol)
	if err != nil {
		a.unavailable(w, err)
		return
	}
	now := a.now()
	if e := validatePolicy(&pol, now, known); e != nil {
		writeError(w, http.StatusBadRequest, *e)
		return
	}
	stored, changed, err := a.conns.setPolicy(ctx, tenant, pol, tokenName(r), now)
	if errors.Is(err, errPolicyPending) { // another change, stored meanwhile, not yet announced
		writeError(w, http.StatusServiceUnavailable, apiError{Code: codeUnavailable, Message: err.Error() + "; try again"})
		return
	}
	if err != nil {
		a.answer(w, tenant, err, nil)
		return
	}
	log := a.log.With().Str("tenant", tenant).Uint32("policy_revision", stored.Policy.Revision).Logger()
	if changed {
		if err := a.conns.deliverPolicy(ctx, tenant, stored.Policy); err != nil {
			log.Warn().Err(err).Msg("announce policy change; retried by the next users sync")
		}
		if a.judge != nil {
			// The client leaving must not cut the re-judging short (alerts published, the
			// alert state not saved): it runs to its end, within rejudgeTimeout.
			jctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rejudgeTimeout)
			err := a.judge.rejudge(jctx, tenant, stored)
			cancel()
			if err != nil {
				log.Warn().Err(err).Msg("re-judge licenses under the new policy; the next users sync does")
			}
		}
		log.Info().Str("by", tokenName(r)).Msg("license policy changed")
	}
	writeJSON(w, http.StatusOK, stored.Policy.document(tenant))
}

// exemptable returns the ids of the tenant's users when the policy exempts users by id (an
// exemption must name a user the collector has listed and not seen removed: false for those
// removed), nil otherwise.
func (a *api) exemptable(ctx context.Context, tenant string, pol events.Policy) (map[int64]bool, error) {
	byID := false
	for _, x := range pol.Exemptions {
		byID = byID || x.UserID != 0
	}
	if !byID {
		return nil, nil
	}
	known := map[int64]bool{}
	err := a.store.CurrentUsers(ctx, tenant, connectors.AppGreenhouse, func(u storage.UserRow) error {
		known[u.UserID] = u.Status != storage.StatusRemoved
		return nil
	})
	return known, err
}
