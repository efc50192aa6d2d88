package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	peapodcluster "github.com/peapod/peapod/internal/cluster"
	"github.com/peapod/peapod/internal/leakcheck"
)

// multiNode is a cluster of several nodes on this machine, made by the
// real binary's `peapod cluster up` (each node a network namespace on an
// underlay bridge; node 1 runs the server, the others agents). The
// embedded *cluster talks to node 1's API: kubectl, must, apply, waitPod
// and eventually work as for a single-node cluster, and failures show
// every node's log tail.
type multiNode struct {
	*cluster
	name string
	// root is the --dir of `peapod cluster`.
	root string
}

// The shared multi-node cluster: slow to make, so the tests that only use
// it share one per test binary. TestMain takes it down (downShared) before
// the suite's leak check.
var shared struct {
	once sync.Once
	mn   *multiNode
	err  error
}

const sharedClusterName = "e2e"

// sharedMultiNode returns the test binary's 3-node cluster, made on first
// use, for t.
func sharedMultiNode(t *testing.T) *multiNode {
	t.Helper()
	requireRoot(t)
	shared.once.Do(func() {
		shared.mn, shared.err = upMultiNode(t, sharedClusterName, 3)
	})
	if shared.err != nil {
		t.Fatalf("shared multi-node cluster: %v", shared.err)
	}
	return shared.mn.with(t)
}

// downShared takes the shared cluster down, if one was made.
func downShared() error {
	if shared.mn == nil {
		return nil
	}
	// The binary was built when the cluster was made.
	out, err := exec.Command(binary, "cluster", "down", "--dir", shared.mn.root).CombinedOutput()
	if err != nil {
		return fmt.Errorf("peapod cluster down: %v\n%s", err, out)
	}
	return os.Remove(filepath.Dir(shared.mn.root))
}

// startMultiNode makes a cluster of its own for one test (extra flags go
// to `peapod cluster up`); cleanup takes it down and fails the test if
// that fails.
func startMultiNode(t *testing.T, name string, nodes int, extra ...string) *multiNode {
	t.Helper()
	requireRoot(t)
	mn, err := upMultiNode(t, name, nodes, extra...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if out, err := mn.run("down"); err != nil {
			t.Errorf("peapod cluster down: %v\n%s", err, out)
			return
		}
		if err := os.Remove(filepath.Dir(mn.root)); err != nil && !os.IsNotExist(err) {
			t.Errorf("after cluster down: %v", err)
		}
	})
	return mn
}

// withClusterLeaks adds to opts what `peapod cluster` makes: the pod
// cgroups of its nodes (peapod-cluster/...), the links inside its node
// namespaces (pp-<node>: eth0, the pod bridge, the pods' veths) and the
// host rules it adds.
func withClusterLeaks(opts leakcheck.Options) leakcheck.Options {
	opts.CgroupNames = append(append([]string(nil), opts.CgroupNames...), "peapod-cluster")
	opts.NetNSLinks = append(append([]string(nil), opts.NetNSLinks...), "pp-")
	opts.RuleMatches = append(append([]string(nil), opts.RuleMatches...), "peapod cluster")
	return opts
}

// upMultiNode runs `peapod cluster up` in a fresh directory and connects
// to the cluster it makes.
func upMultiNode(t testing.TB, name string, nodes int, extra ...string) (*multiNode, error) {
	parent, err := os.MkdirTemp("", "ppe2e-cluster")
	if err != nil {
		return nil, err
	}
	root := filepath.Join(parent, name)
	args := append([]string{"cluster", "up", "--name", name, "--dir", root, "--nodes", fmt.Sprint(nodes),
		"--image", busyboxTarball(t)}, extra...)
	out, err := exec.Command(peapodBinary(t), args...).CombinedOutput()
	if err != nil {
		os.Remove(parent) // up took apart what it made, root included
		return nil, fmt.Errorf("peapod %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	mn := &multiNode{name: name, root: root}
	st := mn.state(t)
	cfg, err := clientcmd.BuildConfigFromFlags("", st.Kubeconfig())
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = 200, 400
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	mn.cluster = &cluster{t: t, dir: st.Nodes[0].DataDir, kubeconfig: st.Kubeconfig(), client: client}
	mn.cluster.logTail = mn.logTails
	return mn, nil
}

// with returns the cluster for use by test t.
func (m *multiNode) with(t testing.TB) *multiNode {
	cp := *m
	cp.cluster = m.cluster.with(t)
	return &cp
}

// state reads the cluster's record as `peapod cluster` keeps it.
func (m *multiNode) state(t testing.TB) *peapodcluster.State {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(m.root, "cluster.json"))
	if err != nil {
		t.Fatalf("read cluster state: %v", err)
	}
	var st peapodcluster.State
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatalf("read cluster state: %v", err)
	}
	return &st
}

// node returns node i (from 1) as the cluster state records it.
func (m *multiNode) node(i int) peapodcluster.Node {
	m.t.Helper()
	for _, n := range m.state(m.t).Nodes {
		if n.Index == i {
			return n
		}
	}
	m.t.Fatalf("cluster %s has no node %d", m.name, i)
	return peapodcluster.Node{}
}

// run runs `peapod cluster ARGS --dir ROOT`.
func (m *multiNode) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// Flags go before a "--" that ends them (cluster exec).
	at := len(args)
	for i, a := range args {
		if a == "--" {
			at = i
			break
		}
	}
	full := append(append(append([]string{"cluster"}, args[:at]...), "--dir", m.root), args[at:]...)
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, peapodBinary(m.t), full...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return strings.TrimSpace(out.String()), err
}

// mustRun is run, failing the test on error.
func (m *multiNode) mustRun(args ...string) string {
	m.t.Helper()
	out, err := m.run(args...)
	if err != nil {
		m.t.Fatalf("peapod cluster %s: %v\n%s\n%s", strings.Join(args, " "), err, out, m.tail())
	}
	return out
}

// nodeExec runs a command in node i's network namespace (with the host's
// files): `peapod cluster exec NODE -- ARGV`.
func (m *multiNode) nodeExec(i int, argv ...string) (string, error) {
	return m.run(append([]string{"exec", m.node(i).Name, "--"}, argv...)...)
}

// waitNodesReady waits until every node of the cluster is Ready.
func (m *multiNode) waitNodesReady(timeout time.Duration) {
	m.t.Helper()
	want := m.state(m.t).Nodes
	m.eventually(timeout, func() error {
		nodes, err := m.client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return err
		}
		ready := map[string]bool{}
		for _, n := range nodes.Items {
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					ready[n.Name] = true
				}
			}
		}
		for _, n := range want {
			if !ready[n.Name] {
				return fmt.Errorf("node %s not Ready", n.Name)
			}
		}
		return nil
	})
}

// logTails is the end of every node's log, for failure messages.
func (m *multiNode) logTails() string {
	data, err := os.ReadFile(filepath.Join(m.root, "cluster.json"))
	if err != nil {
		return fmt.Sprintf("(no cluster state: %v)", err)
	}
	var st peapodcluster.State
	if err := json.Unmarshal(data, &st); err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, n := range append(append([]peapodcluster.Node(nil), st.Nodes...), st.Etcd...) {
		log, _ := os.ReadFile(n.Log)
		if len(log) > 3000 {
			log = log[len(log)-3000:]
		}
		fmt.Fprintf(&b, "--- %s (%s) log tail ---\n%s\n", n.Name, n.Role, log)
	}
	return b.String()
}
