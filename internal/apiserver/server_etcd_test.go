package apiserver

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/peapod/peapod/internal/storage"
)

const etcdBinary = "/usr/bin/etcd"

// etcdMember is one process of a test cluster.
type etcdMember struct {
	name      string
	clientURL string
	peerURL   string
	cmd       *exec.Cmd
	done      chan struct{}
	log       *os.File
}

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// etcdTLS writes a CA, a server certificate for 127.0.0.1 and a client
// certificate into dir.
type etcdTLS struct{ ca, serverCert, serverKey, clientCert, clientKey string }

func writeEtcdTLS(t *testing.T, dir string) etcdTLS {
	t.Helper()
	ca, caKey, err := issue(dir, "etcd-ca", certSpec{cn: "etcd-ca", isCA: true, years: 1}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := issue(dir, "etcd-server", certSpec{cn: "etcd", sans: []string{"127.0.0.1", "localhost"}, server: true, client: true, years: 1}, ca, caKey); err != nil {
		t.Fatal(err)
	}
	if _, _, err := issue(dir, "etcd-client", certSpec{cn: "peapod-apiserver", client: true, years: 1}, ca, caKey); err != nil {
		t.Fatal(err)
	}
	p := func(n string) string { return filepath.Join(dir, n) }
	return etcdTLS{ca: p("etcd-ca.crt"), serverCert: p("etcd-server.crt"), serverKey: p("etcd-server.key"),
		clientCert: p("etcd-client.crt"), clientKey: p("etcd-client.key")}
}

// startEtcdCluster runs a three-member cluster of Debian's etcd on
// loopback; cleanup kills every member and removes the data dirs.
func startEtcdCluster(t *testing.T, dir string, tlsFiles *etcdTLS) []*etcdMember {
	t.Helper()
	ports := freePorts(t, 6)
	scheme := "http"
	if tlsFiles != nil {
		scheme = "https"
	}
	var members []*etcdMember
	var initial []string
	for i := 0; i < 3; i++ {
		m := &etcdMember{name: fmt.Sprintf("m%d", i),
			clientURL: fmt.Sprintf("%s://127.0.0.1:%d", scheme, ports[2*i]),
			peerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1])}
		members = append(members, m)
		initial = append(initial, m.name+"="+m.peerURL)
	}
	for _, m := range members {
		data := filepath.Join(dir, m.name)
		args := []string{"--name", m.name, "--data-dir", data,
			"--listen-client-urls", m.clientURL, "--advertise-client-urls", m.clientURL,
			"--listen-peer-urls", m.peerURL, "--initial-advertise-peer-urls", m.peerURL,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", "peapod-test", "--heartbeat-interval", "50", "--election-timeout", "500",
			"--logger", "zap", "--log-outputs", "stderr"}
		if tlsFiles != nil {
			args = append(args, "--cert-file", tlsFiles.serverCert, "--key-file", tlsFiles.serverKey,
				"--trusted-ca-file", tlsFiles.ca, "--client-cert-auth")
		}
		log, err := os.Create(filepath.Join(dir, m.name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		m.log = log
		m.cmd = exec.Command(etcdBinary, args...)
		m.cmd.Stdout, m.cmd.Stderr = log, log
		m.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := m.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		m.done = make(chan struct{})
		go func(m *etcdMember) { m.cmd.Wait(); close(m.done) }(m)
		t.Cleanup(func() {
			m.stop()
			log.Close()
			os.RemoveAll(data)
		})
	}
	return members
}

// stop kills the member and waits for it; idempotent.
func (m *etcdMember) stop() {
	select {
	case <-m.done:
		return
	default:
	}
	syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
	<-m.done
}

// requireEtcd fails the test when Debian's etcd, which the external-etcd
// tests run, is missing: `make setup` installs it (etcd-server).
func requireEtcd(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(etcdBinary); err != nil {
		t.Fatalf("%s is missing (Debian package etcd-server; `make setup` installs it): %v", etcdBinary, err)
	}
}

// TestExternalEtcdCluster runs the server on a three-member cluster of
// Debian's etcd, in plain HTTP and over TLS with client certificates
// (--etcd-cafile, --etcd-certfile, --etcd-keyfile), and loses the leader.
func TestExternalEtcdCluster(t *testing.T) {
	requireEtcd(t)
	for _, useTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", useTLS), func(t *testing.T) {
			dir := tempDir(t)
			var tlsFiles *etcdTLS
			if useTLS {
				f := writeEtcdTLS(t, dir)
				tlsFiles = &f
			}
			members := startEtcdCluster(t, dir, tlsFiles)
			var endpoints []string
			for _, m := range members {
				endpoints = append(endpoints, m.clientURL)
			}
			cfg := Config{DataDir: filepath.Join(dir, "server"), Listen: "127.0.0.1:0", EtcdServers: endpoints}
			if tlsFiles != nil {
				cfg.EtcdCAFile, cfg.EtcdCertFile, cfg.EtcdKeyFile = tlsFiles.ca, tlsFiles.clientCert, tlsFiles.clientKey
			}
			s, stop := startServerConfig(t, cfg, members)
			t.Cleanup(stop)
			admin, _ := clientFor(t, s.Kubeconfig())
			bg := context.Background()
			if useTLS {
				testExternalEtcdTLS(t, s, members, tlsFiles)
			}
			cm := func(name string) *corev1.ConfigMap {
				return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"k": name}}
			}
			for i := 0; i < 5; i++ {
				if _, err := admin.CoreV1().ConfigMaps("default").Create(bg, cm(fmt.Sprintf("before-%d", i)), metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			}

			// Stop the leader: the hardest member to lose.
			leader := leaderIndex(t, s, members)
			members[leader].stop()

			// The client may need one retry to move off the dead member;
			// after that every read and write must succeed.
			var lastErr error
			for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
				if _, lastErr = admin.CoreV1().ConfigMaps("default").Get(bg, "before-0", metav1.GetOptions{}); lastErr == nil {
					break
				}
			}
			if lastErr != nil {
				t.Fatalf("no read after losing a member: %v", lastErr)
			}
			for i := 0; i < 10; i++ {
				name := fmt.Sprintf("after-%d", i)
				if _, err := admin.CoreV1().ConfigMaps("default").Create(bg, cm(name), metav1.CreateOptions{}); err != nil {
					t.Fatalf("write with two of three members: %v", err)
				}
				got, err := admin.CoreV1().ConfigMaps("default").Get(bg, name, metav1.GetOptions{})
				if err != nil || got.Data["k"] != name {
					t.Fatalf("read back %s: %v %v", name, got, err)
				}
			}
			l, err := admin.CoreV1().ConfigMaps("default").List(bg, metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, c := range l.Items {
				if strings.HasPrefix(c.Name, "before-") || strings.HasPrefix(c.Name, "after-") {
					n++
				}
			}
			if n != 15 {
				t.Fatalf("listed %d of 15 configmaps", n)
			}
		})
	}
}

