package collector

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse"
)

// validationAPI is the API with no backends: enough for everything it refuses before
// touching state.
func validationAPI(t *testing.T, mut func(*Config)) *api {
	cfg := DefaultConfig()
	cfg.APIToken = "token-0123456789abcdef"
	cfg.SecretKeys = "k:AAAA"
	if mut != nil {
		mut(&cfg)
	}
	require.NoError(t, cfg.Validate())
	now := func() time.Time { return time.Now().UTC() }
	clients, err := newClientCache(cfg, nil, nil, nil, zerolog.Nop(), now)
	require.NoError(t, err)
	return &api{cfg: cfg, clients: clients, metrics: newMetrics(), log: zerolog.Nop(), now: now}
}

// testHandler is the API's handler with the metrics behind the token.
func (a *api) testHandler() http.Handler {
	h, _ := a.handler(metricsHandler(a.metrics))
	return h
}

func TestAPIRejectsBadRequests(t *testing.T) {
	const path = "/v1/tenants/acme/connections/greenhouse"
	good := `"client_id":"abc-1","client_secret":"s3cr3t-value","admin_user_id":42`
	tests := []struct {
		name   string
		method string
		path   string
		token  string
		body   string
		mut    func(*Config)
		code   int
		err    string
		field  string
	}{
		{"no token", "PUT", path, "-", `{` + good + `}`, nil, 401, "unauthorized", ""},
		{"wrong token", "PUT", path, "Bearer nope", `{` + good + `}`, nil, 401, "unauthorized", ""},
		{"bad tenant", "PUT", "/v1/tenants/ac.me/connections/greenhouse", "", `{` + good + `}`, nil, 400, "invalid_tenant_id", "tenant_id"},
		{"long tenant", "PUT", "/v1/tenants/" + strings.Repeat("a", 65) + "/connections/greenhouse", "", `{` + good + `}`, nil, 400, "invalid_tenant_id", "tenant_id"},
		{"empty body", "PUT", path, "", ``, nil, 400, "invalid_json", ""},
		{"not json", "PUT", path, "", `client_id=x`, nil, 400, "invalid_json", ""},
		{"array", "PUT", path, "", `[1,2]`, nil, 400, "invalid_json", ""},
		{"array of the object", "PUT", path, "", `[{` + good + `}]`, nil, 400, "invalid_json", ""},
		{"null", "PUT", path, "", `null`, nil, 400, "invalid_json", ""},
		{"string", "PUT", path, "", `"{}"`, nil, 400, "invalid_json", ""},
		{"number", "PUT", path, "", `42`, nil, 400, "invalid_json", ""},
		{"bearer in lower case", "PUT", "/v1/tenants/ac.me/connections/greenhouse", "bearer token-0123456789abcdef", `{` + good + `}`, nil, 400, "invalid_tenant_id", "tenant_id"},
		{"bearer in upper case", "GET", "/v1/tenants/ac.me/licenses", "BEARER token-0123456789abcdef", ``, nil, 400, "invalid_tenant_id", "tenant_id"},
		{"basic scheme", "GET", "/v1/tenants/acme/licenses", "Basic token-0123456789abcdef", ``, nil, 401, "unauthorized", ""},
		{"token prefix", "GET", "/v1/tenants/acme/licenses", "Bearer token-0123456789abcde", ``, nil, 401, "unauthorized", ""},
		{"no space", "GET", "/v1/tenants/acme/licenses", "Bearertoken-0123456789abcdef", ``, nil, 401, "unauthorized", ""},
		{"metrics without token", "GET", "/metrics", "-", ``, nil, 401, "unauthorized", ""},
		{"metrics, wrong token", "GET", "/metrics", "Bearer nope", ``, nil, 401, "unauthorized", ""},
		{"page too large", "GET", "/v1/connections?limit=1001", "", ``, nil, 400, "invalid_field", "limit"},
		{"page of zero", "GET", "/v1/connections?limit=0", "", ``, nil, 400, "invalid_field", "limit"},
		{"bad cursor", "GET", "/v1/connections?cursor=bm90LWEtY3Vyc29y", "", ``, nil, 400, "invalid_cursor", "cursor"},
		{"two values", "PUT", path, "", `{` + good + `}{}`, nil, 400, "invalid_json", ""},
		{"unknown field", "PUT", path, "", `{` + good + `,"password":"x"}`, nil, 400, "unknown_field", "password"},
		{"admin id as string", "PUT", path, "", `{"client_id":"a-1","client_secret":"s","admin_user_id":"42"}`, nil, 400, "invalid_field", "admin_user_id"},
		{"admin id fractional", "PUT", path, "", `{"client_id":"a-1","client_secret":"s","admin_user_id":4.2}`, nil, 400, "invalid_field", "admin_user_id"},
		{"admin id negative", "PUT", path, "", `{"client_id":"a-1","client_secret":"s","admin_user_id":-1}`, nil, 400, "invalid_field", "admin_user_id"},
		{"admin id missing", "PUT", path, "", `{"client_id":"a-1","client_secret":"s"}`, nil, 400, "missing_field", "admin_user_id"},
		{"client id missing", "PUT", path, "", `{"client_secret":"s","admin_user_id":1}`, nil, 400, "missing_field", "client_id"},
		{"secret missing", "PUT", path, "", `{"client_id":"a-1","admin_user_id":1}`, nil, 400, "missing_field", "client_secret"},
		{"huge body", "PUT", path, "", `{"client_id":"` + strings.Repeat("x", 70000) + `"}`, nil, 400, "body_too_large", ""},
		{"bad days", "PUT", path, "", `{` + good + `,"settings":{"inactive_after_days":0}}`, nil, 400, "invalid_field", "settings.inactive_after_days"},
		{"bad interval", "PUT", path, "", `{` + good + `,"settings":{"users_interval":"often"}}`, nil, 400, "invalid_field", "settings.users_interval"},
		{"short audit interval", "PUT", path, "", `{` + good + `,"settings":{"audit_interval":"1s"}}`, nil, 400, "invalid_field", "settings.audit_interval"},
		{"override disabled", "PUT", path, "", `{` + good + `,"endpoints":{"harvest":"https://169.254.169.254"}}`, nil, 400, "endpoint_override_disabled", "endpoints.harvest"},
		{"plain http refused", "PUT", path, "", `{` + good + `,"endpoints":{"auth":"http://10.0.0.1"}}`, func(c *Config) { c.AllowEndpointOverride = true }, 400, "insecure_endpoint", "endpoints.auth"},
		{"userinfo refused", "PUT", path, "", `{` + good + `,"endpoints":{"auth":"https://u:p@example.com"}}`, func(c *Config) { c.AllowEndpointOverride = true }, 400, "invalid_field", "endpoints.auth"},
		{"odd scheme", "PUT", path, "", `{` + good + `,"endpoints":{"audit_log":"file:///etc/passwd"}}`, func(c *Config) { c.AllowEndpointOverride = true }, 400, "invalid_field", "endpoints.audit_log"},
		{"bad usage filter", "GET", "/v1/tenants/acme/licenses?usage=sometimes", "", ``, nil, 400, "invalid_field", "usage"},
		{"unknown route", "GET", "/v2/things", "", ``, nil, 404, "not_found", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validationAPI(t, tt.mut)
			req := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
			switch tt.token {
			case "":
				req.Header.Set("Authorization", "Bearer "+s.cfg.APIToken)
			case "-":
			default:
				req.Header.Set("Authorization", tt.token)
			}
			rec := httptest.NewRecorder()
			s.testHandler().ServeHTTP(rec, req)
			assert.Equal(t, tt.code, rec.Code, rec.Body.String())
			var body struct {
				Error apiError `json:"error"`
			}
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body), rec.Body.String())
			assert.Equal(t, tt.err, string(body.Error.Code))
			assert.Equal(t, tt.field, body.Error.Field)
			assert.NotEmpty(t, body.Error.Message)
			assert.NotContains(t, rec.Body.String(), "s3cr3t-value")
		})
	}
}

