package collector

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/events"
)

// TestAPIDocExamples keeps docs/api.md true: every JSON example decodes strictly into the type
// the service reads or writes for it, and every route the handler serves is documented.
func TestAPIDocExamples(t *testing.T) {
	raw, err := os.ReadFile("../docs/api.md")
	require.NoError(t, err)
	doc := string(raw)
	block := regexp.MustCompile("(?s)```json ([a-z-]+)\n(.*?)```")
	targets := map[string]func() any{
		"connect-request": func() any { return &connectRequest{} },
		"connection":      func() any { return &events.Connection{} },
		"error":           func() any { return &map[string]apiError{} },
		"sync-accepted":   func() any { return &map[string]string{} },
		"connections":     func() any { return &struct{ Connections []events.Connection }{} },
		"licenses": func() any {
			return &struct {
				TenantID string                 `json:"tenant_id"`
				Usage    string                 `json:"usage"`
				Count    int                    `json:"count"`
				Licenses []events.LicenseRecord `json:"licenses"`
			}{}
		},
		"summary": func() any { return &Summary{} },
		"ready":   func() any { return &map[string]string{} },
	}
	seen := map[string]int{}
	for _, m := range block.FindAllStringSubmatch(doc, -1) {
		name, body := m[1], m[2]
		mk, ok := targets[name]
		if !assert.True(t, ok, "example %q has no type", name) {
			continue
		}
		seen[name]++
		dec := json.NewDecoder(bytes.NewReader([]byte(body)))
		dec.DisallowUnknownFields()
		assert.NoError(t, dec.Decode(mk()), "example %q does not match its type", name)
	}
	for name := range targets {
		assert.Positive(t, seen[name], "no example for %q", name)
	}
	for _, route := range []string{
		"PUT /v1/tenants/{tenant_id}/connections/greenhouse",
		"GET /v1/tenants/{tenant_id}/connections/greenhouse",
		"DELETE /v1/tenants/{tenant_id}/connections/greenhouse",
		"POST /v1/tenants/{tenant_id}/connections/greenhouse/sync",
		"GET /v1/connections",
		"GET /v1/tenants/{tenant_id}/licenses",
		"GET /v1/tenants/{tenant_id}/usage/summary",
		"GET /healthz", "GET /readyz", "GET /metrics",
	} {
		assert.True(t, strings.Contains(doc, route), "route %s is not documented", route)
	}
	// Every check code the service can produce is documented.
	for _, code := range []string{"invalid_client", "legacy_api_key", "admin_user_invalid", "admin_not_site_admin",
		"missing_scope", "audit_log_not_enabled", "audit_log_forbidden", "audit_log_not_found", "rate_limited", "greenhouse_unavailable", "unexpected_response"} {
		assert.Contains(t, doc, "`"+code+"`")
	}
}
