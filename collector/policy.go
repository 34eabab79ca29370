package collector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/seatwatch/greenhouse-collector/connectors"
	"github.com/seatwatch/greenhouse-collector/events"
	"github.com/seatwatch/greenhouse-collector/storage"
)

// A tenant's license policy (docs/api.md, "License policy"): stored with its connection
// (storedConnection.Policy), it enters the usage rule (apply), the seat figures (terms) and
// the seat alerts (seats.go). A change (api_policy.go) is stored as a pending revision and
// announced from the stored policy (a policy_changes row and saas.policy.changed:
// deliverPolicy, retried by the next users sync or policy change), and re-judges the tenant's
// licenses at once (rejudge).

// tenantPolicy is a tenant's license policy as stored with its connection.
type tenantPolicy struct {
	Policy    events.Policy `json:"policy"`
	Revision  uint32        `json:"revision"`
	UpdatedAt time.Time     `json:"updated_at"`
	UpdatedBy string        `json:"updated_by"`
	// Changed names the fields this revision changed (policyChanges).
	Changed []string `json:"changed,omitempty"`
	// Pending is this revision while its change is not yet both stored (policy_changes) and
	// published (saas.policy.changed); 0 once it is. The change is rebuilt from the policy
	// (change), and no new revision is stored while one is pending (errPolicyPending), so no
	// revision's announcement is ever dropped and the document holds one policy only.
	Pending uint32 `json:"pending,omitempty"`
}

// errPolicyPending refuses a policy change while the previous one is not yet announced (NATS
// or ClickHouse down): answered 503, to be tried again.
var errPolicyPending = errors.New("the previous policy change is not announced yet")

// change is the announcement of the policy's revision: saas.policy.changed's data.
func (tp *tenantPolicy) change(tenant string) events.PolicyChanged {
	return events.PolicyChanged{TenantID: tenant, App: connectors.AppGreenhouse, Revision: tp.Revision, ChangedBy: tp.UpdatedBy,
		ChangedAt: tp.UpdatedAt, Changed: append([]string{}, tp.Changed...), Policy: tp.Policy}
}

// Bounds of a policy (docs/api.md).
const (
	maxSeats        = 1_000_000
	maxPolicyDays   = 365
	maxExemptions   = 1000
	maxExemptReason = 500
	maxEmailLength  = 254
	// maxPolicyBytes bounds a policy's JSON as stored (its strings escaped), so that the
	// connection document holding it stays far below NATS's 1 MiB max_payload.
	maxPolicyBytes    = 64 << 10
	contractEndLayout = time.DateOnly
)

// apply puts the policy's thresholds, grace period and the exemptions in force at now into p;
// a nil policy changes nothing. Exemptions are judged at the clock's now, not p.Now (which
// lags behind while activity is being applied): an exemption that has expired is over.
func (tp *tenantPolicy) apply(p *storage.UsageParams, now time.Time) {
	if tp == nil {
		return
	}
	tp.Policy.LicenseTypes.Each(func(typ string, lp *events.LicenseTypePolicy) {
		if lp.InactiveAfterDays != nil {
			if p.DaysByType == nil {
				p.DaysByType = map[string]int{}
			}
			p.DaysByType[typ] = *lp.InactiveAfterDays
		}
	})
	p.GraceDays = tp.Policy.NewUserGraceDays
	for _, e := range tp.Policy.Exemptions {
		if exp, ok := expiry(e); ok && !exp.After(now) {
			continue // expired: the user is judged again
		}
		if e.UserID != 0 {
			p.Exempt.IDs = append(p.Exempt.IDs, e.UserID)
		} else {
			p.Exempt.Emails = append(p.Exempt.Emails, storage.LowerEmail(e.Email))
		}
	}
}

// exempts reports whether the policy exempts the user with this id or e-mail at a time
// (a nil policy exempts nobody): the usage rule's test (storage.Exemptions.Has) under the
// exemptions in force then. Whatever must leave exempt users alone (the usage rule, a
// reclaim) asks it, or the tenant's connections (connections.exempt).
func (tp *tenantPolicy) exempts(userID int64, email string, at time.Time) bool {
	var p storage.UsageParams
	tp.apply(&p, at)
	return p.Exempt.Has(userID, email)
}

