package events

import (
	"time"

	"github.com/seatwatch/greenhouse-collector/connectors"
)

// Type is a CloudEvents type published by the collector.
type Type string

// The event types of the contract (docs/events.md).
const (
	TypeUserChanged          Type = "saas.user.changed"
	TypeUsageUpdated         Type = "saas.usage.updated"
	TypeAlertLicenseInactive Type = "saas.alert.license_inactive"
	TypeAlertLicenseActive   Type = "saas.alert.license_active"
	TypeAlertLicenseFreed    Type = "saas.alert.license_freed"
	TypeConnectionChanged    Type = "saas.connection.changed"
	TypeSyncCompleted        Type = "saas.sync.completed"
	// The license policy's (policy.go).
	TypeAlertSeatsExceeded Type = "saas.alert.seats_exceeded"
	TypeAlertSeatsUnused   Type = "saas.alert.seats_unused"
	TypePolicyChanged      Type = "saas.policy.changed"
)

// Topic returns the last subject token the type is published under:
// user, usage, alert, connection, sync, policy or action.
func (t Type) Topic() string {
	switch t {
	case TypeUserChanged:
		return "user"
	case TypeUsageUpdated:
		return "usage"
	case TypeAlertLicenseInactive, TypeAlertLicenseActive, TypeAlertLicenseFreed, TypeAlertSeatsExceeded, TypeAlertSeatsUnused:
		return "alert"
	case TypePolicyChanged:
		return "policy"
	case TypeConnectionChanged:
		return "connection"
	case TypeSyncCompleted:
		return "sync"
	case TypeActionRequested, TypeActionCompleted:
		return "action"
	}
	return ""
}

// LicenseRecord is a user as the collector sees them: identity, status, license and usage.
// It is the data of saas.user.changed and a row of the licenses API.
type LicenseRecord struct {
	TenantID         string     `json:"tenant_id"`
	App              string     `json:"app"`
	UserID           int64      `json:"user_id"`
	Name             string     `json:"name"`
	Email            string     `json:"email"`
	Status           string     `json:"status"`       // active, deactivated, removed
	Licensed         bool       `json:"licensed"`     // active and not a service account
	LicenseType      string     `json:"license_type"` // site_admin, job_admin, basic
	SiteAdmin        bool       `json:"site_admin"`
	ServiceAccount   bool       `json:"service_account"`
	CreatedAt        time.Time  `json:"created_at"`
	UpdatedAt        time.Time  `json:"updated_at"`
	FirstSeenAt      time.Time  `json:"first_seen_at"`
	LastSeenAt       time.Time  `json:"last_seen_at"`
	RemovedAt        *time.Time `json:"removed_at"`
	LastActivityAt   *time.Time `json:"last_activity_at"`
	LastActivityType string     `json:"last_activity_type,omitempty"` // event type of the newest activity
	Usage            string     `json:"usage,omitempty"`              // active, inactive, unknown, exempt; only for license holders
	Reason           string     `json:"reason,omitempty"`             // for inactive and unknown
}

// UserChanged is the data of saas.user.changed: the full record after the change and the
// names of the fields that changed ("created" for a new user, "status" for a removal, …).
type UserChanged struct {
	User     LicenseRecord `json:"user"`
	Changed  []string      `json:"changed"`
	Revision uint32        `json:"revision"`
}

// UsageUpdated is the data of saas.usage.updated: a user's last activity advanced.
type UsageUpdated struct {
	TenantID           string     `json:"tenant_id"`
	App                string     `json:"app"`
	UserID             int64      `json:"user_id"`
	LastActivityAt     time.Time  `json:"last_activity_at"`
	LastEventType      string     `json:"last_event_type"`
	PreviousActivityAt *time.Time `json:"previous_activity_at"`
	EventsInPoll       int        `json:"events_in_poll"`
}

// Evidence is what an alert rests on.
type Evidence struct {
	LastActivityAt    *time.Time `json:"last_activity_at"`
	LastEventType     string     `json:"last_event_type,omitempty"`
	InactiveAfterDays int        `json:"inactive_after_days"` // the threshold of the user's license type
	CreatedAt         time.Time  `json:"created_at"`
	ObservedSince     time.Time  `json:"observed_since"`
	// ActivityKnownSince is the start of the observed Audit Log history: no activity since
	// then is what no_activity_observed and never_active say. Omitted without usage data.
	ActivityKnownSince *time.Time `json:"activity_known_since,omitempty"`
}

