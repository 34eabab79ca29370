package events

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAppendJSONMatchesMarshal: the publisher's hand-written encoder gives the bytes of
// json.Marshal, including strings that need escaping and times with zones and fractions.
func TestAppendJSONMatchesMarshal(t *testing.T) {
	tests := []struct {
		name    string
		id      string
		subject string
		at      time.Time
		data    any
	}{
		{"plain", "acme:user:1:1", "users/1", time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC), map[string]int{"a": 1}},
		{"fraction and zone", "acme:sync:r", "sync/r", time.Date(2026, 3, 2, 10, 0, 0, 123456789, time.FixedZone("X", -5*3600)), []string{"x"}},
		{"escapes", `acme:"q"\<&>é`, "users/ü\u2028", time.Date(1999, 12, 31, 23, 59, 59, 1000, time.UTC), "<b>&</b>"},
		{"nested data", "id", "s", time.Unix(0, 1).UTC(), UserChanged{Changed: []string{"created"}, Revision: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, err := NewEnvelope("acme", TypeUserChanged, tt.id, tt.subject, tt.at, tt.data)
			require.NoError(t, err)
			want, err := json.Marshal(env)
			require.NoError(t, err)
			got, err := env.appendJSON(nil)
			require.NoError(t, err)
			assert.Equal(t, string(want), string(got))
		})
	}
	for _, data := range []string{``, `{"a":`, `[1,2`, `"abc`, `x`, `{"a":1]`} {
		bad := Envelope{Data: json.RawMessage(data)}
		_, err := bad.appendJSON(nil)
		require.ErrorIs(t, err, ErrInvalidEnvelope, data)
	}
	for _, data := range []string{`{}`, `[]`, `""`, `null`, `true`, `false`, `-1.5e3`, `0`} {
		ok := Envelope{Data: json.RawMessage(data)}
		_, err := ok.appendJSON(nil)
		require.NoError(t, err, data)
	}
}

// TestUserChangedJSONMatchesMarshal: saas.user.changed's hand-written encoder gives the bytes
// of json.Marshal: strings that need escaping, times in zones and with fractions, nil and
// empty lists, omitted empty fields; and json.Marshal's error for a time it refuses.
func TestUserChangedJSONMatchesMarshal(t *testing.T) {
	at := time.Date(2026, 3, 2, 10, 0, 0, 123456789, time.FixedZone("X", -5*3600-30*60))
	old := time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []UserChanged{
		{},
		{User: LicenseRecord{TenantID: "acme", App: "greenhouse", UserID: 42, Name: "Zoë <b>&</b> \"q\"", Email: "a@x\u2028", Status: "active",
			Licensed: true, LicenseType: "basic", SiteAdmin: true, CreatedAt: at, UpdatedAt: at.UTC(), FirstSeenAt: old, LastSeenAt: time.Unix(1, 0),
			RemovedAt: &at, LastActivityAt: &old, LastActivityType: "action", Usage: "inactive", Reason: "no_activity_observed"},
			Changed: []string{"created", "status"}, Revision: 4294967295},
		{User: LicenseRecord{UserID: -9, Name: "\xff\xfe", ServiceAccount: true}, Changed: []string{}, Revision: 1},
		{User: LicenseRecord{CreatedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("late", 14*3600))}},
	} {
		want, err := json.Marshal(c)
		require.NoError(t, err)
		got, err := marshalData(c)
		require.NoError(t, err)
		assert.Equal(t, string(want), string(got))
		b, ok := c.appendJSON(nil)
		assert.True(t, ok)
		assert.Equal(t, string(want), string(b), "written by hand")
	}
	for _, bad := range []time.Time{
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("far", 24*3600)),
	} {
		c := UserChanged{User: LicenseRecord{LastActivityAt: &bad}}
		_, ok := c.appendJSON(nil)
		assert.False(t, ok, bad)
		_, want := json.Marshal(c)
		_, err := marshalData(c)
		require.Error(t, want)
		assert.Equal(t, want.Error(), err.Error())
	}
}

// FuzzUserChangedJSON: for any strings, numbers and times, the hand-written encoder gives
// json.Marshal's bytes, or leaves a time json.Marshal refuses to it.
func FuzzUserChangedJSON(f *testing.F) {
	f.Add("acme", "Zoë <b>", "a@x", "created", int64(7), int64(1767225600), int64(123), 3600, true, uint32(2))
	f.Fuzz(func(t *testing.T, tenant, name, email, changed string, id, sec, nsec int64, offset int, flag bool, rev uint32) {
		at := time.Unix(sec, nsec).In(time.FixedZone("z", offset))
		c := UserChanged{User: LicenseRecord{TenantID: tenant, App: "greenhouse", UserID: id, Name: name, Email: email, Status: changed,
			Licensed: flag, SiteAdmin: !flag, CreatedAt: at, UpdatedAt: at.UTC(), LastActivityAt: &at, LastActivityType: name, Reason: email},
			Changed: []string{changed, name}, Revision: rev}
		if flag {
			c.Changed, c.User.LastActivityAt = nil, nil
		}
		want, wantErr := json.Marshal(c)
		got, ok := c.appendJSON(nil)
		if ok != (wantErr == nil) {
			t.Fatalf("written: %v, json.Marshal: %v", ok, wantErr)
		}
		if ok && string(got) != string(want) {
			t.Fatalf("\n%s\njson.Marshal:\n%s", got, want)
		}
	})
}

func BenchmarkUserChangedJSON(b *testing.B) {
	at := time.Date(2026, 3, 2, 10, 0, 0, 123000000, time.UTC)
	c := UserChanged{User: LicenseRecord{TenantID: "acme", App: "greenhouse", UserID: 4000042, Name: "First42 Last", Email: "user42@acme.example",
		Status: "active", Licensed: true, LicenseType: "basic", CreatedAt: at, UpdatedAt: at, FirstSeenAt: at, LastSeenAt: at,
		LastActivityAt: &at, LastActivityType: "action", Usage: "active"}, Changed: []string{"created"}, Revision: 1}
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(c); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("written", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := marshalData(c); err != nil {
				b.Fatal(err)
			}
		}
	})
}
