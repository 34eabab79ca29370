package collector

import (
	"context"
	"fmt"
	"time"

	"github.com/seatwatch/greenhouse-collector/connectors"
	"github.com/seatwatch/greenhouse-collector/events"
	"github.com/seatwatch/greenhouse-collector/storage"
)

// Seats under a license policy: the usage snapshot every users sync and policy change
// records with the seat figures (storage.Figures), the seat alerts those figures fire, and the
// figures as the usage summary shows them.

// Seat alert names (docs/events.md).
const (
	AlertSeatsExceeded = "seats_exceeded"
	AlertSeatsUnused   = "seats_unused"
)

// seatAlertState is a license type's seat alerts' memory: whether each condition holds, and
// how many times it began.
type seatAlertState struct {
	Exceeded    bool   `json:"exceeded,omitempty"`
	ExceededSeq uint32 `json:"exceeded_seq,omitempty"`
	Unused      bool   `json:"unused,omitempty"`
	UnusedSeq   uint32 `json:"unused_seq,omitempty"`
}

// seatTransition is one seat alert to publish.
type seatTransition struct {
	alert string
	seq   uint32
	fig   storage.SeatFigures
}

// evaluateSeats compares each license type's figures with the memory, updates it and returns
// the alerts of the conditions that began: seats_exceeded when more licenses are assigned than
// seats were bought, seats_unused when the unassigned seats rise above threshold (nil: never).
// A condition that ends is forgotten silently, so that it fires again when it comes back.
func (s *alertState) evaluateSeats(figs []storage.SeatFigures, threshold *int) []seatTransition {
	if s.Seats == nil {
		s.Seats = map[string]seatAlertState{}
	}
	var out []seatTransition
	for _, f := range figs {
		st := s.Seats[f.LicenseType]
		unused := threshold != nil && f.Unassigned != nil && *f.Unassigned > int64(*threshold)
		if exceeded := f.Exceeded(); exceeded != st.Exceeded {
			st.Exceeded = exceeded
			if exceeded {
				st.ExceededSeq++
				out = append(out, seatTransition{alert: AlertSeatsExceeded, seq: st.ExceededSeq, fig: f})
			}
		}
		if unused != st.Unused {
			st.Unused = unused
			if unused {
				st.UnusedSeq++
				out = append(out, seatTransition{alert: AlertSeatsUnused, seq: st.UnusedSeq, fig: f})
			}
		}
		if st == (seatAlertState{}) {
			delete(s.Seats, f.LicenseType)
		} else {
			s.Seats[f.LicenseType] = st
		}
	}
	return out
}

// seatEnvelope builds the envelope of one seat alert under policy revision.
func seatEnvelope(tenant string, tr seatTransition, threshold *int, revision uint32, now time.Time) (events.Envelope, error) {
	f := tr.fig
	data := events.SeatAlert{TenantID: tenant, App: connectors.AppGreenhouse, Alert: tr.alert, LicenseType: f.LicenseType,
		Assigned: f.Licenses, Currency: f.Currency, AnnualCost: amountOf(f.AnnualCost, f.Currency),
		UnassignedCost: amountOf(f.UnassignedCost, f.Currency), PolicyRevision: revision, Transition: uint64(tr.seq), DetectedAt: now}
	if f.SeatsPurchased != nil {
		data.SeatsPurchased = *f.SeatsPurchased
	}
	if f.Unassigned != nil {
		data.Unassigned = *f.Unassigned
	}
	if f.AnnualCost == nil {
		data.Currency = ""
	}
	typ := events.TypeAlertSeatsExceeded
	if tr.alert == AlertSeatsUnused {
		typ, data.Threshold = events.TypeAlertSeatsUnused, threshold
	}
	return events.NewEnvelope(tenant, typ, fmt.Sprintf("%s:alert:seats:%s:%s:%d", tenant, f.LicenseType, tr.alert, tr.seq),
		"license_types/"+f.LicenseType, now, data)
}

// recordUsage records the tenant's usage snapshot at now under params and its policy's terms
// (usage_counts) and returns the envelopes of the seat alerts it fires, the alert memory
// updated. The counts are u when the caller has them (a users sync), else read from
// ClickHouse.
func (s *syncer) recordUsage(ctx context.Context, tenant string, sc storedConnection, params storage.UsageParams, now time.Time, u *storage.Utilisation, alerts *alertState) ([]events.Envelope, error) {
	terms := sc.Policy.terms()
	var (
		figs []storage.SeatFigures
		err  error
	)
	if u != nil {
		figs, err = s.store.RecordUtilisation(ctx, tenant, connectors.AppGreenhouse, now.Truncate(time.Second), *u, terms)
	} else {
		figs, err = s.store.RecordUsageCounts(ctx, tenant, connectors.AppGreenhouse, now.Truncate(time.Second), params, terms)
	}
	if err := s.out.stored(err); err != nil {
		return nil, fmt.Errorf("record usage counts: %w", err)
	}
	var threshold *int
	if sc.Policy != nil {
		threshold = sc.Policy.Policy.SeatsUnusedThreshold
	}
	var envs []events.Envelope
	for _, tr := range alerts.evaluateSeats(figs, threshold) {
		env, err := seatEnvelope(tenant, tr, threshold, terms.Revision, now)
		if err != nil {
			return nil, err
		}
		envs = append(envs, env)
	}
	return envs, nil
}

