package collector

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse"
	"github.com/seatwatch/greenhouse-collector/events"
	"github.com/seatwatch/greenhouse-collector/storage"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// TestDerivationGolden runs the derivation (diff, license type, usage, alerts) over a small
// scripted history and compares every event it produces with testdata/derivation/golden.json.
func TestDerivationGolden(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	old := t0.Add(-400 * day)
	at := func(d time.Duration) *time.Time { v := t0.Add(d); return &v }
	user := func(id int64, name string, deactivated, siteAdmin bool, email string) greenhouse.User {
		return greenhouse.User{ID: id, Name: name, PrimaryEmail: email, Deactivated: deactivated, SiteAdmin: siteAdmin,
			ServiceAccount: email == "", CreatedAt: old, UpdatedAt: old}
	}
	type step struct {
		now      time.Time
		listing  []greenhouse.User
		jobPerms map[int64]bool
		activity map[int64]*time.Time // last activity known before this step
	}
	steps := []step{
		{ // first sync: everyone appears; 2 never active, 3 stale, 1 and 4 active
			now: t0,
			listing: []greenhouse.User{
				user(1, "Ada Admin", false, true, "ada@acme.example"),
				user(2, "Bob Basic", false, false, "bob@acme.example"),
				user(3, "Cy Jobadmin", false, false, "cy@acme.example"),
				user(4, "Sync Bot", false, false, ""),
				user(5, "Dee Gone", true, false, "dee@acme.example"),
			},
			jobPerms: map[int64]bool{3: true},
			activity: map[int64]*time.Time{1: at(-time.Hour), 3: at(-40 * day), 4: at(-time.Hour)},
		},
		{ // a day later: 3 acts again, 2 is deactivated, 1 renamed, 6 created, 5 removed
			now: t0.Add(day),
			listing: []greenhouse.User{
				user(1, "Ada Lovelace", false, true, "ada@acme.example"),
				user(2, "Bob Basic", true, false, "bob@acme.example"),
				user(3, "Cy Jobadmin", false, false, "cy@acme.example"),
				user(4, "Sync Bot", false, false, ""),
				{ID: 6, Name: "Eve New", PrimaryEmail: "eve@acme.example", CreatedAt: t0.Add(day / 2), UpdatedAt: t0.Add(day / 2)},
			},
			jobPerms: map[int64]bool{3: true, 6: true},
			activity: map[int64]*time.Time{1: at(-time.Hour), 3: at(day - time.Hour), 4: at(-time.Hour)},
		},
		{ // the same listing again: nothing changes, nothing fires
			now: t0.Add(day + time.Hour),
			listing: []greenhouse.User{
				user(1, "Ada Lovelace", false, true, "ada@acme.example"),
				user(2, "Bob Basic", true, false, "bob@acme.example"),
				user(3, "Cy Jobadmin", false, false, "cy@acme.example"),
				user(4, "Sync Bot", false, false, ""),
				{ID: 6, Name: "Eve New", PrimaryEmail: "eve@acme.example", CreatedAt: t0.Add(day / 2), UpdatedAt: t0.Add(day / 2)},
			},
			jobPerms: map[int64]bool{3: true, 6: true},
			activity: map[int64]*time.Time{1: at(-time.Hour), 3: at(day - time.Hour), 4: at(-time.Hour)},
		},
	}

	type out struct {
		Step    int                  `json:"step"`
		Event   string               `json:"event"`
		ID      string               `json:"id"`
		Changed []string             `json:"changed,omitempty"`
		Record  events.LicenseRecord `json:"record"`
	}
	var got []out
	stored := map[int64]storage.UserRow{}
	var alerts alertState
	for i, st := range steps {
		params := storage.UsageParams{Now: st.now, InactiveAfterDays: 30, CoverageStart: t0.Add(-30 * day)}
		for id, a := range st.activity {
			if r, ok := stored[id]; ok {
				r.LastActivityAt = a
				stored[id] = r
			}
		}
		prev := map[int64]storage.UserRow{}
		for k, v := range stored {
			prev[k] = v
		}
		d := newUserDiff("acme", st.now, uint64(i+1), prev)
		var rows []storage.UserRow
		var changes []change
		for _, u := range st.listing {
			row, ch, ok := d.apply(u, st.jobPerms[u.ID])
			require.True(t, ok)
			if a, ok := st.activity[u.ID]; ok && row.LastActivityAt == nil {
				row.LastActivityAt = a
			}
			rows = append(rows, row)
			if ch != nil {
				ch.row = row
				changes = append(changes, *ch)
			}
		}
		for _, ch := range d.removed() {
			rows = append(rows, ch.row)
			changes = append(changes, ch)
		}
		for _, ch := range changes {
			rec := record(ch.row, params)
			got = append(got, out{Step: i, Event: "user.changed", ID: userEventID("acme", ch.row.UserID, ch.row.Revision), Changed: ch.changed, Record: rec})
			if ch.freed {
				got = append(got, out{Step: i, Event: AlertLicenseFreed, ID: alertEventID("acme", ch.row.UserID, AlertLicenseFreed, uint64(ch.row.Revision)), Record: rec})
			}
		}
		for _, row := range rows {
			stored[row.UserID] = row
			if tr, fire := alerts.evaluate(record(row, params)); fire {
				got = append(got, out{Step: i, Event: tr.alert, ID: alertEventID("acme", row.UserID, tr.alert, tr.seq), Record: tr.rec})
			}
		}
	}
	sort.SliceStable(got, func(a, b int) bool {
		if got[a].Step != got[b].Step {
			return got[a].Step < got[b].Step
		}
		return got[a].ID < got[b].ID
	})
	path := filepath.Join("..", "testdata", "derivation", "golden.json")
	gotJSON, err := json.MarshalIndent(got, "", "  ")
	require.NoError(t, err)
	if *update {
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, append(gotJSON, '\n'), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./collector -run TestDerivationGolden -update to create it")
	assert.JSONEq(t, string(want), string(gotJSON))

	// The properties the golden file must show, stated independently of it.
	find := func(step int, event string, id int64) bool {
		for _, o := range got {
			if o.Step == step && o.Event == event && o.Record.UserID == id {
				return true
			}
		}
		return false
	}
	assert.True(t, find(0, AlertLicenseInactive, 2), "bob never active: inactive")
	assert.True(t, find(0, AlertLicenseInactive, 3), "cy stale: inactive")
	assert.False(t, find(0, AlertLicenseInactive, 4), "service accounts hold no license")
	assert.False(t, find(0, AlertLicenseInactive, 5), "deactivated users hold no license")
	assert.True(t, find(1, AlertLicenseActive, 3), "cy acts again")
	assert.True(t, find(1, AlertLicenseFreed, 2), "bob deactivated: license freed")
	assert.False(t, find(1, AlertLicenseFreed, 5), "dee was already deactivated: no license freed on removal")
	assert.True(t, find(1, "user.changed", 5), "dee removed")
	assert.False(t, find(1, AlertLicenseInactive, 6), "eve is new: unknown, not inactive")
	for _, o := range got {
		assert.NotEqual(t, 2, o.Step, "a repeated listing fires nothing: %+v", o)
	}
}
