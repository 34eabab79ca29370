package storage

import (
	"context"
	"fmt"
	"time"
)

// ActionRow is one user's outcome of a reclaim action (docs/schema.md, "actions"): who asked,
// what, when, the outcome with its code and Greenhouse's HTTP status, each guard's decision
// (JSON), and the user's license type and last activity before the action.
type ActionRow struct {
	TenantID, App, ActionID string
	UserID                  int64
	Type, RequestedBy       string
	Reason                  string
	RequestedAt             time.Time
	DryRun, Force           bool
	Outcome, Code           string
	HTTPStatus              uint16
	Guards                  string
	LicenseType             string
	LastActivityAt          *time.Time
	DecidedAt               time.Time
}

const actionColumns = `tenant_id, app, action_id, user_id, type, requested_by, reason, requested_at, dry_run, force,
 outcome, code, http_status, guards, license_type, last_activity_at, decided_at`

// InsertActionOutcomes writes outcomes of actions; writing one again (a replay after a crash)
// replaces it.
func (s *Store) InsertActionOutcomes(ctx context.Context, rows []ActionRow) error {
	if len(rows) == 0 {
		return nil
	}
	err := s.batch(ctx, "INSERT INTO {db}.actions ("+actionColumns+")", len(rows), func(i int) []any {
		r := &rows[i]
		return []any{r.TenantID, r.App, r.ActionID, r.UserID, r.Type, r.RequestedBy, r.Reason, toDB(r.RequestedAt), b2u(r.DryRun),
			b2u(r.Force), r.Outcome, r.Code, r.HTTPStatus, r.Guards, r.LicenseType, toDBPtr(r.LastActivityAt), toDB(r.DecidedAt)}
	})
	if err != nil {
		return fmt.Errorf("insert %d action outcomes: %w", len(rows), err)
	}
	return nil
}

// ActionOutcomes returns the stored outcomes of one action, by user id.
func (s *Store) ActionOutcomes(ctx context.Context, tenant, app, actionID string) ([]ActionRow, error) {
	rows, err := s.conn.Query(ctx, s.query("action_outcomes"), named(tenant, app, "action", actionID)...)
	if err != nil {
		return nil, fmt.Errorf("read outcomes of action %s of tenant %q: %w", actionID, tenant, err)
	}
	defer func() { _ = rows.Close() }()
	var out []ActionRow
	for rows.Next() {
		r := ActionRow{TenantID: tenant, App: app, ActionID: actionID}
		var dry, force uint8
		if err := rows.Scan(&r.UserID, &r.Type, &r.RequestedBy, &r.Reason, &r.RequestedAt, &dry, &force, &r.Outcome, &r.Code,
			&r.HTTPStatus, &r.Guards, &r.LicenseType, &r.LastActivityAt, &r.DecidedAt); err != nil {
			return nil, fmt.Errorf("read outcomes of action %s of tenant %q: %w", actionID, tenant, err)
		}
		r.DryRun, r.Force = dry == 1, force == 1
		r.RequestedAt, r.DecidedAt = fromDB(r.RequestedAt), fromDB(r.DecidedAt)
		r.LastActivityAt = fromDBPtr(r.LastActivityAt)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read outcomes of action %s of tenant %q: %w", actionID, tenant, err)
	}
	return out, nil
}