// exempt reports whether the tenant's stored policy exempts the user with this id or e-mail
// at a time; events.ErrNotFound without a connection.
func (c *connections) exempt(ctx context.Context, tenant string, userID int64, email string, at time.Time) (bool, error) {
	sc, err := c.get(ctx, tenant)
	if err != nil {
		return false, err
	}
	return sc.Policy.exempts(userID, email, at), nil
}

// expiry is an exemption's end, if it has one.
func expiry(e events.Exemption) (time.Time, bool) {
	if e.ExpiresAt == "" {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339, e.ExpiresAt)
	return t, err == nil
}

// revision is the policy's revision, 0 for none.
func (tp *tenantPolicy) revision() uint32 {
	if tp == nil {
		return 0
	}
	return tp.Revision
}

// terms are the policy's seat terms by license type, prices in minor units; a nil policy has
// none (revision 0).
func (tp *tenantPolicy) terms() storage.PolicyTerms {
	if tp == nil {
		return storage.PolicyTerms{}
	}
	t := storage.PolicyTerms{Revision: tp.Revision, ByType: map[string]storage.SeatTerms{}}
	tp.Policy.LicenseTypes.Each(func(typ string, lp *events.LicenseTypePolicy) {
		st := storage.SeatTerms{SeatsPurchased: lp.SeatsPurchased, Currency: lp.Currency}
		if lp.AnnualCost != nil {
			if v, err := parseAmount(*lp.AnnualCost, lp.Currency); err == nil { // validated when put
				st.AnnualCost = &v
			}
		}
		t.ByType[typ] = st
	})
	return t
}

// document is the policy as the API shows it (revision 0 and an empty policy when none was
// set).
func (tp *tenantPolicy) document(tenant string) events.PolicyDocument {
	doc := events.PolicyDocument{TenantID: tenant, App: connectors.AppGreenhouse, Policy: events.Policy{Exemptions: []events.Exemption{}}}
	if tp == nil {
		return doc
	}
	at := tp.UpdatedAt
	doc.Revision, doc.UpdatedAt, doc.UpdatedBy, doc.Policy = tp.Revision, &at, tp.UpdatedBy, tp.Policy
	if doc.Exemptions == nil {
		doc.Exemptions = []events.Exemption{}
	}
	return doc
}

// validatePolicy checks a policy put for a tenant and normalises it (expiry times in UTC);
// known holds the ids of the users the collector has listed for the tenant, true for those
// not removed (an exemption by id names one of these). It answers the
// first problem, naming its field.
func validatePolicy(p *events.Policy, now time.Time, known map[int64]bool) *apiError {
	var e *apiError
	p.LicenseTypes.Each(func(typ string, lp *events.LicenseTypePolicy) {
		if e == nil {
			e = validateLicenseTypePolicy("license_types."+typ+".", lp)
		}
	})
	if e != nil {
		return e
	}
	if d := p.NewUserGraceDays; d < 0 || d > maxPolicyDays {
		return invalidField("new_user_grace_days", fmt.Sprintf("new_user_grace_days must be between 0 and %d", maxPolicyDays))
	}
	if t := p.SeatsUnusedThreshold; t != nil && (*t < 0 || *t > maxSeats) {
		return invalidField("seats_unused_threshold", fmt.Sprintf("seats_unused_threshold must be between 0 and %d, or null for no alert", maxSeats))
	}
	if len(p.Exemptions) > maxExemptions {
		return invalidField("exemptions", fmt.Sprintf("at most %d exemptions", maxExemptions))
	}
	seen := map[string]int{}
	for i := range p.Exemptions {
		if e := validateExemption(fmt.Sprintf("exemptions[%d]", i), &p.Exemptions[i], now, known, seen, i); e != nil {
			return e
		}
	}
	if b, err := json.Marshal(p); err != nil || len(b) > maxPolicyBytes {
		return invalidField("exemptions", fmt.Sprintf("the policy takes more than %d bytes as JSON: fewer or shorter exemptions", maxPolicyBytes))
	}
	return nil
}

// unprintable reports whether s holds a character that could hide or forge text where it is
// shown (a log line, a dashboard, a CSV): a control or format character (categories Cc and
// Cf: NUL, ESC, newlines, U+202E, zero-width ones) or a line or paragraph separator.
func unprintable(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool {
		return unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp)
	})
}

func invalidField(field, msg string) *apiError {
	return &apiError{Code: codeInvalidField, Field: field, Message: msg}
}

