package greenhouse

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func TestDecodeToken(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    time.Time
		wantErr string
	}{
		{"both, expires_in earlier", `{"token_type":"Bearer","access_token":"a","expires_at":"2026-11-22T14:00:00Z","expires_in":600}`, t0.Add(10 * time.Minute), ""},
		{"both, expires_at earlier", `{"access_token":"a","expires_at":"2026-11-22T12:05:00Z","expires_in":3600}`, t0.Add(5 * time.Minute), ""},
		{"expires_at with offset", `{"access_token":"a","expires_at":"2026-11-22T13:30:00+01:00"}`, t0.Add(30 * time.Minute), ""},
		{"expires_in only", `{"access_token":"a","expires_in":1800}`, t0.Add(30 * time.Minute), ""},
		{"expires_in as a string", `{"access_token":"a","expires_in":"120"}`, t0.Add(2 * time.Minute), ""},
		{"neither: one hour", `{"access_token":"a","token_type":"bearer"}`, t0.Add(time.Hour), ""},
		{"null expiries: one hour", `{"access_token":"a","expires_at":null,"expires_in":null}`, t0.Add(time.Hour), ""},
		{"no token", `{"token_type":"Bearer","expires_in":3600}`, time.Time{}, "no access_token"},
		{"not bearer", `{"token_type":"mac","access_token":"a"}`, time.Time{}, "not bearer"},
		// Greenhouse's non-standard expires_at, in every form sources show (docs/greenhouse-wire.md).
		{"expires_at alone, milliseconds", `{"token_type":"Bearer","access_token":"a","expires_at":"2026-11-22T12:59:59.999Z"}`, t0.Add(time.Hour - time.Millisecond), ""},
		{"expires_at alone, whole seconds", `{"access_token":"a","expires_at":"2026-11-22T13:00:00Z"}`, t0.Add(time.Hour), ""},
		{"expires_at, +0000 offset", `{"access_token":"a","expires_at":"2026-11-22T13:00:00.000+0000"}`, t0.Add(time.Hour), ""},
		{"expires_at, -0500 offset", `{"access_token":"a","expires_at":"2026-11-22T08:00:00-0500"}`, t0.Add(time.Hour), ""},
		{"expires_at, epoch seconds", `{"access_token":"a","expires_at":1795352400}`, t0.Add(time.Hour), ""},
		{"expires_at, epoch seconds string", `{"access_token":"a","expires_at":"1795352400"}`, t0.Add(time.Hour), ""},
		{"expires_at, epoch milliseconds", `{"access_token":"a","expires_at":1795352400000}`, t0.Add(time.Hour), ""},
		{"expires_at far ahead", `{"access_token":"a","expires_at":"2099-12-31T23:59:59.999Z"}`, time.Date(2099, 12, 31, 23, 59, 59, 999e6, time.UTC), ""},
		// An expiry that cannot be read does not fail the token: a short lifetime is assumed.
		{"unreadable expires_at", `{"access_token":"a","expires_at":"tomorrow"}`, t0.Add(unknownExpiry), ""},
		{"unreadable expires_at, readable expires_in", `{"access_token":"a","expires_at":"tomorrow","expires_in":300}`, t0.Add(5 * time.Minute), ""},
		{"negative expires_in", `{"access_token":"a","expires_in":-5}`, t0.Add(unknownExpiry), ""},
		{"expires_at an object", `{"access_token":"a","expires_at":{"at":1}}`, t0.Add(unknownExpiry), ""},
		{"wrong type", `{"access_token":42}`, time.Time{}, "decode token"},
		{"html", `<html>login</html>`, time.Time{}, "decode token"},
		{"truncated", `{"access_token":"a","exp`, time.Time{}, "decode token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, exp, err := decodeToken([]byte(tt.body), t0)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				assert.Empty(t, tok)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, "a", tok)
			assert.True(t, tt.want.Equal(exp), "expiry %v, want %v", exp, tt.want)
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"0", 0, true},
		{"7", 7 * time.Second, true},
		{" 30 ", 30 * time.Second, true},
		{"99999999999", maxRetryAfter, true},
		{"301", maxRetryAfter, true},
		{t0.Add(4 * time.Second).Format(http.TimeFormat), 4 * time.Second, true},
		{t0.Add(time.Hour).Format(http.TimeFormat), maxRetryAfter, true},
		{t0.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"", 0, false},
		{"-3", 0, false},
		{"soon", 0, false},
		{"1.5", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			d, ok := parseRetryAfter(tt.in, t0)
			assert.Equal(t, tt.ok, ok)
			assert.Equal(t, tt.want, d)
		})
	}
}

