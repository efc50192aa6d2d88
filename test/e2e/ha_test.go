package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	etcd "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/peapod/peapod/internal/apiserver"
	peapodcluster "github.com/peapod/peapod/internal/cluster"
	"github.com/peapod/peapod/internal/leaderelect"
	"github.com/peapod/peapod/internal/runtime"
)

// haLeases are the Leases the servers elect the scheduler and the
// controllers with.
var haLeases = []string{leaderelect.SchedulerLease, leaderelect.ControllerManagerLease}

// TestNoSinglePointOfFailure: a three-member etcd, two servers on it and
// two agents, built by `peapod cluster up --servers 2 --external-etcd 3`.
// With an etcd member down the cluster keeps working; with the leading
// server killed -9 the other takes both Leases, schedules new pods and
// replaces a deleted one, the agents fail over (their Leases keep
// renewing, their Nodes stay Ready) and every pod keeps running; the
// killed server, restarted, follows. A third server with a PKI of its own
// is refused before it serves.
func TestNoSinglePointOfFailure(t *testing.T) {
	mn := startMultiNode(t, "ha", 4, "--servers", "2", "--external-etcd", "3",
		// Short elections keep the test short; the defaults are Kubernetes' 15s/10s/2s.
		"--server-arg=--leader-elect-lease-duration=6s", "--server-arg=--leader-elect-renew-deadline=4s",
		"--server-arg=--leader-elect-retry-period=1s")
	st := mn.state(t)
	ctx := context.Background()
	if len(st.Servers) != 2 || len(st.Etcd) != 3 {
		t.Fatalf("cluster: servers %v, etcd members %d", st.Servers, len(st.Etcd))
	}
	servers := map[string]*cluster{} // by node name: each server's own API
	for _, n := range st.Nodes[:2] {
		servers[n.Name] = mn.serverAPI(t, n)
	}
	mn.waitNodesReady(2 * time.Minute)

	t.Run("both servers serve one cluster; one leads", func(t *testing.T) {
		for name, s := range servers {
			nodes, err := s.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
			if err != nil || len(nodes.Items) != 4 {
				t.Fatalf("server %s: %v nodes, %v", name, len(nodes.Items), err)
			}
		}
		leader := leaseLeader(t, mn.cluster)
		if _, ok := servers[leader]; !ok {
			t.Fatalf("the leases are held by %q, not by a server", leader)
		}
		if got := kubernetesEndpoints(t, mn.cluster); !slices.Equal(got, []string{st.Nodes[0].Address, st.Nodes[1].Address}) {
			t.Errorf("kubernetes endpoints %v, want both servers", got)
		}
		// Each agent joined through the first server of its list, one each.
		for _, n := range st.Nodes[2:] {
			cfg, err := clientcmd.LoadFromFile(filepath.Join(n.DataDir, "node", apiserver.NodeKubeconfigFile))
			if err != nil {
				t.Fatal(err)
			}
			want := st.Servers[n.Index%2]
			if got := cfg.Clusters["peapod"].Server; got != want {
				t.Errorf("%s joined through %s, want %s", n.Name, got, want)
			}
		}
	})

	ns := mn.namespace("ha")
	t.Run("with an etcd member down, writes, scheduling and pods go on", func(t *testing.T) {
		mn := mn.with(t)
		member := etcdLeader(t, st)
		mn.mustRun("node", "stop", member, "--signal", "KILL")
		defer mn.mustRun("node", "start", member)
		mn.apply(fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: %s}
spec:
  replicas: 4
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: web}}}
      containers:
      - {name: web, image: busybox, command: ["httpd", "-f", "-p", "80"]}
