package events_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/events"
)

func randKey(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, events.KeySize)
	_, err := rand.Read(k)
	require.NoError(t, err)
	return k
}

func newSealer(t testing.TB) *events.Sealer {
	t.Helper()
	s, err := events.NewSealer("k1", map[string][]byte{"k1": randKey(t)})
	require.NoError(t, err)
	return s
}

func TestSealerRoundTrip(t *testing.T) {
	s := newSealer(t)
	for _, pt := range []string{"", "s3cr3t", strings.Repeat("long secret ", 100), "ünïcødé ✓"} {
		sealed, err := s.Seal(pt, "acme")
		require.NoError(t, err)
		assert.Equal(t, "k1", sealed.KeyID)
		if pt != "" {
			assert.False(t, bytes.Contains(sealed.Ciphertext, []byte(pt)))
		}
		got, err := s.Open(sealed, "acme")
		require.NoError(t, err)
		assert.Equal(t, pt, got)
		assert.False(t, s.NeedsRotation(sealed))
	}
	a, err := s.Seal("same", "acme")
	require.NoError(t, err)
	b, err := s.Seal("same", "acme")
	require.NoError(t, err)
	assert.NotEqual(t, a.Nonce, b.Nonce, "random nonce per seal")
	assert.NotEqual(t, a.Ciphertext, b.Ciphertext)
}

func TestSealerRejects(t *testing.T) {
	s := newSealer(t)
	sealed, err := s.Seal("s3cr3t", "acme")
	require.NoError(t, err)
	flip := func(b []byte, i int) []byte {
		c := bytes.Clone(b)
		c[i] ^= 1
		return c
	}
	tests := []struct {
		name    string
		v       events.Sealed
		aad     string
		wantErr error
	}{
		{"ciphertext bit flipped", events.Sealed{KeyID: "k1", Nonce: sealed.Nonce, Ciphertext: flip(sealed.Ciphertext, 0)}, "acme", events.ErrTampered},
		{"tag bit flipped", events.Sealed{KeyID: "k1", Nonce: sealed.Nonce, Ciphertext: flip(sealed.Ciphertext, len(sealed.Ciphertext)-1)}, "acme", events.ErrTampered},
		{"nonce bit flipped", events.Sealed{KeyID: "k1", Nonce: flip(sealed.Nonce, 3), Ciphertext: sealed.Ciphertext}, "acme", events.ErrTampered},
		{"truncated ciphertext", events.Sealed{KeyID: "k1", Nonce: sealed.Nonce, Ciphertext: sealed.Ciphertext[:4]}, "acme", events.ErrTampered},
		{"short nonce", events.Sealed{KeyID: "k1", Nonce: sealed.Nonce[:8], Ciphertext: sealed.Ciphertext}, "acme", events.ErrTampered},
		{"wrong aad (other tenant)", sealed, "globex", events.ErrTampered},
		{"empty aad", sealed, "", events.ErrTampered},
		{"unknown key id", events.Sealed{KeyID: "k9", Nonce: sealed.Nonce, Ciphertext: sealed.Ciphertext}, "acme", events.ErrUnknownKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Open(tt.v, tt.aad)
			require.ErrorIs(t, err, tt.wantErr)
			assert.Empty(t, got)
			assert.NotContains(t, err.Error(), "s3cr3t")
		})
	}
}

