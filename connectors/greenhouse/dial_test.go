package greenhouse_test

import (
	"context"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/connectors/greenhouse"
)

func TestCheckAddr(t *testing.T) {
	tests := []struct {
		addr  string
		class string // "" = allowed
	}{
		{"140.82.112.3", ""},
		{"2606:4700::6810:84e5", ""},
		{"127.0.0.1", "loopback"},
		{"127.8.9.10", "loopback"},
		{"::1", "loopback"},
		{"::ffff:127.0.0.1", "loopback"},
		{"10.0.0.1", "private"},
		{"172.16.5.4", "private"},
		{"192.168.1.1", "private"},
		{"fd00:ec2::254", "private"},
		{"fc00::1", "private"},
		{"::ffff:10.0.0.1", "private"},
		{"169.254.169.254", "link-local"},
		{"::ffff:169.254.169.254", "link-local"},
		{"fe80::1", "link-local"},
		{"fe80::1%eth0", "link-local"},
		{"224.0.0.1", "multicast"},
		{"239.255.255.250", "multicast"},
		{"ff02::1", "multicast"},
		{"ff05::2", "multicast"},
		{"0.0.0.0", "unspecified"},
		{"::", "unspecified"},
		{"255.255.255.255", "non-global"},
		{"100.64.0.1", "non-global"},
		{"100.127.255.254", "non-global"},
		{"0.1.2.3", "non-global"},
		{"192.0.0.8", "non-global"},
		{"192.0.2.1", "non-global"},
		{"198.18.0.1", "non-global"},
		{"203.0.113.9", "non-global"},
		{"240.0.0.1", "non-global"},
		{"64:ff9b::a00:1", "non-global"},
		{"2002:a00:1::1", "non-global"},
		{"2001:db8::1", "non-global"},
		{"::a00:1", "non-global"},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			err := greenhouse.CheckAddr(netip.MustParseAddr(tt.addr), false)
			if tt.class == "" {
				assert.NoError(t, err)
				return
			}
			var ae *greenhouse.AddressError
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, tt.class, ae.Class)
			assert.ErrorIs(t, err, greenhouse.ErrAddressNotAllowed)
		})
	}
	assert.NoError(t, greenhouse.CheckAddr(netip.MustParseAddr("127.0.0.1"), true), "the test-only allowance")
	assert.NoError(t, greenhouse.CheckAddr(netip.MustParseAddr("::1"), true), "the test-only allowance")
	assert.Error(t, greenhouse.CheckAddr(netip.MustParseAddr("10.0.0.1"), true), "the allowance is for loopback only")
	assert.Error(t, greenhouse.CheckAddr(netip.MustParseAddr("169.254.169.254"), true), "the allowance is for loopback only")
}

func TestNewRefusesPlainHTTP(t *testing.T) {
	cfg := greenhouse.Config{ClientID: "c", ClientSecret: testSecret, AdminUserID: 1, Endpoints: greenhouse.Endpoints{Auth: "http://auth.greenhouse.io"}}
	_, err := greenhouse.New(cfg)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "plain http")
	cfg.AllowInsecure = true
	_, err = greenhouse.New(cfg)
	assert.NoError(t, err)
}

// tlsTarget is an https server on loopback that counts the connections made to it (TCP
// accepts, whether or not a TLS handshake or a request follows).
type tlsTarget struct {
	srv   *httptest.Server
	conns atomic.Int64
	reqs  atomic.Int64
}

func newTLSTarget(t *testing.T, h http.HandlerFunc) *tlsTarget {
	t.Helper()
	tt := &tlsTarget{}
	tt.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tt.reqs.Add(1)
		h(w, r)
	}))
	tt.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			tt.conns.Add(1)
		}
	}
	tt.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes refused by the client
	tt.srv.StartTLS()
	t.Cleanup(tt.srv.Close)
	return tt
}

func (tt *tlsTarget) port() string {
	u, _ := url.Parse(tt.srv.URL)
	return u.Port()
}

func (tt *tlsTarget) roots() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(tt.srv.Certificate())
	return pool
}