// validateLicenseTypePolicy checks one license type's terms; prefix names its fields.
func validateLicenseTypePolicy(prefix string, lp *events.LicenseTypePolicy) *apiError {
	if s := lp.SeatsPurchased; s != nil && (*s < 0 || *s > maxSeats) {
		return invalidField(prefix+"seats_purchased", fmt.Sprintf("seats_purchased must be between 0 and %d", maxSeats))
	}
	if lp.Currency != "" {
		if _, ok := currencyDigits[lp.Currency]; !ok {
			return invalidField(prefix+"currency", fmt.Sprintf("currency must be an ISO 4217 code in capitals, such as USD or EUR; %q is not one", lp.Currency))
		}
	}
	if lp.AnnualCost != nil {
		if lp.Currency == "" {
			return &apiError{Code: codeMissingField, Field: prefix + "currency", Message: "annual_cost needs its currency (ISO 4217, such as USD)"}
		}
		if _, err := parseAmount(*lp.AnnualCost, lp.Currency); err != nil {
			return invalidField(prefix+"annual_cost", fmt.Sprintf("annual_cost must be the price of one seat for a year as a decimal string in %s, such as %q: %v",
				lp.Currency, formatAmount(480*pow10(currencyDigits[lp.Currency]), lp.Currency), err))
		}
	}
	if lp.ContractEnd != "" {
		if _, err := time.Parse(contractEndLayout, lp.ContractEnd); err != nil {
			return invalidField(prefix+"contract_end", "contract_end must be a date, YYYY-MM-DD")
		}
	}
	if d := lp.InactiveAfterDays; d != nil && (*d < 1 || *d > maxPolicyDays) {
		return invalidField(prefix+"inactive_after_days", fmt.Sprintf("inactive_after_days must be between 1 and %d", maxPolicyDays))
	}
	return nil
}

func pow10(n int) int64 {
	v := int64(1)
	for range n {
		v *= 10
	}
	return v
}

// validateExemption checks the exemption at index i (field names it); seen maps the users
// exempted so far to their index.
func validateExemption(field string, x *events.Exemption, now time.Time, known map[int64]bool, seen map[string]int, i int) *apiError {
	var key string
	switch {
	case x.UserID != 0 && x.Email != "":
		return invalidField(field, "an exemption names a user_id or an email, not both")
	case x.UserID < 0:
		return invalidField(field+".user_id", "user_id must be a positive integer")
	case x.UserID > 0:
		if current, listed := known[x.UserID]; !current {
			if listed {
				return invalidField(field+".user_id", fmt.Sprintf("user %d was removed from Greenhouse (as of the last users sync): there is no license to exempt", x.UserID))
			}
			return invalidField(field+".user_id", fmt.Sprintf("user %d is not a user of this tenant (as of the last users sync)", x.UserID))
		}
		key = fmt.Sprint(x.UserID)
	case x.Email != "":
		if unprintable(x.Email) {
			return invalidField(field+".email", "email must not hold control or format characters")
		}
		if !plausibleEmail(x.Email) {
			return invalidField(field+".email", fmt.Sprintf("email must be an e-mail address of at most %d characters, without spaces or commas", maxEmailLength))
		}
		key = storage.LowerEmail(x.Email)
	default:
		return &apiError{Code: codeMissingField, Field: field + ".user_id", Message: "an exemption names a user_id or an email"}
	}
	if j, dup := seen[key]; dup {
		return invalidField(field, fmt.Sprintf("exemptions[%d] already exempts this user", j))
	}
	seen[key] = i
	if r := strings.TrimSpace(x.Reason); r == "" || len([]rune(x.Reason)) > maxExemptReason {
		return &apiError{Code: codeMissingField, Field: field + ".reason", Message: fmt.Sprintf("an exemption needs a reason of at most %d characters", maxExemptReason)}
	}
	if unprintable(x.Reason) {
		return invalidField(field+".reason", "reason must be one line of text, without control or format characters")
	}
	if x.ExpiresAt != "" {
		t, err := time.Parse(time.RFC3339, x.ExpiresAt)
		switch {
		case err != nil:
			return invalidField(field+".expires_at", "expires_at must be an RFC 3339 time, such as 2027-01-31T00:00:00Z")
		case !t.After(now):
			return invalidField(field+".expires_at", fmt.Sprintf("expires_at %s has passed; leave the exemption out instead", x.ExpiresAt))
		}
		x.ExpiresAt = t.UTC().Format(time.RFC3339)
	}
	return nil
}

