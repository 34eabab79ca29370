package collector

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/events"
)

// testCA makes a self-signed CA and a server certificate for 127.0.0.1 signed by it; it
// writes the CA's PEM to a file and returns its path and the server's certificate.
func testCA(t *testing.T) (caFile string, serverCert tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "collector test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	ca, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "nats"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	require.NoError(t, err)
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600))
	return caFile, tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}
}

// startTLSServer starts a nats-server that requires TLS, configured further by mut.
func startTLSServer(t *testing.T, cert tls.Certificate, mut func(*server.Options)) *server.Server {
	t.Helper()
	opts := &server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true,
		TLS: true, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
	mut(opts)
	srv, err := server.NewServer(opts)
	require.NoError(t, err)
	go srv.Start()
	require.True(t, srv.ReadyForConnections(10*time.Second))
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	return srv
}

func tryConnect(url string, cfg Config) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	nc, err := events.Connect(ctx, url, append(natsOptions(cfg), nats.MaxReconnects(0), nats.RetryOnFailedConnect(false))...)
	if err != nil {
		return err
	}
	nc.Close()
	return nil
}

// TestExternalNATSWithTLSAndCredentials connects the way the collector connects to an external
// NATS (nats-url, nats-creds, nats-ca) to servers that require TLS and a user: a password in
// the URL, or a credentials file (JWT and nkey). Without the CA, or without the credentials,
// the connection is refused.
func TestExternalNATSWithTLSAndCredentials(t *testing.T) {
	caFile, cert := testCA(t)

	t.Run("user and password", func(t *testing.T) {
		srv := startTLSServer(t, cert, func(o *server.Options) {
			o.Users = []*server.User{{Username: "collector", Password: "pw-of-the-collector"}}
		})
		hostPort := srv.Addr().String()
		cfg := Config{NATSCA: caFile}
		assert.NoError(t, tryConnect("tls://collector:pw-of-the-collector@"+hostPort, cfg))
		assert.NoError(t, tryConnect("nats://collector:pw-of-the-collector@"+hostPort, cfg), "a server requiring TLS upgrades a nats:// URL")
		assert.Error(t, tryConnect("tls://collector:wrong@"+hostPort, cfg), "wrong password")
		assert.Error(t, tryConnect("tls://"+hostPort, cfg), "no user")
		assert.Error(t, tryConnect("tls://collector:pw-of-the-collector@"+hostPort, Config{}), "the server's certificate is not trusted without nats-ca")

		masked := Config{NATSURL: "tls://collector:pw-of-the-collector@" + hostPort + ",tls://u:p@other:4222"}.Masked()["nats-url"]
		assert.NotContains(t, masked, "pw-of-the-collector", "the start-up log line masks passwords in nats-url")
		assert.NotContains(t, masked, "u:p@")
	})

	t.Run("credentials file", func(t *testing.T) {
		okp, err := nkeys.CreateOperator()
		require.NoError(t, err)
		opub, _ := okp.PublicKey()
		oc := jwt.NewOperatorClaims(opub)
		akp, err := nkeys.CreateAccount()
		require.NoError(t, err)
		apub, _ := akp.PublicKey()
		ac := jwt.NewAccountClaims(apub)
		ajwt, err := ac.Encode(okp)
		require.NoError(t, err)
		ukp, err := nkeys.CreateUser()
		require.NoError(t, err)
		upub, _ := ukp.PublicKey()
		ujwt, err := jwt.NewUserClaims(upub).Encode(akp)
		require.NoError(t, err)
		useed, _ := ukp.Seed()
		creds, err := jwt.FormatUserConfig(ujwt, useed)
		require.NoError(t, err)
		credsFile := filepath.Join(t.TempDir(), "collector.creds")
		require.NoError(t, os.WriteFile(credsFile, creds, 0o600))

		resolver := &server.MemAccResolver{}
		require.NoError(t, resolver.Store(apub, ajwt))
		srv := startTLSServer(t, cert, func(o *server.Options) {
			o.TrustedOperators = []*jwt.OperatorClaims{oc}
			o.AccountResolver = resolver
		})
		url := "tls://" + srv.Addr().String()
		assert.NoError(t, tryConnect(url, Config{NATSCA: caFile, NATSCreds: credsFile}))
		err = tryConnect(url, Config{NATSCA: caFile})
		require.Error(t, err, "no credentials")
		assert.True(t, strings.Contains(strings.ToLower(err.Error()), "authorization"), err.Error())
	})
}
