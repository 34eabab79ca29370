package events_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/events"
)

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return &json.SyntaxError{Offset: dec.InputOffset()}
	}
	return nil
}

// TestExamples keeps testdata/events (quoted by docs/events.md) true to the Go types: every
// type has an example, every example decodes strictly into Envelope and the data type of its
// type, and encoding the decoded values gives the file back.
func TestExamples(t *testing.T) {
	dir := filepath.Join("..", "testdata", "events")
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	require.NoError(t, err)
	want := map[string]events.Type{}
	for _, typ := range events.Types() {
		want[events.ExampleName(typ)] = typ
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	assert.ElementsMatch(t, keys(want), names, "one example per type, nothing else")

	for _, typ := range events.Types() {
		name := events.ExampleName(typ)
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(dir, name))
			require.NoError(t, err)
			var env events.Envelope
			require.NoError(t, decodeStrict(raw, &env))
			assert.Equal(t, typ, env.Type)
			assert.Equal(t, events.SpecVersion, env.SpecVersion)
			assert.Equal(t, events.DataContentType, env.DataContentType)
			tenant := strings.TrimSuffix(strings.TrimPrefix(env.Source, "/tenants/"), "/greenhouse")
			env.Tenant = tenant
			require.NoError(t, env.Validate())
			assert.Equal(t, time.UTC, env.Time.Location())

			data := events.NewData(typ)
			require.NotNil(t, data)
			require.NoError(t, decodeStrict(env.Data, data))

			// Rebuild the envelope from the decoded values, as the collector would.
			rebuilt, err := events.NewEnvelope(tenant, env.Type, env.ID, env.Subject, env.Time, data)
			require.NoError(t, err)
			assert.JSONEq(t, string(raw), string(mustJSON(t, rebuilt)))
		})
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestNewEnvelope(t *testing.T) {
	at := time.Date(2026, 3, 2, 11, 15, 0, 0, time.FixedZone("CET", 3600))
	tests := []struct {
		name    string
		tenant  string
		typ     events.Type
		id      string
		subject string
		at      time.Time
		data    any
		wantErr bool
	}{
		{name: "valid", tenant: "acme", typ: events.TypeSyncCompleted, id: "acme:sync:r1", subject: "sync/r1", at: at, data: events.SyncSummary{RunID: "r1"}},
		{name: "tenant of 64 chars", tenant: strings.Repeat("a", 64), typ: events.TypeSyncCompleted, id: "x", subject: "s", at: at, data: 1},
		{name: "tenant with - and _", tenant: "Acme_Corp-2", typ: events.TypeSyncCompleted, id: "x", subject: "s", at: at, data: 1},
		{name: "empty tenant", tenant: "", typ: events.TypeSyncCompleted, id: "x", subject: "s", at: at, data: 1, wantErr: true},
		{name: "tenant of 65 chars", tenant: strings.Repeat("a", 65), typ: events.TypeSyncCompleted, id: "x", subject: "s", at: at, data: 1, wantErr: true},
		{name: "tenant with dot", tenant: "ac.me", typ: events.TypeSyncCompleted, id: "x", subject: "s", at: at, data: 1, wantErr: true},
		{name: "tenant with wildcard", tenant: "*", typ: events.TypeSyncCompleted, id: "x", subject: "s", at: at, data: 1, wantErr: true},
		{name: "empty id", tenant: "acme", typ: events.TypeSyncCompleted, id: "", subject: "s", at: at, data: 1, wantErr: true},
		{name: "id of 256 bytes", tenant: "acme", typ: events.TypeSyncCompleted, id: strings.Repeat("i", 256), subject: "s", at: at, data: 1},
		{name: "id of 257 bytes", tenant: "acme", typ: events.TypeSyncCompleted, id: strings.Repeat("i", 257), subject: "s", at: at, data: 1, wantErr: true},
		{name: "id with space", tenant: "acme", typ: events.TypeSyncCompleted, id: "a b", subject: "s", at: at, data: 1, wantErr: true},
		{name: "id with newline", tenant: "acme", typ: events.TypeSyncCompleted, id: "a\nb", subject: "s", at: at, data: 1, wantErr: true},
		{name: "id with tab", tenant: "acme", typ: events.TypeSyncCompleted, id: "a\tb", subject: "s", at: at, data: 1, wantErr: true},
		{name: "unknown type", tenant: "acme", typ: "saas.user.deleted", id: "x", subject: "s", at: at, data: 1, wantErr: true},
		{name: "empty subject", tenant: "acme", typ: events.TypeSyncCompleted, id: "x", subject: "", at: at, data: 1, wantErr: true},
		{name: "zero time", tenant: "acme", typ: events.TypeSyncCompleted, id: "x", subject: "s", data: 1, wantErr: true},
		{name: "unencodable data", tenant: "acme", typ: events.TypeSyncCompleted, id: "x", subject: "s", at: at, data: func() {}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, err := events.NewEnvelope(tt.tenant, tt.typ, tt.id, tt.subject, tt.at, tt.data)
			if tt.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, "1.0", env.SpecVersion)
			assert.Equal(t, "/tenants/"+tt.tenant+"/greenhouse", env.Source)
			assert.Equal(t, "application/json", env.DataContentType)
			assert.Equal(t, tt.tenant, env.Tenant)
			assert.True(t, env.Time.Equal(tt.at))
			assert.Equal(t, time.UTC, env.Time.Location())
			assert.JSONEq(t, string(mustJSON(t, tt.data)), string(env.Data))
			assert.NotContains(t, string(mustJSON(t, env)), tt.tenant+`"`+`,"`, "tenant is not a JSON field")
		})
	}
}

func TestSubject(t *testing.T) {
	tests := []struct {
		typ  events.Type
		want string
	}{
		{events.TypeUserChanged, "saas.acme.greenhouse.user"},
		{events.TypeUsageUpdated, "saas.acme.greenhouse.usage"},
		{events.TypeAlertLicenseInactive, "saas.acme.greenhouse.alert"},
		{events.TypeAlertLicenseActive, "saas.acme.greenhouse.alert"},
		{events.TypeAlertLicenseFreed, "saas.acme.greenhouse.alert"},
		{events.TypeConnectionChanged, "saas.acme.greenhouse.connection"},
		{events.TypeSyncCompleted, "saas.acme.greenhouse.sync"},
		{events.TypeActionRequested, "saas.acme.greenhouse.action"},
		{events.TypeActionCompleted, "saas.acme.greenhouse.action"},
	}
	for _, tt := range tests {
		t.Run(string(tt.typ), func(t *testing.T) {
			assert.Equal(t, tt.want, events.Subject("acme", tt.typ))
		})
	}
}

// TestDocsQuoteExamples: docs/events.md quotes every example file verbatim.
func TestDocsQuoteExamples(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "events.md"))
	require.NoError(t, err)
	for _, typ := range events.Types() {
		name := events.ExampleName(typ)
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("..", "testdata", "events", name))
			require.NoError(t, err)
			assert.Contains(t, string(doc), "```json\n"+strings.TrimRight(string(raw), "\n")+"\n```",
				"docs/events.md must quote testdata/events/%s verbatim", name)
		})
	}
}