// TestDefaultClientRefusesInternalAddresses points a client at https endpoints on every class
// of internal address, as an IP literal and as a name that resolves to loopback: the default
// client's dialer refuses each before connecting, and the https server on loopback sees no
// connection at all. With the test-only allowance, loopback is reached (positive control).
func TestDefaultClientRefusesInternalAddresses(t *testing.T) {
	target := newTLSTarget(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"access_token":"t","token_type":"Bearer","expires_in":3600}`))
	})
	port := target.port()
	hosts := []string{
		"127.0.0.1:" + port, "localhost:" + port, "[::1]:" + port, "[::ffff:127.0.0.1]:" + port,
		"10.0.0.1", "172.16.0.1", "192.168.0.1", "169.254.169.254", "[fd00:ec2::254]",
		"[fe80::1]", "100.64.0.1", "0.0.0.0:" + port, "224.0.0.1", "[::ffff:10.0.0.1]",
	}
	t.Run("refused", func(t *testing.T) {
		for _, host := range hosts {
			t.Run(host, func(t *testing.T) {
				t.Parallel()
				base := "https://" + host
				gc, err := greenhouse.New(greenhouse.Config{
					Endpoints: greenhouse.Endpoints{Auth: base, Harvest: base, AuditLog: base},
					ClientID:  "client-1", ClientSecret: testSecret, AdminUserID: 7,
					RootCAs: target.roots(), MaxRetries: 1,
				})
				require.NoError(t, err)
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				err = gc.ListUsers(ctx, greenhouse.UserQuery{}, noUsers(nil))
				require.Error(t, err)
				assert.ErrorIs(t, err, greenhouse.ErrAddressNotAllowed)
				assert.NotContains(t, err.Error(), testSecret)
			})
		}
	})
	t.Run("allowance", func(t *testing.T) {
		// "refused" returned when its parallel subtests had finished.
		assert.Zero(t, target.conns.Load(), "no connection reached the https server on loopback")
		for _, host := range []string{"127.0.0.1:" + port, "localhost:" + port} {
			base := "https://" + host
			gc, err := greenhouse.New(greenhouse.Config{
				Endpoints: greenhouse.Endpoints{Auth: base, Harvest: base, AuditLog: base},
				ClientID:  "client-1", ClientSecret: testSecret, AdminUserID: 7,
				RootCAs: target.roots(), UnsafeAllowLoopback: true, MaxRetries: 1,
			})
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err = gc.ListUsers(ctx, greenhouse.UserQuery{}, noUsers(nil))
			cancel()
			assert.NotErrorIs(t, err, greenhouse.ErrAddressNotAllowed, host)
		}
		assert.Positive(t, target.reqs.Load(), "the allowance reaches loopback")
	})
}

// TestRedirectToAnotherHostOverHTTPS: an https endpoint that redirects to another host (here
// another port of loopback, and an internal address) is not followed; the same host is.
func TestRedirectToAnotherHostOverHTTPS(t *testing.T) {
	other := newTLSTarget(t, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`[]`)) })
	var location atomic.Value
	var tokens atomic.Int64
	origin := newTLSTarget(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/token":
			tokens.Add(1)
			_, _ = w.Write([]byte(`{"access_token":"tok-1","token_type":"Bearer","expires_in":3600}`))
		case r.URL.Path == "/v3/users" && r.URL.Query().Get("moved") == "":
			http.Redirect(w, r, location.Load().(string), http.StatusTemporaryRedirect)
		default:
			_, _ = w.Write([]byte(`[{"id":1,"primary_email":"a@x.example"}]`))
		}
	})
	// httptest's servers share one certificate: origin's roots verify both.
	gc, err := greenhouse.New(greenhouse.Config{
		Endpoints: greenhouse.Endpoints{Auth: origin.srv.URL, Harvest: origin.srv.URL, AuditLog: origin.srv.URL},
		ClientID:  "client-1", ClientSecret: testSecret, AdminUserID: 7,
		RootCAs: origin.roots(), UnsafeAllowLoopback: true, MaxRetries: 1,
	})
	require.NoError(t, err)

	location.Store(origin.srv.URL + "/v3/users?moved=1")
	var n int
	require.NoError(t, gc.ListUsers(context.Background(), greenhouse.UserQuery{}, func(p []greenhouse.User) error { n += len(p); return nil }))
	assert.Equal(t, 1, n, "a same-host redirect over https is followed")

	for _, to := range []string{
		other.srv.URL + "/v3/users",
		strings.Replace(other.srv.URL, "127.0.0.1", "localhost", 1) + "/v3/users",
		"https://169.254.169.254/latest/meta-data/",
		strings.Replace(origin.srv.URL, "https:", "http:", 1) + "/v3/users?moved=1",
	} {
		location.Store(to)
		err := gc.ListUsers(context.Background(), greenhouse.UserQuery{}, noUsers(nil))
		assert.Equal(t, greenhouse.CodeUnexpectedResponse, greenhouse.CodeOf(err), to)
	}
	assert.Zero(t, other.conns.Load(), "no connection to the other host")
}
