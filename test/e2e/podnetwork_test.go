package e2e

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	peapodcluster "github.com/peapod/peapod/internal/cluster"
	"github.com/peapod/peapod/internal/clusternetwork"
	"github.com/peapod/peapod/internal/nodenet/nodenettest"
)

// Issue 10's acceptance, end to end through kubectl and client-go on
// 3-node clusters of `peapod cluster up`: the pod network between nodes
// with vxlan (the shared cluster) and with host-gw (a cluster of its
// own), then node failures on a vxlan cluster of its own whose nodes are
// marked NotReady after 20 s.

// TestPodNetworkVXLAN: every pod reaches every pod and node across the
// shared cluster's VXLAN overlay, without NAT.
func TestPodNetworkVXLAN(t *testing.T) {
	mn := sharedMultiNode(t)
	testPodNetwork(t, mn, clusternetwork.BackendVXLAN)
}

// TestPodNetworkHostGW: the same with host-gw, then an agent killed while
// traffic flows and a Node deleted, on a cluster of its own (a /22
// cluster range, four node ranges, so the deleted node's range goes to
// the second node added after it, and every route to it changes gateway).
func TestPodNetworkHostGW(t *testing.T) {
	mn := startMultiNode(t, "e2egw", 3, "--network-backend", "host-gw", "--cluster-cidr", "10.218.0.0/22")
	testPodNetwork(t, mn, clusternetwork.BackendHostGW)
	t.Run("kill -9 of agents while traffic flows through their pods", func(t *testing.T) {
		testAgentKillKeepsTraffic(t, mn.with(t))
	})
	t.Run("a deleted Node's routes go from every other node within 1 s; its range, handed out again, is routed to the new node within 1 s", func(t *testing.T) {
		testDeletedNodeRange(t, mn.with(t), clusternetwork.BackendHostGW, "10.218.0.0/22")
	})
}

// TestPodNetworkNodeFailures: on a vxlan cluster of its own (a /22
// cluster range, so four node ranges; nodes NotReady 20 s after their
// last heartbeat): agents killed while traffic flows, a node stopped and
// cut off until its pods are replaced elsewhere and then brought back, and
// a Node deleted, its range released and handed out again only after the
// never-used one.
func TestPodNetworkNodeFailures(t *testing.T) {
	mn := startMultiNode(t, "e2efail", 3, "--cluster-cidr", "10.219.0.0/22",
		"--server-arg=--node-monitor-grace-period=20s")
	t.Run("kill -9 of agents while traffic flows through their pods", func(t *testing.T) {
		testAgentKillKeepsTraffic(t, mn.with(t))
	})
	t.Run("a stopped, cut-off node's pods are replaced; back, it keeps its range and duplicates nothing", func(t *testing.T) {
		testNodeLostAndBack(t, mn.with(t))
	})
	t.Run("a deleted Node leaves every kernel within 1 s; its range goes out after the never-used one and points at the new node within 1 s", func(t *testing.T) {
		testDeletedNodeRange(t, mn.with(t), clusternetwork.BackendVXLAN, "10.219.0.0/22")
	})
}

