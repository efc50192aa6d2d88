package apiserver

import (
	"context"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	etcd "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// TestEmbeddedEtcdOnlyForItsOwnCA: the server reaches its etcd with the
// etcd CA's client certificate; the cluster CA's certificates (the admin's,
// a node's) are refused, as is a client with none.
func TestEmbeddedEtcdOnlyForItsOwnCA(t *testing.T) {
	dir := tempDir(t)
	s, stop := startServer(t, dir)
	defer stop()
	pki := filepath.Join(dir, "pki")
	nodeCert, nodeKey, err := s.PKI().IssueClientCert("system:node:n1", []string{NodesGroup})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "node.crt"), nodeCert, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "node.key"), nodeKey, 0o600); err != nil {
		t.Fatal(err)
	}
	etcdCA := filepath.Join(pki, "etcd", "ca.crt")
	for _, tc := range []struct {
		name string
		tls  transport.TLSInfo
		ok   bool
	}{
		{"the API server's etcd client certificate", transport.TLSInfo{TrustedCAFile: etcdCA,
			CertFile: filepath.Join(pki, "apiserver-etcd-client.crt"), KeyFile: filepath.Join(pki, "apiserver-etcd-client.key")}, true},
		{"the admin's certificate (cluster CA)", transport.TLSInfo{TrustedCAFile: etcdCA,
			CertFile: filepath.Join(pki, "admin.crt"), KeyFile: filepath.Join(pki, "admin.key")}, false},
		{"a node's certificate (cluster CA)", transport.TLSInfo{TrustedCAFile: etcdCA,
			CertFile: filepath.Join(dir, "node.crt"), KeyFile: filepath.Join(dir, "node.key")}, false},
		{"no certificate", transport.TLSInfo{TrustedCAFile: etcdCA}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := tc.tls.ClientConfig()
			if err != nil {
				t.Fatal(err)
			}
			cli, err := etcd.New(etcd.Config{Endpoints: []string{s.embedded.Endpoint()}, TLS: cfg, DialTimeout: 3 * time.Second, Logger: zap.NewNop()})
			if err != nil {
				t.Fatal(err)
			}
			defer cli.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			resp, err := cli.Get(ctx, "/registry/namespaces/", etcd.WithPrefix(), etcd.WithCountOnly())
			if tc.ok && (err != nil || resp.Count == 0) {
				t.Fatalf("refused or empty: %v", err)
			}
			if !tc.ok && err == nil {
				t.Fatalf("read %d namespaces straight from etcd", resp.Count)
			}
		})
	}
	// The etcd CA is not the cluster CA.
	ca, _, err := loadPair(filepath.Join(pki, "etcd"), "ca")
	if err != nil {
		t.Fatal(err)
	}
	if ca.Equal(s.PKI().CA) {
		t.Fatal("etcd trusts the cluster CA")
	}
	srv, _, err := loadPair(filepath.Join(pki, "etcd"), "server")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Verify(x509.VerifyOptions{DNSName: "etcd.sock", Roots: poolOf(ca)}); err != nil {
		t.Fatalf("the etcd serving certificate: %v", err)
	}
}

func poolOf(c *x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c)
	return p
}