func TestAPILegacyKeyRefusedWithoutStoring(t *testing.T) {
	for name, body := range map[string]string{
		"api_key field":        `{"api_key":"0123456789abcdef0123456789abcdef","admin_user_id":42}`,
		"bare 32-hex client":   `{"client_id":"0123456789ABCDEF0123456789abcdef","admin_user_id":42}`,
		"32-hex, empty secret": `{"client_id":"0123456789abcdef0123456789abcdef","client_secret":"","admin_user_id":42}`,
	} {
		t.Run(name, func(t *testing.T) {
			s := validationAPI(t, nil) // no state store: storing would panic
			req := httptest.NewRequest("PUT", "/v1/tenants/acme/connections/greenhouse", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+s.cfg.APIToken)
			rec := httptest.NewRecorder()
			s.testHandler().ServeHTTP(rec, req)
			require.Equal(t, http.StatusUnprocessableEntity, rec.Code, rec.Body.String())
			var doc struct {
				State  string `json:"state"`
				Checks []struct{ Name, Status, Code, Message string }
			}
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &doc))
			assert.Equal(t, "error", doc.State)
			require.Len(t, doc.Checks, len(greenhouse.CheckNames))
			assert.Equal(t, "legacy_api_key", doc.Checks[0].Code)
			assert.Contains(t, doc.Checks[0].Message, "Harvest V3 (OAuth)")
			for _, c := range doc.Checks[1:] {
				assert.Equal(t, "skipped", c.Status)
			}
			assert.NotContains(t, rec.Body.String(), "0123456789abcdef0123456789abcdef", "the key is not echoed")
		})
	}
}

