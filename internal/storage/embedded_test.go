package storage

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	etcd "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// writeTestTLS writes an etcd CA, a serving certificate for the socket's
// name and a client certificate into dir/pki, as the API server's PKI
// does for a real server.
func writeTestTLS(t *testing.T, dir string) EmbeddedTLS {
	t.Helper()
	pki := filepath.Join(dir, "pki")
	if err := os.MkdirAll(pki, 0o700); err != nil {
		t.Fatal(err)
	}
	ca, caKey := testCert(t, pki, "ca", &x509.Certificate{Subject: pkix.Name{CommonName: "etcd-ca"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}, nil, nil)
	testCert(t, pki, "server", &x509.Certificate{Subject: pkix.Name{CommonName: "etcd"}, DNSNames: []string{EmbeddedSocketName, "localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, ca, caKey)
	testCert(t, pki, "client", &x509.Certificate{Subject: pkix.Name{CommonName: "apiserver"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, ca, caKey)
	p := func(n string) string { return filepath.Join(pki, n) }
	return EmbeddedTLS{CAFile: p("ca.crt"), ServerCertFile: p("server.crt"), ServerKeyFile: p("server.key"),
		ClientCertFile: p("client.crt"), ClientKeyFile: p("client.key")}
}

func testCert(t *testing.T, dir, name string, tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	kb, _ := x509.MarshalECPrivateKey(key)
	if err := os.WriteFile(filepath.Join(dir, name+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func TestEmbeddedRequiresTLS(t *testing.T) {
	dir := t.TempDir()
	full := writeTestTLS(t, dir)
	for _, tc := range []struct {
		field string
		tls   EmbeddedTLS
	}{
		{"CAFile", EmbeddedTLS{}},
		{"ServerKeyFile", EmbeddedTLS{CAFile: full.CAFile, ServerCertFile: full.ServerCertFile}},
		{"ClientKeyFile", EmbeddedTLS{CAFile: full.CAFile, ServerCertFile: full.ServerCertFile, ServerKeyFile: full.ServerKeyFile, ClientCertFile: full.ClientCertFile}},
	} {
		_, err := StartEmbedded(context.Background(), filepath.Join(dir, "etcd"), EmbeddedOptions{TLS: tc.tls})
		if err == nil || !strings.Contains(err.Error(), "TLS."+tc.field+" is required") {
			t.Fatalf("missing %s: %v", tc.field, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "etcd")); !os.IsNotExist(err) {
		t.Fatalf("a refused start left the etcd dir: %v", err)
	}
	long := filepath.Join(dir, strings.Repeat("d", 100))
	if _, err := StartEmbedded(context.Background(), long, EmbeddedOptions{TLS: full}); err == nil || !strings.Contains(err.Error(), "shorter --data-dir") {
		t.Fatalf("overlong socket path: %v", err)
	}
}

// TestEmbeddedListeners: one unix socket in a 0700 directory, no TCP port,
// no peer listener.
func TestEmbeddedListeners(t *testing.T) {
	e, dir := startEtcd(t)
	if len(e.etcd.Peers) != 0 {
		t.Fatalf("a single member listens for peers: %v", e.etcd.Peers[0].Addr())
	}
	if len(e.etcd.Clients) != 1 || e.etcd.Clients[0].Addr().Network() != "unix" {
		t.Fatalf("client listeners: %v", e.etcd.Clients)
	}
	if e.Socket() != filepath.Join(dir, EmbeddedSocketName) || e.etcd.Clients[0].Addr().String() != e.Socket() {
		t.Fatalf("socket %s, listener %s", e.Socket(), e.etcd.Clients[0].Addr())
	}
	if e.Endpoint() != "unixs://"+e.Socket() {
		t.Fatalf("endpoint %s", e.Endpoint())
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("etcd dir: %v %v", st.Mode(), err)
	}
}

// TestEmbeddedRefusesClientsWithoutCertificate: plain HTTP, TLS without a
// certificate and TLS with a certificate from another CA are all turned
// away; the etcd CA's client certificate gets in.
func TestEmbeddedRefusesClientsWithoutCertificate(t *testing.T) {
	e, dir := startEtcd(t)
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", e.Socket())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Plain HTTP: etcd's /version and /health answer nothing.
	plain := &http.Client{Transport: &http.Transport{DialContext: dial}, Timeout: 5 * time.Second}
	for _, path := range []string{"/version", "/health", "/v3/kv/range"} {
		resp, err := plain.Get("http://etcd" + path)
		if err == nil {
			body := bufio.NewReader(resp.Body)
			line, _ := body.ReadString('\n')
			resp.Body.Close()
			if resp.StatusCode < 400 {
				t.Fatalf("plain HTTP %s answered %d: %q", path, resp.StatusCode, line)
			}
		}
	}
	// Raw bytes that are not a TLS ClientHello get no etcd answer.
	conn, err := dial(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET /version HTTP/1.1\r\nHost: etcd\r\n\r\n")
	reply := make([]byte, 512)
	n, _ := conn.Read(reply)
	conn.Close()
	if strings.Contains(string(reply[:n]), "etcdserver") {
		t.Fatalf("plain HTTP got etcd's version: %q", reply[:n])
	}

	caPool, err := transport.TLSInfo{TrustedCAFile: filepath.Join(dir, "pki", "ca.crt")}.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	// TLS, server verified, no client certificate: the handshake fails.
	noCert := &tls.Config{RootCAs: caPool.RootCAs, ServerName: EmbeddedSocketName}
	if err := handshake(ctx, dial, noCert); err == nil {
		t.Fatal("TLS without a client certificate was accepted")
	}
	// A client certificate from another CA: refused too.
	other := writeTestTLS(t, t.TempDir())
	foreign, err := tls.LoadX509KeyPair(other.ClientCertFile, other.ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := handshake(ctx, dial, &tls.Config{RootCAs: caPool.RootCAs, ServerName: EmbeddedSocketName, Certificates: []tls.Certificate{foreign}}); err == nil {
		t.Fatal("a client certificate from another CA was accepted")
	}
	// etcd's own client, without and with a certificate.
	for _, tc := range []struct {
		name string
		tls  transport.TLSInfo
		ok   bool
	}{
		{"no certificate", transport.TLSInfo{TrustedCAFile: filepath.Join(dir, "pki", "ca.crt")}, false},
		{"foreign certificate", transport.TLSInfo{TrustedCAFile: filepath.Join(dir, "pki", "ca.crt"), CertFile: other.ClientCertFile, KeyFile: other.ClientKeyFile}, false},
		{"the etcd CA's client certificate", transport.TLSInfo{TrustedCAFile: filepath.Join(dir, "pki", "ca.crt"),
			CertFile: filepath.Join(dir, "pki", "client.crt"), KeyFile: filepath.Join(dir, "pki", "client.key")}, true},
	} {
		cfg, err := tc.tls.ClientConfig()
		if err != nil {
			t.Fatal(err)
		}
		cli, err := etcd.New(etcd.Config{Endpoints: []string{e.Endpoint()}, TLS: cfg, DialTimeout: 3 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		rctx, rcancel := context.WithTimeout(ctx, 3*time.Second)
		_, err = cli.Get(rctx, "/registry/", etcd.WithPrefix(), etcd.WithCountOnly())
		rcancel()
		cli.Close()
		if tc.ok != (err == nil) {
			t.Fatalf("%s: read error %v", tc.name, err)
		}
	}
}

func handshake(ctx context.Context, dial func(context.Context, string, string) (net.Conn, error), cfg *tls.Config) error {
	raw, err := dial(ctx, "", "")
	if err != nil {
		return err
	}
	conn := tls.Client(raw, cfg)
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if err := conn.HandshakeContext(ctx); err != nil {
		return err
	}
	// With TLS 1.3 the server's refusal of the client arrives after the
	// client's side of the handshake: read to see it.
	fmt.Fprintf(conn, "GET /version HTTP/1.1\r\nHost: etcd\r\n\r\n")
	_, err = conn.Read(make([]byte, 1))
	return err
}

// TestEmbeddedUpgradeFromPlainHTTP: a data dir written by an earlier
// peapod, whose embedded etcd listened on loopback TCP in plain HTTP with
// a peer port, starts under TLS with its data intact.
func TestEmbeddedUpgradeFromPlainHTTP(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	old := embed.NewConfig()
	old.Name = "peapod"
	old.Dir = filepath.Join(dir, "etcd", "data")
	ports := make([]int, 2)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	curl := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[0])}
	purl := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[1])}
	old.ListenClientUrls, old.AdvertiseClientUrls = []url.URL{curl}, []url.URL{curl}
	old.ListenPeerUrls, old.AdvertisePeerUrls = []url.URL{purl}, []url.URL{purl}
	old.InitialCluster = old.InitialClusterFromName(old.Name)
	old.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	oe, err := embed.StartEtcd(old)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-oe.Server.ReadyNotify():
	case <-time.After(60 * time.Second):
		t.Fatal("old-style etcd not ready")
	}
	cli, err := etcd.New(etcd.Config{Endpoints: []string{curl.String()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	put, err := cli.Put(ctx, "/registry/configmaps/default/before", "written over plain HTTP")
	if err != nil {
		t.Fatal(err)
	}
	cli.Close()
	oe.Close()
	<-oe.Server.StopNotify()

	e, err := StartEmbedded(ctx, filepath.Join(dir, "etcd"), EmbeddedOptions{TLS: writeTestTLS(t, dir)})
	if err != nil {
		t.Fatalf("start on the old data dir: %v", err)
	}
	defer e.Close()
	kv, err := e.Store().Get(ctx, "/registry/configmaps/default/before")
	if err != nil || string(kv.Value) != "written over plain HTTP" || kv.Revision != put.Header.Revision {
		t.Fatalf("after the upgrade: %+v %v", kv, err)
	}
	if _, err := e.Store().Create(ctx, "/registry/configmaps/default/after", []byte("v")); err != nil {
		t.Fatalf("write after the upgrade: %v", err)
	}
	if len(e.etcd.Peers) != 0 || e.etcd.Clients[0].Addr().Network() != "unix" {
		t.Fatal("after the upgrade etcd still listens on TCP")
	}
}
