package nodeserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"

	"github.com/peapod/peapod/internal/config"
	"github.com/peapod/peapod/internal/leakcheck"
	"github.com/peapod/peapod/internal/runtime"
)

// Kernel tests use their own bridge, pod CIDR and cgroup parent.
const (
	testBridge  = "ppns0"
	testPodCIDR = "10.215.0.0/24"
	testCgroup  = "peapod-nstest"
)

var leakOptions = leakcheck.Options{
	CgroupNames:  []string{testCgroup},
	ProcessNames: []string{"pause", "runc", "crun", "busybox", "sh", "sleep", "httpd", "cat"},
}

func TestMain(m *testing.M) {
	os.Exit(leakcheck.Suite(m, "nodeserver", leakOptions, func() {
		if fx != nil {
			fx.teardown()
		}
	}))
}

// requireRoot skips t without root, or fails it when PEAPOD_REQUIRE_ROOT=1.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("PEAPOD_REQUIRE_ROOT") == "1" {
		t.Fatal("kernel test needs root, and PEAPOD_REQUIRE_ROOT=1 forbids skipping it")
	}
	t.Skip("kernel test: needs root")
}

// testPod is the one pod the kernel tests share.
const testPod = `
apiVersion: v1
kind: Pod
metadata:
  name: streams
spec:
  volumes:
  - name: data
    emptyDir: {}
  containers:
  - name: web
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo hello from the pod > /www/index.html && exec httpd -f -p 8080 -h /www"]
  - name: shell
    image: busybox
    command: ["sh"]
    stdin: true
    tty: true
  - name: catter
    image: busybox
    command: ["sh", "-c", "cat; echo cat-done"]
    stdin: true
    stdinOnce: true
  - name: counter
    image: busybox
    command: ["sh", "-c", "n=$(cat /data/n 2>/dev/null || echo 0); echo $((n+1)) > /data/n; for i in $(seq 1 20); do echo run $n line $i; sleep 0.1; done"]
    volumeMounts:
    - name: data
      mountPath: /data
`

// fixture is a runtime with the test pod and a server in front of it.
type fixture struct {
	ctx       context.Context
	cancel    context.CancelFunc
	dir       string
	rt        *runtime.Runtime
	sandboxID string
	pod       *corev1.Pod
	base      string // https://127.0.0.1:port
	rest      *rest.Config
	client    *http.Client
	served    chan error
	started   time.Time
	pki       *testPKI
}

var (
	fx     *fixture
	fxErr  error
	fxOnce sync.Once
)

// env returns the shared fixture, built on first use.
func env(t testing.TB) *fixture {
	t.Helper()
	requireRoot(t)
	fxOnce.Do(func() { fx, fxErr = newFixture() })
	if fxErr != nil {
		t.Fatalf("set up: %v", fxErr)
	}
	return fx
}

func busyboxTarball() (string, error) {
	if p := os.Getenv("PEAPOD_BUSYBOX_TAR"); p != "" {
		return p, nil
	}
	out := filepath.Join(os.TempDir(), "peapod-test-busybox.tar")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	cmd := exec.Command("go", "run", "./hack/mkbusybox", "-o", out)
	cmd.Dir = "../../.."
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build busybox image: %v\n%s", err, b)
	}
	return out, nil
}

func newFixture() (_ *fixture, retErr error) {
	tarball, err := busyboxTarball()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "ppns")
	if err != nil {
		return nil, err
	}
	f := &fixture{dir: dir, started: time.Now()}
	f.ctx, f.cancel = context.WithTimeout(context.Background(), 10*time.Minute)
	defer func() {
		if retErr != nil {
			f.teardown()
		}
	}()
	if err := os.MkdirAll(filepath.Join(dir, "images"), 0o700); err != nil {
		return nil, err
	}
	if err := os.Symlink(tarball, filepath.Join(dir, "images", "busybox.tar")); err != nil {
		return nil, err
	}
	cfg := config.Defaults()
	cfg.DataDir = dir
	cfg.NodeName = "testnode"
	cfg.BridgeName = testBridge
	cfg.PodCIDR = testPodCIDR
	cfg.CgroupParent = testCgroup
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if f.rt, err = runtime.New(f.ctx, cfg, logger); err != nil {
		return nil, fmt.Errorf("new runtime: %w", err)
	}
	obj, _, err := scheme.Codecs.UniversalDeserializer().Decode([]byte(testPod), nil, nil)
	if err != nil {
		return nil, err
	}
	f.pod = obj.(*corev1.Pod)
	f.pod.Namespace = "default"
	f.pod.UID = types.UID(fmt.Sprintf("uid-%d", time.Now().UnixNano()))
	if f.sandboxID, err = f.rt.StartPod(f.ctx, f.pod, ""); err != nil {
		return nil, fmt.Errorf("start pod: %w", err)
	}

	pki, err := newTestPKI()
	if err != nil {
		return nil, err
	}
	f.pki = pki
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := New(f.rt, Options{Certificate: pki.server, ClientCAs: pki.pool, Logger: logger})
	f.served = make(chan error, 1)
	go func() { f.served <- srv.Serve(f.ctx, ln) }()
	f.base = "https://" + ln.Addr().String()
	f.rest = &rest.Config{Host: f.base, TLSClientConfig: rest.TLSClientConfig{CAData: pki.caPEM, CertData: pki.clientCertPEM, KeyData: pki.clientKeyPEM}}
	f.client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.pool, Certificates: []tls.Certificate{pki.client}}}}
	return f, nil
}

