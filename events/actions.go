package events

import "time"

// Reclaim actions (docs/events.md, saas.action.requested and saas.action.completed; docs/api.md,
// "Actions"): an accepted action, and each user's outcome.

// The event types of reclaim actions.
const (
	TypeActionRequested Type = "saas.action.requested"
	TypeActionCompleted Type = "saas.action.completed"
)

// ActionType is what an action does to each of its users.
type ActionType string

// The action types.
const (
	ActionDeactivate ActionType = "deactivate"
	ActionReactivate ActionType = "reactivate"
)

// Outcome is how an action ended for one user.
type Outcome string

// The outcomes of an action for one user. A dry run ends with would_apply where a real action
// would have sent the request.
const (
	OutcomeDone           Outcome = "done"             // Greenhouse answered 204 and the user was in the other state
	OutcomeAlreadyInState Outcome = "already_in_state" // nothing was sent: Greenhouse already lists the user so
	OutcomeRefused        Outcome = "refused"          // a guard refused the user: code names it
	OutcomeFailed         Outcome = "failed"           // Greenhouse refused or failed: code is its error code
	OutcomeWouldApply     Outcome = "would_apply"      // dry run: every guard passed
)

// GuardDecision is one guard's decision on one user: pass, or refuse with its code.
type GuardDecision struct {
	Guard    string `json:"guard"`
	Decision string `json:"decision"` // pass, refuse, or skip (the guard does not apply)
}

// ActionRequested is the data of saas.action.requested: an action as it was accepted.
type ActionRequested struct {
	TenantID    string     `json:"tenant_id"`
	App         string     `json:"app"`
	ActionID    string     `json:"action_id"`
	Type        ActionType `json:"type"`
	UserIDs     []int64    `json:"user_ids"`
	RequestedBy string     `json:"requested_by"`
	Reason      string     `json:"reason"`
	DryRun      bool       `json:"dry_run"`
	Force       bool       `json:"force"`
	RequestedAt time.Time  `json:"requested_at"`
}

// ActionCompleted is the data of saas.action.completed: one user's outcome of an action, with
// what the collector knew of the user before it.
type ActionCompleted struct {
	TenantID       string          `json:"tenant_id"`
	App            string          `json:"app"`
	ActionID       string          `json:"action_id"`
	Type           ActionType      `json:"type"`
	UserID         int64           `json:"user_id"`
	Outcome        Outcome         `json:"outcome"`
	Code           string          `json:"code,omitempty"`        // the guard's code (refused) or Greenhouse's error code (failed)
	HTTPStatus     int             `json:"http_status,omitempty"` // Greenhouse's answer to the request, when one was sent
	Guards         []GuardDecision `json:"guards"`
	LicenseType    string          `json:"license_type"`     // before the action; "" when the collector never saw the user
	LastActivityAt *time.Time      `json:"last_activity_at"` // before the action
	RequestedBy    string          `json:"requested_by"`
	DryRun         bool            `json:"dry_run"`
	RequestedAt    time.Time       `json:"requested_at"`
	DecidedAt      time.Time       `json:"decided_at"`
}