// plausibleEmail accepts an address with one @ between non-empty parts, without spaces,
// commas or control characters (the usage rule's SQL binds the exempt e-mails as a
// comma-separated list).
func plausibleEmail(s string) bool {
	local, domain, ok := strings.Cut(s, "@")
	if !ok || local == "" || domain == "" || strings.Contains(domain, "@") || len(s) > maxEmailLength {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == ',' || r == 0x7f })
}

// policyChanges names the fields that differ between two policies, in the document's order:
// license_types.<type>.<field>, new_user_grace_days, seats_unused_threshold, exemptions.
func policyChanges(a, b events.Policy) []string {
	var out []string
	bt := b.LicenseTypes
	a.LicenseTypes.Each(func(typ string, x *events.LicenseTypePolicy) {
		xv, yv := reflect.ValueOf(*x), reflect.ValueOf(*bt.Of(typ))
		for i := range xv.NumField() {
			if !reflect.DeepEqual(xv.Field(i).Interface(), yv.Field(i).Interface()) {
				name, _, _ := strings.Cut(xv.Type().Field(i).Tag.Get("json"), ",")
				out = append(out, "license_types."+typ+"."+name)
			}
		}
	})
	if a.NewUserGraceDays != b.NewUserGraceDays {
		out = append(out, "new_user_grace_days")
	}
	if !reflect.DeepEqual(a.SeatsUnusedThreshold, b.SeatsUnusedThreshold) {
		out = append(out, "seats_unused_threshold")
	}
	if !slices.Equal(a.Exemptions, b.Exemptions) {
		out = append(out, "exemptions")
	}
	return out
}

// setPolicy stores pol as a tenant's policy, set by the token named by: a new revision, its
// change pending announcement; a policy equal to the stored one changes nothing (changed
// false). events.ErrNotFound without a connection, errDisconnected for a disconnected one,
// errPolicyPending while the stored revision is not yet announced. The caller delivers the
// change (deliverPolicy).
func (c *connections) setPolicy(ctx context.Context, tenant string, pol events.Policy, by string, now time.Time) (sc storedConnection, changed bool, err error) {
	sc, err = c.modify(ctx, tenant, func(sc *storedConnection, exists bool) (int, error) {
		switch {
		case !exists:
			return 0, events.ErrNotFound
		case sc.Secret == nil:
			return 0, errDisconnected
		}
		tp := tenantPolicy{}
		if sc.Policy != nil {
			tp = *sc.Policy
		}
		fields := policyChanges(tp.Policy, pol)
		if changed = len(fields) > 0 || sc.Policy == nil; !changed {
			return 0, nil
		}
		if tp.Pending != 0 {
			return 0, errPolicyPending
		}
		tp.Policy, tp.Revision, tp.UpdatedAt, tp.UpdatedBy, tp.Changed = pol, tp.Revision+1, now, by, fields
		tp.Pending = tp.Revision
		sc.Policy = &tp
		return 0, nil
	})
	return sc, changed, err
}

// policyChangeStore stores the rows of policy changes: *storage.Store.
type policyChangeStore interface {
	InsertPolicyChange(ctx context.Context, row storage.PolicyChangeRow) error
}

// deliverPolicy stores the policy_changes row and publishes saas.policy.changed of tp's
// revision if it is pending (tp: the tenant's policy as last read), and marks it announced in
// the stored connection. Both are idempotent by the revision, so a change delivered twice is
// seen once. On a failure it stays pending for the tenant's next users sync or policy change.
func (c *connections) deliverPolicy(ctx context.Context, tenant string, tp *tenantPolicy) error {
	if tp == nil || tp.Pending == 0 {
		return nil
	}
	return deliverOutbox(ctx, c, tenant, "policy changes", []events.PolicyChanged{tp.change(tenant)},
		func(ch events.PolicyChanged) uint32 { return ch.Revision }, c.announcePolicy,
		func(sc *storedConnection, delivered map[uint32]bool) error {
			if sc.Policy == nil {
				return events.ErrNotFound
			}
			if delivered[sc.Policy.Pending] {
				announced := *sc.Policy
				announced.Pending = 0
				sc.Policy = &announced
			}
			return nil
		})
}