`, ns))
		waitRunning(mn.cluster, ns, "app=web", 4, 3*time.Minute)
		// A write through one server is read through the other.
		a, b := servers[st.Nodes[0].Name], servers[st.Nodes[1].Name]
		if _, err := a.client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "note"}, Data: map[string]string{"k": "v"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if cm, err := b.client.CoreV1().ConfigMaps(ns).Get(ctx, "note", metav1.GetOptions{}); err != nil || cm.Data["k"] != "v" {
			t.Fatalf("read through the other server: %v %v", cm, err)
		}
	})

	t.Run("the leading server killed: the other takes over, agents fail over, pods keep running", func(t *testing.T) {
		mn := mn.with(t)
		leader := leaseLeader(t, mn.cluster)
		var survivor string
		for name := range servers {
			if name != leader {
				survivor = name
			}
		}
		s := servers[survivor].with(t)
		before := podsByName(t, s, ns)
		processes := nodeProcesses(t, st)
		killed := time.Now()
		mn.mustRun("node", "stop", leader, "--signal", "KILL")

		s.eventually(time.Minute, func() error {
			for _, lease := range haLeases {
				if got := holderOf(t, s, lease); leaderelect.Candidate(got) != survivor {
					return fmt.Errorf("lease %s held by %q, want %s", lease, got, survivor)
				}
			}
			return nil
		})
		// The agent that used the killed server says it moved.
		leaderURL, survivorURL := st.Servers[nodeIndex(st, leader)-1], st.Servers[nodeIndex(st, survivor)-1]
		for _, n := range st.Nodes[2:] {
			if st.Servers[n.Index%2] != leaderURL {
				continue
			}
			s.eventually(time.Minute, func() error {
				data, err := os.ReadFile(n.Log)
				if err != nil {
					return err
				}
				if !strings.Contains(string(data), fmt.Sprintf(`msg="API server switched" component=api-balancer from=%s to=%s`, leaderURL, survivorURL)) {
					return fmt.Errorf("agent %s has not switched from %s to %s", n.Name, leaderURL, survivorURL)
				}
				return nil
			})
		}
		// Every agent renews its Lease after the kill, through whichever
		// server it uses now, and its Node stays Ready.
		for _, n := range st.Nodes[2:] {
			s.eventually(time.Minute, func() error {
				l, err := s.client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, n.Name, metav1.GetOptions{})
				if err != nil {
					return err
				}
				if l.Spec.RenewTime == nil || !l.Spec.RenewTime.After(killed.Add(2*time.Second)) {
					return fmt.Errorf("node %s's Lease not renewed since the kill (%v)", n.Name, l.Spec.RenewTime)
				}
				return nil
			})
			if node, err := s.client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{}); err != nil || !nodeIsReady(node) {
				t.Errorf("node %s not Ready after the failover: %v", n.Name, err)
			}
		}
		// New pods are scheduled, on each agent (so each agent's watch of
		// its pods moved to the live server) ...
		for _, n := range st.Nodes[2:] {
			s.apply(fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: after-%d, namespace: %s}
spec:
  nodeSelector: {kubernetes.io/hostname: %s}
  terminationGracePeriodSeconds: 1
  containers: [{name: c, image: busybox, command: ["sleep", "3600"]}]
`, n.Index, ns, n.Name))
		}
		for _, n := range st.Nodes[2:] {
			s.waitPod(ns, fmt.Sprintf("after-%d", n.Index), 2*time.Minute, "Running", running)
		}
		// ... and a deleted pod of the ReplicaSet is replaced.
		var victim string
		for name, p := range before {
			if p.Spec.NodeName != leader {
				victim = name
				break
			}
		}
		if err := s.client.CoreV1().Pods(ns).Delete(ctx, victim, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		s.eventually(2*time.Minute, func() error {
			pods, err := s.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
			if err != nil {
				return err
			}
			fresh := 0
			for _, p := range pods.Items {
				if _, old := before[p.Name]; !old && running(&p) {
					fresh++
				}
			}
			if fresh != 1 {
				return fmt.Errorf("%d replacement pods Running, want 1", fresh)
			}
			return nil
		})
		// Every other pod ran throughout: the same containers, never
		// restarted, on every node, the killed server's own included.
		after := podsByName(t, s, ns)
		for name, p := range before {
			if name == victim {
				continue
			}
			q, ok := after[name]
			switch {
			case !ok:
				t.Errorf("pod %s is gone", name)
			case q.UID != p.UID || restarts(q) != restarts(p):
				t.Errorf("pod %s: uid %s→%s, restarts %d→%d", name, p.UID, q.UID, restarts(p), restarts(q))
			}
		}
		now := nodeProcesses(t, st)
		for pod, pid := range processes {
			if strings.HasSuffix(pod, "/"+victim) {
				continue
			}
			if now[pod] != pid {
				t.Errorf("pod %s: container pid %d → %d", pod, pid, now[pod])
			}
		}
		s.eventually(time.Minute, func() error {
			if got := kubernetesEndpoints(t, s); !slices.Equal(got, []string{mn.node(nodeIndex(st, survivor)).Address}) {
				return fmt.Errorf("kubernetes endpoints %v once the killed server's Lease expired, want only the survivor's", got)
			}
			return nil
		})

		// The killed server comes back as a follower: it sees the other
		// lead both elections, and the Leases stay the survivor's.
		log := mn.node(nodeIndex(st, leader)).Log
		logged, err := os.Stat(log)
		if err != nil {
			t.Fatal(err)
		}
		mn.mustRun("node", "start", leader)
		s.eventually(time.Minute, func() error {
			data, err := os.ReadFile(log)
			if err != nil {
				return err
			}
			since := string(data[logged.Size():])
			for _, component := range []string{"scheduler", "controllers"} {
				if !strings.Contains(since, `msg="another server leads" component=`+component) {
					return fmt.Errorf("the restarted server has not seen the other lead the %s yet", component)
				}
			}
			return nil
		})
		for _, lease := range haLeases {
			if got := holderOf(t, s, lease); leaderelect.Candidate(got) != survivor {
				t.Errorf("after the restart, lease %s is held by %q, want %s still", lease, got, survivor)
			}
		}
		s.eventually(time.Minute, func() error {
			if got := kubernetesEndpoints(t, s); len(got) != 2 {
				return fmt.Errorf("kubernetes endpoints %v, want both servers again", got)
			}
			return nil
		})
	})

	t.Run("a server with another PKI is refused", func(t *testing.T) {
		mn := mn.with(t)
		dir := t.TempDir()
		tlsFiles, _ := st.EtcdClientTLS()
		cmd := exec.Command(peapodBinary(t), "server", "--data-dir", dir, "--disable-agent", "--listen", "127.0.0.1:0",
			"--etcd-servers", strings.Join(st.EtcdEndpoints(), ","), "--etcd-cafile", tlsFiles.CAFile,
			"--etcd-certfile", tlsFiles.CertFile, "--etcd-keyfile", tlsFiles.KeyFile)
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatalf("a server with its own CA started:\n%s", out)
		}
		for _, want := range []string{"is not the CA of the cluster in etcd", "copy [ca.crt ca.key sa.key encryption-config.yaml]"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("refusal does not say %q:\n%s", want, out)
			}
		}
		// The cluster is unharmed.
		if _, err := mn.client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
			t.Fatal(err)
		}
	})
}

