package greenhouse

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/seatwatch/greenhouse-collector/connectors"
)

// Messages say what is wrong and what the customer's Greenhouse admin does about it.
func message(code Code, detail string, adminID int64) string {
	switch code {
	case CodeInvalidClient:
		return "Greenhouse rejected the client ID and secret. In Greenhouse, open Configure → Dev Center → API Credentials, create a \"Harvest V3 (OAuth)\" credential (or check the one you used), and paste its client ID and secret."
	case CodeLegacyAPIKey:
		return "This is a Harvest v1/v2 API key; those stopped working on 2026-08-31. Create a \"Harvest V3 (OAuth)\" credential under Configure → Dev Center → API Credentials."
	case CodeAdminUserInvalid:
		return fmt.Sprintf("User %d is not an active Greenhouse user. Use the numeric ID of an active Site Admin (from the URL of their page under Configure → Users).", adminID)
	case CodeAdminNotSiteAdmin:
		return fmt.Sprintf("User %d is not a Site Admin. Greenhouse requires a Site Admin for every list endpoint and the Audit Log: use the numeric ID of a Site Admin (Configure → Users).", adminID)
	case CodeMissingScope:
		return "The credential lacks a permission (" + detail + "). In Greenhouse, open Configure → Dev Center → API Credentials, edit this Harvest V3 (OAuth) credential and grant it; the collector needs harvest:users:list, harvest:user_roles:list, harvest:user_job_permissions:list, harvest:future_job_permissions:list and Audit Log access."
	case CodeAuditLogNotEnabled:
		return "The Audit Log add-on is not enabled for this Greenhouse account; ask Greenhouse account management (accountmanagement+auditlog@greenhouse.io) to enable it. Licenses are collected meanwhile, without usage data."
	case CodeAuditLogForbidden:
		return "Greenhouse refused access to the Audit Log (" + detail + "). Either the Audit Log add-on is not enabled for this Greenhouse account (ask Greenhouse account management, accountmanagement+auditlog@greenhouse.io, to enable it), or the credential lacks Audit Log access (edit it under Configure → Dev Center → API Credentials), or the admin user is not a Site Admin. Licenses are collected meanwhile, without usage data."
	case CodeAuditLogNotFound:
		return "The Audit Log answered 404 Not Found (" + detail + "). Either the Audit Log URL points at the wrong host or region (Greenhouse's is https://auditlog.us.greenhouse.io), or the Audit Log add-on is not enabled for this Greenhouse account (ask Greenhouse account management, accountmanagement+auditlog@greenhouse.io). Licenses are collected meanwhile, without usage data."
	case CodeRateLimited:
		return "Greenhouse's rate limit was reached; try again in a minute."
	case CodeUnavailable:
		return "Greenhouse did not answer in time or answered with a server error; try again later."
	}
	return "Greenhouse answered in an unexpected way (" + detail + "); check that the endpoints point at Greenhouse, try again later, or contact support."
}

func failed(name string, err error, adminID int64) connectors.Check {
	code := CodeOf(err)
	detail := ""
	var ae *APIError
	if errors.As(err, &ae) {
		detail = ae.Message
	}
	if detail == "" {
		detail = string(code)
	}
	return connectors.Check{Name: name, Status: connectors.CheckFailed, Code: string(code), Message: message(code, detail, adminID)}
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

func ok(name string) connectors.Check {
	return connectors.Check{Name: name, Status: connectors.CheckOK}
}

func skipped(name string) connectors.Check {
	return connectors.Check{Name: name, Status: connectors.CheckSkipped}
}

func (c *Client) check(ctx context.Context) []connectors.Check {
	id := c.cfg.AdminUserID
	out := make([]connectors.Check, 0, 5)
	// An unchanged credential's client keeps its token: minting another could cut short the
	// one a running sync holds, should Greenhouse keep one live token per credential.
	if _, err := c.accessToken(ctx, ""); err != nil {
		name := "credentials"
		if CodeOf(err) == CodeAdminUserInvalid {
			out = append(out, ok(name), failed("admin_user", err, id))
			return append(out, skipped("users"), skipped("permissions"), skipped("audit_log"))
		}
		return append(out, failed(name, err, id), skipped("admin_user"), skipped("users"), skipped("permissions"), skipped("audit_log"))
	}
	out = append(out, ok("credentials"))

	harvest := c.base[kindHarvest].String()
	q := url.Values{"ids": {strconv.FormatInt(id, 10)}, "show_service_accounts": {"true"}, "per_page": {"1"}}
	body, err := c.probe(ctx, "look up admin user", kindHarvest, harvest+"/v3/users?"+q.Encode())
	var admin error
	switch {
	case err != nil && CodeOf(err) == CodeMissingScope:
		// Can't tell: the users check reports the scope.
	case err != nil:
		admin = err
	default:
		users, derr := decodeUsers(body)
		switch {
		case derr != nil:
			admin = &APIError{Op: "look up admin user", Code: CodeUnexpectedResponse, Err: derr}
		case len(users) == 0 || users[0].ID != id || users[0].Deactivated:
			admin = &APIError{Op: "look up admin user", Code: CodeAdminUserInvalid}
		case !users[0].SiteAdmin:
			admin = &APIError{Op: "look up admin user", Code: CodeAdminNotSiteAdmin}
		}
	}
	if admin != nil {
		return append(out, failed("admin_user", admin, id), skipped("users"), skipped("permissions"), skipped("audit_log"))
	}
	out = append(out, ok("admin_user"))

	if _, err := c.probe(ctx, "list users", kindHarvest, harvest+"/v3/users?per_page=1"); err != nil {
		out = append(out, failed("users", nameScope(err, "harvest:users:list"), id))
	} else {
		out = append(out, ok("users"))
	}

	var permErr error
	for _, p := range []struct{ path, scope string }{
		{"/v3/user_roles", "harvest:user_roles:list"},
		{"/v3/user_job_permissions", "harvest:user_job_permissions:list"},
		{"/v3/future_job_permissions", "harvest:future_job_permissions:list"},
	} {
		if _, err := c.probe(ctx, "list "+p.path[4:], kindHarvest, harvest+p.path+"?per_page=1"); err != nil {
			permErr = nameScope(err, p.scope)
			break
		}
	}
	if permErr != nil {
		out = append(out, failed("permissions", permErr, id))
	} else {
		out = append(out, ok("permissions"))
	}

	now := c.now()
	if _, err := c.auditQuery(ctx, now.Add(-time.Hour), now.Add(time.Second), 100, "", "", false); err != nil {
		// Greenhouse documents no scope name for the Audit Log: none is named here.
		out = append(out, failed("audit_log", err, id))
	} else {
		out = append(out, ok("audit_log"))
	}
	return out
}

// Check runs the connect-flow checks within ctx (and at most 25 s).
func (c *Client) Check(ctx context.Context) []Check {
	ctx, cancel := context.WithTimeout(ctx, 25*time.Second)
	defer cancel()
	return c.check(ctx)
}

// probe is a single GET for the checks.
func (c *Client) probe(ctx context.Context, op string, kind endpointKind, target string) ([]byte, error) {
	body, _, err := c.send(ctx, op, kind, func() (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	}, true)
	return body, err
}
