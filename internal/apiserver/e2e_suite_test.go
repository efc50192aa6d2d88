package apiserver

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	etcd "go.etcd.io/etcd/client/v3"

	"github.com/peapod/peapod/internal/storage"
)

// serverStarter starts a fresh API server (empty storage) for one test of
// the kubectl suite; the returned func stops it.
type serverStarter func(t *testing.T) (*Server, func())

// kubectlSuite is the kubectl end-to-end suite: each test starts its own
// server through the backend's starter and expects empty storage.
var kubectlSuite = []struct {
	name string
	run  func(t *testing.T, start serverStarter)
}{
	{"Core", testEndToEndKubectl},
	{"Resources", testEndToEndKubectlResources},
	{"Token", testEndToEndKubectlToken},
}

// TestEndToEndKubectlSuite runs the same kubectl suite against each
// storage backend: the embedded etcd, and a three-member cluster of
// Debian's etcd on loopback (TLS with client certificates), started once
// and wiped between tests. On the cluster, the suite ends by stopping the
// leader and showing that kubectl reads, writes and watches still work.
func TestEndToEndKubectlSuite(t *testing.T) {
	if _, err := exec.LookPath("kubectl"); err != nil {
		t.Fatalf("kubectl is not on PATH: this suite drives the installed kubectl: %v", err)
	}
	t.Run("embedded", func(t *testing.T) {
		start := func(t *testing.T) (*Server, func()) { return startServer(t, tempDir(t)) }
		for _, tc := range kubectlSuite {
			t.Run(tc.name, func(t *testing.T) { tc.run(t, start) })
		}
	})
	t.Run("external-etcd-3", func(t *testing.T) {
		requireEtcd(t)
		dir := tempDir(t)
		tlsFiles := writeEtcdTLS(t, dir)
		members := startEtcdCluster(t, dir, &tlsFiles)
		var endpoints []string
		for _, m := range members {
			endpoints = append(endpoints, m.clientURL)
		}
		start := func(t *testing.T) (*Server, func()) {
			t.Helper()
			wipeEtcd(t, storage.EtcdConfig{Endpoints: endpoints, CAFile: tlsFiles.ca, CertFile: tlsFiles.clientCert, KeyFile: tlsFiles.clientKey})
			cfg := Config{DataDir: filepath.Join(tempDir(t), "server"), Listen: "127.0.0.1:0", BookmarkInterval: time.Second,
				EtcdServers: endpoints, EtcdCAFile: tlsFiles.ca, EtcdCertFile: tlsFiles.clientCert, EtcdKeyFile: tlsFiles.clientKey}
			return startServerConfig(t, cfg, members)
		}
		for _, tc := range kubectlSuite {
			t.Run(tc.name, func(t *testing.T) { tc.run(t, start) })
		}
		// Last: it leaves the cluster with two members.
		t.Run("LoseMember", func(t *testing.T) { testKubectlLosingMember(t, start, members) })
	})
}

// wipeEtcd deletes every key of the cluster, waiting for the members to
// elect a leader first.
func wipeEtcd(t *testing.T, cfg storage.EtcdConfig) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var st *storage.Etcd
	var err error
	for {
		if st, err = storage.NewEtcd(ctx, cfg); err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("connect etcd: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	defer st.Close()
	if _, err := st.Client().Delete(ctx, "\x00", etcd.WithFromKey()); err != nil {
		t.Fatalf("wipe etcd: %v", err)
	}
}

const loseMemberCM = `apiVersion: v1
kind: ConfigMap
metadata: {name: NAME}
data: {k: VALUE}
`

func configMapYAML(name, value string) string {
	return strings.NewReplacer("NAME", name, "VALUE", value).Replace(loseMemberCM)
}

// testKubectlLosingMember stops the cluster's leader under a running
// server: kubectl get, apply (create, update, no-op), delete and a watch
// started before the loss keep working.
func testKubectlLosingMember(t *testing.T, start serverStarter, members []*etcdMember) {
	s, stop := start(t)
	t.Cleanup(stop)
	kc := s.Kubeconfig()
	wantAll(t, "apply before", mustKubectl(t, kc, configMapYAML("before", "one"), "apply", "-f", "-"), "configmap/before created")

	// A watch running across the loss.
	wctx, wcancel := context.WithCancel(context.Background())
	watchCmd := exec.CommandContext(wctx, "kubectl", "--kubeconfig", kc, "get", "configmaps", "-w", "-o", "name")
	watchCmd.Env = append(os.Environ(), "HOME="+os.TempDir()+"/pp-kubectl-home")
	var mu sync.Mutex
	var watchOut strings.Builder
	w := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return watchOut.Write(p) })
	watchCmd.Stdout, watchCmd.Stderr = w, w
	if err := watchCmd.Start(); err != nil {
		t.Fatal(err)
	}
	watched := func() string { mu.Lock(); defer mu.Unlock(); return watchOut.String() }
	t.Cleanup(func() { wcancel(); watchCmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(watched(), "configmap/before"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("watch did not start: %s", watched())
		}
	}

	// Stop the leader: the hardest member to lose.
	leader := leaderIndex(t, s, members)
	members[leader].stop()
	t.Logf("stopped the leader %s", members[leader].name)

	// etcd's client may need one retry to move off the dead member.
	var out string
	var err error
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if out, err = kubectl(t, kc, "", "get", "configmap", "before", "-o", "jsonpath={.data.k}"); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || out != "one" {
		t.Fatalf("get after losing the leader: %v %q", err, out)
	}
	wantAll(t, "apply create", mustKubectl(t, kc, configMapYAML("after", "one"), "apply", "-f", "-"), "configmap/after created")
	wantAll(t, "apply update", mustKubectl(t, kc, configMapYAML("before", "two"), "apply", "-f", "-"), "configmap/before configured")
	wantAll(t, "apply no-op", mustKubectl(t, kc, configMapYAML("before", "two"), "apply", "-f", "-"), "configmap/before unchanged")
	if out := mustKubectl(t, kc, "", "get", "configmap", "before", "-o", "jsonpath={.data.k}"); out != "two" {
		t.Fatalf("read back: %q", out)
	}
	wantAll(t, "run", mustKubectl(t, kc, "", "run", "p", "--image=busybox"), "pod/p created")
	wantAll(t, "get pods", mustKubectl(t, kc, "", "get", "pods"), "NAME", "p", "Pending")
	wantAll(t, "get cm", mustKubectl(t, kc, "", "get", "configmaps"), "before", "after", "kube-root-ca.crt")
	wantAll(t, "delete", mustKubectl(t, kc, "", "delete", "configmap", "after"), `configmap "after" deleted`)
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(watched(), "configmap/after"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the watch started before the loss missed what came after:\n%s", watched())
		}
	}
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
