package greenhouse

import "fmt"

// The customer-facing messages of the connector's codes: what is wrong and what the
// customer's Greenhouse admin does about it. This file is their one home: a connect-flow
// check shows checkMessage (with Greenhouse's detail), a check that a sync failed shows
// SyncMessage. The collector's own codes have theirs in collector/messages.go.

// checkMessage is the message of a failed connect-flow check, with Greenhouse's own detail
// (its error message, or the code) and the admin user's id.
func checkMessage(code Code, detail string, adminID int64) string {
	switch code {
	case CodeInvalidClient:
		return "Greenhouse rejected the client ID and secret. In Greenhouse, open Configure → Dev Center → API Credentials, create a \"Harvest V3 (OAuth)\" credential (or check the one you used), and paste its client ID and secret."
	case CodeLegacyAPIKey:
		return "This is a Harvest v1/v2 API key; those stopped working on 2026-08-31. In Greenhouse, go to Configure → Dev Center → API Credentials → Create new API credentials, choose \"Harvest V3 (OAuth)\", grant harvest:users:list, harvest:user_roles:list, harvest:user_job_permissions:list, harvest:future_job_permissions:list and Audit Log access, then connect with its client ID and secret."
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
	case CodeActionsNotPermitted:
		return actionsNotPermitted + " (" + detail + ")."
	case CodeUnprocessable:
		return "Greenhouse refused the user id (" + detail + ")."
	}
	return "Greenhouse answered in an unexpected way (" + detail + "); check that the endpoints point at Greenhouse, try again later, or contact support."
}

// actionsNotPermitted says what a credential without the permission to deactivate users
// means: Greenhouse's reference names no scope for it in its text, so none is named here.
const actionsNotPermitted = "The credential may not deactivate or activate users, so reclaim actions are refused; everything else works as before. To reclaim seats, edit this Harvest V3 (OAuth) credential under Configure → Dev Center → API Credentials and grant it the permission to deactivate and activate users"

// SyncMessage is the message of a connect-flow check that a sync failed with code: without the
// detail of the answer (an overridden endpoint may have written it), and saying what happens
// next.
func SyncMessage(code Code) string {
	switch code {
	case CodeInvalidClient:
		return "Greenhouse rejects the client ID and secret. Create a new Harvest V3 (OAuth) credential under Configure → Dev Center → API Credentials and reconnect."
	case CodeAdminUserInvalid:
		return "The admin user ID no longer names an active Greenhouse user. Reconnect with the numeric ID of an active Site Admin."
	case CodeAdminNotSiteAdmin:
		return "The admin user is not a Site Admin any more; Greenhouse's list endpoints and the Audit Log require one. Reconnect with a Site Admin's user ID."
	case CodeMissingScope:
		return "The credential lacks a required permission. Edit it under Configure → Dev Center → API Credentials and grant harvest:users:list, harvest:user_roles:list, harvest:user_job_permissions:list, harvest:future_job_permissions:list and Audit Log access."
	case CodeAuditLogNotEnabled:
		return "The Audit Log add-on is not enabled for this Greenhouse account; ask Greenhouse account management to enable it to get usage data."
	case CodeAuditLogForbidden:
		return "Greenhouse refuses the Audit Log: the add-on may not be enabled for this account, the credential may lack Audit Log access, or the admin user may not be a Site Admin. Licenses are collected meanwhile, without usage data."
	case CodeAuditLogNotFound:
		return "The Audit Log answers 404 Not Found: its URL may point at the wrong host or region, or the add-on may not be enabled for this account. Licenses are collected meanwhile, without usage data."
	case CodeRateLimited:
		return "Greenhouse's rate limit was reached; the collector retries by itself."
	case CodeUnavailable:
		return "Greenhouse did not answer; the collector retries by itself."
	}
	return "Greenhouse answered in an unexpected way; the collector retries by itself."
}
