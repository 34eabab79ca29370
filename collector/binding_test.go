package collector

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/events"
)

// TestSecretBindingCoversEveryField: a secret sealed for a connection opens only with the same
// tenant, client id, admin user and endpoints; a change to any of them, and the binding of
// earlier versions (the tenant id alone), fail authentication.
func TestSecretBindingCoversEveryField(t *testing.T) {
	sealer, err := events.NewSealer("k1", map[string][]byte{"k1": bytes.Repeat([]byte{9}, 32)})
	require.NoError(t, err)
	doc := events.Connection{TenantID: "acme", ClientID: "client-1", AdminUserID: 7,
		Endpoints: &events.Endpoints{Auth: "https://auth.eu.greenhouse.io"}}
	sealed, err := sealer.Seal("the-secret", secretBinding("acme", doc))
	require.NoError(t, err)
	got, err := sealer.Open(sealed, secretBinding("acme", doc))
	require.NoError(t, err)
	assert.Equal(t, "the-secret", got)

	changes := map[string]func(d *events.Connection) string{
		"tenant":     func(d *events.Connection) string { return "globex" },
		"client id":  func(d *events.Connection) string { d.ClientID = "client-2"; return "acme" },
		"admin user": func(d *events.Connection) string { d.AdminUserID = 8; return "acme" },
		"auth endpoint": func(d *events.Connection) string {
			d.Endpoints = &events.Endpoints{Auth: "https://evil.example"}
			return "acme"
		},
		"harvest endpoint":  func(d *events.Connection) string { d.Endpoints.Harvest = "https://evil.example"; return "acme" },
		"audit endpoint":    func(d *events.Connection) string { d.Endpoints.AuditLog = "https://evil.example"; return "acme" },
		"endpoints removed": func(d *events.Connection) string { d.Endpoints = nil; return "acme" },
	}
	for name, change := range changes {
		t.Run(name, func(t *testing.T) {
			d := doc
			e := *doc.Endpoints
			d.Endpoints = &e
			tenant := change(&d)
			_, err := sealer.Open(sealed, secretBinding(tenant, d))
			assert.ErrorIs(t, err, events.ErrTampered)
		})
	}
	t.Run("sealed by an earlier version", func(t *testing.T) {
		old, err := sealer.Seal("the-secret", "acme") // the tenant id alone
		require.NoError(t, err)
		_, err = sealer.Open(old, secretBinding("acme", doc))
		assert.ErrorIs(t, err, events.ErrTampered)
	})
}
