package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	peapodcluster "github.com/peapod/peapod/internal/cluster"
	"github.com/peapod/peapod/internal/leakcheck"
	"github.com/peapod/peapod/internal/nodenet"
)

// agentPort is where every node's agent serves logs and exec (the
// kubelet's port), on the node's own address.
const agentPort = "10250"

// TestMultiNodeCluster drives the shared 3-node cluster `peapod cluster
// up` makes: the nodes, their addresses, a pod on each node, exec and logs
// through the server to agents, agent restarts, cutting a node off the
// underlay, and adding and removing a node.
func TestMultiNodeCluster(t *testing.T) {
	mn := sharedMultiNode(t)
	st := mn.state(t)
	ctx := context.Background()

	t.Run("every node Ready at its underlay address", func(t *testing.T) {
		mn := mn.with(t)
		nodes, err := mn.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(nodes.Items) != 3 {
			t.Fatalf("%d nodes, want 3", len(nodes.Items))
		}
		byName := map[string]corev1.Node{}
		for _, n := range nodes.Items {
			byName[n.Name] = n
		}
		for _, want := range st.Nodes {
			n, ok := byName[want.Name]
			if !ok {
				t.Errorf("node %s missing from the API", want.Name)
				continue
			}
			if !nodeIsReady(&n) {
				t.Errorf("node %s not Ready: %+v", n.Name, n.Status.Conditions)
			}
			if ip := internalIP(&n); ip != want.Address {
				t.Errorf("node %s InternalIP %q, want its underlay address %s", n.Name, ip, want.Address)
			}
			if n.Labels[corev1.LabelHostname] != want.Name {
				t.Errorf("node %s hostname label %q", n.Name, n.Labels[corev1.LabelHostname])
			}
		}
		// kubectl shows the same.
		out := mn.must("get", "nodes", "-o", "wide")
		for _, n := range st.Nodes {
			if !strings.Contains(out, n.Name) || !strings.Contains(out, n.Address) {
				t.Errorf("kubectl get nodes -o wide lacks %s %s:\n%s", n.Name, n.Address, out)
			}
		}
	})

	t.Run("the host and the nodes reach every node", func(t *testing.T) {
		mn := mn.with(t)
		for _, n := range st.Nodes {
			conn, err := net.DialTimeout("tcp", net.JoinHostPort(n.Address, agentPort), 5*time.Second)
			if err != nil {
				t.Errorf("host to node %s at %s: %v", n.Name, n.Address, err)
				continue
			}
			conn.Close()
		}
		// From node 2's namespace to node 1's API, across the underlay.
		out, err := mn.nodeExec(2, "curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", st.Server+"/livez")
		if err != nil || out == "000" {
			t.Errorf("node 2 to the API at %s: %v %s", st.Server, err, out)
		}
		// A node's own view: eth0 with its address, default route via the host.
		out, err = mn.nodeExec(3, "ip", "-4", "route", "show", "default")
		if err != nil || !strings.Contains(out, "via "+st.HostAddress+" dev eth0") {
			t.Errorf("node 3 default route: %v %q, want via %s dev eth0", err, out, st.HostAddress)
		}
	})

	ns := mn.namespace("multinode")
	defer mn.kubectl("delete", "namespace", ns, "--wait=false")
	pods := map[int]*corev1.Pod{}

	t.Run("a pod on each node gets an IP of that node's range", func(t *testing.T) {
		mn := mn.with(t)
		for _, n := range st.Nodes {
			// Both ways of pinning: nodeName, and a nodeSelector on the hostname label.
			pin := fmt.Sprintf("nodeName: %s", n.Name)
			if n.Index%2 == 1 {
				pin = fmt.Sprintf("nodeSelector: {kubernetes.io/hostname: %s}", n.Name)
			}
			mn.apply(fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: web%d, namespace: %s}
spec:
  %s
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: busybox
    env: [{name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}]
    command: ["sh", "-c", "echo ready on $NODE; exec httpd -f -p 80 -h /etc"]
`, n.Index, ns, pin))
		}
		seen := map[string]string{}
		for _, n := range st.Nodes {
			p := mn.waitPod(ns, fmt.Sprintf("web%d", n.Index), 2*time.Minute, "running", running)
			pods[n.Index] = p
			if p.Spec.NodeName != n.Name || p.Status.HostIP != n.Address {
				t.Errorf("pod %s on %s (host IP %s), want %s (%s)", p.Name, p.Spec.NodeName, p.Status.HostIP, n.Name, n.Address)
			}
			node, err := mn.client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			_, podCIDR, err := net.ParseCIDR(node.Spec.PodCIDR)
			if err != nil {
				t.Fatalf("node %s podCIDR %q: %v", n.Name, node.Spec.PodCIDR, err)
			}
			if !podCIDR.Contains(net.ParseIP(p.Status.PodIP)) {
				t.Errorf("pod %s IP %s is outside node %s's range %s", p.Name, p.Status.PodIP, n.Name, podCIDR)
			}
			if other, dup := seen[p.Status.PodIP]; dup {
				t.Errorf("pods %s and %s share IP %s", other, p.Name, p.Status.PodIP)
			}
			seen[p.Status.PodIP] = p.Name
			// The node reaches its own pod, without NAT.
			out, err := mn.nodeExec(n.Index, "curl", "-s", "--max-time", "5", "http://"+p.Status.PodIP+"/hostname")
			if err != nil || strings.TrimSpace(out) != p.Name {
				t.Errorf("node %s to its pod %s at %s: %v %q", n.Name, p.Name, p.Status.PodIP, err, out)
			}
		}
	})

	t.Run("kubectl exec and logs reach pods on agent nodes", func(t *testing.T) {
		mn := mn.with(t)
		if len(pods) != 3 {
			t.Fatal("needs the pods of the earlier subtest, which failed")
		}
		for _, n := range st.Nodes {
			name := fmt.Sprintf("web%d", n.Index)
			mn.eventually(30*time.Second, func() error {
				out, err := mn.kubectl("-n", ns, "logs", name)
				if err != nil || !strings.Contains(out, "ready on "+n.Name) {
					return fmt.Errorf("kubectl logs %s: %v %q", name, err, out)
				}
				return nil
			})
			out := mn.must("-n", ns, "exec", name, "--", "sh", "-c", "echo $((6*7)) $(hostname)")
			if out != "42 "+name {
				t.Errorf("kubectl exec in %s on %s: %q", name, n.Name, out)
			}
		}
	})

	t.Run("a stopped agent's pods keep running, and it adopts them again", func(t *testing.T) {
		mn := mn.with(t)
		if len(pods) != 3 {
			t.Fatal("needs the pods of the earlier subtest, which failed")
		}
		for _, tc := range []struct {
			node   int
			signal string
		}{{2, "TERM"}, {3, "KILL"}} {
			n := mn.node(tc.node)
			before := pods[tc.node]
			mn.mustRun("node", "stop", n.Name, "--signal", tc.signal)
			if mn.node(tc.node).PID != 0 {
				t.Errorf("node %s still has a pid recorded after stop", n.Name)
			}
			if status := mn.mustRun("status"); !strings.Contains(status, "stopped") {
				t.Errorf("cluster status does not show %s stopped:\n%s", n.Name, status)
			}
			// Its pod answers with its agent gone.
			out, err := mn.nodeExec(tc.node, "curl", "-s", "--max-time", "5", "http://"+before.Status.PodIP+"/hostname")
			if err != nil || strings.TrimSpace(out) != before.Name {
				t.Errorf("pod %s with the agent stopped (%s): %v %q", before.Name, tc.signal, err, out)
			}
			if _, err := mn.run("node", "start", n.Name); err != nil {
				t.Fatalf("node start %s: %v\n%s", n.Name, err, mn.tail())
			}
			if _, err := mn.run("node", "start", n.Name, "--wait", "0"); err == nil {
				t.Errorf("a second start of running node %s succeeded", n.Name)
			}
			mn.waitNodesReady(time.Minute)
			after := mn.waitPod(ns, before.Name, time.Minute, "running", running)
			if after.UID != before.UID || after.Status.PodIP != before.Status.PodIP {
				t.Errorf("pod %s after restart of its agent: uid %s ip %s, was %s %s", before.Name, after.UID, after.Status.PodIP, before.UID, before.Status.PodIP)
			}
			b, a := before.Status.ContainerStatuses[0], after.Status.ContainerStatuses[0]
			if a.RestartCount != b.RestartCount || a.ContainerID != b.ContainerID || !a.State.Running.StartedAt.Equal(&b.State.Running.StartedAt) {
				t.Errorf("container of %s was restarted with its agent (%s): before %+v after %+v", before.Name, tc.signal, b, a)
			}
			if out := mn.must("-n", ns, "exec", before.Name, "--", "cat", "/etc/hostname"); out != before.Name {
				t.Errorf("kubectl exec after agent restart: %q", out)
			}
		}
	})

	t.Run("a disconnected node is unreachable until connected again", func(t *testing.T) {
		mn := mn.with(t)
		n := mn.node(2)
		addr := net.JoinHostPort(n.Address, agentPort)
		mn.mustRun("node", "disconnect", n.Name)
		disconnected := true
		defer func() {
			if disconnected {
				mn.run("node", "connect", n.Name)
			}
		}()
		if status := mn.mustRun("status"); !strings.Contains(status, "disconnected") {
			t.Errorf("cluster status does not show %s disconnected:\n%s", n.Name, status)
		}
		if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			conn.Close()
			t.Errorf("host reached disconnected node %s at %s", n.Name, addr)
		}
		mn.mustRun("node", "connect", n.Name)
		disconnected = false
		mn.eventually(30*time.Second, func() error {
			conn, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				conn.Close()
			}
			return err
		})
	})

	t.Run("a node added to the running cluster joins, and a removed one leaves", func(t *testing.T) {
		mn := mn.with(t)
		// The cluster is shared: other tests may have added and removed
		// nodes, and node numbers are never reused, so the new node is
		// whichever was not there before.
		before := map[string]bool{}
		for _, n := range mn.state(t).Nodes {
			before[n.Name] = true
		}
		out := mn.mustRun("node", "add", "--image", busyboxTarball(t))
		var added peapodcluster.Node
		for _, n := range mn.state(t).Nodes {
			if !before[n.Name] {
				added = n
			}
		}
		if added.Name == "" {
			t.Fatalf("node add made no new node: %s", out)
		}
		removed := false
		defer func() {
			if !removed { // leave the shared cluster as it was
				mn.run("node", "rm", added.Name)
			}
		}()
		if !strings.Contains(out, added.Name+" added") {
			t.Errorf("node add printed %q", out)
		}
		node, err := mn.client.CoreV1().Nodes().Get(ctx, added.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !nodeIsReady(node) || internalIP(node) != added.Address {
			t.Errorf("added node %s: ready %v, InternalIP %q, want %s", added.Name, nodeIsReady(node), internalIP(node), added.Address)
		}
		mn.apply(fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: on-new-node, namespace: %s}
spec:
  nodeName: %s
  terminationGracePeriodSeconds: 0
  containers: [{name: c, image: busybox, command: ["sleep", "3600"]}]
`, ns, added.Name))
		p := mn.waitPod(ns, "on-new-node", 2*time.Minute, "running", running)
		if _, r, _ := net.ParseCIDR(node.Spec.PodCIDR); r == nil || !r.Contains(net.ParseIP(p.Status.PodIP)) {
			t.Errorf("pod on the new node has IP %s, outside its range %s", p.Status.PodIP, node.Spec.PodCIDR)
		}
		// Drain, as one would before removing a machine.
		mn.must("-n", ns, "delete", "pod", "on-new-node", "--wait=true")
		mn.mustRun("node", "rm", added.Name)
		removed = true
		if _, err := mn.client.CoreV1().Nodes().Get(ctx, added.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("Node %s after node rm: %v, want NotFound", added.Name, err)
		}
		for _, n := range mn.state(t).Nodes {
			if n.Name == added.Name {
				t.Errorf("node %s still in the cluster state", n.Name)
			}
		}
		if _, err := os.Stat(added.NetNS); !os.IsNotExist(err) {
			t.Errorf("netns %s after node rm: %v", added.NetNS, err)
		}
		if _, err := os.Stat(added.DataDir); !os.IsNotExist(err) {
			t.Errorf("data dir %s after node rm: %v", added.DataDir, err)
		}
		if _, err := mn.run("node", "rm", mn.node(1).Name); err == nil {
			t.Error("node rm of the server's node succeeded")
		}
	})
}

func nodeIsReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func internalIP(n *corev1.Node) string {
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return a.Address
		}
	}
	return ""
}

// TestMultiNodeUpDown: `peapod cluster down` leaves nothing of a cluster
// that ran pods (the leak check looks inside the node namespaces while
// they exist), a second down succeeds, an `up` that fails takes apart what
// it made, and bad flags are refused by name before anything is made.
func TestMultiNodeUpDown(t *testing.T) {
	requireRoot(t)
	const name = "e2edn"
	opts := leakcheck.Options{
		CgroupNames:  []string{"peapod-cluster"},
		ProcessNames: leakOptions.ProcessNames,
		NetNSLinks:   []string{"pp-" + name},
		RuleMatches:  []string{"peapod cluster " + name},
		DataDirs:     []string{os.TempDir()},
		// The overlay's routes to peers, inside the node namespaces.
		RouteProtocols: []int{int(nodenet.RouteProtocol)},
	}
	before, err := leakcheck.Take(opts)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("down leaves nothing", func(t *testing.T) {
		// The default backend, vxlan: down must remove the overlay too.
		mn := startMultiNode(t, name, 2) // its cleanup's down is a second one here
		mn.apply(`apiVersion: v1
kind: Pod
metadata: {name: doomed, namespace: default}
spec:
  nodeName: ` + mn.node(2).Name + `
  containers: [{name: c, image: busybox, command: ["sleep", "3600"]}]
`)
		mn.waitPod("default", "doomed", 2*time.Minute, "running", running)
		// The agent's own profiles, through the API server's nodes/proxy
		// as the kubelet's are: where its memory goes (issue 10).
		pprof := "/api/v1/nodes/" + mn.node(2).Name + "/proxy/debug/pprof/"
		if heap := mn.must("get", "--raw", pprof+"heap?debug=1"); !strings.Contains(heap, "heap profile:") {
			t.Errorf("node 2's heap profile through nodes/proxy:\n%.500s", heap)
		}
		if g := mn.must("get", "--raw", pprof+"goroutine?debug=1"); !strings.Contains(g, "daemon.RunAgent") {
			t.Errorf("node 2's goroutines through nodes/proxy are not the agent's:\n%.500s", g)
		}
		during, err := leakcheck.Take(opts)
		if err != nil {
			t.Fatal(err)
		}
		seen := strings.Join(before.Leaked(during), "\n")
		node2 := mn.node(2)
		for _, want := range []string{
			"netns " + node2.NetNS,
			"veth eth0 in netns pp-" + node2.Name,
			"bridge " + node2.PodBridge + " in netns pp-" + node2.Name,
			"vxlan peapod.1 in netns pp-" + node2.Name,
			// node 2's route to node 1's pods, through the VXLAN device
			"dev peapod.1 proto 112 in netns pp-" + node2.Name,
			"bridge ppu-" + name,
			"veth " + node2.HostVeth,
			node2.CgroupParent + "/", // a pod's cgroup below the node's parent
			"rule filter -A FORWARD -i ppu-" + name,
			"peapod: " + binary + " agent",
			"pause",
		} {
			if !strings.Contains(seen, want) {
				t.Errorf("the leak check does not see %q while the cluster is up:\n%s", want, seen)
			}
		}
		root := mn.root
		out, err := mn.run("down")
		if err != nil {
			t.Fatalf("cluster down: %v\n%s", err, out)
		}
		leakcheck.Check(t, before, opts, 10*time.Second)
		if _, err := os.Stat(root); !os.IsNotExist(err) {
			t.Errorf("%s after cluster down: %v", root, err)
		}
		if out, err := mn.run("down"); err != nil || !strings.Contains(out, "no cluster") {
			t.Errorf("second cluster down: %v %q, want success saying there is no cluster", err, out)
		}
		os.Remove(filepath.Dir(root))
	})

	t.Run("a failed up takes apart what it made", func(t *testing.T) {
		mn, err := upMultiNode(t, name, 2, "--server-arg=--no-such-flag", "--wait", "30s")
		if err == nil {
			mn.run("down")
			os.Remove(filepath.Dir(mn.root))
			t.Fatal("cluster up with a server flag that does not exist succeeded")
		}
		for _, want := range []string{"peapod server exited", "unknown flag: --no-such-flag", "taking apart what was made"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("failed up says %q, want it to say %q", err, want)
			}
		}
		leakcheck.Check(t, before, opts, 10*time.Second)
	})

	t.Run("bad flags are refused by name", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"--nodes", "0"}, "--nodes 0"},
			{[]string{"--network-backend", "udp"}, "--network-backend \"udp\""},
			{[]string{"--name", "Bad_Name"}, "--name \"Bad_Name\""},
			{[]string{"--underlay-cidr", "172.31.9.1/24"}, "--underlay-cidr"},
			{[]string{"--image", "/no/such.tar"}, "--image \"/no/such.tar\""},
		} {
			dir := filepath.Join(t.TempDir(), "c")
			args := append([]string{"cluster", "up", "--name", name, "--dir", dir}, tc.args...)
			out, err := exec.Command(peapodBinary(t), args...).CombinedOutput()
			if err == nil || !strings.Contains(string(out), tc.want) {
				t.Errorf("peapod %s: %v %q, want a failure naming %q", strings.Join(args, " "), err, out, tc.want)
			}
		}
		leakcheck.Check(t, before, opts, time.Second)
	})
}
