package collector_test

import (
	"context"
	"encoding/base64"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// secretForms are the forms a secret is looked for in: as it is, base64 (standard and URL
// alphabets, padded or not: a JSON []byte carries the standard one) and URL-encoded.
func secretForms(secret string) []string {
	forms := []string{secret, url.QueryEscape(secret)}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		forms = append(forms, enc.EncodeToString([]byte(secret)))
	}
	return forms
}

// natsStoreText returns the bytes of every file of a NATS store directory: message blocks hold
// every revision of every KV key and every stream message until they are compacted, so a
// secret ever written to the state store, even superseded, is found here.
func natsStoreText(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	files := 0
	require.NoError(t, filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		b.Write(raw)
		b.WriteByte('\n')
		return nil
	}))
	require.Positive(t, files, "the NATS store %s has files", dir)
	return b.String()
}

// assertNoSecrets is the secrets scan: none of secrets, in any of its forms, is in the
// replica's log, in the API answers it gave (e.responses: every e.call and every
// watchStates poll), in extra (more answers or logs), in a message of the SAAS stream, in a
// KV value as the buckets hold it now, in any file of the NATS store (natsDir; "" means the
// embedded server's), or in a ClickHouse row. seen must be found in the answers, the KV
// values and the NATS store: the scan sees the data it scans.
func assertNoSecrets(t *testing.T, e *env, natsDir, seen string, secrets []string, extra ...string) {
	t.Helper()
	if natsDir == "" {
		natsDir = filepath.Join(e.cfg.DataDir, "nats")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stream strings.Builder
	for _, m := range streamMessages(t, e.app) {
		stream.Write(m.Data)
		stream.WriteByte('\n')
	}
	dump, err := e.app.Store.DumpText(ctx)
	require.NoError(t, err)
	answers := e.responses.String() + strings.Join(extra, "\n")
	kv := kvRaw(t, e.app)
	store := natsStoreText(t, natsDir)
	for where, text := range map[string]string{"API's answers": answers, "KV values": kv, "NATS store": store} {
		if !strings.Contains(text, seen) {
			t.Fatalf("the scan does not see %q in the %s (%d bytes): it would not see a secret either", seen, where, len(text))
		}
	}
	places := map[string]string{"log": e.logs.String(), "API answer or extra text": answers, "SAAS stream": stream.String(),
		"KV value": kv, "NATS store file": store, "ClickHouse": dump}
	for _, sec := range secrets {
		require.NotEmpty(t, sec)
		for _, form := range secretForms(sec) {
			for where, text := range places {
				if i := strings.Index(text, form); i >= 0 {
					t.Errorf("a secret (%d characters) in a %s, at byte %d of %d", len(sec), where, i, len(text))
				}
			}
		}
	}
}
