package collector

import (
	"time"

	"github.com/seatwatch/greenhouse-collector/events"
	"github.com/seatwatch/greenhouse-collector/storage"
)

// The guards of reclaim actions (docs/api.md, "Guards"): each is checked for every user when a
// dry run is accepted and right before each user's request of a real action, on what the
// collector stores (the last users sync's row, the activity the latest Audit Log poll
// brought) and, before a request, on Greenhouse's own answer for the user.

// The guards' names, which are also the codes of a refusal.
const (
	guardAdminUser          = "admin_user"           // the connection's admin user
	guardNotSeen            = "not_seen"             // not in the last users sync (or Greenhouse no longer lists the user)
	guardSiteAdmin          = "site_admin"           // a Site Admin, unless force
	guardExempt             = "exempt"               // exempt by the tenant's license policy (force does not override)
	guardActiveSinceRequest = "active_since_request" // activity after the action was requested (force does not override)
	guardRecentlyActive     = "recently_active"      // activity within inactive_after_days, unless force
)

// The decisions of a guard.
const (
	decisionPass   = "pass"
	decisionRefuse = "refuse"
	decisionSkip   = "skip" // the guard does not apply to the action's type
)

// guardInput is what a guard decides on.
type guardInput struct {
	req           *events.ActionRequested
	userID, admin int64
	row           *storage.UserRow // the last users sync's row; nil: never seen
	gone          bool             // Greenhouse no longer lists the user (checked before a request)
	siteAdmin     bool             // Greenhouse's answer before a request, else the stored row's
	exempt        bool             // the license policy exempts the user now (policy.go)
	inactiveAfter time.Duration
	now           time.Time
}

// guard is one check: refuses tells whether it refuses the user. deactivateOnly guards are
// skipped for reactivations, which give a seat back rather than take one.
type guard struct {
	name           string
	deactivateOnly bool
	refuses        func(in guardInput) bool
}

// guards are checked in this order; a refused user's code is the first refusing guard's
// name, and every guard's decision is reported. A new guard is one more entry here.
var guards = []guard{
	{guardAdminUser, false, func(in guardInput) bool { return in.userID == in.admin }},
	{guardNotSeen, false, func(in guardInput) bool {
		return in.row == nil || in.row.Status == storage.StatusRemoved || in.gone
	}},
	{guardSiteAdmin, true, func(in guardInput) bool { return in.siteAdmin && !in.req.Force }},
	{guardExempt, true, func(in guardInput) bool { return in.exempt }},
	{guardActiveSinceRequest, true, func(in guardInput) bool {
		// Audit Log times are whole seconds: activity in the second of the request counts.
		last := lastActivity(in)
		return last != nil && !last.Before(in.req.RequestedAt.Truncate(time.Second))
	}},
	{guardRecentlyActive, true, func(in guardInput) bool {
		last := lastActivity(in)
		return !in.req.Force && last != nil && in.now.Sub(*last) < in.inactiveAfter
	}},
}

// lastActivity is the user's last activity the collector stores, or nil.
func lastActivity(in guardInput) *time.Time {
	if in.row == nil {
		return nil
	}
	return in.row.LastActivityAt
}

// runGuards checks every guard: their decisions, and the code of the first refusal ("" when
// every guard passes).
func runGuards(in guardInput) ([]events.GuardDecision, string) {
	out := make([]events.GuardDecision, 0, len(guards))
	code := ""
	for _, g := range guards {
		d := events.GuardDecision{Guard: g.name, Decision: decisionPass}
		switch {
		case g.deactivateOnly && in.req.Type != events.ActionDeactivate:
			d.Decision = decisionSkip
		case g.refuses(in):
			d.Decision = decisionRefuse
			if code == "" {
				code = g.name
			}
		}
		out = append(out, d)
	}
	return out, code
}