func (f *fixture) teardown() {
	defer os.RemoveAll(f.dir)
	if f.cancel != nil {
		f.cancel()
	}
	if f.served != nil {
		select {
		case err := <-f.served:
			if err != nil {
				fmt.Fprintln(os.Stderr, "serve:", err)
			}
		case <-time.After(10 * time.Second):
			fmt.Fprintln(os.Stderr, "server did not stop")
		}
	}
	if f.rt != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		sbs, _ := f.rt.ListSandboxes(ctx)
		for _, sb := range sbs {
			if err := f.rt.DeletePod(ctx, sb.ID, 0); err != nil {
				fmt.Fprintln(os.Stderr, "cleanup: delete pod:", err)
			}
		}
		if err := f.rt.Network().RemoveNodeNetwork(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "cleanup: remove node network:", err)
		}
	}
}

// container returns the current run of a container of the test pod.
func (f *fixture) container(t testing.TB, name string) *runtime.ContainerStatus {
	t.Helper()
	st, err := f.rt.SandboxStatus(f.ctx, f.sandboxID)
	if err != nil {
		t.Fatal(err)
	}
	runs := containerRuns([]*runtime.SandboxStatus{st}, name)
	if len(runs) == 0 {
		t.Fatalf("no container %q", name)
	}
	return runs[len(runs)-1]
}

type testPKI struct {
	pool                               *x509.CertPool
	caPEM, clientCertPEM, clientKeyPEM []byte
	server, client                     tls.Certificate
	untrustedClient                    tls.Certificate
	caCert                             *x509.Certificate
	caKey                              *ecdsa.PrivateKey
	serial                             int64
}

func newTestPKI() (*testPKI, error) {
	p := &testPKI{}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	p.caCert, _ = x509.ParseCertificate(der)
	p.caKey = caKey
	p.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	p.pool = x509.NewCertPool()
	p.pool.AddCert(p.caCert)
	p.serial = 1
	var sPEM, sKey []byte
	if sPEM, sKey, err = p.issue("node", x509.ExtKeyUsageServerAuth, p.caCert, p.caKey); err != nil {
		return nil, err
	}
	if p.server, err = tls.X509KeyPair(sPEM, sKey); err != nil {
		return nil, err
	}
	if p.clientCertPEM, p.clientKeyPEM, err = p.issue("kube-apiserver-kubelet-client", x509.ExtKeyUsageClientAuth, p.caCert, p.caKey); err != nil {
		return nil, err
	}
	if p.client, err = tls.X509KeyPair(p.clientCertPEM, p.clientKeyPEM); err != nil {
		return nil, err
	}
	// A client certificate from another, self-signed CA.
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherTmpl := *tmpl
	otherTmpl.Subject.CommonName = "other-ca"
	oder, err := x509.CreateCertificate(rand.Reader, &otherTmpl, &otherTmpl, &otherKey.PublicKey, otherKey)
	if err != nil {
		return nil, err
	}
	other, _ := x509.ParseCertificate(oder)
	uPEM, uKey, err := p.issue("intruder", x509.ExtKeyUsageClientAuth, other, otherKey)
	if err != nil {
		return nil, err
	}
	if p.untrustedClient, err = tls.X509KeyPair(uPEM, uKey); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *testPKI) issue(cn string, usage x509.ExtKeyUsage, ca *x509.Certificate, caKey *ecdsa.PrivateKey) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	p.serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(p.serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), nil
}

func writeEmpty(path string) error { return os.WriteFile(path, nil, 0o644) }
