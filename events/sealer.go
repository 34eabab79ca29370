package events

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// KeySize is the size of a sealing key: AES-256.
const KeySize = 32

// Sealer errors, for errors.Is.
var (
	// ErrUnknownKey: a sealed value names a key id the Sealer does not hold.
	ErrUnknownKey = errors.New("sealed with an unknown key id")
	// ErrTampered: authentication failed; the ciphertext, nonce or key id was altered, or the
	// aad differs from the one it was sealed with.
	ErrTampered = errors.New("sealed value failed authentication (tampered, or wrong aad)")
)

var keyIDRe = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// Sealed is a secret encrypted with AES-256-GCM under the key KeyID. It is safe to store and
// to log: it holds no plaintext.
type Sealed struct {
	KeyID      string `json:"key_id"`
	Nonce      []byte `json:"nonce"`
	Ciphertext []byte `json:"ciphertext"` // includes the GCM tag
}

// IsZero reports whether v holds nothing (no secret was sealed).
func (v Sealed) IsZero() bool { return v.KeyID == "" && len(v.Nonce) == 0 && len(v.Ciphertext) == 0 }

// Sealer seals and opens secrets with AES-256-GCM. New values are sealed under the primary
// key; values sealed under any key it holds can be opened, which is how keys rotate: add a new
// primary, keep the old key until NeedsRotation is false for every stored value, then drop it.
// A Sealer is safe for concurrent use; its String form never shows key material.
type Sealer struct {
	primary string
	aeads   map[string]cipher.AEAD
}

// NewSealer returns a Sealer with the given keys (each exactly 32 bytes, ids of
// [A-Za-z0-9_.-]) sealing under primaryKeyID, which must be one of them. Errors name key ids,
// never key bytes.
func NewSealer(primaryKeyID string, keys map[string][]byte) (*Sealer, error) {
	if len(keys) == 0 {
		return nil, errors.New("new sealer: no keys")
	}
	if _, ok := keys[primaryKeyID]; !ok {
		return nil, fmt.Errorf("new sealer: primary key id %q is not among the keys", primaryKeyID)
	}
	s := &Sealer{primary: primaryKeyID, aeads: make(map[string]cipher.AEAD, len(keys))}
	for id, key := range keys {
		if !keyIDRe.MatchString(id) {
			return nil, fmt.Errorf("new sealer: key id %q must be 1 to 64 characters of [A-Za-z0-9_.-]", id)
		}
		if len(key) != KeySize {
			return nil, fmt.Errorf("new sealer: key %q is %d bytes, want %d", id, len(key), KeySize)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("new sealer: key %q: %w", id, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("new sealer: key %q: %w", id, err)
		}
		s.aeads[id] = aead
	}
	return s, nil
}

// ParseKeys parses a key list "id1:base64key,id2:base64key" (standard or URL base64, padded or
// not; spaces around entries ignored). The first entry is the primary key. Errors name the
// entry's position and id, never its key material.
func ParseKeys(spec string) (primary string, keys map[string][]byte, err error) {
	keys = make(map[string][]byte)
	for i, entry := range strings.Split(spec, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			return "", nil, fmt.Errorf("parse keys: entry %d is empty", i+1)
		}
		id, b64, ok := strings.Cut(entry, ":")
		if !ok {
			return "", nil, fmt.Errorf("parse keys: entry %d is not of the form id:base64key", i+1)
		}
		id = strings.TrimSpace(id)
		if !keyIDRe.MatchString(id) {
			return "", nil, fmt.Errorf("parse keys: entry %d: key id must be 1 to 64 characters of [A-Za-z0-9_.-]", i+1)
		}
		if _, dup := keys[id]; dup {
			return "", nil, fmt.Errorf("parse keys: entry %d: duplicate key id %q", i+1, id)
		}
		key, ok := decodeBase64(strings.TrimSpace(b64))
		if !ok {
			return "", nil, fmt.Errorf("parse keys: key %q (entry %d) is not valid base64", id, i+1)
		}
		if len(key) != KeySize {
			return "", nil, fmt.Errorf("parse keys: key %q (entry %d) decodes to %d bytes, want %d", id, i+1, len(key), KeySize)
		}
		if i == 0 {
			primary = id
		}
		keys[id] = key
	}
	return primary, keys, nil
}

func decodeBase64(s string) ([]byte, bool) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, true
		}
	}
	return nil, false
}

// PrimaryKeyID returns the id of the key new values are sealed under.
func (s *Sealer) PrimaryKeyID() string { return s.primary }

// String describes the Sealer without key material.
func (s *Sealer) String() string {
	ids := make([]string, 0, len(s.aeads))
	for id := range s.aeads {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return fmt.Sprintf("Sealer{primary: %s, keys: [%s]}", s.primary, strings.Join(ids, " "))
}

// GoString is String, so that %#v shows no key material either.
func (s *Sealer) GoString() string { return s.String() }

// Seal encrypts plaintext under the primary key with a random nonce. aad (for example the
// tenant id) is authenticated but not stored: Open must be given the same aad, so a sealed
// value copied to another tenant does not open.
func (s *Sealer) Seal(plaintext string, aad string) (Sealed, error) {
	aead := s.aeads[s.primary]
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return Sealed{}, fmt.Errorf("seal: random nonce: %w", err)
	}
	ct := aead.Seal(nil, nonce, []byte(plaintext), additionalData(s.primary, aad))
	return Sealed{KeyID: s.primary, Nonce: nonce, Ciphertext: ct}, nil
}

// Open decrypts v with the key it names. It returns an error wrapping ErrUnknownKey when the
// Sealer does not hold that key, and one wrapping ErrTampered when authentication fails.
func (s *Sealer) Open(v Sealed, aad string) (string, error) {
	aead, ok := s.aeads[v.KeyID]
	if !ok {
		return "", fmt.Errorf("open sealed value: key id %q: %w", v.KeyID, ErrUnknownKey)
	}
	if len(v.Nonce) != aead.NonceSize() {
		return "", fmt.Errorf("open sealed value: nonce is %d bytes, want %d: %w", len(v.Nonce), aead.NonceSize(), ErrTampered)
	}
	pt, err := aead.Open(nil, v.Nonce, v.Ciphertext, additionalData(v.KeyID, aad))
	if err != nil {
		return "", fmt.Errorf("open sealed value: key id %q: %w", v.KeyID, ErrTampered)
	}
	return string(pt), nil
}

// NeedsRotation reports whether v is sealed under a key other than the primary.
func (s *Sealer) NeedsRotation(v Sealed) bool { return v.KeyID != s.primary }

// Reseal opens v and seals its plaintext again under the primary key (with a fresh nonce).
func (s *Sealer) Reseal(v Sealed, aad string) (Sealed, error) {
	pt, err := s.Open(v, aad)
	if err != nil {
		return Sealed{}, fmt.Errorf("reseal: %w", err)
	}
	out, err := s.Seal(pt, aad)
	if err != nil {
		return Sealed{}, fmt.Errorf("reseal: %w", err)
	}
	return out, nil
}

// additionalData binds the key id and the caller's aad; the length prefix keeps the two
// unambiguous.
func additionalData(keyID, aad string) []byte {
	b := make([]byte, 0, len(keyID)+len(aad)+24)
	b = append(b, "greenhouse-collector/v1:"...)
	b = append(b, byte(len(keyID)))
	b = append(b, keyID...)
	b = append(b, aad...)
	return b
}