func TestSealerRotation(t *testing.T) {
	oldKey, newKey := randKey(t), randKey(t)
	before, err := events.NewSealer("2025", map[string][]byte{"2025": oldKey})
	require.NoError(t, err)
	sealed, err := before.Seal("s3cr3t", "acme")
	require.NoError(t, err)

	// The operator adds a new primary key and keeps the old one.
	spec := "2026:" + base64.StdEncoding.EncodeToString(newKey) + ",2025:" + base64.StdEncoding.EncodeToString(oldKey)
	primary, keys, err := events.ParseKeys(spec)
	require.NoError(t, err)
	require.Equal(t, "2026", primary)
	after, err := events.NewSealer(primary, keys)
	require.NoError(t, err)

	got, err := after.Open(sealed, "acme")
	require.NoError(t, err, "the old key still opens")
	assert.Equal(t, "s3cr3t", got)
	assert.True(t, after.NeedsRotation(sealed))

	resealed, err := after.Reseal(sealed, "acme")
	require.NoError(t, err)
	assert.Equal(t, "2026", resealed.KeyID)
	assert.False(t, after.NeedsRotation(resealed))
	got, err = after.Open(resealed, "acme")
	require.NoError(t, err)
	assert.Equal(t, "s3cr3t", got)

	// Once every value is resealed the old key can go; a value still under it then fails clearly.
	newOnly, err := events.NewSealer("2026", map[string][]byte{"2026": newKey})
	require.NoError(t, err)
	_, err = newOnly.Open(sealed, "acme")
	require.ErrorIs(t, err, events.ErrUnknownKey)
	assert.Contains(t, err.Error(), `"2025"`)
	got, err = newOnly.Open(resealed, "acme")
	require.NoError(t, err)
	assert.Equal(t, "s3cr3t", got)
}

func TestParseKeys(t *testing.T) {
	key := randKey(t)
	std := base64.StdEncoding.EncodeToString(key)
	short := base64.StdEncoding.EncodeToString(key[:16])
	tests := []struct {
		name        string
		spec        string
		wantPrimary string
		wantIDs     int
		wantErr     bool
	}{
		{name: "one key", spec: "k1:" + std, wantPrimary: "k1", wantIDs: 1},
		{name: "two keys, first primary", spec: "b:" + std + ", a:" + std, wantPrimary: "b", wantIDs: 2},
		{name: "raw url base64", spec: "k1:" + base64.RawURLEncoding.EncodeToString(key), wantPrimary: "k1", wantIDs: 1},
		{name: "empty", spec: "", wantErr: true},
		{name: "no colon", spec: std, wantErr: true},
		{name: "short key", spec: "k1:" + short, wantErr: true},
		{name: "not base64", spec: "k1:%%%not-base64%%%", wantErr: true},
		{name: "duplicate id", spec: "k1:" + std + ",k1:" + std, wantErr: true},
		{name: "bad id", spec: "k 1:" + std, wantErr: true},
		{name: "trailing comma", spec: "k1:" + std + ",", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			primary, keys, err := events.ParseKeys(tt.spec)
			if tt.wantErr {
				require.Error(t, err)
				assert.NotContains(t, err.Error(), std, "errors never echo key material")
				assert.NotContains(t, err.Error(), short)
				assert.NotContains(t, err.Error(), "not-base64")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.wantPrimary, primary)
			assert.Len(t, keys, tt.wantIDs)
			assert.Equal(t, key, keys[primary])
		})
	}
}

func TestNewSealerValidation(t *testing.T) {
	key := randKey(t)
	tests := []struct {
		name    string
		primary string
		keys    map[string][]byte
	}{
		{"no keys", "k1", nil},
		{"primary missing", "k2", map[string][]byte{"k1": key}},
		{"short key", "k1", map[string][]byte{"k1": key[:31]}},
		{"long key", "k1", map[string][]byte{"k1": append(bytes.Clone(key), 0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := events.NewSealer(tt.primary, tt.keys)
			require.Error(t, err)
			assert.NotContains(t, err.Error(), string(key))
		})
	}
}

func TestSealerStringHidesKeys(t *testing.T) {
	key := randKey(t)
	s, err := events.NewSealer("k1", map[string][]byte{"k1": key})
	require.NoError(t, err)
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(format, s)
		assert.NotContains(t, out, string(key), format)
		assert.NotContains(t, out, base64.StdEncoding.EncodeToString(key), format)
		assert.NotContains(t, out, fmt.Sprint(key[:4]), format)
		assert.Contains(t, out, "k1")
	}
}
