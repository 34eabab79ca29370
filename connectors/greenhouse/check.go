package greenhouse

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/seatwatch/greenhouse-collector/connectors"
)

// The connect-flow checks, in the order they run (docs/api.md, "PUT
// /v1/tenants/{tenant_id}/connections/greenhouse").
const (
	CheckCredentials connectors.CheckName = "credentials" // a token can be minted
	CheckAdminUser   connectors.CheckName = "admin_user"  // the admin user is an active Site Admin
	CheckUsers       connectors.CheckName = "users"       // users can be listed
	CheckPermissions connectors.CheckName = "permissions" // user roles and (future) job permissions can be listed
	CheckAuditLog    connectors.CheckName = "audit_log"   // the Audit Log can be read
	// CheckActions is optional: whether the credential may deactivate and activate users
	// (reclaim actions). Its failure leaves the connection's state as it is.
	CheckActions connectors.CheckName = "actions"
)

// CheckNames are the connect-flow checks in order.
var CheckNames = []connectors.CheckName{CheckCredentials, CheckAdminUser, CheckUsers, CheckPermissions, CheckAuditLog, CheckActions}

// CredentialsRefused are the checks of a credential refused before any request: credentials
// failed with code and message, the others skipped.
func CredentialsRefused(code Code, message string) []connectors.Check {
	return append([]connectors.Check{{Name: CheckCredentials, Status: connectors.CheckFailed, Code: string(code), Message: message}},
		skipAfter(CheckCredentials)...)
}

// LegacyKeyChecks are the checks of a retired Harvest v1/v2 API key (IsLegacyAPIKey).
func LegacyKeyChecks() []connectors.Check {
	return CredentialsRefused(CodeLegacyAPIKey, checkMessage(CodeLegacyAPIKey, "", 0))
}

// skipAfter returns the checks after name, skipped.
func skipAfter(name connectors.CheckName) []connectors.Check {
	var out []connectors.Check
	for i, n := range CheckNames {
		if n == name {
			for _, m := range CheckNames[i+1:] {
				out = append(out, connectors.Check{Name: m, Status: connectors.CheckSkipped})
			}
		}
	}
	return out
}

func failed(name connectors.CheckName, err error, adminID int64) connectors.Check {
	code := CodeOf(err)
	detail := ""
	var ae *APIError
	if errors.As(err, &ae) {
		detail = ae.Message
	}
	if detail == "" {
		detail = string(code)
	}
	return connectors.Check{Name: name, Status: connectors.CheckFailed, Code: string(code), Message: checkMessage(code, detail, adminID)}
}

// nameScope makes sure a missing_scope error names the scope the endpoint needs, whether or
// not Greenhouse's body said it.
func nameScope(err error, scope string) error {
	var ae *APIError
	if !errors.As(err, &ae) || ae.Code != CodeMissingScope || strings.Contains(ae.Message, scope) {
		return err
	}
	cp := *ae
	if cp.Message != "" {
		cp.Message += "; "
	}
	cp.Message += "required scope: " + scope
	return &cp
}

// outcome is a check's result: ok when err is nil, else failed with err's code and message.
func outcome(name connectors.CheckName, err error, adminID int64) connectors.Check {
	if err != nil {
		return failed(name, err, adminID)
	}
	return connectors.Check{Name: name, Status: connectors.CheckOK}
}

// Check runs the connect-flow checks within ctx (and at most 25 s): credentials, then the
// admin user; a failure of either skips the rest. The users, permissions and Audit Log
// checks run each, and the optional actions check (write.go).
func (c *Client) Check(ctx context.Context) []Check {
	ctx, cancel := context.WithTimeout(ctx, 25*time.Second)
	defer cancel()
	id := c.cfg.AdminUserID
	// An unchanged credential's client keeps its token: minting another could cut short the
	// one a running sync holds, should Greenhouse keep one live token per credential.
	if _, err := c.accessToken(ctx, ""); err != nil {
		if CodeOf(err) == CodeAdminUserInvalid {
			return append([]connectors.Check{outcome(CheckCredentials, nil, id), failed(CheckAdminUser, err, id)}, skipAfter(CheckAdminUser)...)
		}
		return append([]connectors.Check{failed(CheckCredentials, err, id)}, skipAfter(CheckCredentials)...)
	}
	out := []connectors.Check{outcome(CheckCredentials, nil, id)}
	if err := c.checkAdminUser(ctx); err != nil {
		return append(append(out, failed(CheckAdminUser, err, id)), skipAfter(CheckAdminUser)...)
	}
	return append(out, outcome(CheckAdminUser, nil, id),
		outcome(CheckUsers, c.checkUsers(ctx), id),
		outcome(CheckPermissions, c.checkPermissions(ctx), id),
		outcome(CheckAuditLog, c.checkAuditLog(ctx), id),
		outcome(CheckActions, c.checkActions(ctx), id))
}

