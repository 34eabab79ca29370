package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"time"
)

// A tenant's license policy in storage: the seat figures (what inactive and unassigned seats
// cost) with their one home, Figures; the usage snapshot of every users sync and policy
// change with those figures (usage_counts); the policy's history (policy_changes); and the
// waste over time recomputed from both (waste_over_time.sql, docs/schema.md).

// SeatTerms are what a tenant bought of one license type, as its policy says. A nil field was
// not entered: the figures that need it are unknown, never zero.
type SeatTerms struct {
	SeatsPurchased *int64
	// AnnualCost is the price of one seat for a year, in minor units of Currency (cents for
	// USD, yen for JPY).
	AnnualCost *int64
	Currency   string
}

// PolicyTerms are the terms of a policy revision by license type (Revision 0: no policy).
type PolicyTerms struct {
	Revision uint32
	ByType   map[string]SeatTerms
}

// UsageCounts are the users of one license type (removed ones left out) and the licenses
// among them by usage: Licenses = Active + Inactive + Exempt + Unknown.
type UsageCounts struct {
	LicenseType                                        string
	Users, Licenses, Active, Inactive, Exempt, Unknown int64
}

// SeatFigures are one license type's usage and seats under its terms. Assigned seats are the
// licenses; Unassigned is SeatsPurchased − Assigned, at least 0; InactiveCost and
// UnassignedCost are a year of the inactive and of the unassigned seats. Exempt licenses are
// neither used nor wasted.
type SeatFigures struct {
	UsageCounts
	SeatTerms
	Unassigned, InactiveCost, UnassignedCost *int64
}

// Figures computes a license type's figures from its counts and terms.
func Figures(c UsageCounts, t SeatTerms) SeatFigures {
	f := SeatFigures{UsageCounts: c, SeatTerms: t}
	if t.SeatsPurchased != nil {
		f.Unassigned = ptr(max(*t.SeatsPurchased-c.Licenses, 0))
	}
	if t.AnnualCost != nil {
		f.InactiveCost = MulMinor(c.Inactive, *t.AnnualCost)
		if f.Unassigned != nil {
			f.UnassignedCost = MulMinor(*f.Unassigned, *t.AnnualCost)
		}
	}
	return f
}

// MulMinor is n × price in minor units, or nil (unknown) when either is negative or the
// product is beyond int64.
func MulMinor(n, price int64) *int64 {
	if n < 0 || price < 0 {
		return nil
	}
	hi, lo := bits.Mul64(uint64(n), uint64(price))
	if hi != 0 || lo > math.MaxInt64 {
		return nil
	}
	return ptr(int64(lo))
}

// AddMinor is a + b in minor units, or nil (unknown) when either is nil or negative, or the
// sum is beyond int64.
func AddMinor(a, b *int64) *int64 {
	if a == nil || b == nil || *a < 0 || *b < 0 {
		return nil
	}
	sum, carry := bits.Add64(uint64(*a), uint64(*b), 0)
	if carry != 0 || sum > math.MaxInt64 {
		return nil
	}
	return ptr(int64(sum))
}

// Exceeded reports whether more licenses are assigned than seats were bought (false when the
// seats are unknown).
func (f SeatFigures) Exceeded() bool {
	return f.SeatsPurchased != nil && f.Licenses > *f.SeatsPurchased
}

// CostPerActiveUser is a year of the seats bought divided among the active users, rounded
// half up to a minor unit; nil when the seats or the price are unknown or nobody is active.
func (f SeatFigures) CostPerActiveUser() *int64 {
	if f.SeatsPurchased == nil || f.AnnualCost == nil || f.Active == 0 {
		return nil
	}
	total := MulMinor(*f.SeatsPurchased, *f.AnnualCost)
	if total == nil || *total > math.MaxInt64/2-f.Active {
		return nil // beyond int64: unknown
	}
	return ptr((2**total + f.Active) / (2 * f.Active))
}

// Utilisation is Active / (Licenses − Exempt), 0 without such licenses.
func (c UsageCounts) Utilisation() float64 {
	if n := c.Licenses - c.Exempt; n > 0 {
		return float64(c.Active) / float64(n)
	}
	return 0
}

func ptr[T any](v T) *T { return &v }