// testPodNetwork proves the pod network of a 3-node cluster: echo pods on
// every node, all on one port, answer every other pod over TCP and UDP
// seeing the client pod's own IP; nodes reach other nodes' pods and pods
// other nodes; a Deployment of 6 spreads 2 per node and every replica
// answers every node and every replica; `peapod net` and the kernel of
// every node hold exactly the peers the Nodes describe; a hostNetwork pod
// reaches a pod on another node.
func testPodNetwork(t *testing.T, mn *multiNode, backend string) {
	st := mn.state(t)
	ctx := context.Background()
	ns := mn.namespace("podnet")
	defer mn.kubectl("delete", "namespace", ns, "--wait=false")
	mn.apply(peerCGIConfigMap(ns))
	for _, n := range st.Nodes {
		mn.apply(echoPod(ns, fmt.Sprintf("echo%d", n.Index), n.Name))
	}
	var pods []*corev1.Pod
	for _, n := range st.Nodes {
		p := mn.waitPod(ns, fmt.Sprintf("echo%d", n.Index), 2*time.Minute, "ready", func(p *corev1.Pod) bool { return running(p) && ready(p) })
		pods = append(pods, p)
	}
	nodes := map[string]*corev1.Node{}
	list, err := mn.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range list.Items {
		nodes[list.Items[i].Name] = &list.Items[i]
	}

	t.Run("a pod reaches pods on other nodes over TCP, which see its own IP", func(t *testing.T) {
		mn := mn.with(t)
		for _, from := range pods {
			for _, to := range pods {
				if from == to {
					continue
				}
				out, err := mn.kubectl(append([]string{"-n", ns, "exec", from.Name, "--"}, wgetArgv("wget", peerURL(to.Status.PodIP))...)...)
				if err != nil {
					t.Errorf("%s (%s) -> %s (%s): %v %s", from.Name, from.Spec.NodeName, to.Name, to.Spec.NodeName, err, out)
					continue
				}
				source, host, err := askPeer(out)
				if err != nil || source != from.Status.PodIP || host != to.Name {
					t.Errorf("%s -> %s: answer %q (%v); want %q %s: the server must see the client pod's own IP", from.Name, to.Name, out, err, from.Status.PodIP, to.Name)
				}
			}
		}
	})

	t.Run("a pod reaches pods on other nodes over UDP, which see its own IP", func(t *testing.T) {
		mn := mn.with(t)
		for i, from := range pods {
			to := pods[(i+1)%len(pods)]
			seen, err := nodenettest.ExchangeUDP(ctx, mn.podEndpoint(from), mn.podEndpoint(to), 9999)
			if err != nil {
				t.Errorf("UDP %s (%s) -> %s (%s): %v", from.Name, from.Spec.NodeName, to.Name, to.Spec.NodeName, err)
				continue
			}
			if seen.String() != from.Status.PodIP {
				t.Errorf("UDP %s -> %s: the server saw %s, want the client pod's own IP %s", from.Name, to.Name, seen, from.Status.PodIP)
			}
		}
	})

	t.Run("a node reaches the pods of other nodes, without NAT", func(t *testing.T) {
		mn := mn.with(t)
		for _, n := range st.Nodes {
			for _, to := range pods {
				if to.Spec.NodeName == n.Name {
					continue
				}
				out, err := mn.nodeExec(n.Index, wgetArgv("/bin/busybox wget", peerURL(to.Status.PodIP))...)
				source, host, perr := askPeer(out)
				if err != nil || perr != nil || host != to.Name || !nodeSources(nodes[n.Name])[source] {
					t.Errorf("node %s -> %s on %s: %v %q; want an answer from %s seeing one of the node's own addresses %v",
						n.Name, to.Name, to.Spec.NodeName, err, out, to.Name, nodeSources(nodes[n.Name]))
				}
			}
		}
	})

	t.Run("a pod reaches the other nodes' IPs", func(t *testing.T) {
		mn := mn.with(t)
		for _, from := range pods {
			for _, n := range st.Nodes {
				if n.Name == from.Spec.NodeName {
					continue
				}
				if out, err := mn.kubectl("-n", ns, "exec", from.Name, "--", "ping", "-c", "1", "-W", "5", n.Address); err != nil {
					t.Errorf("%s on %s: ping node %s at %s: %v\n%s", from.Name, from.Spec.NodeName, n.Name, n.Address, err, out)
				}
				// TCP to the node's agent port: its TLS server answers a
				// plain HTTP request with 400, which proves the connection.
				out, _ := mn.kubectl(append([]string{"-n", ns, "exec", from.Name, "--"}, wgetArgv("wget", "http://"+n.Address+":"+agentPort+"/")...)...)
				if !strings.Contains(out, "400 Bad Request") {
					t.Errorf("%s on %s: TCP to node %s at %s:%s: %q, want the agent's 400 to a plain HTTP request",
						from.Name, from.Spec.NodeName, n.Name, n.Address, agentPort, out)
				}
			}
		}
	})

	t.Run("a Deployment of 6 spreads 2 a node, all on one port; every replica answers every node and every replica", func(t *testing.T) {
		mn := mn.with(t)
		mn.apply(fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: spread, namespace: %s}
spec:
  replicas: 6
  selector: {matchLabels: {app: spread}}
  template:
    metadata: {labels: {app: spread}}
    spec:
%s`, ns, indent(echoPodSpec(`topologySpreadConstraints:
- {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: spread}}}`), 6)))
		replicas := mn.waitPods(ns, "app=spread", 6, 3*time.Minute)
		perNode := map[string]int{}
		names := map[string]string{}
		var ips []string
		for _, p := range replicas {
			perNode[p.Spec.NodeName]++
			names[p.Status.PodIP] = p.Name
			ips = append(ips, p.Status.PodIP)
		}
		for _, n := range st.Nodes {
			if perNode[n.Name] != 2 {
				t.Errorf("node %s runs %d replicas, want 2 (spread %v)", n.Name, perNode[n.Name], perNode)
			}
		}
		for _, p := range replicas {
			out, err := mn.kubectl("-n", ns, "exec", p.Name, "--", "sh", "-c", sweepScript("wget", ips))
			if err != nil {
				t.Errorf("sweep from %s: %v\n%s", p.Name, err, out)
				continue
			}
			self := p.Status.PodIP
			checkSweep(t, "replica "+p.Name+" on "+p.Spec.NodeName, out, names, func(source string) bool { return source == self })
		}
		for _, n := range st.Nodes {
			out, err := mn.nodeExec(n.Index, "sh", "-c", sweepScript("/bin/busybox wget", ips))
			if err != nil {
				t.Errorf("sweep from node %s: %v\n%s", n.Name, err, out)
				continue
			}
			sources := nodeSources(nodes[n.Name])
			checkSweep(t, "node "+n.Name, out, names, func(source string) bool { return sources[source] })
		}
	})

	t.Run("peapod net shows each node's range, device and peers; the kernel holds exactly them", func(t *testing.T) {
		mn := mn.with(t)
		mn.checkOverlay(backend, 30*time.Second)
		for _, n := range st.Nodes {
			out, err := mn.nodeExec(n.Index, peapodBinary(t), "net", "--data-dir", n.DataDir)
			if err != nil {
				t.Errorf("peapod net on %s: %v\n%s", n.Name, err, out)
				continue
			}
			if n.Index == 2 {
				t.Logf("peapod net on %s:\n%s", n.Name, out)
			}
			self := nodes[n.Name]
			want := []string{"BACKEND     " + backend, n.Name, "node IP " + n.Address, "pod CIDR " + self.Spec.PodCIDR,
				"FORWARD accepts the cluster range"}
			if backend == clusternetwork.BackendVXLAN {
				want = append(want, "DEVICE      peapod.1", "mac "+self.Annotations[clusternetwork.AnnotationVTEPMAC], "local "+n.Address+" on eth0", "vni 1, port 8472")
			}
			for _, peer := range st.Nodes {
				if peer.Name == n.Name {
					continue
				}
				pn := nodes[peer.Name]
				cidr := netip.MustParsePrefix(pn.Spec.PodCIDR)
				route := fmt.Sprintf("%s via %s dev eth0", cidr, peer.Address)
				if backend == clusternetwork.BackendVXLAN {
					route = fmt.Sprintf("%s via %s dev peapod.1 onlink", cidr, cidr.Addr())
				}
				want = append(want, peer.Name, peer.Address, route)
				if backend == clusternetwork.BackendVXLAN {
					want = append(want, pn.Annotations[clusternetwork.AnnotationVTEPMAC])
				}
			}
			for _, w := range want {
				if !strings.Contains(out, w) {
					t.Errorf("peapod net on %s lacks %q:\n%s", n.Name, w, out)
				}
			}
			for _, bad := range []string{"(unexpected)", "missing", " no "} {
				if strings.Contains(out, bad) {
					t.Errorf("peapod net on %s shows %q:\n%s", n.Name, bad, out)
				}
			}
		}
	})

	t.Run("a hostNetwork pod reaches a pod on another node", func(t *testing.T) {
		mn := mn.with(t)
		a, to := st.Nodes[0], pods[1]
		manifest := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: hostnet, namespace: %s}
spec:
  nodeName: %s
  hostNetwork: true
  terminationGracePeriodSeconds: 0
  containers: [{name: c, image: busybox, command: [sleep, "3600"]}]
`, ns, a.Name)
		mn.apply(manifest)
		refused := func(p *corev1.Pod) string {
			for _, cs := range p.Status.ContainerStatuses {
				if w := cs.State.Waiting; w != nil && strings.Contains(w.Message, "not supported") {
					return w.Message
				}
			}
			return ""
		}
		p := mn.waitPod(ns, "hostnet", 2*time.Minute, "running", func(p *corev1.Pod) bool { return running(p) || refused(p) != "" })
		if why := refused(p); why != "" {
			t.Fatalf("this peapod's node refuses hostNetwork pods: %s", why)
		}
		if p.Status.PodIP != a.Address {
			t.Errorf("hostNetwork pod IP %s, want its node's %s", p.Status.PodIP, a.Address)
		}
		out, err := mn.kubectl(append([]string{"-n", ns, "exec", "hostnet", "--"}, wgetArgv("wget", peerURL(to.Status.PodIP))...)...)
		source, host, perr := askPeer(out)
		if err != nil || perr != nil || host != to.Name || !nodeSources(nodes[a.Name])[source] {
			t.Errorf("hostNetwork pod on %s -> %s on %s: %v %q; want an answer seeing one of the node's addresses %v",
				a.Name, to.Name, to.Spec.NodeName, err, out, nodeSources(nodes[a.Name]))
		}
	})
}

