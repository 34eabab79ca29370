package collector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/connectors"
	"github.com/seatwatch/greenhouse-collector/events"
)

// stateAPI is a validationAPI with a connections bucket on an embedded NATS server (in
// process), and no ClickHouse: enough for the routes that read connections only.
func stateAPI(t *testing.T, mut func(*Config)) *api {
	t.Helper()
	s := validationAPI(t, mut)
	srv, err := events.StartEmbedded(events.EmbeddedConfig{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := events.Connect(ctx, srv.ClientURL(), events.InProcess(srv))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	bus, err := events.NewBus(ctx, nc, events.Config{})
	require.NoError(t, err)
	s.bus = bus
	s.conns = &connections{kv: events.BucketKV[storedConnection](bus, events.BucketConnections), now: s.now, log: s.log, retries: newOutboxRetries()}
	return s
}

func (s *api) putStored(t *testing.T, tenant, state string) {
	t.Helper()
	sc := storedConnection{Doc: events.Connection{TenantID: tenant, App: connectors.AppGreenhouse, State: state, ClientID: "c-" + tenant, AdminUserID: 1}, Generation: 1}
	if state != StateDisconnected {
		sc.Secret = &events.Sealed{KeyID: "k", Nonce: []byte("n"), Ciphertext: []byte("c")}
	}
	_, err := s.conns.kv.Put(context.Background(), connectionKey(tenant), sc)
	require.NoError(t, err)
}

func (s *api) serve(method, target, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.cfg.APIToken)
	rec := httptest.NewRecorder()
	s.testHandler().ServeHTTP(rec, req)
	return rec
}

// TestConnectionsPaged: GET /v1/connections answers pages of ?limit= connections in the
// needs-attention order, each with a next_cursor until the last.
func TestConnectionsPaged(t *testing.T) {
	s := stateAPI(t, nil)
	states := []string{StateConnected, StateError, StateDegraded, StateDisconnected}
	var want []string
	for i := range 23 {
		s.putStored(t, fmt.Sprintf("t%02d", i), states[i%4])
	}
	for _, st := range []string{StateError, StateDegraded, StateDisconnected, StateConnected} {
		for i := range 23 {
			if states[i%4] == st {
				want = append(want, fmt.Sprintf("t%02d", i))
			}
		}
	}

	var got []string
	target := "/v1/connections?limit=5"
	pages := 0
	for {
		rec := s.serve("GET", target, "")
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		var page struct {
			Connections []events.Connection `json:"connections"`
			NextCursor  *string             `json:"next_cursor"`
		}
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &page))
		pages++
		for _, c := range page.Connections {
			got = append(got, c.TenantID)
		}
		if page.NextCursor == nil {
			break
		}
		require.Len(t, page.Connections, 5)
		target = "/v1/connections?limit=5&cursor=" + *page.NextCursor
	}
	assert.Equal(t, want, got, "every connection once, those needing attention first")
	assert.Equal(t, 5, pages)

	rec := s.serve("GET", "/v1/connections", "")
	require.Equal(t, http.StatusOK, rec.Code)
	assert.NotContains(t, rec.Body.String(), "next_cursor", "23 fit the default page")
}

// TestTenantCap: with max-tenants, a connect of a tenant beyond the cap is refused before any
// request to Greenhouse; a tenant already connected may reconnect; disconnected tenants do
// not count.
func TestTenantCap(t *testing.T) {
	s := stateAPI(t, func(c *Config) {
		c.MaxTenants = 2
		c.AllowEndpointOverride = true
	})
	s.putStored(t, "one", StateConnected)
	s.putStored(t, "two", StateError)
	s.putStored(t, "gone", StateDisconnected)
	// An override outside the allowed hosts ends a connect that passed the cap with a 422
	// before any request.
	body := `{"client_id":"a-1","client_secret":"s3cr3t-value","admin_user_id":42,"endpoints":{"harvest":"https://harvest.example.com"}}`

	for tenant, want := range map[string]int{"three": http.StatusConflict, "gone": http.StatusConflict, "one": http.StatusUnprocessableEntity, "two": http.StatusUnprocessableEntity} {
		rec := s.serve("PUT", "/v1/tenants/"+tenant+"/connections/greenhouse", body)
		assert.Equal(t, want, rec.Code, "%s: %s", tenant, rec.Body.String())
		if want == http.StatusConflict {
			assert.Contains(t, rec.Body.String(), "tenant_limit_reached", tenant)
		}
	}
	_, _, err := s.conns.kv.Get(context.Background(), connectionKey("three"))
	assert.True(t, errors.Is(err, events.ErrNotFound), "nothing stored")
}
