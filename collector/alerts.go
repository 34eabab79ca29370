package collector

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/seatwatch/greenhouse-collector/connectors"
	"github.com/seatwatch/greenhouse-collector/events"
	"github.com/seatwatch/greenhouse-collector/storage"
)

// Alert names (docs/events.md).
const (
	AlertLicenseInactive = "license_inactive"
	AlertLicenseActive   = "license_active"
	AlertLicenseFreed    = "license_freed"
)

// alertState is a tenant's alert memory, kept in JetStream KV so that an alert fires once per
// transition across restarts and replicas. Only users that ever had an inactive/active
// transition are recorded, so its size follows the number of inactive licenses, not the
// organisation's size. license_freed needs no memory: it is tied to the user's revision.
// Seats holds the seat alerts' memory by license type (seats.go).
type alertState struct {
	Users map[string]alertUser      `json:"users"`
	Seats map[string]seatAlertState `json:"seats,omitempty"`
	// PolicyRevision is the license policy's revision the state was last judged under
	// (0: none): nothing judges it again under an older one (judgingState).
	PolicyRevision uint32 `json:"policy_revision,omitempty"`
}

type alertUser struct {
	Inactive bool   `json:"inactive"`
	Seq      uint32 `json:"seq"` // number of transitions so far
}

// transition is one alert to publish.
type transition struct {
	alert string
	seq   uint64
	rec   events.LicenseRecord
	cause string // the reason of a license_active alert; "" for activity_resumed
}

// causePolicy is the reason of a license_active alert that a policy change caused (a longer
// threshold, say), rather than the user's activity.
const causePolicy = "policy_changed"

// evaluate compares a user's current record with the alert memory, updates the memory and
// returns the transition to publish, if any:
//   - a license holder classified inactive who was not flagged: license_inactive;
//   - a flagged user classified active again: license_active;
//   - a flagged user who no longer holds a license is unflagged silently (license_freed is
//     published by the users diff), and so is a flagged user the policy exempts: when the
//     exemption ends and the license is still inactive, license_inactive fires again.
//
// usage unknown changes nothing.
func (s *alertState) evaluate(rec events.LicenseRecord) (transition, bool) {
	if s.Users == nil {
		s.Users = map[string]alertUser{}
	}
	key := strconv.FormatInt(rec.UserID, 10)
	st := s.Users[key]
	switch {
	case !rec.Licensed, rec.Usage == storage.UsageExempt:
		if st.Inactive {
			st.Inactive = false
			s.Users[key] = st
		}
		return transition{}, false
	case rec.Usage == storage.UsageInactive && !st.Inactive:
		st.Inactive = true
		st.Seq++
		s.Users[key] = st
		return transition{alert: AlertLicenseInactive, seq: uint64(st.Seq), rec: rec}, true
	case rec.Usage == storage.UsageActive && st.Inactive:
		st.Inactive = false
		st.Seq++
		s.Users[key] = st
		return transition{alert: AlertLicenseActive, seq: uint64(st.Seq), rec: rec}, true
	}
	return transition{}, false
}

// judge evaluates a license record (evaluate) and builds the envelope of its transition,
// if any; cause is the reason of a license_active alert ("" for activity_resumed).
func (s *alertState) judge(rec events.LicenseRecord, p storage.UsageParams, observedSince, now time.Time, cause string) (events.Envelope, bool, error) {
	tr, fire := s.evaluate(rec)
	if !fire {
		return events.Envelope{}, false, nil
	}
	tr.cause = cause
	env, err := alertEnvelope(tr, p, observedSince, now)
	return env, err == nil, err
}

// alertEventID is the deterministic id of an alert: one per user, kind and transition.
func alertEventID(tenant string, userID int64, alert string, seq uint64) string {
	return fmt.Sprintf("%s:alert:%d:%s:%d", tenant, userID, alert, seq)
}

// alertType maps an alert name to its CloudEvents type.
func alertType(alert string) events.Type {
	switch alert {
	case AlertLicenseInactive:
		return events.TypeAlertLicenseInactive
	case AlertLicenseActive:
		return events.TypeAlertLicenseActive
	default:
		return events.TypeAlertLicenseFreed
	}
}

