package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	etcd "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"sigs.k8s.io/yaml"

	"github.com/peapod/peapod/internal/storage/encryption"
)

// readSecret reads one key of a Secret through kubectl, decoded.
func (c *cluster) readSecret(name, key string) string {
	c.t.Helper()
	out := c.must("get", "secret", name, "-o", "jsonpath={.data."+key+"}")
	v, err := base64.StdEncoding.DecodeString(out)
	if err != nil {
		c.t.Fatalf("secret %s: %q: %v", name, out, err)
	}
	return string(v)
}

// writeEncryptionConfig writes an EncryptionConfiguration for Secrets.
func writeEncryptionConfig(t *testing.T, path string, providers ...encryption.ProviderConfiguration) {
	t.Helper()
	data, err := yaml.Marshal(encryption.EncryptionConfiguration{APIVersion: encryption.APIVersion, Kind: encryption.Kind,
		Resources: []encryption.ResourceConfiguration{{Resources: []string{"secrets"}, Providers: providers}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestEncryptionKeyRotationEndToEnd follows the rotation that
// docs/architecture.md documents, on a real server process with kubectl:
// a new key first (here through --encryption-provider-config, carrying the
// generated key second), restart, `kubectl get secrets -A -o json |
// kubectl replace -f -`, drop the old key, restart. Old data reads at
// every step; after the rewrite nothing is stored under the old key.
func TestEncryptionKeyRotationEndToEnd(t *testing.T) {
	c := startCluster(t)
	values := map[string]string{"a": randomValue(t, "secret"), "b": randomValue(t, "secret")}
	for name, v := range values {
		c.must("create", "secret", "generic", name, "--from-literal=v="+v)
	}
	readAll := func() {
		t.Helper()
		for name, v := range values {
			if got := c.readSecret(name, "v"); got != v {
				t.Fatalf("secret %s reads %q, want %q", name, got, v)
			}
		}
	}
	prefixes := func() map[string]string {
		t.Helper()
		out := map[string]string{}
		for key, raw := range storedSecrets(t, etcdClient(t, c.dir)) {
			out[key] = sealedBy(raw)
		}
		return out
	}
	for key, p := range prefixes() {
		if p != "k8s:enc:secretbox:v1:key1:" {
			t.Fatalf("%s stored under %q before the rotation", key, p)
		}
	}

	generated, err := os.ReadFile(filepath.Join(c.dir, "pki", "encryption-config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var gen encryption.EncryptionConfiguration
	if err := yaml.Unmarshal(generated, &gen); err != nil {
		t.Fatal(err)
	}
	oldKey := gen.Resources[0].Providers[0]
	if oldKey.Secretbox == nil {
		t.Fatalf("the generated configuration does not start with secretbox: %s", generated)
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		t.Fatal(err)
	}
	newKey := encryption.ProviderConfiguration{AESGCM: &encryption.KeysConfiguration{Keys: []encryption.Key{{Name: "key2", Secret: base64.StdEncoding.EncodeToString(secret)}}}}
	identity := encryption.ProviderConfiguration{Identity: &struct{}{}}
	cfgPath := filepath.Join(c.dir, "rotate.yaml")

	// 1. The new key first, the old one second; restart.
	writeEncryptionConfig(t, cfgPath, newKey, oldKey, identity)
	c.kill(syscall.SIGTERM)
	c.extraArgs = append(c.extraArgs, "--encryption-provider-config", cfgPath)
	c.start()
	readAll()
	values["c"] = randomValue(t, "secret")
	c.must("create", "secret", "generic", "c", "--from-literal=v="+values["c"])
	p := prefixes()
	if p["/registry/secrets/default/c"] != "k8s:enc:aesgcm:v1:key2:" || p["/registry/secrets/default/a"] != "k8s:enc:secretbox:v1:key1:" {
		t.Fatalf("after adding the new key: %v", p)
	}

	// 2. Rewrite every Secret.
	all := filepath.Join(c.dir, "secrets.json")
	if err := os.WriteFile(all, []byte(c.must("get", "secrets", "--all-namespaces", "-o", "json")), 0o600); err != nil {
		t.Fatal(err)
	}
	c.must("replace", "-f", all)
	for key, p := range prefixes() {
		if p != "k8s:enc:aesgcm:v1:key2:" {
			t.Fatalf("%s is still stored under %q after the rewrite", key, p)
		}
	}

	// 3. The old key dropped; restart.
	writeEncryptionConfig(t, cfgPath, newKey, identity)
	c.kill(syscall.SIGTERM)
	c.start()
	readAll()
	if out := c.must("get", "secrets", "--all-namespaces", "-o", "name"); !strings.Contains(out, "secret/a") || !strings.Contains(out, "secret/c") {
		t.Fatalf("list after the rotation: %s", out)
	}
	control := randomValue(t, "control")
	c.must("create", "configmap", "control", "--from-literal=k="+control)
	assertEtcdHides(t, c.dir, control, values["a"], values["b"], values["c"])
}

// testPKI is a CA with a serving certificate for 127.0.0.1 and a client
// certificate, for an external etcd.
type testPKI struct{ ca, serverCert, serverKey, clientCert, clientKey string }

func writeTestPKI(t *testing.T, dir string) testPKI {
	t.Helper()
	ca, caKey := writeTestCert(t, dir, "ca", &x509.Certificate{Subject: pkix.Name{CommonName: "test-etcd-ca"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}, nil, nil)
	writeTestCert(t, dir, "server", &x509.Certificate{Subject: pkix.Name{CommonName: "etcd"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames: []string{"localhost"}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, ca, caKey)
	writeTestCert(t, dir, "client", &x509.Certificate{Subject: pkix.Name{CommonName: "peapod"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, ca, caKey)
	p := func(n string) string { return filepath.Join(dir, n) }
	return testPKI{ca: p("ca.crt"), serverCert: p("server.crt"), serverKey: p("server.key"), clientCert: p("client.crt"), clientKey: p("client.key")}
}

func writeTestCert(t *testing.T, dir, name string, tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

const etcdBinary = "/usr/bin/etcd"

// startTLSEtcd runs one member of Debian's etcd that serves clients only
// over TLS with client certificates (as kubeadm's and k3s's etcd do);
// cleanup kills it and removes its data.
func startTLSEtcd(t *testing.T, dir string, p testPKI) string {
	t.Helper()
	if _, err := os.Stat(etcdBinary); err != nil {
		t.Fatalf("%s is missing (Debian package etcd-server; `make setup` installs it): %v", etcdBinary, err)
	}
	clientURL := "https://" + freeAddr(t)
	peerURL := "http://" + freeAddr(t)
	data := filepath.Join(dir, "etcd-data")
	logs := &lockedWriter{b: &bytes.Buffer{}}
	cmd := exec.Command(etcdBinary, "--name", "ext", "--data-dir", data,
		"--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "ext="+peerURL, "--initial-cluster-state", "new",
		"--cert-file", p.serverCert, "--key-file", p.serverKey, "--trusted-ca-file", p.ca, "--client-cert-auth")
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		os.RemoveAll(data)
		if t.Failed() {
			t.Logf("etcd log:\n%s", logs)
		}
	})
	cli := externalEtcdClient(t, clientURL, p.ca, p.clientCert, p.clientKey)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := cli.Get(ctx, "health")
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd not serving after 30s: %v\n%s", err, logs)
		}
		select {
		case <-done:
			t.Fatalf("etcd exited:\n%s", logs)
		case <-time.After(100 * time.Millisecond):
		}
	}
	return clientURL
}

func externalEtcdClient(t *testing.T, url, ca, cert, key string) *etcd.Client {
	t.Helper()
	cfg, err := transport.TLSInfo{TrustedCAFile: ca, CertFile: cert, KeyFile: key}.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	cli, err := etcd.New(etcd.Config{Endpoints: []string{url}, TLS: cfg, DialTimeout: 3 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// runServerToFailure runs `peapod server` (control plane only) with args
// and returns its output, failing the test unless it exits with an error.
func runServerToFailure(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dir := t.TempDir()
	cmd := exec.CommandContext(ctx, peapodBinary(t), append([]string{"server", "--data-dir", dir, "--listen", freeAddr(t), "--disable-agent"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("peapod server %v did not fail (%v):\n%s", args, err, out)
	}
	return string(out)
}

// TestExternalEtcdOverTLS: `peapod server --etcd-servers` with
// --etcd-cafile, --etcd-certfile and --etcd-keyfile, as kube-apiserver,
// against Debian's etcd requiring client certificates: the node runs,
// Secrets reach that etcd encrypted; without the client certificate, or
// with half of it, the server refuses to start and says why.
func TestExternalEtcdOverTLS(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	p := writeTestPKI(t, dir)
	url := startTLSEtcd(t, dir, p)

	out := runServerToFailure(t, "--etcd-servers", url, "--etcd-cafile", p.ca)
	if !strings.Contains(out, "connect etcd") {
		t.Fatalf("no client certificate: %s", out)
	}
	out = runServerToFailure(t, "--etcd-servers", url, "--etcd-cafile", p.ca, "--etcd-certfile", p.clientCert)
	if !strings.Contains(out, "--etcd-certfile and --etcd-keyfile go together") {
		t.Fatalf("a certificate without its key: %s", out)
	}

	c := startClusterWith(t, "--etcd-servers", url, "--etcd-cafile", p.ca, "--etcd-certfile", p.clientCert, "--etcd-keyfile", p.clientKey)
	value := randomValue(t, "secret")
	c.must("create", "secret", "generic", "ext", "--from-literal=v="+value)
	if got := c.readSecret("ext", "v"); got != value {
		t.Fatalf("read back %q", got)
	}
	c.must("run", "ext-pod", "--image=busybox", "--", "sleep", "3600")
	c.waitPod("default", "ext-pod", 120*time.Second, "Running", running)

	cli := externalEtcdClient(t, url, p.ca, p.clientCert, p.clientKey)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "/registry/secrets/default/ext")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("read the Secret from etcd: %v %v", resp, err)
	}
	stored := resp.Kvs[0].Value
	if !bytes.HasPrefix(stored, []byte("k8s:enc:secretbox:v1:key1:")) || bytes.Contains(stored, []byte(value)) {
		t.Fatalf("the Secret reached the external etcd as %q", stored[:min(len(stored), 40)])
	}
	// The member refuses a client without a certificate.
	noCert := externalEtcdClient(t, url, p.ca, "", "")
	nctx, ncancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer ncancel()
	if _, err := noCert.Get(nctx, "/registry/secrets/", etcd.WithPrefix()); err == nil {
		t.Fatal("the external etcd answered a client without a certificate")
	}
}

// sealedBy returns the "k8s:enc:<provider>:v1:<key>:" a stored value
// starts with, or "" for a value stored in the clear.
func sealedBy(raw []byte) string {
	if !bytes.HasPrefix(raw, []byte("k8s:enc:")) {
		return ""
	}
	colons := 0
	for i, b := range raw[:min(len(raw), 256)] {
		if b == ':' {
			if colons++; colons == 5 {
				return string(raw[:i+1])
			}
		}
	}
	return ""
}
