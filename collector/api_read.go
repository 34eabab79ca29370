package collector

import (
	"errors"
	"net/http"
	"sort"
	"time"

	"github.com/seatwatch/greenhouse-collector/connectors"
	"github.com/seatwatch/greenhouse-collector/events"
	"github.com/seatwatch/greenhouse-collector/storage"
)

// The read API: the connections list and a tenant's licenses and usage summary.

// connectionsPage is the body of GET /v1/connections.
type connectionsPage struct {
	Connections []events.Connection `json:"connections"`
	// NextCursor, when set, asks for the next page (?cursor=); absent on the last page.
	NextCursor string `json:"next_cursor,omitempty"`
}

// stateRank orders the needs-attention list: error, degraded, disconnected, connected.
var stateRank = map[string]int{StateError: 0, StateDegraded: 1, StateDisconnected: 2, StateConnected: 3}

func (a *api) listConnections(w http.ResponseWriter, r *http.Request) {
	limit, after, e := pageParams(r.URL.Query())
	if e != nil {
		writeError(w, http.StatusBadRequest, *e)
		return
	}
	out := []events.Connection{}
	if err := a.conns.each(r.Context(), func(_ string, sc storedConnection) error {
		out = append(out, sc.Doc)
		return nil
	}); err != nil {
		a.unavailable(w, err)
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

func sortConnections(cs []events.Connection, rank map[string]int) {
	sort.Slice(cs, func(i, j int) bool {
		ri, rj := rank[cs[i].State], rank[cs[j].State]
		if ri != rj {
			return ri < rj
		}
		return cs[i].TenantID < cs[j].TenantID
	})
}

// tenantUsage loads what classifying a tenant's users needs, answering 404 or 503 itself
// when it cannot.
func (a *api) tenantUsage(w http.ResponseWriter, r *http.Request, tenant string) (storedConnection, storage.UsageParams, bool) {
	ctx := r.Context()
	sc, err := a.conns.get(ctx, tenant)
	if errors.Is(err, events.ErrNotFound) {
		noConnection(w, tenant)
		return sc, storage.UsageParams{}, false
	}
	var cp checkpoint
	if err == nil {
		cp, _, err = a.checkpoints.get(ctx, tenant)
	}
	if err != nil {
		a.unavailable(w, err)
		return sc, storage.UsageParams{}, false
	}
	return sc, usageParams(a.cfg.settingsOf(sc.Doc), sc.Policy, cp, a.now(), cp.ActivityThrough), true
}

func (a *api) licenses(w http.ResponseWriter, r *http.Request) {
	tenant, ok := tenantParam(w, r)
	if !ok {
		return
	}
	filter := r.URL.Query().Get("usage")
	switch filter {
	case "":
		filter = "all"
	case "all", storage.UsageActive, storage.UsageInactive, storage.UsageUnknown, storage.UsageExempt:
	default:
		writeError(w, http.StatusBadRequest, apiError{Code: codeInvalidField, Field: "usage", Message: "usage must be one of inactive, active, unknown, exempt, all"})
		return
	}
	_, params, ok := a.tenantUsage(w, r, tenant)
	if !ok {
		return
	}
	out := []events.LicenseRecord{}
	err := a.store.CurrentUsers(r.Context(), tenant, connectors.AppGreenhouse, func(row storage.UserRow) error {
		rec := record(row, params)
		if !rec.Licensed || (filter != "all" && rec.Usage != filter) {
			return nil
		}
		out = append(out, rec)
		return nil
	})
	if err != nil {
		a.unavailable(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"tenant_id": tenant, "usage": filter, "count": len(out), "licenses": out})
}

// Summary is the body of GET /v1/tenants/{tenant_id}/usage/summary.
type Summary struct {
	TenantID          string         `json:"tenant_id"`
	App               string         `json:"app"`
	Users             int            `json:"users"`
	UsersByStatus     map[string]int `json:"users_by_status"`
	ServiceAccounts   int            `json:"service_accounts"`
	Licenses          int            `json:"licenses"`
	LicensesByType    map[string]int `json:"licenses_by_type"`
	Active            int            `json:"active"`
	Inactive          int            `json:"inactive"`
	Exempt            int            `json:"exempt"`
	Unknown           int            `json:"unknown"`
	Utilisation       float64        `json:"utilisation"` // active / (licenses − exempt)
	InactiveAfterDays int            `json:"inactive_after_days"`
	UsageData         bool           `json:"usage_data"`
	ObservedSince     *time.Time     `json:"observed_since"`
	// ActivityKnownSince is where the observed activity begins (the Audit Log backfill's
	// start), the date the reasons no_activity_observed and never_active refer to; null
	// before the first poll.
	ActivityKnownSince *time.Time       `json:"activity_known_since"`
	Freshness          events.Freshness `json:"freshness"`
	State              string           `json:"state"`
	AsOf               time.Time        `json:"as_of"`
	// PolicyRevision is the license policy's revision the figures are under (0: none).
	PolicyRevision uint32 `json:"policy_revision"`
	// Seats are the figures of each license type under the policy.
	Seats map[string]SeatSummary `json:"seats"`
	// Waste sums a year of inactive and unassigned seats per currency.
	Waste []Waste `json:"waste"`
}

// summary answers storage.Utilisation (the usage rule in SQL) with the connection's state and
// the seat figures under the tenant's policy.
func (a *api) summary(w http.ResponseWriter, r *http.Request) {
	tenant, ok := tenantParam(w, r)
	if !ok {
		return
	}
	sc, params, ok := a.tenantUsage(w, r, tenant)
	if !ok {
		return
	}
	u, err := a.store.Utilisation(r.Context(), tenant, connectors.AppGreenhouse, params)
	if err != nil {
		a.unavailable(w, err)
		return
	}
	terms := sc.Policy.terms()
	seats, waste := seatSummaries(u.Figures(terms), params, sc.Policy)
	var known *time.Time
	if !params.CoverageStart.IsZero() {
		known = &params.CoverageStart
	}
	writeJSON(w, http.StatusOK, Summary{
		TenantID: tenant, App: connectors.AppGreenhouse, Users: u.Stored, UsersByStatus: u.ByStatus,
		ServiceAccounts: u.ServiceAccounts, Licenses: u.Licenses, LicensesByType: u.ByType,
		Active: u.Active, Inactive: u.Inactive, Exempt: u.Exempt, Unknown: u.Unknown, Utilisation: u.Ratio,
		InactiveAfterDays: params.InactiveAfterDays, UsageData: sc.Doc.UsageData, ObservedSince: sc.Doc.ObservedSince,
		ActivityKnownSince: known, Freshness: sc.Doc.Freshness, State: sc.Doc.State, AsOf: params.Now,
		PolicyRevision: terms.Revision, Seats: seats, Waste: waste,
	})
}