func TestConfigValidationReportsEverything(t *testing.T) {
	_, err := LoadConfig([]string{"-concurrency", "0", "-shards", "0"}, func(k string) string {
		return map[string]string{"COLLECTOR_USERS_INTERVAL": "soon", "COLLECTOR_ALLOW_INSECURE_ENDPOINTS": "true"}[k]
	})
	require.Error(t, err)
	msg := err.Error()
	for _, want := range []string{"COLLECTOR_USERS_INTERVAL", "api-token", "secret-keys", "concurrency 0", "shards 0", "allow-insecure-endpoints"} {
		assert.Contains(t, msg, want)
	}
}

func TestConfigMasksSecrets(t *testing.T) {
	cfg := DefaultConfig()
	cfg.APIToken = "very-secret-token-123"
	cfg.ClickHousePassword = "pw-456"
	cfg.SecretKeys = "k1:c2VjcmV0"
	m := cfg.Masked()
	assert.Equal(t, "***", m["api-token"])
	assert.Equal(t, "***", m["clickhouse-password"])
	assert.Equal(t, "***", m["secret-keys"])
	assert.Equal(t, ":8080", m["http-addr"])
}

// TestAPIRefusesDuplicateKeys: a key twice in one object, exactly or in another case (as
// encoding/json would match it to the same field), is a 400 naming the field, at any depth.
func TestAPIRefusesDuplicateKeys(t *testing.T) {
	const path = "/v1/tenants/acme/connections/greenhouse"
	tests := []struct{ name, body, field string }{
		{"exact", `{"client_id":"a-1","client_secret":"WRONG","client_secret":"s3cr3t-value","admin_user_id":42}`, "client_secret"},
		{"upper case", `{"client_secret":"WRONG","CLIENT_SECRET":"s3cr3t-value","client_id":"a-1","admin_user_id":42}`, "CLIENT_SECRET"},
		{"mixed case", `{"client_id":"a-1","Client_Id":"b-2","client_secret":"s3cr3t-value","admin_user_id":42}`, "Client_Id"},
		{"long s", `{"client_secret":"WRONG","client_\u017fecret":"s3cr3t-value","client_id":"a-1","admin_user_id":42}`, "client_\u017fecret"},
		{"nested", `{"client_id":"a-1","client_secret":"s3cr3t-value","admin_user_id":42,"settings":{"users_interval":"1h","USERS_INTERVAL":"2h"}}`, "settings.USERS_INTERVAL"},
		{"nested endpoints", `{"client_id":"a-1","client_secret":"s3cr3t-value","admin_user_id":42,"endpoints":{"auth":"https://auth.greenhouse.io","Auth":"https://evil.example"}}`, "endpoints.Auth"},
		{"unknown keys too", `{"client_id":"a-1","client_secret":"s3cr3t-value","admin_user_id":42,"x":1,"X":2}`, "X"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validationAPI(t, func(c *Config) { c.CheckTimeout = time.Second })
			req := httptest.NewRequest("PUT", path, strings.NewReader(tt.body))
			req.Header.Set("Authorization", "Bearer "+s.cfg.APIToken)
			rec := httptest.NewRecorder()
			s.testHandler().ServeHTTP(rec, req)
			require.Equal(t, http.StatusBadRequest, rec.Code, rec.Body.String())
			var body struct {
				Error apiError `json:"error"`
			}
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
			assert.Equal(t, codeDuplicateField, body.Error.Code)
			assert.Equal(t, tt.field, body.Error.Field)
			assert.NotContains(t, rec.Body.String(), "s3cr3t-value")
		})
	}
}