// RecordUsageCounts writes the usage snapshot of tenant and app at ts (usage_counts; a replay
// with the same ts replaces itself): per license type (every type of LicenseTypes, and any
// other stored), the counts of Utilisation under p and the figures under terms. It returns
// the figures, in that order.
func (s *Store) RecordUsageCounts(ctx context.Context, tenant, app string, ts time.Time, p UsageParams, terms PolicyTerms) ([]SeatFigures, error) {
	u, err := s.Utilisation(ctx, tenant, app, p)
	if err != nil {
		return nil, fmt.Errorf("record usage counts: %w", err)
	}
	return s.RecordUtilisation(ctx, tenant, app, ts, u, terms)
}

// RecordUtilisation is RecordUsageCounts of a utilisation already computed (UtilisationOf).
func (s *Store) RecordUtilisation(ctx context.Context, tenant, app string, ts time.Time, u Utilisation, terms PolicyTerms) ([]SeatFigures, error) {
	figs := u.Figures(terms)
	rows := make([]usageCountsRow, len(figs))
	version := writeVersion()
	for i, f := range figs {
		rows[i] = usageCountsRow{TenantID: tenant, App: app, TS: ts, Revision: terms.Revision, Version: version, SeatFigures: f}
	}
	// Through a group-committed writer, like UpsertUsers: one part for many tenants' snapshots
	// instead of one per users sync (docs/performance.md, "Onboarding and memory").
	if err := s.usageCounts.write(ctx, rows); err != nil {
		return nil, fmt.Errorf("record usage counts of tenant %q: %w", tenant, err)
	}
	return figs, nil
}

// Figures are the seat figures of every license type of LicenseTypes, and of any other type
// counted, under terms.
func (u Utilisation) Figures(terms PolicyTerms) []SeatFigures {
	var out []SeatFigures
	for _, typ := range LicenseTypes {
		c := u.Types[typ]
		c.LicenseType = typ
		out = append(out, Figures(c, terms.ByType[typ]))
	}
	for typ, c := range u.Types {
		if !slices.Contains(LicenseTypes, typ) {
			out = append(out, Figures(c, terms.ByType[typ]))
		}
	}
	return out
}

// usageCountsRow is a usage_counts row as written: one license type's figures in a tenant's
// snapshot at TS under the policy's revision.
type usageCountsRow struct {
	TenantID, App string
	TS            time.Time
	Revision      uint32
	Version       uint64 // writeVersion: the later of two snapshots at one TS wins
	SeatFigures
}

// sendUsageCounts runs one INSERT of usage_counts rows.
func (s *Store) sendUsageCounts(ctx context.Context, rows []usageCountsRow) error {
	return s.batch(ctx, `INSERT INTO {db}.usage_counts_buffer (tenant_id, app, ts, license_type, users, licenses, active, inactive, unknown,
 exempt, policy_revision, seats_purchased, unassigned, currency, annual_cost, inactive_cost, unassigned_cost, version)`, len(rows), func(i int) []any {
		r := &rows[i]
		f := r.SeatFigures
		return []any{r.TenantID, r.App, toDB(r.TS), f.LicenseType, uint32(f.Users), uint32(f.Licenses), uint32(f.Active), uint32(f.Inactive),
			uint32(f.Unknown), uint32(f.Exempt), r.Revision, u32(f.SeatsPurchased), u32(f.Unassigned), f.Currency, f.AnnualCost,
			f.InactiveCost, f.UnassignedCost, r.Version}
	})
}

func u32(v *int64) *uint32 {
	if v == nil {
		return nil
	}
	return ptr(uint32(*v))
}

// PolicyChangeRow is one revision of a tenant's policy (policy_changes): who changed it,
// when and which fields, the policy after the change (JSON) and its terms by license type.
type PolicyChangeRow struct {
	TenantID, App string
	Revision      uint32
	ChangedAt     time.Time
	ChangedBy     string
	Changed       []string
	Policy        string // JSON
	// Terms and InactiveAfterDays by license type (0 days: the tenant's threshold).
	Terms             map[string]SeatTerms
	InactiveAfterDays map[string]int
}

