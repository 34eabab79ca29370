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
