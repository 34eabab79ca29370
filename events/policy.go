package events

import "time"

// A tenant's license policy (docs/api.md, "License policy"): kept with the connection in the
// connections bucket, shown by GET and PUT …/connections/greenhouse/policy, and the data of
// saas.policy.changed; the seat alerts it brings are SeatAlert.

// Policy is a tenant's license policy: what each license type's seats are and cost, its
// thresholds, the grace period for new licenses, the threshold of the seats-unused alert and
// the exempt users. A field left unset (null) is unknown, never zero.
type Policy struct {
	LicenseTypes LicenseTypePolicies `json:"license_types"`
	// NewUserGraceDays keeps a license created or first licensed within that many days out
	// of inactive, whatever the threshold (0: none).
	NewUserGraceDays int `json:"new_user_grace_days"`
	// SeatsUnusedThreshold: saas.alert.seats_unused fires when a license type's unassigned
	// seats rise above it; null: never.
	SeatsUnusedThreshold *int        `json:"seats_unused_threshold"`
	Exemptions           []Exemption `json:"exemptions"`
}

// LicenseTypePolicies are the policy's terms by license type.
type LicenseTypePolicies struct {
	SiteAdmin LicenseTypePolicy `json:"site_admin"`
	JobAdmin  LicenseTypePolicy `json:"job_admin"`
	Basic     LicenseTypePolicy `json:"basic"`
}

// Each calls fn with the name and terms of every license type, in the contract's order.
func (l *LicenseTypePolicies) Each(fn func(licenseType string, p *LicenseTypePolicy)) {
	fn("site_admin", &l.SiteAdmin)
	fn("job_admin", &l.JobAdmin)
	fn("basic", &l.Basic)
}

// Of returns the terms of a license type, nil for an unknown type.
func (l *LicenseTypePolicies) Of(licenseType string) *LicenseTypePolicy {
	var out *LicenseTypePolicy
	l.Each(func(typ string, p *LicenseTypePolicy) {
		if typ == licenseType {
			out = p
		}
	})
	return out
}

// LicenseTypePolicy is what the customer bought of one license type, and its threshold.
type LicenseTypePolicy struct {
	SeatsPurchased *int64 `json:"seats_purchased"`
	// AnnualCost is the price of one seat for a year, a decimal string in Currency's major
	// unit with at most its minor digits ("480.00" USD, "52000" JPY); never a JSON number.
	AnnualCost  *string `json:"annual_cost"`
	Currency    string  `json:"currency,omitempty"`     // ISO 4217, with annual_cost
	ContractEnd string  `json:"contract_end,omitempty"` // YYYY-MM-DD
	// InactiveAfterDays overrides the tenant's inactive_after_days for this license type.
	InactiveAfterDays *int `json:"inactive_after_days,omitempty"`
}

// Exemption exempts one user, by id or by e-mail, from the usage rule: usage exempt, no
// inactive alert, left out of utilisation and waste, until ExpiresAt if set.
type Exemption struct {
	UserID    int64  `json:"user_id,omitempty"`
	Email     string `json:"email,omitempty"`
	Reason    string `json:"reason"`
	ExpiresAt string `json:"expires_at,omitempty"` // RFC 3339, UTC
}

// PolicyDocument is a tenant's policy as the API shows it: the policy with its revision (0:
// none set yet) and who set it when.
type PolicyDocument struct {
	TenantID  string     `json:"tenant_id"`
	App       string     `json:"app"`
	Revision  uint32     `json:"revision"`
	UpdatedAt *time.Time `json:"updated_at"`
	UpdatedBy string     `json:"updated_by"` // the name of the API token that set it
	Policy
}

// PolicyChanged is the data of saas.policy.changed: a new revision of a tenant's policy, who
// set it, when, the fields that changed and the policy after the change.
type PolicyChanged struct {
	TenantID  string    `json:"tenant_id"`
	App       string    `json:"app"`
	Revision  uint32    `json:"revision"`
	ChangedBy string    `json:"changed_by"`
	ChangedAt time.Time `json:"changed_at"`
	Changed   []string  `json:"changed"`
	Policy    Policy    `json:"policy"`
}

// SeatAlert is the data of saas.alert.seats_exceeded and saas.alert.seats_unused: one license
// type's seats crossed a line of its policy.
type SeatAlert struct {
	TenantID       string `json:"tenant_id"`
	App            string `json:"app"`
	Alert          string `json:"alert"` // seats_exceeded, seats_unused
	LicenseType    string `json:"license_type"`
	SeatsPurchased int64  `json:"seats_purchased"`
	Assigned       int64  `json:"assigned"`
	Unassigned     int64  `json:"unassigned"`
	// Threshold is the policy's seats_unused_threshold (seats_unused only).
	Threshold *int `json:"threshold,omitempty"`
	// Currency, AnnualCost and UnassignedCost when the policy has the price.
	Currency       string    `json:"currency,omitempty"`
	AnnualCost     *string   `json:"annual_cost,omitempty"`
	UnassignedCost *string   `json:"unassigned_cost,omitempty"`
	PolicyRevision uint32    `json:"policy_revision"`
	Transition     uint64    `json:"transition"` // per license type and alert: sequence number of this transition
	DetectedAt     time.Time `json:"detected_at"`
}
