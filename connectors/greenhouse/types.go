package greenhouse

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/seatwatch/greenhouse-collector/connectors"
)

// Check is a connect-flow check result.
type Check = connectors.Check

// UserQuery selects users: both zero is the full listing.
type UserQuery struct{ UpdatedFrom, UpdatedTo time.Time }

// User is a Greenhouse user (Harvest v3).
type User struct {
	ID                                      int64
	Name, FirstName, LastName, PrimaryEmail string
	Emails                                  []string
	Deactivated, SiteAdmin, ServiceAccount  bool
	CreatedAt, UpdatedAt                    time.Time
}

// UserRole is a role a permission refers to.
type UserRole struct {
	ID       int64  `json:"id"`
	Name     string `json:"name"`
	RoleType string `json:"role_type"`
}

// JobPermission is a user's permission on one job.
type JobPermission struct {
	ID     int64 `json:"id"`
	JobID  int64 `json:"job_id"`
	UserID int64 `json:"user_id"`
	RoleID int64 `json:"role_id"`
}

// FutureJobPermission is a user's permission on future jobs of an office/department.
type FutureJobPermission struct {
	ID           int64  `json:"id"`
	UserID       int64  `json:"user_id"`
	RoleID       int64  `json:"role_id"`
	DepartmentID *int64 `json:"department_id"`
	OfficeID     *int64 `json:"office_id"`
}

// AuditEvent is one Audit Log event, flattened.
type AuditEvent struct {
	ID                                         string
	Time                                       time.Time
	Type, TargetType, TargetID                 string
	PerformerType, PerformerID                 string
	PerformerName, PerformerEmail, PerformerIP string
	RequestID, RequestType                     string
	Meta                                       string
}

// UserID returns the performer's user id when the performer is a user.
func (e AuditEvent) UserID() (int64, bool) {
	if e.PerformerType != "user" {
		return 0, false
	}
	n, err := strconv.ParseInt(e.PerformerID, 10, 64)
	return n, err == nil && n > 0
}

// AuditBatch is a part of an AuditEvents read; a non-zero Through means every event before it
// has been delivered. Events is valid only until the callback it was given to returns (the
// list is reused; the events' fields may be kept).
type AuditBatch struct {
	Events  []AuditEvent
	Through time.Time
}

// decodeArray decodes a bare JSON array of objects.
func decodeArray(b []byte, v any) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '[' {
		return fmt.Errorf("expected a JSON array, got %s", snippet(b))
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode page: %w", err)
	}
	return nil
}

func snippet(b []byte) string {
	if len(b) > 40 {
		return strconv.Quote(string(b[:40])) + "…"
	}
	return strconv.Quote(string(b))
}

// parseTime reads a timestamp of Greenhouse's: ISO 8601 as RFC 3339, with or without a
// fraction, with Z, ±hh:mm or ±hhmm (docs/greenhouse-wire.md, "Assumptions", row 9); "" is zero.
func parseTime(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("invalid time %q", v)
}

var timeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999Z0700"}

// unknownExpiry is the lifetime assumed of a token whose answer gives no expiry the connector
// can read: short, so a token is renewed long before Greenhouse's documented hour; a 401
// renews it sooner.
const unknownExpiry = 10 * time.Minute