// alertEnvelope builds the envelope of one transition.
func alertEnvelope(tr transition, p storage.UsageParams, observedSince time.Time, now time.Time) (events.Envelope, error) {
	rec := tr.rec
	reason := rec.Reason
	switch tr.alert {
	case AlertLicenseActive:
		reason = "activity_resumed"
		if tr.cause != "" {
			reason = tr.cause
		}
	case AlertLicenseFreed:
		reason = rec.Status
	}
	data := events.Alert{
		TenantID: rec.TenantID, App: connectors.AppGreenhouse, Alert: tr.alert, Reason: reason,
		UserID: rec.UserID, Name: rec.Name, Email: rec.Email, LicenseType: rec.LicenseType, Status: rec.Status,
		Evidence: events.Evidence{
			LastActivityAt:    rec.LastActivityAt,
			LastEventType:     rec.LastActivityType,
			InactiveAfterDays: p.DaysFor(rec.LicenseType),
			CreatedAt:         rec.CreatedAt,
			ObservedSince:     observedSince,
		},
		Transition: tr.seq,
		DetectedAt: now,
	}
	if !p.CoverageStart.IsZero() {
		known := p.CoverageStart
		data.Evidence.ActivityKnownSince = &known
	}
	return events.NewEnvelope(rec.TenantID, alertType(tr.alert), alertEventID(rec.TenantID, rec.UserID, tr.alert, tr.seq),
		fmt.Sprintf("users/%d", rec.UserID), now, data)
}

// alertStore reads and writes the tenants' alert state.
type alertStore struct{ kv kvStore[alertState] }

// get reads a tenant's alert state; absent is an empty state with revision 0.
func (a alertStore) get(ctx context.Context, tenant string) (alertState, uint64, error) {
	st, rev, err := a.kv.Get(ctx, connectionKey(tenant))
	if errors.Is(err, events.ErrNotFound) {
		return alertState{Users: map[string]alertUser{}}, 0, nil
	}
	if err != nil {
		return alertState{}, 0, internal(codeNATSUnavailable, fmt.Errorf("read alert state of tenant %q: %w", tenant, err))
	}
	if st.Users == nil {
		st.Users = map[string]alertUser{}
	}
	return st, rev, nil
}

// judgingState reads a tenant's alert state, then the policy to judge it under: the tenant's
// stored policy as of now, not the one a job or a request read before (sc's), so that a run
// never undoes a policy change's re-judging (docs/events.md, "License policy"). A policy older
// than the one the state was last judged under is a conflict (a stale read; the caller
// retries). It returns the state, its revision and sc with that policy, and records the
// policy's revision in the state.
func (s *syncer) judgingState(ctx context.Context, tenant string, sc storedConnection) (alertState, uint64, storedConnection, error) {
	alerts, rev, err := s.alerts.get(ctx, tenant)
	if err != nil {
		return alerts, rev, sc, err
	}
	if s.conns != nil {
		fresh, err := s.conns.get(ctx, tenant)
		switch {
		case err == nil:
			sc.Policy = fresh.Policy
		case !errors.Is(err, events.ErrNotFound): // gone: nothing newer to judge under
			return alerts, rev, sc, internal(codeNATSUnavailable, fmt.Errorf("read license policy of tenant %q: %w", tenant, err))
		}
	}
	judged := sc.Policy.revision()
	if judged < alerts.PolicyRevision {
		return alerts, rev, sc, fmt.Errorf("%w: license policy revision %d read after the alert state judged under revision %d",
			events.ErrConflict, judged, alerts.PolicyRevision)
	}
	alerts.PolicyRevision = judged
	return alerts, rev, sc, nil
}

// put writes a tenant's alert state with compare-and-set.
func (a alertStore) put(ctx context.Context, tenant string, st alertState, rev uint64) error {
	if _, err := createOrUpdate(ctx, a.kv, connectionKey(tenant), st, rev); err != nil {
		return internal(codeNATSUnavailable, fmt.Errorf("save alert state of tenant %q: %w", tenant, err))
	}
	return nil
}