// SeatSummary is one license type of the usage summary under the tenant's policy: seats
// bought (null: not entered), assigned (the licenses) and unassigned, the licenses by usage,
// and what inactive and unassigned seats cost a year; null where the policy leaves what it
// needs unset.
type SeatSummary struct {
	SeatsPurchased    *int64  `json:"seats_purchased"`
	Assigned          int64   `json:"assigned"`
	Unassigned        *int64  `json:"unassigned"`
	Active            int64   `json:"active"`
	Inactive          int64   `json:"inactive"`
	Exempt            int64   `json:"exempt"`
	Unknown           int64   `json:"unknown"`
	Utilisation       float64 `json:"utilisation"` // active / (assigned − exempt), 0 without such licenses
	InactiveAfterDays int     `json:"inactive_after_days"`
	Currency          string  `json:"currency,omitempty"`
	AnnualCost        *string `json:"annual_cost"`
	InactiveCost      *string `json:"inactive_cost"`
	UnassignedCost    *string `json:"unassigned_cost"`
	CostPerActiveUser *string `json:"cost_per_active_user"` // a year of the seats bought per active user
	ContractEnd       string  `json:"contract_end,omitempty"`
}

// Waste is a year of inactive and unassigned seats in one currency, over the license types
// priced in it. UnassignedCost (and Total) is null when a priced type's seats are not entered
// (unknown, never zero), and a sum beyond int64 minor units is null too.
type Waste struct {
	Currency       string  `json:"currency"`
	InactiveCost   *string `json:"inactive_cost"`
	UnassignedCost *string `json:"unassigned_cost"`
	Total          *string `json:"total"`
}

// wasteSum sums a currency's costs in minor units; nil once unknown (or beyond int64).
type wasteSum struct{ inactive, unassigned *int64 }

func newWasteSum() *wasteSum { return &wasteSum{inactive: new(int64), unassigned: new(int64)} }

// add adds a priced license type's figures.
func (w *wasteSum) add(f storage.SeatFigures) {
	w.inactive = storage.AddMinor(w.inactive, f.InactiveCost)
	w.unassigned = storage.AddMinor(w.unassigned, f.UnassignedCost)
}

func (w *wasteSum) waste(currency string) Waste {
	return Waste{Currency: currency, InactiveCost: amountOf(w.inactive, currency), UnassignedCost: amountOf(w.unassigned, currency),
		Total: amountOf(storage.AddMinor(w.inactive, w.unassigned), currency)}
}

// seatSummaries are the summary's license types and waste from the figures under policy.
func seatSummaries(figs []storage.SeatFigures, p storage.UsageParams, pol *tenantPolicy) (map[string]SeatSummary, []Waste) {
	out := map[string]SeatSummary{}
	totals := map[string]*wasteSum{}
	var currencies []string
	for _, f := range figs {
		s := SeatSummary{SeatsPurchased: f.SeatsPurchased, Assigned: f.Licenses, Unassigned: f.Unassigned, Active: f.Active,
			Inactive: f.Inactive, Exempt: f.Exempt, Unknown: f.Unknown, Utilisation: f.Utilisation(),
			InactiveAfterDays: p.DaysFor(f.LicenseType), AnnualCost: amountOf(f.AnnualCost, f.Currency),
			InactiveCost: amountOf(f.InactiveCost, f.Currency), UnassignedCost: amountOf(f.UnassignedCost, f.Currency),
			CostPerActiveUser: amountOf(f.CostPerActiveUser(), f.Currency)}
		if f.AnnualCost != nil {
			s.Currency = f.Currency
			if totals[f.Currency] == nil {
				totals[f.Currency] = newWasteSum()
				currencies = append(currencies, f.Currency)
			}
			totals[f.Currency].add(f)
		}
		if pol != nil {
			if lp := pol.Policy.LicenseTypes.Of(f.LicenseType); lp != nil {
				s.ContractEnd = lp.ContractEnd
			}
		}
		out[f.LicenseType] = s
	}
	waste := []Waste{}
	for _, c := range currencies {
		waste = append(waste, totals[c].waste(c))
	}
	return out, waste
}