// announcePolicy stores one policy change's row, then publishes its event.
func (c *connections) announcePolicy(ctx context.Context, ch events.PolicyChanged) error {
	body, err := json.Marshal(ch.Policy)
	if err != nil {
		return err
	}
	tp := tenantPolicy{Policy: ch.Policy, Revision: ch.Revision}
	days := map[string]int{}
	ch.Policy.LicenseTypes.Each(func(typ string, lp *events.LicenseTypePolicy) {
		if lp.InactiveAfterDays != nil {
			days[typ] = *lp.InactiveAfterDays
		}
	})
	if err := c.out.stored(c.store.InsertPolicyChange(ctx, storage.PolicyChangeRow{TenantID: ch.TenantID, App: ch.App,
		Revision: ch.Revision, ChangedAt: ch.ChangedAt, ChangedBy: ch.ChangedBy, Changed: ch.Changed, Policy: string(body),
		Terms: tp.terms().ByType, InactiveAfterDays: days})); err != nil {
		return fmt.Errorf("store policy change: %w", err)
	}
	env, err := events.NewEnvelope(ch.TenantID, events.TypePolicyChanged, fmt.Sprintf("%s:policy:%d", ch.TenantID, ch.Revision),
		"policy", ch.ChangedAt, ch)
	if err != nil {
		return err
	}
	if err := c.out.publish(ctx, []events.Envelope{env}); err != nil {
		return fmt.Errorf("publish policy change: %w", err)
	}
	return nil
}

// judgedNow reads the tenant's checkpoint and returns it with the time and the usage rule's
// parameters to judge its licenses by now, activity applied through through (zero: as far
// as the checkpoint says).
func (s *syncer) judgedNow(ctx context.Context, tenant string, sc storedConnection, through time.Time) (checkpoint, time.Time, storage.UsageParams, error) {
	cp, _, err := s.checkpoints.get(ctx, tenant)
	if err != nil {
		return cp, time.Time{}, storage.UsageParams{}, err
	}
	if through.IsZero() {
		through = cp.ActivityThrough
	}
	now := s.now()
	return cp, now, usageParams(s.cfg.settingsOf(sc.Doc), sc.Policy, cp, now, through), nil
}

// rejudgeAttempts bounds the re-judging of a tenant whose alert state another writer (a run
// of its owning replica) changed meanwhile.
const rejudgeAttempts = 3

// rejudge judges a tenant's licenses again under its stored policy now (read again, whatever
// sc holds: of two changes finishing out of order, the later judging uses the newer policy),
// as a users sync would without listing Greenhouse: the alerts of the transitions it causes
// (once each: the alert state), a usage snapshot with the policy's figures, and the seat
// alerts.
func (s *syncer) rejudge(ctx context.Context, tenant string, sc storedConnection) error {
	var err error
	for range rejudgeAttempts {
		if err = s.judge(ctx, tenant, sc); !errors.Is(err, events.ErrConflict) {
			return err
		}
	}
	return err
}

// judge is one attempt of rejudge.
func (s *syncer) judge(ctx context.Context, tenant string, sc storedConnection) error {
	alerts, alertRev, sc, err := s.judgingState(ctx, tenant, sc)
	if err != nil {
		return err
	}
	cp, now, params, err := s.judgedNow(ctx, tenant, sc, time.Time{})
	if err != nil {
		return err
	}
	var envs []events.Envelope
	err = s.store.CurrentUsers(ctx, tenant, connectors.AppGreenhouse, func(r storage.UserRow) error {
		if r.Status == storage.StatusRemoved {
			return nil
		}
		env, ok, err := alerts.judge(record(r, params), params, cp.ObservedSince, now, causePolicy)
		if ok {
			envs = append(envs, env)
		}
		return err
	})
	if err != nil {
		return internal(codeStorageUnavailable, fmt.Errorf("re-judge users: %w", err))
	}
	seatEnvs, err := s.recordUsage(ctx, tenant, sc, params, now, nil, &alerts)
	if err != nil {
		return err
	}
	if err := s.out.publish(ctx, append(envs, seatEnvs...)); err != nil {
		return fmt.Errorf("publish re-judged alerts: %w", err)
	}
	return s.alerts.put(ctx, tenant, alerts, alertRev)
}