func TestParseReset(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
		err  bool
	}{
		{fmt.Sprint(t0.Unix() + 17), t0.Add(17 * time.Second), false},
		{fmt.Sprint(t0.UnixMilli() + 1500), t0.Add(1500 * time.Millisecond), false},
		{"12", t0.Add(12 * time.Second), false}, // seconds from now
		{fmt.Sprint(t0.Unix() + 86400), t0.Add(maxRetryAfter), false},
		{"", time.Time{}, true},
		{"-1", time.Time{}, true},
		{"Sun, 22 Nov 2026 12:00:10 GMT", time.Time{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseReset(tt.in, t0)
			if tt.err {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.True(t, tt.want.Equal(got), "got %v want %v", got, tt.want)
		})
	}
}

func TestNextLink(t *testing.T) {
	base, err := url.Parse("https://harvest.greenhouse.io")
	require.NoError(t, err)
	tests := []struct {
		name, header, want string
		err                bool
	}{
		{"none", "", "", false},
		{"next", `<https://harvest.greenhouse.io/v3/users?cursor=abc>; rel="next"`, "https://harvest.greenhouse.io/v3/users?cursor=abc", false},
		{"next after prev", `<https://harvest.greenhouse.io/v3/users?cursor=p>; rel="prev", <https://harvest.greenhouse.io/v3/users?cursor=n>; rel="next"`, "https://harvest.greenhouse.io/v3/users?cursor=n", false},
		{"unquoted rel", `<https://harvest.greenhouse.io/v3/users?cursor=n>; rel=next`, "https://harvest.greenhouse.io/v3/users?cursor=n", false},
		{"repeated params kept as given", `<https://harvest.greenhouse.io/v1/users?page=2&page=3&per_page=1&per_page=1>; rel="next"`, "https://harvest.greenhouse.io/v1/users?page=2&page=3&per_page=1&per_page=1", false},
		{"relative", `</v3/users?cursor=r>; rel="next"`, "https://harvest.greenhouse.io/v3/users?cursor=r", false},
		{"only last", `<https://harvest.greenhouse.io/v3/users?cursor=l>; rel="last"`, "", false},
		{"other host", `<https://evil.example/v3/users?cursor=x>; rel="next"`, "", true},
		{"other scheme", `<http://harvest.greenhouse.io/v3/users?cursor=x>; rel="next"`, "", true},
		{"javascript", `<javascript:alert(1)>; rel="next"`, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := nextLink(tt.header, base)
			if tt.err {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestNormalizeSearchAfter(t *testing.T) {
	tests := []struct {
		in, want string
		err      bool
	}{
		{`"1700000000000,500"`, "1700000000000,500", false},
		// Every form is passed on as given (docs/greenhouse-wire.md): nothing is trimmed here.
		{`"1700000000000,500,abc"`, "1700000000000,500,abc", false},
		{`"1685989175"`, "1685989175", false},
		{`[1700000000000,"500"]`, "1700000000000,500", false},
		{`[1700000000000, 500, "x"]`, "1700000000000,500,x", false},
		{`["1700000000000,500"]`, "1700000000000,500", false},
		{`1700000000000`, "1700000000000", false},
		{`null`, "", false},
		{``, "", false},
		{`{"a":1}`, "", true},
		{`[{"a":1}]`, "", true},
		{`"a\nb"`, "", true},
		{`[1,`, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := normalizeSearchAfter(json.RawMessage(tt.in))
			if tt.err {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name   string
		kind   endpointKind
		status int
		body   string
		want   Code
	}{
		{"token unknown client", kindToken, 401, `{"error":"invalid_client"}`, CodeInvalidClient},
		{"token no credentials", kindToken, 401, `{"message":"Unauthorized","errorId":"err-1"}`, CodeInvalidClient},
		{"token sub not active", kindToken, 400, `{"error":"invalid_grant","error_description":"sub 9 is not an active user"}`, CodeAdminUserInvalid},
		{"token bad request", kindToken, 400, `{"error":"invalid_request","error_description":"Must include grant_type"}`, CodeUnexpectedResponse},
		{"harvest missing scope", kindHarvest, 403, `{"message":"Forbidden","errors":["Missing required scope: harvest:users:list"]}`, CodeMissingScope},
		{"harvest site admin", kindHarvest, 403, `{"message":"Forbidden","errors":["The user authorizing this request must be a Site Admin."]}`, CodeAdminNotSiteAdmin},
		{"harvest other 403", kindHarvest, 403, `{"message":"Forbidden"}`, CodeAdminNotSiteAdmin},
		{"harvest 401", kindHarvest, 401, `{"message":"Unauthorized","errors":["Token could not be decoded"]}`, CodeInvalidClient},
		{"harvest 422", kindHarvest, 422, `{"errors":["When passing a cursor, do not include other query params."]}`, CodeUnexpectedResponse},
		{"harvest 429", kindHarvest, 429, `{"message":"Rate limit exceeded"}`, CodeRateLimited},
		{"harvest 503", kindHarvest, 503, `<html>down</html>`, CodeUnavailable},
		{"audit not enabled", kindAudit, 403, `{"message":"The Audit Log add-on is not enabled for this organization."}`, CodeAuditLogNotEnabled},
		{"audit 404", kindAudit, 404, `{"message":"Not Found"}`, CodeAuditLogNotFound},
		{"audit 404, documented body", kindAudit, 404, `{"message":"Resource not found"}`, CodeAuditLogNotFound},
		{"audit 404 saying not enabled", kindAudit, 404, `{"message":"The Audit Log add-on is not enabled"}`, CodeAuditLogNotEnabled},
		{"audit 403, documented body", kindAudit, 403, `{"message":"You do not have access to that record."}`, CodeAuditLogForbidden},
		{"audit scope", kindAudit, 403, `{"message":"Missing required scope: audit_log:events:list"}`, CodeMissingScope},
		{"audit site admin", kindAudit, 403, `{"message":"The user authorizing this request must be a Site Admin."}`, CodeAdminNotSiteAdmin},
		{"audit other 403", kindAudit, 403, `{"message":"Forbidden"}`, CodeAuditLogForbidden},
		{"audit expired pit", kindAudit, 400, `{"message":"Pit_Id abc has expired"}`, CodeUnexpectedResponse},
		{"harvest 404", kindHarvest, 404, ``, CodeUnexpectedResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := classify("op", tt.kind, tt.status, []byte(tt.body))
			assert.Equal(t, tt.want, e.Code)
			assert.Equal(t, tt.status, e.Status)
			assert.True(t, errors.Is(e, &APIError{Code: tt.want}))
		})
	}
}

func TestCodeOfAndIs(t *testing.T) {
	opErr := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	tests := []struct {
		name string
		err  error
		want Code
	}{
		{"nil", nil, ""},
		{"api error wrapped", fmt.Errorf("sync users: %w", &APIError{Code: CodeMissingScope}), CodeMissingScope},
		{"network", opErr, CodeUnavailable},
		{"deadline", context.DeadlineExceeded, CodeUnavailable},
		{"unknown", errors.New("boom"), CodeUnexpectedResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, CodeOf(tt.err))
		})
	}
	e := fmt.Errorf("x: %w", &APIError{Op: "list users", Status: 403, Code: CodeMissingScope, Message: "m"})
	assert.ErrorIs(t, e, ErrMissingScope)
	assert.NotErrorIs(t, e, ErrAdminNotSiteAdmin)
	assert.False(t, errors.Is(ErrMissingScope, e), "a specific error is not a sentinel's match")
	cause := errors.New("cause")
	assert.ErrorIs(t, &APIError{Code: CodeUnavailable, Err: cause}, cause, "Unwrap")
	assert.Equal(t, "list users: missing_scope (HTTP 403): m", errors.Unwrap(e).Error())
}

// canonicalID is the event id computed independently: encoding/json sorts map keys and keeps
// json.Number as written.
func canonicalID(t *testing.T, raw string) string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
	dec.UseNumber()
	var v map[string]any
	require.NoError(t, dec.Decode(&v))
	b, err := json.Marshal(v)
	require.NoError(t, err)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

func TestDecodeAuditPageFlattensAndIdentifies(t *testing.T) {
	userEv := `{"request":{"id":"r1","type":"jobs#update"},"performer":{"meta":{"name":"Ada <A&B>","username":"ada@x.example"},"id":7,"ip_address":"192.0.2.1","type":"user"},"organization_id":3,"event":{"meta":{"z":[1,2.50,"é"],"a":null},"target_type":"Job","target_id":12,"type":"data_change_update"},"event_time":"2026-01-01T00:00:00.123Z"}`
	keyEv := `{ "event_time" : "2026-01-01T01:00:00+01:00", "event":{"type":"harvest_access","target_type":null,"meta":null},
	  "performer":{"type":"api_key","id":"Harvest key","meta":{"api_key_type":"harvest"}} }`
	body := `{"hits":2,"results":[` + userEv + `,` + keyEv + `]}`
	p, err := decodeAuditPage([]byte(body), nil)
	require.NoError(t, err)
	require.Len(t, p.Results, 2)
	u := p.Results[0]
	assert.Equal(t, canonicalID(t, userEv), u.ID)
	assert.Equal(t, time.Date(2026, 1, 1, 0, 0, 0, 123e6, time.UTC), u.Time)
	assert.Equal(t, "data_change_update", u.Type)
	assert.Equal(t, "Job", u.TargetType)
	assert.Equal(t, "12", u.TargetID)
	assert.Equal(t, "user", u.PerformerType)
	assert.Equal(t, "7", u.PerformerID)
	assert.Equal(t, "Ada <A&B>", u.PerformerName)
	assert.Equal(t, "ada@x.example", u.PerformerEmail)
	assert.Equal(t, "192.0.2.1", u.PerformerIP)
	assert.Equal(t, "r1", u.RequestID)
	assert.Equal(t, "jobs#update", u.RequestType)
	assert.Equal(t, `{"a":null,"z":[1,2.50,"é"]}`, u.Meta)
	id, ok := u.UserID()
	assert.True(t, ok)
	assert.Equal(t, int64(7), id)

	k := p.Results[1]
	assert.Equal(t, canonicalID(t, keyEv), k.ID)
	assert.Equal(t, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), k.Time, "UTC")
	assert.Equal(t, "Harvest key", k.PerformerID)
	assert.Equal(t, "", k.TargetID)
	assert.Equal(t, "", k.Meta, "null meta")
	_, ok = k.UserID()
	assert.False(t, ok)

	// Whitespace and key order do not change an id.
	p2, err := decodeAuditPage([]byte(`{"results":[{"event_time":"2026-01-01T00:00:00.123Z","organization_id":3,"event":{"type":"data_change_update","target_id":12,"target_type":"Job","meta":{"a":null,"z":[1, 2.50, "é"]}},"performer":{"type":"user","ip_address":"192.0.2.1","id":7,"meta":{"username":"ada@x.example","name":"Ada <A&B>"}},"request":{"type":"jobs#update","id":"r1"}}],"hits":1}`), nil)
	require.NoError(t, err)
	assert.Equal(t, u.ID, p2.Results[0].ID)
}

func TestDecodeAuditPageRejects(t *testing.T) {
	tests := []struct{ name, body, want string }{
		{"html", `<!DOCTYPE html><html></html>`, "decode audit page"},
		{"truncated", `{"hits":3,"results":[{"event_time":"2026`, "decode audit page"},
		{"hits wrong type", `{"hits":"many","results":[]}`, "decode audit page"},
		{"negative hits", `{"hits":-1,"results":[]}`, "invalid hits"},
		{"results not a list", `{"hits":1,"results":{}}`, "decode audit page"},
		{"event not an object", `{"hits":1,"results":[7]}`, "not an object"},
		{"no event_time", `{"hits":1,"results":[{"event":{"type":"x"}}]}`, "event_time"},
		{"bad event_time", `{"hits":1,"results":[{"event_time":"yesterday","event":{"type":"x"}}]}`, "invalid event_time"},
		{"no type", `{"hits":1,"results":[{"event_time":"2026-01-01T00:00:00Z","event":{}}]}`, "event.type"},
		{"empty object", `{}`, "neither hits nor results"},
		{"trailing data", `{"hits":0,"results":[]} {}`, "data after"},
		{"bad search_after", `{"hits":0,"results":[],"paging":{"pit_id":"p","next_search_after":{"x":1}}}`, "next_search_after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeAuditPage([]byte(tt.body), nil)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestDecodeUsers(t *testing.T) {
	users, err := decodeUsers([]byte(`[
	  {"id":3,"first_name":"Ada","last_name":"Burke","primary_email":"ada@x.example","emails":["ada@x.example","a@y.example"],"site_admin":true,"deactivated":false,"created_at":"2024-01-01T00:00:00.5Z","updated_at":"2024-01-02T00:00:00Z","unknown":{"x":1}},
	  {"id":2,"name":"Sourcing bot","primary_email":"","deactivated":true},
	  {"id":1,"name":"Explicit","primary_email":"","service_account":false}
	]`))
	require.NoError(t, err)
	require.Len(t, users, 3)
	// A primary_email of null, "" or absent all mean a service account (docs/greenhouse-wire.md).
	for name, body := range map[string]string{
		"null": `[{"id":9,"primary_email":null}]`, "empty": `[{"id":9,"primary_email":""}]`,
		"blank": `[{"id":9,"primary_email":"  "}]`, "absent": `[{"id":9}]`,
		"explicit false, empty": `[{"id":9,"primary_email":"","service_account":false}]`,
	} {
		us, err := decodeUsers([]byte(body))
		require.NoError(t, err, name)
		assert.True(t, us[0].ServiceAccount, name)
	}
	us, err := decodeUsers([]byte(`[{"id":9,"primary_email":"bot@x.example","service_account":true},{"id":8,"primary_email":"a@x.example"}]`))
	require.NoError(t, err)
	assert.True(t, us[0].ServiceAccount, "an explicit flag adds")
	assert.False(t, us[1].ServiceAccount)
	assert.Equal(t, User{ID: 3, Name: "Ada Burke", FirstName: "Ada", LastName: "Burke", PrimaryEmail: "ada@x.example",
		Emails: []string{"ada@x.example", "a@y.example"}, SiteAdmin: true,
		CreatedAt: time.Date(2024, 1, 1, 0, 0, 0, 5e8, time.UTC), UpdatedAt: time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC)}, users[0])
	assert.True(t, users[1].ServiceAccount, "empty primary_email marks a service account")
	assert.True(t, users[1].Deactivated)
	assert.True(t, users[2].ServiceAccount, "an empty primary_email wins over an explicit false")

	for name, body := range map[string]string{
		"id as string":  `[{"id":"3"}]`,
		"no id":         `[{"name":"x"}]`,
		"bool as int":   `[{"id":1,"site_admin":1}]`,
		"bad timestamp": `[{"id":1,"created_at":"last year"}]`,
		"object":        `{"users":[]}`,
		"html":          `<html></html>`,
		"truncated":     `[{"id":1,`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := decodeUsers([]byte(body))
			assert.Error(t, err)
		})
	}
}

// TestTimestampForms: Greenhouse renders ISO 8601 with milliseconds and Z; other forms seen in
// public fixtures (no fraction, +00:00, +0000, another offset) read as the same instant.
func TestTimestampForms(t *testing.T) {
	want := time.Date(2026, 1, 1, 10, 0, 0, 123e6, time.UTC)
	for _, v := range []string{"2026-01-01T10:00:00.123Z", "2026-01-01T10:00:00.123+00:00", "2026-01-01T10:00:00.123+0000", "2026-01-01T05:00:00.123-0500"} {
		p, err := decodeAuditPage([]byte(`{"hits":1,"results":[{"event_time":"`+v+`","event":{"type":"action"}}]}`), nil)
		require.NoError(t, err, v)
		assert.True(t, want.Equal(p.Results[0].Time), "%s read as %v", v, p.Results[0].Time)
		users, err := decodeUsers([]byte(`[{"id":1,"primary_email":"a@x.example","created_at":"` + v + `"}]`))
		require.NoError(t, err, v)
		assert.True(t, want.Equal(users[0].CreatedAt), v)
	}
	got, err := parseTime("2026-01-01T10:00:00Z")
	require.NoError(t, err)
	assert.Equal(t, want.Truncate(time.Second), got)
	// Sent times are whole-second UTC, whatever the clock's zone and precision.
	assert.Equal(t, "2026-01-01T10:00:00Z", auditTime(want.In(time.FixedZone("x", -5*3600))))
}
