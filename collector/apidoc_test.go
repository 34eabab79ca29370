package collector

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
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
		"policy-request":  func() any { return &events.Policy{} },
		"policy":          func() any { return &events.PolicyDocument{} },
		"connections":     func() any { return &connectionsPage{} },
		"licenses": func() any {
			return &struct {
				TenantID string                 `json:"tenant_id"`
				Usage    string                 `json:"usage"`
				Count    int                    `json:"count"`
				Licenses []events.LicenseRecord `json:"licenses"`
			}{}
		},
		"summary":        func() any { return &Summary{} },
		"ready":          func() any { return &map[string]string{} },
		"users-page":     func() any { return &UsersPage{} },
		"user":           func() any { return &UserDetail{} },
		"trends":         func() any { return &Trends{} },
		"sync-runs":      func() any { return &SyncRunsPage{} },
		"action-request": func() any { return &ActionRequest{} },
		"action":         func() any { return &ActionView{} },
		"actions":        func() any { return &ActionsPage{} },
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
	a := validationAPI(t, nil)
	_, routes := a.handler(metricsHandler(a.metrics))
	require.NotEmpty(t, routes)
	for _, route := range routes {
		assert.True(t, strings.Contains(doc, route.pattern), "route %s is not documented", route.pattern)
	}
	// Every code the service can answer with is documented: the connector's check codes, the
	// collector's own codes (code... constants) and every error code of the API handlers,
	// read from the source, so that a new code cannot go undocumented.
	codes := map[string]bool{}
	collect := func(file string, re *regexp.Regexp) {
		src, err := os.ReadFile(file)
		require.NoError(t, err)
		for _, m := range re.FindAllStringSubmatch(string(src), -1) {
			codes[m[1]] = true
		}
	}
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		collect(f, regexp.MustCompile(`Code: +"([a-z_]+)"`))
		collect(f, regexp.MustCompile(`(?m)^\s+code[A-Za-z]+ +(?:[a-zA-Z.]+ +)?= "([a-z_]+)"`))
	}
	collect("../connectors/greenhouse/errors.go", regexp.MustCompile(`(?m)^\s+Code[A-Za-z]+ +Code = "([a-z_]+)"`))
	for _, must := range []string{"invalid_client", "unauthorized", "duplicate_field", "sealed_secret_mismatch", "endpoint_not_allowed"} {
		require.True(t, codes[must], "the source scan finds %s", must)
	}
	for code := range codes {
		// `code` or `400 code`
		documented := regexp.MustCompile("`([0-9]{3} )?" + code + "`").MatchString(doc)
		assert.True(t, documented, "code %s is not in docs/api.md", code)
	}
}