// InsertPolicyChange writes a policy revision; a replayed revision replaces itself.
func (s *Store) InsertPolicyChange(ctx context.Context, r PolicyChangeRow) error {
	var (
		types, currencies []string
		seats, costs      []int64
		days              []uint16
	)
	orMinus := func(v *int64) int64 {
		if v == nil {
			return -1
		}
		return *v
	}
	for _, typ := range LicenseTypes {
		t := r.Terms[typ]
		types, currencies = append(types, typ), append(currencies, t.Currency)
		seats, costs = append(seats, orMinus(t.SeatsPurchased)), append(costs, orMinus(t.AnnualCost))
		days = append(days, uint16(r.InactiveAfterDays[typ]))
	}
	changed, err := json.Marshal(append([]string{}, r.Changed...))
	if err != nil {
		return fmt.Errorf("insert policy change %d of tenant %q: %w", r.Revision, r.TenantID, err)
	}
	err = s.batch(ctx, `INSERT INTO {db}.policy_changes (tenant_id, app, revision, changed_at, changed_by, changed, policy,
 license_types, seats_purchased, annual_costs, currencies, inactive_after_days)`, 1, func(int) []any {
		return []any{r.TenantID, r.App, r.Revision, toDB(r.ChangedAt), r.ChangedBy, string(changed), r.Policy, types, seats, costs, currencies, days}
	})
	if err != nil {
		return fmt.Errorf("insert policy change %d of tenant %q: %w", r.Revision, r.TenantID, err)
	}
	return nil
}

// PolicyChanges returns the stored revisions of a tenant's policy, oldest first.
func (s *Store) PolicyChanges(ctx context.Context, tenant, app string) ([]PolicyChangeRow, error) {
	rows, err := s.conn.Query(ctx, s.sql(`SELECT revision, changed_at, changed_by, changed, policy FROM {db}.policy_changes FINAL
 WHERE tenant_id = @tenant AND app = @app ORDER BY revision`), named(tenant, app)...)
	if err != nil {
		return nil, fmt.Errorf("read policy changes of tenant %q: %w", tenant, err)
	}
	defer func() { _ = rows.Close() }()
	var out []PolicyChangeRow
	for rows.Next() {
		r := PolicyChangeRow{TenantID: tenant, App: app}
		var changed string
		if err := rows.Scan(&r.Revision, &r.ChangedAt, &r.ChangedBy, &changed, &r.Policy); err != nil {
			return nil, fmt.Errorf("read policy changes of tenant %q: %w", tenant, err)
		}
		r.ChangedAt = fromDB(r.ChangedAt)
		if err := json.Unmarshal([]byte(changed), &r.Changed); err != nil {
			return nil, fmt.Errorf("read policy changes of tenant %q: changed: %w", tenant, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read policy changes of tenant %q: %w", tenant, err)
	}
	return out, nil
}

// WasteRow is one license type at one usage snapshot, with its costs recomputed from the
// counts and the policy revision then in force (waste_over_time.sql): nil where that
// revision left the price or the seats unset, or where no policy was in force.
type WasteRow struct {
	TS                           time.Time
	LicenseType                  string
	PolicyRevision               uint32
	Inactive                     uint32
	Unassigned                   *uint32
	Currency                     string
	InactiveCost, UnassignedCost *int64
}

// WasteOverTime returns the waste of tenant and app per snapshot and license type with ts in
// [from, to), recomputed from usage_counts and policy_changes, ordered by ts and type; read
// twice (readTwice).
func (s *Store) WasteOverTime(ctx context.Context, tenant, app string, from, to time.Time) ([]WasteRow, error) {
	first, second, err := readTwice(func() ([]WasteRow, error) { return s.wasteOnce(ctx, tenant, app, from, to) })
	if err != nil {
		return nil, err
	}
	key := func(r WasteRow) tsType { return tsType{r.TS, r.LicenseType} }
	return unionBy(first, second, key, func(a, b WasteRow) int { return byTSType(key(a), key(b)) }), nil
}

func (s *Store) wasteOnce(ctx context.Context, tenant, app string, from, to time.Time) ([]WasteRow, error) {
	rows, err := s.conn.Query(ctx, s.query("waste_over_time"), named(tenant, app, "from", unix(from), "to", unix(to))...)
	if err != nil {
		return nil, fmt.Errorf("query waste of tenant %q: %w", tenant, err)
	}
	defer func() { _ = rows.Close() }()
	var out []WasteRow
	for rows.Next() {
		var r WasteRow
		if err := rows.Scan(&r.TS, &r.LicenseType, &r.PolicyRevision, &r.Inactive, &r.Unassigned, &r.Currency, &r.InactiveCost, &r.UnassignedCost); err != nil {
			return nil, fmt.Errorf("query waste of tenant %q: %w", tenant, err)
		}
		r.TS = r.TS.UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query waste of tenant %q: %w", tenant, err)
	}
	return out, nil
}