// decodeToken reads a token answer: access_token plus expires_at and/or expires_in (seconds);
// the earlier wins. Greenhouse answers with a non-standard expires_at whose forms vary between
// sources (docs/greenhouse-wire.md): RFC 3339 with or without a fraction, a ±hhmm offset, or
// epoch seconds as a number or a string. Neither field means one hour; an expiry that cannot
// be read means unknownExpiry and never fails the token.
func decodeToken(b []byte, now time.Time) (string, time.Time, error) {
	var r struct {
		AccessToken string          `json:"access_token"`
		TokenType   string          `json:"token_type"`
		ExpiresAt   json.RawMessage `json:"expires_at"`
		ExpiresIn   json.RawMessage `json:"expires_in"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return "", time.Time{}, fmt.Errorf("decode token: %w", err)
	}
	if r.AccessToken == "" {
		return "", time.Time{}, errors.New("token answer has no access_token")
	}
	if r.TokenType != "" && !strings.EqualFold(r.TokenType, "bearer") {
		return "", time.Time{}, fmt.Errorf("token type %q is not bearer", r.TokenType)
	}
	exp, given, readable := time.Time{}, false, true
	if v, ok := jsonScalar(r.ExpiresAt); ok {
		given = true
		if t, err := parseExpiresAt(v); err == nil {
			exp = t
		} else {
			readable = false
		}
	}
	if v, ok := jsonScalar(r.ExpiresIn); ok {
		given = true
		f, err := strconv.ParseFloat(v, 64)
		if err == nil && f > 0 && f <= 1e8 {
			if t := now.Add(time.Duration(f * float64(time.Second))); exp.IsZero() || t.Before(exp) {
				exp = t
			}
		} else {
			readable = false
		}
	}
	switch {
	case !given:
		exp = now.Add(time.Hour)
	case !readable && (exp.IsZero() || exp.After(now.Add(unknownExpiry))):
		exp = now.Add(unknownExpiry)
	}
	return r.AccessToken, exp, nil
}

// jsonScalar returns the text of a JSON string or number; false for null, absent or "".
func jsonScalar(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", false
	}
	var s string
	if raw[0] == '"' {
		if json.Unmarshal(raw, &s) != nil {
			return string(raw), true
		}
		s = strings.TrimSpace(s)
		return s, s != ""
	}
	return string(raw), true
}

// parseExpiresAt reads expires_at: RFC 3339 (fraction optional), a ±hhmm offset, or epoch
// seconds (milliseconds when the number is that large).
func parseExpiresAt(v string) (time.Time, error) {
	if n, err := strconv.ParseFloat(v, 64); err == nil {
		switch {
		case n <= 0 || n > 1e15:
			return time.Time{}, fmt.Errorf("invalid expires_at %q", v)
		case n > 1e11:
			return time.UnixMilli(int64(n)).UTC(), nil
		}
		return time.Unix(int64(n), 0).UTC(), nil
	}
	if t, err := parseTime(v); err == nil && !t.IsZero() {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("invalid expires_at %q", v)
}

// auditPage is one /events answer.
type auditPage struct {
	Hits    int
	Results []AuditEvent
	Paging  *auditPaging
	buf     *[]AuditEvent // where Results came from (eventBufs), nil if not pooled
}

type auditPaging struct {
	PitID string
	Next  string // normalised to two parts, "" at the end
}

// decodeAuditPage decodes an /events answer, flattening each event and giving it its id. The
// page is validated once (validValue) and read from its bytes (eventDecoder); its top-level
// members are matched as encoding/json matches a struct's fields (any case, the last wins).
func decodeAuditPage(b []byte, dst []AuditEvent) (auditPage, error) {
	var r struct {
		Hits    json.Number
		Results []byte // a list, flattened by an eventDecoder
		Paging  *struct {
			PitID string          `json:"pit_id"`
			Next  json.RawMessage `json:"next_search_after"`
		}
	}
	start := skipSpace(b, 0)
	end, ok := validValue(b, start, 0)
	switch {
	case !ok:
		return auditPage{}, fmt.Errorf("decode audit page: invalid JSON at byte %d", end)
	case skipSpace(b, end) != len(b):
		return auditPage{}, errors.New("decode audit page: data after the JSON object")
	case b[start] != '{':
		return auditPage{}, errors.New("decode audit page: not a JSON object")
	}
	var d eventDecoder
	for _, m := range d.members(nil, b[start:end]) {
		var err error
		switch {
		case bytes.EqualFold(m.key, []byte("hits")):
			err = json.Unmarshal(m.val, &r.Hits)
		case bytes.EqualFold(m.key, []byte("results")):
			r.Results = nil
			if string(m.val) != "null" {
				r.Results = m.val
			}
			if r.Results != nil && r.Results[0] != '[' {
				err = errors.New("results is not a list")
			}
		case bytes.EqualFold(m.key, []byte("paging")):
			err = json.Unmarshal(m.val, &r.Paging)
		}
		if err != nil {
			return auditPage{}, fmt.Errorf("decode audit page: %q: %w", m.key, err)
		}
	}
	if r.Results == nil && r.Hits == "" {
		return auditPage{}, errors.New("audit page has neither hits nor results")
	}
	var p auditPage
	if r.Hits != "" {
		n, err := strconv.Atoi(string(r.Hits))
		if err != nil || n < 0 {
			return p, fmt.Errorf("invalid hits %s", r.Hits)
		}
		p.Hits = n
	}
	p.Results = slices.Grow(dst[:0], min(p.Hits, auditPageSize)) // grown if a page holds more
	if arr := r.Results; arr != nil {
		for n, i := 0, skipSpace(arr, 1); arr[i] != ']'; n++ {
			e, end, err := d.decodeAt(arr, i)
			if err != nil {
				return p, fmt.Errorf("event %d: %w", n, err)
			}
			p.Results = append(p.Results, e)
			if i = skipSpace(arr, end); arr[i] == ',' {
				i = skipSpace(arr, i+1)
			}
		}
	}
	if r.Hits == "" {
		p.Hits = len(p.Results)
	}
	if r.Paging != nil {
		next, err := normalizeSearchAfter(r.Paging.Next)
		if err != nil {
			return p, err
		}
		p.Paging = &auditPaging{PitID: r.Paging.PitID, Next: next}
	}
	return p, nil
}

// normalizeSearchAfter turns next_search_after into the Search-After header value: a string
// (one, two or three comma-separated parts, passed on as given), a number, or a JSON list of
// strings and numbers (joined by commas); null is "". Public clients report each form and
// disagree on what the API takes back (docs/greenhouse-wire.md), so nothing is dropped here:
// the Audit Log reader falls back to two parts if the API refuses more. Anything else, or a
// value that could not travel in a header, is an error.
func normalizeSearchAfter(raw json.RawMessage) (string, error) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return "", nil
	}
	invalid := fmt.Errorf("invalid next_search_after %s", snippet(raw))
	// scalar returns the text of a JSON string or number.
	scalar := func(v []byte) (string, bool) {
		var str string
		if json.Unmarshal(v, &str) == nil {
			return str, true
		}
		var n json.Number
		if json.Unmarshal(v, &n) == nil && len(v) > 0 && v[0] != '"' {
			return n.String(), true
		}
		return "", false
	}
	var parts []string
	if s[0] == '[' {
		var vs []json.RawMessage
		if err := json.Unmarshal(raw, &vs); err != nil {
			return "", fmt.Errorf("invalid next_search_after: %w", err)
		}
		for _, v := range vs {
			str, ok := scalar(bytes.TrimSpace(v))
			if !ok {
				return "", invalid
			}
			parts = append(parts, strings.Split(str, ",")...)
		}
	} else {
		str, ok := scalar([]byte(s))
		if !ok {
			return "", invalid
		}
		parts = strings.Split(str, ",")
	}
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	out := strings.Join(parts, ",")
	if out == "" || len(out) > 512 || strings.ContainsFunc(out, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "", invalid
	}
	return out, nil
}

// twoParts is a Search-After value cut to its first two parts, the form one public client
// reports the API insists on.
func twoParts(v string) string {
	if i := strings.IndexByte(v, ','); i >= 0 {
		if j := strings.IndexByte(v[i+1:], ','); j >= 0 {
			return v[:i+1+j]
		}
	}
	return v
}

// appendString appends s exactly as json.Marshal writes it (event ids depend on it): printable
// ASCII without quote, backslash or HTML characters as is, anything else by json.Marshal.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			vb, _ := json.Marshal(s)
			return append(b, vb...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// writeString writes s as appendString appends it.
func writeString(b *bytes.Buffer, s string) { b.Write(appendString(b.AvailableBuffer(), s)) }

// decodeErrorBody extracts messages from Greenhouse's error envelopes:
// {"message", "errors": [string | {message, field}]}, {"error", "error_description"}.
func decodeErrorBody(b []byte) ([]string, bool) {
	var r struct {
		Message          string            `json:"message"`
		Error            string            `json:"error"`
		ErrorDescription string            `json:"error_description"`
		Errors           []json.RawMessage `json:"errors"`
	}
	if json.Unmarshal(b, &r) != nil {
		return nil, false
	}
	var out []string
	for _, s := range []string{r.Error, r.ErrorDescription, r.Message} {
		if s != "" {
			out = append(out, s)
		}
	}
	for _, e := range r.Errors {
		var s string
		if json.Unmarshal(e, &s) == nil {
			out = append(out, s)
			continue
		}
		var o struct{ Message, Field string }
		if json.Unmarshal(e, &o) == nil && o.Message != "" {
			if o.Field != "" {
				out = append(out, o.Field+": "+o.Message)
			} else {
				out = append(out, o.Message)
			}
		}
	}
	return out, len(out) > 0
}
