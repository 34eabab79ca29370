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
)

// validationService is a Service with no backends: enough for everything the API refuses
// before touching state.
func validationService(t *testing.T, mut func(*Config)) *Service {
	cfg := DefaultConfig()
	cfg.APIToken = "token-0123456789abcdef"
	cfg.SecretKeys = "k:AAAA"
	if mut != nil {
		mut(&cfg)
	}
	require.NoError(t, cfg.Validate())
	return &Service{cfg: cfg, metrics: newMetrics(), log: zerolog.Nop(), now: func() time.Time { return time.Now().UTC() }}
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
		{"array", "PUT", path, "", `[1,2]`, nil, 400, "invalid_field", ""},
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
			s := validationService(t, tt.mut)
			req := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
			switch tt.token {
			case "":
				req.Header.Set("Authorization", "Bearer "+s.cfg.APIToken)
			case "-":
			default:
				req.Header.Set("Authorization", tt.token)
			}
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, req)
			assert.Equal(t, tt.code, rec.Code, rec.Body.String())
			var body struct {
				Error apiError `json:"error"`
			}
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body), rec.Body.String())
			assert.Equal(t, tt.err, body.Error.Code)
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
			s := validationService(t, nil) // no state store: storing would panic
			req := httptest.NewRequest("PUT", "/v1/tenants/acme/connections/greenhouse", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+s.cfg.APIToken)
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, req)
			require.Equal(t, http.StatusUnprocessableEntity, rec.Code, rec.Body.String())
			var doc struct {
				State  string `json:"state"`
				Checks []struct{ Name, Status, Code, Message string }
			}
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &doc))
			assert.Equal(t, "error", doc.State)
			require.Len(t, doc.Checks, 5)
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