// serverAPI is a cluster handle on server node n's own API (its admin
// kubeconfig).
func (m *multiNode) serverAPI(t *testing.T, n peapodcluster.Node) *cluster {
	t.Helper()
	kubeconfig := filepath.Join(n.DataDir, "admin.kubeconfig")
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 200, 400
	cfg.Timeout = 20 * time.Second
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{t: t, dir: n.DataDir, kubeconfig: kubeconfig, client: client, logTail: m.logTails}
}

func nodeIndex(st *peapodcluster.State, name string) int {
	for _, n := range st.Nodes {
		if n.Name == name {
			return n.Index
		}
	}
	return 0
}

// holderOf is the holder identity of a Lease in kube-system.
func holderOf(t *testing.T, c *cluster, lease string) string {
	t.Helper()
	l, err := c.client.CoordinationV1().Leases(metav1.NamespaceSystem).Get(context.Background(), lease, metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// leaseLeader waits until one server holds both Leases and returns its
// node name.
func leaseLeader(t *testing.T, c *cluster) string {
	t.Helper()
	var leader string
	c.eventually(time.Minute, func() error {
		var holders []string
		for _, lease := range haLeases {
			holders = append(holders, leaderelect.Candidate(holderOf(t, c, lease)))
		}
		if holders[0] == "" || holders[0] != holders[1] {
			return fmt.Errorf("lease holders %v, want one server holding both", holders)
		}
		leader = holders[0]
		return nil
	})
	return leader
}

// kubernetesEndpoints are the addresses of the kubernetes Service's
// EndpointSlice, sorted.
func kubernetesEndpoints(t *testing.T, c *cluster) []string {
	t.Helper()
	slice, err := c.client.DiscoveryV1().EndpointSlices(metav1.NamespaceDefault).Get(context.Background(), "kubernetes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range slice.Endpoints {
		if e.Conditions.Ready == nil || *e.Conditions.Ready {
			out = append(out, e.Addresses...)
		}
	}
	slices.Sort(out)
	return out
}

// etcdLeader returns the name of the etcd member that leads the raft
// group now.
func etcdLeader(t *testing.T, st *peapodcluster.State) string {
	t.Helper()
	files, _ := st.EtcdClientTLS()
	tlsCfg, err := (transport.TLSInfo{TrustedCAFile: files.CAFile, CertFile: files.CertFile, KeyFile: files.KeyFile}).ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	cli, err := etcd.New(etcd.Config{Endpoints: st.EtcdEndpoints(), TLS: tlsCfg, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, m := range st.Etcd {
		s, err := cli.Status(ctx, m.ClientURL())
		if err == nil && s.Leader == s.Header.MemberId {
			return m.Name
		}
	}
	t.Fatal("no etcd member leads")
	return ""
}

// waitRunning waits until want pods matching selector in ns are Running.
func waitRunning(c *cluster, ns, selector string, want int, timeout time.Duration) {
	c.t.Helper()
	c.eventually(timeout, func() error {
		pods, err := c.client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return err
		}
		n := 0
		for _, p := range pods.Items {
			if running(&p) {
				n++
			}
		}
		if n != want {
			return fmt.Errorf("%d pods %s Running, want %d", n, selector, want)
		}
		return nil
	})
}

func podsByName(t *testing.T, c *cluster, ns string) map[string]corev1.Pod {
	t.Helper()
	pods, err := c.client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: labels.Set{"app": "web"}.String()})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]corev1.Pod{}
	for _, p := range pods.Items {
		out[p.Name] = p
	}
	return out
}

func restarts(p corev1.Pod) int32 {
	var n int32
	for _, cs := range p.Status.ContainerStatuses {
		n += cs.RestartCount
	}
	return n
}

// nodeProcesses maps every pod sandbox of every node to its first
// container's PID, as `peapod ps` reads them from the nodes' data dirs
// (without any server).
func nodeProcesses(t *testing.T, st *peapodcluster.State) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, n := range st.Nodes {
		data, err := exec.Command(peapodBinary(t), "ps", "--data-dir", n.DataDir, "-o", "json").Output()
		if err != nil {
			t.Fatalf("peapod ps on %s: %v", n.Name, err)
		}
		var sandboxes []runtime.SandboxStatus
		if err := json.Unmarshal(data, &sandboxes); err != nil {
			t.Fatalf("peapod ps on %s: %v", n.Name, err)
		}
		for _, sb := range sandboxes {
			if sb.PodName == "" || len(sb.Containers) == 0 {
				continue // warm sandboxes
			}
			out[n.Name+"/"+sb.PodNamespace+"/"+sb.PodName] = sb.Containers[0].PID
		}
	}
	return out
}
