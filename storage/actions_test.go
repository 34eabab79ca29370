package storage_test

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/storage"
	"github.com/seatwatch/greenhouse-collector/storage/storagetest"
)

// TestActionOutcomesRoundTrip: outcomes are stored and read back by user id, a null last
// activity stays null, another action's and tenant's rows stay apart, and a row written again
// (a replay after a crash) replaces itself.
func TestActionOutcomesRoundTrip(t *testing.T) {
	t.Parallel()
	s := storagetest.NewStore(t)
	ctx := t.Context()
	base := storage.ActionRow{TenantID: "acme", App: "greenhouse", ActionID: "a1", Type: "deactivate", RequestedBy: "rule:inactive-90d",
		Reason: "inactive", RequestedAt: ts("2026-03-01 10:00:00"), DecidedAt: ts("2026-03-01 10:00:05"), Guards: `[]`}
	done := base
	done.UserID, done.Outcome, done.HTTPStatus, done.LicenseType, done.LastActivityAt = 7, "done", 204, "basic", ptr(ts("2025-11-02 08:00:00"))
	refused := base
	refused.UserID, refused.Outcome, refused.Code, refused.LicenseType, refused.Force = 3, "refused", "site_admin", "site_admin", true
	other := done
	other.TenantID = "globex"
	require.NoError(t, s.InsertActionOutcomes(ctx, []storage.ActionRow{done, refused, other}))
	require.NoError(t, s.InsertActionOutcomes(ctx, []storage.ActionRow{done}), "a replay")
	require.NoError(t, s.InsertActionOutcomes(ctx, nil))

	got, err := s.ActionOutcomes(ctx, "acme", "greenhouse", "a1")
	require.NoError(t, err)
	assert.Equal(t, []storage.ActionRow{refused, done}, got)
	assert.EqualValues(t, 4, scalar(t, s, "SELECT count() FROM "+table(s, "actions")), "rows are only inserted")
	none, err := s.ActionOutcomes(ctx, "acme", "greenhouse", "a2")
	require.NoError(t, err)
	assert.Empty(t, none)
}

// TestSchemaDocListsActionsColumns: docs/schema.md's table of actions names every column of
// the server's table with its type, in order, and nothing else.
func TestSchemaDocListsActionsColumns(t *testing.T) {
	t.Parallel()
	s := storagetest.NewStore(t)
	raw, err := os.ReadFile("../docs/schema.md")
	require.NoError(t, err)
	doc := string(raw)
	start := strings.Index(doc, "### actions\n")
	require.GreaterOrEqual(t, start, 0, "docs/schema.md has no actions section")
	section := doc[start:]
	section = section[:strings.Index(section, "\n### ")]
	var documented []string
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || strings.TrimSpace(cells[1]) == "column" || strings.HasPrefix(strings.TrimSpace(cells[1]), "---") {
			continue
		}
		for _, name := range strings.Split(cells[1], ",") {
			documented = append(documented, strings.TrimSpace(name)+" "+strings.TrimSpace(cells[2]))
		}
	}
	rows, err := s.Conn().Query(t.Context(), "SELECT name, type FROM system.columns WHERE database = ? AND table = 'actions'", s.Database())
	require.NoError(t, err)
	defer rows.Close()
	var server []string
	for rows.Next() {
		var name, typ string
		require.NoError(t, rows.Scan(&name, &typ))
		server = append(server, name+" "+typ)
	}
	require.NoError(t, rows.Err())
	assert.Equal(t, server, documented)
}
