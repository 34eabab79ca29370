package collector

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseTokens(t *testing.T) {
	digest := sha256.Sum256([]byte("alerting-token-0123456789"))
	good := "# comment\n\ndashboard read,connect dashboard-token-0123456789\nalerting read sha256:" + hex.EncodeToString(digest[:]) + "\n"
	toks, err := parseTokens([]byte(good))
	require.NoError(t, err)
	require.Len(t, toks, 2)
	assert.Equal(t, "alerting", toks[0].name)
	assert.Equal(t, map[Scope]bool{ScopeRead: true, ScopeConnect: true}, toks[1].scopes)
	for name, bad := range map[string]string{
		"two fields":    "dashboard read\n",
		"unknown scope": "dashboard read,write dashboard-token-0123456789\n",
		"short token":   "dashboard read short\n",
		"name twice":    "a read token-aaaaaaaaaaaaaaaa\na read token-bbbbbbbbbbbbbbbb\n",
		"value twice":   "a read token-aaaaaaaaaaaaaaaa\nb read token-aaaaaaaaaaaaaaaa\n",
		"bad digest":    "a read sha256:abcd\n",
		"bad name":      "a/b read token-aaaaaaaaaaaaaaaa\n",
		"empty scope":   "a , token-aaaaaaaaaaaaaaaa\n",
	} {
		_, err := parseTokens([]byte(bad))
		assert.Error(t, err, name)
	}
}

// TestTokenScopes: each route needs its scope (403 naming it), api-token has every scope, and
// the tokens file is re-read when it changes, without a restart.
func TestTokenScopes(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens")
	require.NoError(t, os.WriteFile(file, []byte("reader read reader-token-0123456789\nconnector connect connector-token-0123456789\n"), 0o600))
	a := validationAPI(t, func(c *Config) { c.APITokensFile = file })
	var err error
	a.tokens, err = newTokenSet(a.cfg, zerolog.Nop())
	require.NoError(t, err)
	h := a.testHandler()
	do := func(method, path, token string) (int, apiError) {
		req := httptest.NewRequest(method, path, nil)
		if token != "" {
			req.Header.Set("Authorization", "bearer "+token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var body struct {
			Error apiError `json:"error"`
		}
		_ = json.Unmarshal(rec.Body.Bytes(), &body)
		return rec.Code, body.Error
	}
	// A bad request answered before any store is touched tells the token was accepted.
	readRoute, connectRoute := "/v1/tenants/a!/users", "/v1/tenants/a!/connections/greenhouse"
	code, e := do("GET", readRoute, "reader-token-0123456789")
	assert.Equal(t, 400, code)
	assert.Equal(t, codeInvalidTenantID, e.Code)
	code, e = do("GET", connectRoute, "reader-token-0123456789")
	assert.Equal(t, 403, code)
	assert.Equal(t, codeForbidden, e.Code)
	assert.Contains(t, e.Message, "connect scope")
	assert.Contains(t, e.Message, `"reader"`)
	code, e = do("GET", readRoute, "connector-token-0123456789")
	assert.Equal(t, 403, code)
	assert.Contains(t, e.Message, "read scope")
	code, _ = do("GET", "/metrics", "connector-token-0123456789")
	assert.Equal(t, 403, code)
	code, _ = do("GET", "/metrics", "reader-token-0123456789")
	assert.Equal(t, 200, code)
	for _, route := range []string{readRoute, connectRoute} {
		code, _ = do("GET", route, a.cfg.APIToken) // the old single token has every scope
		assert.Equal(t, 400, code, route)
	}
	code, e = do("GET", readRoute, "reader-token-01234567890")
	assert.Equal(t, 401, code)
	assert.Equal(t, codeUnauthorized, e.Code)
	code, _ = do("GET", readRoute, "")
	assert.Equal(t, 401, code)

	// Rotation: the file changes, the watcher reloads it.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.tokens.watch(ctx)
	require.NoError(t, os.WriteFile(file, []byte("reader read rotated-token-0123456789\n"), 0o600))
	require.Eventually(t, func() bool {
		c, _ := do("GET", readRoute, "rotated-token-0123456789")
		return c == 400
	}, 10*time.Second, 50*time.Millisecond)
	code, _ = do("GET", readRoute, "reader-token-0123456789")
	assert.Equal(t, 401, code, "the old token is gone")

	// A broken file is refused and the tokens in force stay.
	require.NoError(t, os.WriteFile(file, []byte("reader read\n"), 0o600))
	require.Error(t, a.tokens.Reload())
	code, _ = do("GET", readRoute, "rotated-token-0123456789")
	assert.Equal(t, 400, code)

	// A file may not reuse api-token's name.
	require.NoError(t, os.WriteFile(file, []byte("api-token read other-token-0123456789\n"), 0o600))
	require.Error(t, a.tokens.Reload())
}