// Alert is the data of the saas.alert.* types: one license transition.
type Alert struct {
	TenantID    string    `json:"tenant_id"`
	App         string    `json:"app"`
	Alert       string    `json:"alert"` // license_inactive, license_active, license_freed
	UserID      int64     `json:"user_id"`
	Name        string    `json:"name"`
	Email       string    `json:"email"`
	LicenseType string    `json:"license_type"`
	Status      string    `json:"status"`
	Reason      string    `json:"reason"` // no_recent_activity, no_activity_observed, never_active, activity_resumed, deactivated, removed
	Evidence    Evidence  `json:"evidence"`
	Transition  uint64    `json:"transition"` // per-user sequence number of this transition
	DetectedAt  time.Time `json:"detected_at"`
}

// Settings are a connection's per-tenant settings.
type Settings struct {
	InactiveAfterDays int    `json:"inactive_after_days"`
	UsersInterval     string `json:"users_interval"`
	AuditInterval     string `json:"audit_interval"`
}

// RunKind is the kind of a sync run: in saas.sync.completed, a connection's last_sync and a
// sync_runs row.
type RunKind string

// The kinds of sync run (docs/events.md, saas.sync.completed).
const (
	// RunUsers is a users listing: users, permissions, license counts, user events, alerts.
	RunUsers RunKind = "users"
	// RunAudit is an Audit Log poll (a tenant's first: the 30-day backfill) and the activity
	// it brings.
	RunAudit RunKind = "audit"
)

// RunStatus is how a sync run ended.
type RunStatus string

// The statuses of a sync run.
const (
	RunSucceeded RunStatus = "succeeded"
	RunFailed    RunStatus = "failed"
)

// SyncSummary is the summary of one sync run: the data of saas.sync.completed and the
// connection document's last_sync.
type SyncSummary struct {
	TenantID     string    `json:"tenant_id,omitempty"`
	App          string    `json:"app,omitempty"`
	RunID        string    `json:"run_id"`
	Kind         RunKind   `json:"kind,omitempty"`
	StartedAt    time.Time `json:"started_at"`
	FinishedAt   time.Time `json:"finished_at"`
	Status       RunStatus `json:"status"`
	Users        int       `json:"users"`
	Events       int       `json:"events"`
	Requests     int       `json:"requests"`
	Throttled    int       `json:"throttled"`
	ErrorCode    string    `json:"error_code,omitempty"`
	ErrorMessage string    `json:"error_message,omitempty"`
}

// Freshness says how fresh a tenant's data is.
type Freshness struct {
	UsersSyncedAt      *time.Time `json:"users_synced_at"`
	AuditSyncedThrough *time.Time `json:"audit_synced_through"`
}

// Endpoints are a connection's Greenhouse base URL overrides.
type Endpoints struct {
	Auth     string `json:"auth,omitempty"`
	Harvest  string `json:"harvest,omitempty"`
	AuditLog string `json:"audit_log,omitempty"`
}

// Connection is the connection document of the HTTP API, also the data of
// saas.connection.changed. It never holds the client secret.
type Connection struct {
	TenantID      string             `json:"tenant_id"`
	App           string             `json:"app"`
	State         string             `json:"state"` // connected, degraded, error, disconnected
	UsageData     bool               `json:"usage_data"`
	ClientID      string             `json:"client_id"`
	AdminUserID   int64              `json:"admin_user_id"`
	Endpoints     *Endpoints         `json:"endpoints,omitempty"`
	Checks        []connectors.Check `json:"checks"`
	Settings      Settings           `json:"settings"`
	LastSync      *SyncSummary       `json:"last_sync"`
	Freshness     Freshness          `json:"freshness"`
	ObservedSince *time.Time         `json:"observed_since,omitempty"`
	UpdatedAt     time.Time          `json:"updated_at"`
}

// ConnectionChanged is the data of saas.connection.changed.
type ConnectionChanged struct {
	Connection    Connection `json:"connection"`
	PreviousState string     `json:"previous_state"`
	Changed       []string   `json:"changed"` // "state", "usage_data", "check:<name>"
}