// startServerConfig runs a server with cfg on an external etcd cluster,
// retrying while the members elect a leader; on failure it logs their
// logs' tails.
func startServerConfig(t *testing.T, cfg Config, members []*etcdMember) (*Server, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var s *Server
	var err error
	for deadline := time.Now().Add(30 * time.Second); ; {
		if s, err = New(ctx, cfg); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		cancel()
		for _, m := range members {
			out, _ := os.ReadFile(m.log.Name())
			t.Logf("%s log:\n%s", m.name, tail(string(out), 2000))
		}
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}
	select {
	case <-s.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v", err)
	case <-time.After(time.Minute):
		stop()
		t.Fatal("server not ready")
	}
	return s, stop
}

// leaderIndex asks each member for its status and returns the leader's.
func leaderIndex(t *testing.T, s *Server, members []*etcdMember) int {
	t.Helper()
	cli := s.store.(*storage.Etcd).Client()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, m := range members {
		st, err := cli.Status(ctx, m.clientURL)
		if err != nil {
			t.Fatalf("status of %s: %v", m.name, err)
		}
		if st.Header.MemberId == st.Leader {
			return i
		}
	}
	t.Fatal("no leader")
	return -1
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// testExternalEtcdTLS: the members refuse a client without a certificate,
// the server's own connection works, and Secrets reach the external
// etcd encrypted.
func testExternalEtcdTLS(t *testing.T, s *Server, members []*etcdMember, tlsFiles *etcdTLS) {
	t.Helper()
	ctx := context.Background()
	noCert, err := storage.NewEtcd(ctx, storage.EtcdConfig{Endpoints: []string{members[0].clientURL}, CAFile: tlsFiles.ca, DialTimeout: 2 * time.Second})
	if err == nil {
		noCert.Close()
		t.Fatal("the TLS cluster accepted a client without a certificate")
	}
	admin, _ := clientFor(t, s.Kubeconfig())
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "external"}, StringData: map[string]string{"v": "external-etcd-secret"}}
	if _, err := admin.CoreV1().Secrets("default").Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kv, err := s.store.Get(ctx, "/registry/secrets/default/external")
	if err != nil {
		t.Fatal(err)
	}
	assertSealed(t, kv.Value, defaultPrefix, "external-etcd-secret")
	got, err := admin.CoreV1().Secrets("default").Get(ctx, "external", metav1.GetOptions{})
	if err != nil || string(got.Data["v"]) != "external-etcd-secret" {
		t.Fatalf("read back: %v %v", got, err)
	}
}
