package collector

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/events"
	"github.com/seatwatch/greenhouse-collector/storage"
)

// TestActionsNeedActScope: posting an action needs the act scope, reading actions the read
// scope; a token with the scope gets past the check (to the tenant id's 400).
func TestActionsNeedActScope(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens")
	require.NoError(t, os.WriteFile(file, []byte("reader read,connect reader-token-0123456789\nactor act actor-token-0123456789\n"), 0o600))
	a := validationAPI(t, func(c *Config) { c.APITokensFile = file })
	var err error
	a.tokens, err = newTokenSet(a.cfg, zerolog.Nop())
	require.NoError(t, err)
	h := a.testHandler()
	do := func(method, path, token string) (int, apiError) {
		req := httptest.NewRequest(method, path, strings.NewReader(`{}`))
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var body struct {
			Error apiError `json:"error"`
		}
		_ = json.Unmarshal(rec.Body.Bytes(), &body)
		return rec.Code, body.Error
	}
	code, e := do("POST", "/v1/tenants/a!/actions", "reader-token-0123456789")
	assert.Equal(t, 403, code)
	assert.Contains(t, e.Message, "act scope")
	code, e = do("POST", "/v1/tenants/a!/actions", "actor-token-0123456789")
	assert.Equal(t, 400, code)
	assert.Equal(t, codeInvalidTenantID, e.Code)
	code, _ = do("GET", "/v1/tenants/a!/actions", "actor-token-0123456789")
	assert.Equal(t, 403, code, "reading actions needs read")
	code, _ = do("GET", "/v1/tenants/a!/actions/0", "reader-token-0123456789")
	assert.Equal(t, 400, code)
}

// TestGuardsDecide: each guard on its own, force, and reactivations skipping the deactivation
// guards.
func TestGuardsDecide(t *testing.T) {
	now := mustTime("2026-03-02T10:00:00Z")
	recent, old, after := now.Add(-48*time.Hour), now.AddDate(0, 0, -90), now.Add(2*time.Second)
	row := func(last *time.Time, siteAdmin bool, status string) *storage.UserRow {
		return &storage.UserRow{UserID: 5, Status: status, SiteAdmin: siteAdmin, LastActivityAt: last}
	}
	req := &events.ActionRequested{Type: events.ActionDeactivate, RequestedAt: now.Add(-time.Second)}
	forced := &events.ActionRequested{Type: events.ActionDeactivate, RequestedAt: now.Add(-time.Second), Force: true}
	back := &events.ActionRequested{Type: events.ActionReactivate, RequestedAt: now.Add(-time.Second)}
	base := guardInput{req: req, userID: 5, admin: 1, inactiveAfter: 30 * 24 * time.Hour, now: now}
	tests := []struct {
		name string
		mut  func(in *guardInput)
		want string
	}{
		{"inactive basic", func(in *guardInput) { in.row = row(&old, false, "active") }, ""},
		{"never active", func(in *guardInput) { in.row = row(nil, false, "active") }, ""},
		{"admin user", func(in *guardInput) { in.row, in.userID, in.admin = row(&old, true, "active"), 1, 1 }, guardAdminUser},
		{"admin user, forced", func(in *guardInput) { in.row, in.userID, in.req = row(&old, false, "active"), 1, forced }, guardAdminUser},
		{"never seen", func(in *guardInput) {}, guardNotSeen},
		{"removed", func(in *guardInput) { in.row = row(&old, false, "removed") }, guardNotSeen},
		{"gone from Greenhouse", func(in *guardInput) { in.row, in.gone = row(&old, false, "active"), true }, guardNotSeen},
		{"site admin", func(in *guardInput) { in.row, in.siteAdmin = row(&old, true, "active"), true }, guardSiteAdmin},
		{"site admin, forced", func(in *guardInput) { in.row, in.siteAdmin, in.req = row(&old, true, "active"), true, forced }, ""},
		{"active since the request", func(in *guardInput) { in.row = row(&after, false, "active") }, guardActiveSinceRequest},
		{"active since the request, forced", func(in *guardInput) { in.row, in.req = row(&after, false, "active"), forced }, guardActiveSinceRequest},
		{"recently active", func(in *guardInput) { in.row = row(&recent, false, "active") }, guardRecentlyActive},
		{"recently active, forced", func(in *guardInput) { in.row, in.req = row(&recent, false, "active"), forced }, ""},
		{"exempt", func(in *guardInput) { in.row, in.exempt = row(&old, false, "active"), true }, guardExempt},
		{"exempt, forced", func(in *guardInput) { in.row, in.exempt, in.req = row(&old, false, "active"), true, forced }, guardExempt},
		{"exempt and recently active", func(in *guardInput) { in.row, in.exempt = row(&recent, false, "active"), true }, guardExempt},
		{"reactivating an exempt user", func(in *guardInput) { in.row, in.exempt, in.req = row(&old, false, "deactivated"), true, back }, ""},
		{"reactivating a recently active site admin", func(in *guardInput) {
			in.row, in.siteAdmin, in.req = row(&recent, true, "deactivated"), true, back
		}, ""},
		{"reactivating the admin user", func(in *guardInput) { in.row, in.userID, in.req = row(&old, false, "active"), 1, back }, guardAdminUser},
	}
	for _, tc := range tests {
		in := base
		tc.mut(&in)
		decisions, code := runGuards(in)
		assert.Equal(t, tc.want, code, tc.name)
		require.Len(t, decisions, len(guards), tc.name)
		if in.req.Type == events.ActionReactivate {
			assert.Equal(t, decisionSkip, decisions[2].Decision, "%s: site_admin is skipped", tc.name)
		}
	}
}

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}