// checkAdminUser looks the admin user up: an active Site Admin. A missing scope tells nothing
// (the users check reports it).
func (c *Client) checkAdminUser(ctx context.Context) error {
	id := c.cfg.AdminUserID
	q := url.Values{"ids": {strconv.FormatInt(id, 10)}, "show_service_accounts": {"true"}, "per_page": {"1"}}
	body, err := c.probe(ctx, "look up admin user", kindHarvest, c.base[kindHarvest].String()+"/v3/users?"+q.Encode())
	switch {
	case err != nil && CodeOf(err) == CodeMissingScope:
		return nil
	case err != nil:
		return err
	}
	users, err := decodeUsers(body)
	switch {
	case err != nil:
		return &APIError{Op: "look up admin user", Code: CodeUnexpectedResponse, Err: err}
	case len(users) == 0 || users[0].ID != id || users[0].Deactivated:
		return &APIError{Op: "look up admin user", Code: CodeAdminUserInvalid}
	case !users[0].SiteAdmin:
		return &APIError{Op: "look up admin user", Code: CodeAdminNotSiteAdmin}
	}
	return nil
}

// checkUsers lists one user.
func (c *Client) checkUsers(ctx context.Context) error {
	_, err := c.probe(ctx, "list users", kindHarvest, c.base[kindHarvest].String()+"/v3/users?per_page=1")
	return nameScope(err, "harvest:users:list")
}

// checkPermissions lists one of each: user roles, job permissions, future job permissions.
func (c *Client) checkPermissions(ctx context.Context) error {
	for _, p := range []struct{ path, scope string }{
		{"/v3/user_roles", "harvest:user_roles:list"},
		{"/v3/user_job_permissions", "harvest:user_job_permissions:list"},
		{"/v3/future_job_permissions", "harvest:future_job_permissions:list"},
	} {
		if _, err := c.probe(ctx, "list "+p.path[4:], kindHarvest, c.base[kindHarvest].String()+p.path+"?per_page=1"); err != nil {
			return nameScope(err, p.scope)
		}
	}
	return nil
}

// checkAuditLog reads the last hour of the Audit Log. Greenhouse documents no scope name for
// the Audit Log: none is named.
func (c *Client) checkAuditLog(ctx context.Context) error {
	now := c.now()
	p, err := c.auditQuery(ctx, now.Add(-time.Hour), now.Add(time.Second), 100, "", "", false)
	p.release()
	return err
}

// probe is a single GET for the checks.
func (c *Client) probe(ctx context.Context, op string, kind endpointKind, target string) ([]byte, error) {
	body, _, err := c.send(ctx, op, kind, func() (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	}, true)
	return body, err
}

// checkActions asks whether the credential may deactivate and activate users, changing no
// one: it sends both writes for user id 0, which no Greenhouse user has. A credential with
// the permission is answered 422 (or 404, or 204) for the unknown id; one without it 403
// naming the missing scope (docs/greenhouse-wire.md, row 12). Greenhouse's reference names
// no scope for these endpoints in its text: none is named here either.
func (c *Client) checkActions(ctx context.Context) error {
	for _, to := range []UserStatus{Deactivate, Activate} {
		err := c.SetUserStatus(ctx, 0, to)
		if err == nil || CodeOf(err) == CodeUnprocessable {
			continue
		}
		return err
	}
	return nil
}