// testAgentKillKeepsTraffic kills -9 the agent of the node running a
// server pod, then that of the node running the client pod, while the
// client asks the server every 5 ms: the routes, FDB and neighbours are
// kernel state, so no request goes unanswered for a second.
func testAgentKillKeepsTraffic(t *testing.T, mn *multiNode) {
	ns := mn.namespace("kill9")
	defer mn.kubectl("delete", "namespace", ns, "--wait=false")
	server, client := mn.node(2), mn.node(3)
	mn.apply(peerCGIConfigMap(ns))
	mn.apply(echoPod(ns, "server", server.Name))
	mn.apply(echoPod(ns, "client", client.Name))
	srv := mn.waitPod(ns, "server", 2*time.Minute, "ready", func(p *corev1.Pod) bool { return running(p) && ready(p) })
	cli := mn.waitPod(ns, "client", 2*time.Minute, "ready", func(p *corev1.Pod) bool { return running(p) && ready(p) })

	loop := startTraffic(mn.podEndpoint(cli), netip.AddrPortFrom(netip.MustParseAddr(srv.Status.PodIP), echoPort), 5*time.Millisecond)
	stopped := false
	defer func() {
		if !stopped {
			loop.stop()
		}
	}()
	loop.waitAnswered(t, 50, 30*time.Second)
	loop.measureFromNow()
	for _, n := range []peapodcluster.Node{server, client} {
		mn.mustRun("node", "stop", n.Name, "--signal", "KILL")
		loop.waitAnswered(t, 100, 30*time.Second) // traffic with the agent dead
		mn.mustRun("node", "start", n.Name)       // waits until it serves again
		loop.waitAnswered(t, 100, 30*time.Second) // and after it took over again
	}
	maxGap, at, answered, failed := loop.stop()
	stopped = true
	t.Logf("longest time without an answer: %s (ending %s), over %d answered and %d failed requests, two agents killed and restarted",
		maxGap.Round(time.Millisecond), at.Format("15:04:05.000"), answered, failed)
	if maxGap > time.Second {
		t.Errorf("a request loop from %s to %s went %s without an answer while agents were killed and restarted; want under 1 s",
			cli.Name, srv.Name, maxGap)
	}
	// Nothing the restarts programmed twice, nothing lost.
	mn.checkOverlay(mn.backend(), 30*time.Second)
}