// TestAPIConnectRateLimit: with connects-per-minute, connect requests beyond it get 429 with
// Retry-After.
func TestAPIConnectRateLimit(t *testing.T) {
	s := validationAPI(t, func(c *Config) { c.ConnectsPerMinute = 2 })
	s.connects = rate.NewLimiter(rate.Limit(2.0/60), 2)
	codes := []int{}
	var last *httptest.ResponseRecorder
	for range 3 {
		req := httptest.NewRequest("PUT", "/v1/tenants/acme/connections/greenhouse", strings.NewReader(`{}`))
		req.Header.Set("Authorization", "Bearer "+s.cfg.APIToken)
		last = httptest.NewRecorder()
		s.testHandler().ServeHTTP(last, req)
		codes = append(codes, last.Code)
	}
	assert.Equal(t, []int{400, 400, 429}, codes)
	assert.Contains(t, last.Body.String(), "too_many_requests")
	assert.NotEmpty(t, last.Header().Get("Retry-After"))
}

// TestAPIEndpointHostsAllowed: an override outside allowed-endpoint-hosts is answered 422,
// before any request, with endpoint_not_allowed on the credentials check.
func TestAPIEndpointHostsAllowed(t *testing.T) {
	tests := []struct {
		name, hosts, url string
		refused          bool
	}{
		{"outside the default", "greenhouse.io", "https://harvest.example.com", true},
		{"look-alike suffix", "greenhouse.io", "https://evilgreenhouse.io", true},
		{"suffix as a label", "greenhouse.io", "https://greenhouse.io.evil.example", true},
		{"IP not listed", "greenhouse.io,203.0.113.7", "https://198.51.100.7", true},
		{"an IP is not a domain", "10.0.0.1", "https://10.0.0.1.nip.io", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validationAPI(t, func(c *Config) {
				c.AllowEndpointOverride = true
				c.AllowedEndpointHosts = tt.hosts
			})
			body := `{"client_id":"a-1","client_secret":"s3cr3t-value","admin_user_id":42,"endpoints":{"harvest":"` + tt.url + `"}}`
			req := httptest.NewRequest("PUT", "/v1/tenants/acme/connections/greenhouse", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+s.cfg.APIToken)
			rec := httptest.NewRecorder()
			s.testHandler().ServeHTTP(rec, req) // no state store: storing would panic
			require.Equal(t, http.StatusUnprocessableEntity, rec.Code, rec.Body.String())
			var doc struct {
				State  string
				Checks []struct{ Name, Status, Code, Message string }
			}
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &doc))
			assert.Equal(t, "error", doc.State)
			require.Len(t, doc.Checks, len(greenhouse.CheckNames))
			assert.Equal(t, "endpoint_not_allowed", doc.Checks[0].Code)
			assert.Contains(t, doc.Checks[0].Message, "endpoints.harvest")
		})
	}
	h, err := parseAllowedHosts("greenhouse.io, 10.0.0.1,EXAMPLE.org.")
	require.NoError(t, err)
	for host, want := range map[string]bool{
		"greenhouse.io": true, "harvest.greenhouse.io": true, "HARVEST.Greenhouse.IO.": true, "auditlog.us.greenhouse.io": true,
		"evilgreenhouse.io": false, "greenhouse.io.evil": false, "10.0.0.1": true, "::ffff:10.0.0.1": true, "10.0.0.2": false,
		"a.example.org": true, "example.com": false,
	} {
		assert.Equal(t, want, h.allows(host), host)
	}
	_, err = parseAllowedHosts("https://greenhouse.io")
	assert.Error(t, err)
}
