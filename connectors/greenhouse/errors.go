package greenhouse

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
	"unicode/utf8"
)

// Code is a stable error code; the connect flow shows it as a check code.
type Code string

// The codes of the connect flow's checks (docs/api.md, "PUT
// /v1/tenants/{tenant_id}/connections/greenhouse").
const (
	CodeInvalidClient      Code = "invalid_client"
	CodeLegacyAPIKey       Code = "legacy_api_key"
	CodeAdminUserInvalid   Code = "admin_user_invalid"
	CodeAdminNotSiteAdmin  Code = "admin_not_site_admin"
	CodeMissingScope       Code = "missing_scope"
	CodeAuditLogNotEnabled Code = "audit_log_not_enabled"
	CodeAuditLogForbidden  Code = "audit_log_forbidden"
	CodeAuditLogNotFound   Code = "audit_log_not_found"
	CodeRateLimited        Code = "rate_limited"
	CodeUnavailable        Code = "greenhouse_unavailable"
	CodeUnexpectedResponse Code = "unexpected_response"
	// The codes of the user-status writes (write.go): the credential may not deactivate or
	// activate users (the optional actions check, a 403 naming a scope on a write), and a
	// 422 or 404 for the user's id.
	CodeActionsNotPermitted Code = "actions_not_permitted"
	CodeUnprocessable       Code = "unprocessable"
)

// APIError is every error the connector returns about Greenhouse. It never holds a secret.
type APIError struct {
	Op         string        // e.g. "list users"
	Status     int           // HTTP status, 0 when none
	Code       Code          // stable code
	Message    string        // what went wrong, from Greenhouse's body when it said
	RetryAfter time.Duration // for rate_limited
	Err        error         // underlying error
}

// Error implements error.
func (e *APIError) Error() string {
	var b strings.Builder
	if e.Op != "" {
		b.WriteString(e.Op)
		b.WriteString(": ")
	}
	b.WriteString(string(e.Code))
	if e.Status != 0 {
		fmt.Fprintf(&b, " (HTTP %d)", e.Status)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *APIError) Unwrap() error { return e.Err }

// Is matches a sentinel of the same code.
func (e *APIError) Is(target error) bool {
	t, ok := target.(*APIError)
	return ok && t.Op == "" && t.Status == 0 && t.Message == "" && t.Err == nil && t.Code == e.Code
}

// Sentinels for errors.Is, one per code.
var (
	ErrInvalidClient      error = &APIError{Code: CodeInvalidClient}
	ErrLegacyAPIKey       error = &APIError{Code: CodeLegacyAPIKey}
	ErrAdminUserInvalid   error = &APIError{Code: CodeAdminUserInvalid}
	ErrAdminNotSiteAdmin  error = &APIError{Code: CodeAdminNotSiteAdmin}
	ErrMissingScope       error = &APIError{Code: CodeMissingScope}
	ErrAuditLogNotEnabled error = &APIError{Code: CodeAuditLogNotEnabled}
	ErrAuditLogForbidden  error = &APIError{Code: CodeAuditLogForbidden}
	ErrAuditLogNotFound   error = &APIError{Code: CodeAuditLogNotFound}
	ErrRateLimited        error = &APIError{Code: CodeRateLimited}
	ErrUnavailable        error = &APIError{Code: CodeUnavailable}
	ErrUnexpectedResponse error = &APIError{Code: CodeUnexpectedResponse}
)

// CodeOf returns the code of err: "" for nil, greenhouse_unavailable for network failures and
// deadlines, unexpected_response for anything else unknown.
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Code
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) {
		return CodeUnavailable
	}
	return CodeUnexpectedResponse
}

// classify turns a non-2xx answer into an APIError for the kind of endpoint.
func classify(op string, kind endpointKind, status int, body []byte) *APIError {
	msg := errorMessage(body)
	lower := strings.ToLower(msg)
	e := &APIError{Op: op, Status: status, Message: msg}
	switch {
	case status == 429:
		e.Code = CodeRateLimited
	case status >= 500:
		e.Code = CodeUnavailable
	case kind == kindToken && status == 401:
		e.Code = CodeInvalidClient
	case kind == kindToken && status == 400 && strings.Contains(lower, "invalid_grant"):
		e.Code = CodeAdminUserInvalid
	case kind == kindToken && status == 400 && strings.Contains(lower, "invalid_client"):
		e.Code = CodeInvalidClient
	case status == 403 && strings.Contains(lower, "scope"):
		e.Code = CodeMissingScope
	case kind == kindAudit && (status == 403 || status == 404) && strings.Contains(lower, "not enabled"):
		// Only an answer that says so means the add-on is off (docs/greenhouse-wire.md).
		e.Code = CodeAuditLogNotEnabled
	case kind == kindAudit && status == 404:
		// A wrong host or region, or possibly an account without the add-on: the docs'
		// "Resource not found" does not tell which.
		e.Code = CodeAuditLogNotFound
	case kind == kindAudit && status == 403 && strings.Contains(lower, "site admin"):
		e.Code = CodeAdminNotSiteAdmin
	case kind == kindAudit && status == 403:
		e.Code = CodeAuditLogForbidden
	case status == 403:
		e.Code = CodeAdminNotSiteAdmin
	case status == 401:
		e.Code = CodeInvalidClient
	default:
		e.Code = CodeUnexpectedResponse
	}
	return e
}

// errorMessage extracts a readable message from an error body, bounded in length.
func errorMessage(body []byte) string {
	s := strings.TrimSpace(string(body))
	var parts []string
	if v, ok := decodeErrorBody(body); ok {
		parts = v
	} else if s != "" {
		parts = []string{s}
	}
	// Valid UTF-8, cut on a rune boundary: the message reaches JSON answers and logs.
	out := strings.ToValidUTF8(strings.Join(parts, "; "), "\uFFFD")
	if len(out) > 300 {
		cut := 300
		for cut > 0 && !utf8.RuneStart(out[cut]) {
			cut--
		}
		out = out[:cut] + "…"
	}
	return out
}