// backend is the cluster's backend, from its ConfigMap.
func (m *multiNode) backend() string {
	m.t.Helper()
	cm, err := m.client.CoreV1().ConfigMaps(clusternetwork.ConfigMapNamespace).Get(context.Background(), clusternetwork.ConfigMapName, metav1.GetOptions{})
	if err != nil {
		m.t.Fatalf("the cluster's network settings: %v", err)
	}
	return cm.Data[clusternetwork.KeyBackend]
}

// testNodeLostAndBack stops node B's agent and cuts it off the underlay:
// B goes NotReady, its pod is evicted after its 5 s toleration and
// replaced on A or C, and every replica answers; B comes back: it keeps
// its podCIDR, its evicted pod is cleaned up, and nothing is duplicated:
// one sandbox per pod on the whole cluster, and on every node exactly the
// routes, FDB and neighbours the Nodes describe.
func testNodeLostAndBack(t *testing.T, mn *multiNode) {
	ctx := context.Background()
	ns := mn.namespace("failover")
	defer mn.kubectl("delete", "namespace", ns, "--wait=false")
	a, b, c := mn.node(1), mn.node(2), mn.node(3)
	mn.apply(peerCGIConfigMap(ns))
	mn.apply(echoPod(ns, "client", c.Name))
	tolerate := `tolerations:
- {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 5}
- {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 5}
topologySpreadConstraints:
- {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: ScheduleAnyway, labelSelector: {matchLabels: {app: web}}}`
	mn.apply(fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: %s}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
%s`, ns, indent(echoPodSpec(tolerate), 6)))
	before := mn.waitPods(ns, "app=web", 3, 3*time.Minute)
	var lost *corev1.Pod
	for i := range before {
		if before[i].Spec.NodeName == b.Name {
			lost = &before[i]
		}
	}
	if lost == nil {
		t.Fatalf("no replica on %s to lose: %s", b.Name, podNodes(before))
	}
	bNode, err := mn.client.CoreV1().Nodes().Get(ctx, b.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	mn.mustRun("node", "stop", b.Name, "--signal", "KILL")
	mn.mustRun("node", "disconnect", b.Name)
	connected := false
	defer func() {
		if !connected {
			mn.run("node", "connect", b.Name)
			mn.run("node", "start", b.Name)
		}
	}()
	mn.eventually(90*time.Second, func() error {
		n, err := mn.client.CoreV1().Nodes().Get(ctx, b.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if nodeIsReady(n) {
			return fmt.Errorf("node %s still Ready", b.Name)
		}
		return nil
	})
	if out := mn.must("get", "node", b.Name); !strings.Contains(out, "NotReady") {
		t.Errorf("kubectl get node %s:\n%s", b.Name, out)
	}
	var replicas []corev1.Pod
	mn.eventually(2*time.Minute, func() error {
		p, err := mn.client.CoreV1().Pods(ns).Get(ctx, lost.Name, metav1.GetOptions{})
		if err == nil && p.DeletionTimestamp == nil {
			return fmt.Errorf("pod %s on the lost node not evicted yet", lost.Name)
		}
		replicas = mn.readyPods(ns, "app=web")
		if len(replicas) != 3 {
			return fmt.Errorf("%d Ready replicas, want 3: %s", len(replicas), podNodes(replicas))
		}
		for _, r := range replicas {
			if r.Spec.NodeName == b.Name {
				return fmt.Errorf("replica %s counted on the lost node", r.Name)
			}
		}
		return nil
	})
	names := map[string]string{}
	var ips []string
	for _, r := range replicas {
		names[r.Status.PodIP] = r.Name
		ips = append(ips, r.Status.PodIP)
	}
	out, err := mn.kubectl("-n", ns, "exec", "client", "--", "sh", "-c", sweepScript("wget", ips))
	if err != nil {
		t.Errorf("sweep from the client on %s: %v\n%s", c.Name, err, out)
	} else {
		client := mn.pod(ns, "client")
		checkSweep(t, "client on "+c.Name, out, names, func(s string) bool { return s == client.Status.PodIP })
	}
	out, err = mn.nodeExec(a.Index, "sh", "-c", sweepScript("/bin/busybox wget", ips))
	if err != nil {
		t.Errorf("sweep from node %s: %v\n%s", a.Name, err, out)
	}

	// B comes back.
	mn.mustRun("node", "connect", b.Name)
	mn.mustRun("node", "start", b.Name)
	connected = true
	mn.waitNodesReady(2 * time.Minute)
	back, err := mn.client.CoreV1().Nodes().Get(ctx, b.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if back.Spec.PodCIDR != bNode.Spec.PodCIDR || back.UID != bNode.UID {
		t.Errorf("node %s came back with podCIDR %s (uid %s), had %s (uid %s)", b.Name, back.Spec.PodCIDR, back.UID, bNode.Spec.PodCIDR, bNode.UID)
	}
	// The evicted pod is cleaned up by its node: gone from the API and
	// from B's sandboxes.
	mn.eventually(time.Minute, func() error {
		if _, err := mn.client.CoreV1().Pods(ns).Get(ctx, lost.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("evicted pod %s still in the API (%v)", lost.Name, err)
		}
		for _, sb := range mn.sandboxes(b) {
			if sb.PodUID == string(lost.UID) {
				return fmt.Errorf("evicted pod %s still has sandbox %s on %s", lost.Name, sb.ID, b.Name)
			}
		}
		return nil
	})
	// Nothing duplicated: one sandbox per pod in the whole cluster, the
	// replicas unchanged, and every kernel exactly as the Nodes say.
	sandboxesOf := map[string][]string{}
	for _, n := range mn.state(t).Nodes {
		for _, sb := range mn.sandboxes(n) {
			sandboxesOf[sb.PodUID] = append(sandboxesOf[sb.PodUID], n.Name+"/"+sb.ID)
		}
	}
	for uid, where := range sandboxesOf {
		if len(where) > 1 {
			t.Errorf("pod uid %s has %d sandboxes: %v", uid, len(where), where)
		}
	}
	for _, p := range mn.listPods(ns, "") {
		if len(sandboxesOf[string(p.UID)]) != 1 {
			t.Errorf("pod %s on %s has sandboxes %v, want exactly one", p.Name, p.Spec.NodeName, sandboxesOf[string(p.UID)])
		}
	}
	if after := mn.waitPods(ns, "app=web", 3, time.Minute); podNodes(after) != podNodes(replicas) {
		t.Errorf("replicas changed when %s came back: %s, were %s", b.Name, podNodes(after), podNodes(replicas))
	}
	mn.checkOverlay(clusternetwork.BackendVXLAN, 30*time.Second)
}

// podNodes describes where pods run, for messages and comparison.
func podNodes(pods []corev1.Pod) string {
	var parts []string
	for _, p := range pods {
		parts = append(parts, p.Name+"@"+p.Spec.NodeName)
	}
	return strings.Join(parts, " ")
}

// testDeleteNodeDropsPeer stops victim's agent and deletes its Node: every
// other node drops its route (and, with vxlan, its FDB entry and
// neighbour) within 1 s of the delete, polled in each node's namespace.
// It then removes victim from the cluster (`peapod cluster node rm`).
func testDeleteNodeDropsPeer(t *testing.T, mn *multiNode, victim peapodcluster.Node, backend string) {
	ctx := context.Background()
	node, err := mn.client.CoreV1().Nodes().Get(ctx, victim.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Words that appear only in entries for the victim: its range, its
	// node IP (host-gw route, FDB) and its VTEP MAC.
	marks := []string{node.Spec.PodCIDR + " ", " " + victim.Address}
	if mac := node.Annotations[clusternetwork.AnnotationVTEPMAC]; mac != "" {
		marks = append(marks, mac)
	}
	var others []peapodcluster.Node
	for _, n := range mn.state(t).Nodes {
		if n.Name == victim.Name {
			continue
		}
		others = append(others, n)
		st, err := readOverlay(n.NetNS)
		if err != nil {
			t.Fatal(err)
		}
		if !st.mentions(marks...) {
			t.Fatalf("node %s holds nothing for %s before the delete: %s", n.Name, victim.Name, st)
		}
	}
	mn.mustRun("node", "stop", victim.Name, "--signal", "KILL")
	deleted := time.Now()
	if err := mn.client.CoreV1().Nodes().Delete(ctx, victim.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	took := make([]time.Duration, len(others))
	errs := make([]error, len(others))
	for i, n := range others {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				st, err := readOverlay(n.NetNS)
				if err == nil && !st.mentions(marks...) {
					took[i] = time.Since(deleted)
					return
				}
				if time.Since(deleted) > 10*time.Second {
					errs[i] = fmt.Errorf("node %s still holds entries for deleted node %s 10 s after the delete: %s (%v)", n.Name, victim.Name, st, err)
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	for i, n := range others {
		if errs[i] != nil {
			t.Error(errs[i])
			continue
		}
		t.Logf("node %s dropped %s's %s entries %s after the delete", n.Name, victim.Name, backend, took[i].Round(time.Millisecond))
		if took[i] > time.Second {
			t.Errorf("node %s dropped the deleted node %s's entries after %s, want within 1 s", n.Name, victim.Name, took[i])
		}
	}
	mn.mustRun("node", "rm", victim.Name)
	mn.checkOverlay(backend, 30*time.Second)
}

// testDeletedNodeRange deletes node 3 (see testDeleteNodeDropsPeer) of a
// cluster whose range clusterRange holds four node ranges, then adds two
// nodes: the first gets the never-used range, the second the deleted
// node's; every other node's entries for that range then point at the
// second (host-gw: the route's gateway; vxlan: the neighbour's MAC and
// its FDB entry), within 1 s of the Node carrying its podCIDR and
// annotations, with nothing left of the deleted node's; and every node
// holds exactly what the Nodes say.
func testDeletedNodeRange(t *testing.T, mn *multiNode, backend, clusterRange string) {
	ctx := context.Background()
	victim := mn.node(3)
	node, err := mn.client.CoreV1().Nodes().Get(ctx, victim.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	released := node.Spec.PodCIDR
	gone := map[string]bool{victim.Address: true, node.Annotations[clusternetwork.AnnotationVTEPMAC]: true}
	held := map[string]bool{}
	for _, cidr := range mn.podCIDRs() {
		held[cidr] = true
	}
	testDeleteNodeDropsPeer(t, mn, victim, backend)
	if t.Failed() {
		return
	}

	added := func() (peapodcluster.Node, string) {
		before := map[string]bool{}
		for _, n := range mn.state(t).Nodes {
			before[n.Name] = true
		}
		mn.mustRun("node", "add", "--image", busyboxTarball(t))
		for _, n := range mn.state(t).Nodes {
			if !before[n.Name] {
				return n, mn.podCIDRs()[n.Name]
			}
		}
		t.Fatal("node add added no node")
		return peapodcluster.Node{}, ""
	}
	first, firstCIDR := added()
	if firstCIDR == released || held[firstCIDR] {
		t.Errorf("new node %s got %s; want the never-used range of %s (held %v, released %s)", first.Name, firstCIDR, clusterRange, held, released)
	}

	// The second join, watched from before it starts: the Node's arrival
	// with its range and annotations on one side, every other node's
	// kernel on the other.
	others := mn.state(t).Nodes
	w := watchRangeAnnounced(t, mn, released, backend)
	defer w.stop()
	converged := make([]chan rangeConverged, len(others))
	stop := make(chan struct{})
	defer close(stop)
	for i, n := range others {
		converged[i] = make(chan rangeConverged, 1)
		go func() { converged[i] <- waitRangeConverged(stop, n, released, backend, gone, w) }()
	}
	second, secondCIDR := added()
	if secondCIDR != released {
		t.Fatalf("second new node %s got %s; want the released %s, the only one left", second.Name, secondCIDR, released)
	}
	announced := w.wait(t, second.Name)
	for i, n := range others {
		var c rangeConverged
		select {
		case c = <-converged[i]:
		case <-time.After(30 * time.Second):
			st, err := readOverlay(n.NetNS)
			t.Errorf("node %s: entries for %s do not point at %s (%s) 30 s after it joined: %s (%v)", n.Name, released, second.Name, second.Address, st, err)
			continue
		}
		if c.err != nil {
			t.Error(c.err)
			continue
		}
		took := c.at.Sub(announced)
		t.Logf("node %s: %s's entries for %s point at %s %s after its Node carried range and annotations: %s", n.Name, backend, released, second.Name, took.Round(time.Millisecond), c.state)
		if took > time.Second {
			t.Errorf("node %s pointed %s at the new node %s %s after its Node carried them, want within 1 s", n.Name, released, second.Name, took)
		}
	}
	mn.checkOverlay(backend, 30*time.Second)
}

// rangeAnnounced follows the Nodes until one carries a given podCIDR with
// its network annotations, and says when a watch saw it.
type rangeAnnounced struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	node   *corev1.Node
	at     time.Time
	err    error
}

func watchRangeAnnounced(t *testing.T, mn *multiNode, cidr, backend string) *rangeAnnounced {
	ctx, cancel := context.WithCancel(context.Background())
	w, err := mn.client.CoreV1().Nodes().Watch(ctx, metav1.ListOptions{})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	r := &rangeAnnounced{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		defer w.Stop()
		for ev := range w.ResultChan() {
			n, ok := ev.Object.(*corev1.Node)
			if !ok || n.Spec.PodCIDR != cidr || len(wantOverlay([]corev1.Node{*n}, "", backend).Routes) == 0 {
				continue
			}
			r.mu.Lock()
			r.node, r.at = n, time.Now()
			r.mu.Unlock()
			return
		}
		r.mu.Lock()
		r.err = fmt.Errorf("node watch ended before a Node carried %s with its annotations", cidr)
		r.mu.Unlock()
	}()
	return r
}

// announced returns the Node and when it was seen, or nil until then.
func (r *rangeAnnounced) announced() (*corev1.Node, time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.node, r.at
}

// wait returns when the Node named name was seen with the range.
func (r *rangeAnnounced) wait(t *testing.T, name string) time.Time {
	select {
	case <-r.done:
	case <-time.After(time.Minute):
		t.Fatalf("no Node carried the range with its annotations within a minute of %s's join", name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.node.Name != name {
		t.Fatalf("Node %s carries the range, want the new node %s", r.node.Name, name)
	}
	return r.at
}

func (r *rangeAnnounced) stop() {
	r.cancel()
	<-r.done
}

// rangeConverged is when a node's kernel first held, for a range, exactly
// the entries that point at the Node that now holds it.
type rangeConverged struct {
	at    time.Time
	state overlayState
	err   error
}

// waitRangeConverged polls node n's kernel until its entries for cidr are
// exactly those of the Node r saw holding it, and none mentions what
// was the deleted node's (gone: its node IP and VTEP MAC). It does not
// judge a state before r saw the Node (the kernel may still hold the
// deleted node's), unless that state already points at the new one.
func waitRangeConverged(stop <-chan struct{}, n peapodcluster.Node, cidr, backend string, gone map[string]bool, r *rangeAnnounced) rangeConverged {
	prefix := netip.MustParsePrefix(cidr)
	for {
		select {
		case <-stop:
			return rangeConverged{err: fmt.Errorf("node %s: stopped waiting for %s", n.Name, cidr)}
		default:
		}
		node, _ := r.announced()
		st, err := readOverlay(n.NetNS)
		if err == nil && node != nil && node.Name != n.Name {
			ours := maps.Clone(gone)
			ours[node.Annotations[clusternetwork.AnnotationPublicIP]] = true
			ours[node.Annotations[clusternetwork.AnnotationVTEPMAC]] = true
			if got := rangeEntries(st, prefix, ours); got.equal(wantOverlay([]corev1.Node{*node}, n.Name, backend)) {
				return rangeConverged{at: time.Now(), state: got}
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rangeEntries are the entries of st for the range prefix (its route and
// the neighbour for its network address) and every FDB entry to or of a
// node IP or VTEP MAC in nodes (the deleted node's and the new one's).
func rangeEntries(st overlayState, prefix netip.Prefix, nodes map[string]bool) overlayState {
	var out overlayState
	for _, r := range st.Routes {
		if strings.HasPrefix(r, prefix.String()+" ") {
			out.Routes = append(out.Routes, r)
		}
	}
	for _, e := range st.Neighs {
		if strings.HasPrefix(e, prefix.Addr().String()+" ") {
			out.Neighs = append(out.Neighs, e)
		}
	}
	for _, e := range st.FDB {
		for w := range nodes {
			if w != "" && strings.Contains(e, w) {
				out.FDB = append(out.FDB, e)
				break
			}
		}
	}
	return out
}
