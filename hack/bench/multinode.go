package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	peapodcluster "github.com/peapod/peapod/internal/cluster"
	"github.com/peapod/peapod/internal/nodenet"
	"github.com/peapod/peapod/internal/nodenet/nodenettest"
)

// Issue 10's figures, on clusters of `peapod cluster up` (every node a
// network namespace on an underlay bridge): cross-node pod-to-pod TCP
// throughput and RTT with each backend beside the floors built by hand
// between the same node namespaces, node join → Ready, routes converged on
// every node after a Node joins and leaves, pod start on 3 nodes, and the
// RSS of `peapod agent` with 10 pods.

// multiNodeResult is what the multi-node section measured.
type multiNodeResult struct {
	// Throughput in Gbit/s (median of the rounds) and ping RTTs: pod to
	// pod with vxlan and its floor (a hand-built VXLAN pair between the
	// two node namespaces), pod to pod with host-gw and its floor (the
	// bare underlay between them).
	VXLAN, VXLANFloor, HostGW, Underlay netResult
	// HostGWNoBridgeNF is pod to pod with host-gw again, in the same
	// rounds, with bridge-nf-call-iptables=0 in both node namespaces:
	// what br_netfilter costs the pod path (a diagnosis for the misses
	// text; peapod keeps it on, Services need it).
	HostGWNoBridgeNF netResult
	Tool             string
	Rounds           int
	// Join is `peapod cluster node add` → the Node seen Ready; Converge
	// is from the moment the Node carries its podCIDR and network
	// annotations (join) or is deleted (leave) to the route to its pods
	// added on (removed from) every other node.
	Join, JoinRoutes, LeaveRoutes []time.Duration
	// PodStart is client-go create → Running of pods the scheduler spreads
	// over 3 nodes, one at a time.
	PodStart []time.Duration
	// AgentRSSKiB is `peapod agent`'s VmRSS with AgentPods pods, and
	// AgentAnonKiB the anonymous part of it (RssAnon: heap, stacks,
	// runtime), the rest being the binary's file pages.
	AgentRSSKiB, AgentAnonKiB, AgentPods int
}

// multiNodeSizes: rounds of throughput per pair, seconds per round, join
// and leave samples, pods started one at a time.
type multiNodeSizes struct {
	Rounds, Seconds, Joins, Pods int
}

func (s sizes) multiNode() multiNodeSizes {
	if s.OneByOne < 10 { // -quick
		return multiNodeSizes{Rounds: 2, Seconds: 1, Joins: 1, Pods: 5}
	}
	return multiNodeSizes{Rounds: 7, Seconds: 2, Joins: 3, Pods: 30}
}

// benchCluster is a cluster of `peapod cluster up` in a directory of its own.
type benchCluster struct {
	bin, dir string
	st       *peapodcluster.State
	client   kubernetes.Interface
}

// multiNodeName names the benchmark's clusters (machine-wide names).
const multiNodeName = "ppbench"

// clusterUp runs `peapod cluster up` with backend and returns the cluster
// once every node is Ready. The caller must call down, also on failure.
func clusterUp(ctx context.Context, bin, busybox, backend string, nodes int) (*benchCluster, error) {
	parent, err := os.MkdirTemp("", "ppbench-cluster")
	if err != nil {
		return nil, err
	}
	c := &benchCluster{bin: bin, dir: filepath.Join(parent, multiNodeName)}
	out, err := exec.CommandContext(ctx, bin, "cluster", "up", "--name", multiNodeName, "--dir", c.dir, "--nodes", strconv.Itoa(nodes),
		"--network-backend", backend, "--image", busybox).CombinedOutput()
	if err != nil {
		return c, fmt.Errorf("peapod cluster up (%s): %w\n%s", backend, err, lastLines(string(out), 20))
	}
	if err := c.reload(); err != nil {
		return c, err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", c.st.Kubeconfig())
	if err != nil {
		return c, err
	}
	cfg.QPS, cfg.Burst = 1e6, 1e6
	c.client, err = kubernetes.NewForConfig(cfg)
	return c, err
}

// reload reads the cluster's record again (after node add and rm).
func (c *benchCluster) reload() error {
	data, err := os.ReadFile(filepath.Join(c.dir, "cluster.json"))
	if err != nil {
		return fmt.Errorf("read cluster state: %w", err)
	}
	var st peapodcluster.State
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("read cluster state: %w", err)
	}
	c.st = &st
	return nil
}

// down takes the cluster down and removes its directory (idempotent).
func (c *benchCluster) down() {
	if c == nil {
		return
	}
	if out, err := exec.Command(c.bin, "cluster", "down", "--dir", c.dir).CombinedOutput(); err != nil {
		logf("cleanup: peapod cluster down: %v: %s", err, out)
	}
	_ = os.Remove(filepath.Dir(c.dir))
}

// cleanupMultiNode takes down a benchmark cluster an interrupted run left.
func cleanupMultiNode(bin string) {
	matches, _ := filepath.Glob(filepath.Join(os.TempDir(), "ppbench-cluster*", multiNodeName))
	for _, dir := range matches {
		(&benchCluster{bin: bin, dir: dir}).down()
	}
}

// namespace creates ns and waits for its default ServiceAccount.
func (c *benchCluster) namespace(ctx context.Context, name string) error {
	return (&cluster{client: c.client}).namespace(ctx, name)
}

// runPods creates one pod per node name given and returns them Running.
func (c *benchCluster) runPods(ctx context.Context, ns string, nodes ...string) ([]*corev1.Pod, error) {
	tr, err := newTracker(ctx, c.client, ns)
	if err != nil {
		return nil, err
	}
	var pods []*corev1.Pod
	for i, node := range nodes {
		name := fmt.Sprintf("p%d", i)
		if _, err := c.client.CoreV1().Pods(ns).Create(ctx, benchPod(name, ns, map[string]string{corev1.LabelHostname: node}), metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("create pod %s: %w", name, err)
		}
		if _, err := tr.wait(ctx, name, startTimeout); err != nil {
			return nil, err
		}
		p, err := c.client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		pods = append(pods, p)
	}
	return pods, nil
}

// podPair runs a pod on each of the first two nodes, in namespace net,
// and returns where to reach them for the traffic probes.
func (c *benchCluster) podPair(ctx context.Context) (from, to nodenettest.Endpoint, err error) {
	if err := c.namespace(ctx, "net"); err != nil {
		return from, to, err
	}
	pods, err := c.runPods(ctx, "net", c.st.Nodes[0].Name, c.st.Nodes[1].Name)
	if err != nil {
		return from, to, err
	}
	if from, err = c.endpoint(ctx, pods[0]); err != nil {
		return from, to, err
	}
	to, err = c.endpoint(ctx, pods[1])
	return from, to, err
}

// endpoint is a pod's own network namespace and IP, from `peapod ps` on
// its node.
func (c *benchCluster) endpoint(ctx context.Context, p *corev1.Pod) (nodenettest.Endpoint, error) {
	for _, n := range c.st.Nodes {
		if n.Name != p.Spec.NodeName {
			continue
		}
		out, err := exec.CommandContext(ctx, c.bin, "ps", "-o", "json", "--data-dir", n.DataDir, "--bridge", n.PodBridge,
			"--node-name", n.Name, "--cgroup-parent", n.CgroupParent).Output()
		if err != nil {
			return nodenettest.Endpoint{}, fmt.Errorf("peapod ps on %s: %w", n.Name, err)
		}
		var sbs []sandbox
		if err := json.Unmarshal(out, &sbs); err != nil {
			return nodenettest.Endpoint{}, fmt.Errorf("peapod ps on %s: %w", n.Name, err)
		}
		for _, sb := range sbs {
			if sb.PodNamespace == p.Namespace && sb.PodName == p.Name && len(sb.IPs) > 0 {
				return nodenettest.Endpoint{NetNS: sb.NetNSPath, IP: netip.MustParseAddr(sb.IPs[0])}, nil
			}
		}
	}
	return nodenettest.Endpoint{}, fmt.Errorf("pod %s has no sandbox on %s", p.Name, p.Spec.NodeName)
}

// nodeEndpoint is node i's namespace and underlay address.
func (c *benchCluster) nodeEndpoint(i int) nodenettest.Endpoint {
	n := c.st.Nodes[i]
	return nodenettest.Endpoint{NetNS: n.NetNS, IP: netip.MustParseAddr(n.Address)}
}

// multiNodeRuns measures issue 10's figures; errors go to the report.
func (b *bench) multiNodeRuns(ctx context.Context) {
	sz := b.sz.multiNode()
	r := &b.mn
	r.Rounds = sz.Rounds
	cleanupMultiNode(b.peapod)
	section := func(name string, f func() error) {
		if ctx.Err() != nil {
			return
		}
		logf("multi-node: %s", name)
		if err := f(); err != nil {
			b.r.errorf("multi-node %s: %v", name, err)
		}
	}
	section("vxlan: pod → pod across nodes, beside a hand-built VXLAN pair; join, leave, pod start, agent RSS", func() error {
		c, err := clusterUp(ctx, b.peapod, b.busybox, "vxlan", 3)
		defer c.down()
		if err != nil {
			return err
		}
		from, to, err := c.podPair(ctx)
		if err != nil {
			return err
		}
		floorA, floorB, removeFloor, err := handVXLAN(c.nodeEndpoint(0), c.nodeEndpoint(1))
		if err != nil {
			return fmt.Errorf("hand-built VXLAN pair: %w", err)
		}
		err = measureRounds(ctx, sz, &r.Tool, []pairToMeasure{{name: "vxlan", from: from, to: to, into: &r.VXLAN}, {name: "vxlan floor", from: floorA, to: floorB, into: &r.VXLANFloor}})
		removeFloor()
		if err != nil {
			return err
		}
		b.have["mn-vxlan"] = true
		if err := c.podStarts(ctx, sz.Pods, &r.PodStart); err != nil {
			return fmt.Errorf("pod start: %w", err)
		}
		b.have["mn-podstart"] = true
		if err := c.agentRSS(ctx, 10, r); err != nil {
			return fmt.Errorf("agent RSS: %w", err)
		}
		b.have["mn-rss"] = true
		if err := c.joinsAndLeaves(ctx, b.busybox, sz.Joins, r); err != nil {
			return fmt.Errorf("join and leave: %w", err)
		}
		b.have["mn-join"] = true
		return nil
	})
	section("host-gw: pod → pod across nodes, beside the bare underlay", func() error {
		c, err := clusterUp(ctx, b.peapod, b.busybox, "host-gw", 2)
		defer c.down()
		if err != nil {
			return err
		}
		from, to, err := c.podPair(ctx)
		if err != nil {
			return err
		}
		bridgeNF := func(on string) func() error {
			return func() error { return c.setBridgeNF(ctx, on) }
		}
		err = measureRounds(ctx, sz, &r.Tool, []pairToMeasure{
			{name: "host-gw", from: from, to: to, into: &r.HostGW, before: bridgeNF("1")},
			{name: "host-gw, br_netfilter off", from: from, to: to, into: &r.HostGWNoBridgeNF, before: bridgeNF("0")},
			{name: "underlay", from: c.nodeEndpoint(0), to: c.nodeEndpoint(1), into: &r.Underlay, before: bridgeNF("1")},
		})
		if err != nil {
			return err
		}
		b.have["mn-hostgw"] = true
		return nil
	})
	b.multiNodeRows()
}

// pairToMeasure is a path and where its figures go; before, if set, runs
// before each of its rounds.
type pairToMeasure struct {
	name     string
	from, to nodenettest.Endpoint
	into     *netResult
	before   func() error
}

// setBridgeNF sets net.bridge.bridge-nf-call-iptables (per network
// namespace) to on ("0" or "1") in every node's namespace.
func (c *benchCluster) setBridgeNF(ctx context.Context, on string) error {
	for _, n := range c.st.Nodes {
		out, err := exec.CommandContext(ctx, "nsenter", "--net="+n.NetNS, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables="+on).CombinedOutput()
		if err != nil {
			return fmt.Errorf("bridge-nf-call-iptables=%s on %s: %w: %s", on, n.Name, err, out)
		}
	}
	return nil
}

// measureRounds measures TCP throughput (iperf3, one stream) and ping RTT
// of every pair, sz.Rounds times, every other round in reverse order, so a
// path and its floor run under the same load; Gbps is the median round.
func measureRounds(ctx context.Context, sz multiNodeSizes, tool *string, pairs []pairToMeasure) error {
	gbps := make([][]float64, len(pairs))
	for round := 0; round < sz.Rounds; round++ {
		order := make([]int, len(pairs))
		for i := range order {
			order[i] = i
		}
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, i := range order {
			p := pairs[i]
			if p.before != nil {
				if err := p.before(); err != nil {
					return err
				}
			}
			g, used, err := nodenettest.Throughput(ctx, p.from, p.to, 5201, time.Duration(sz.Seconds)*time.Second)
			if err != nil {
				return fmt.Errorf("%s throughput: %w", p.name, err)
			}
			*tool = used
			rtt, err := nodenettest.RTTs(ctx, p.from, p.to, 10, 50*time.Millisecond)
			if err != nil {
				return fmt.Errorf("%s RTT: %w", p.name, err)
			}
			gbps[i] = append(gbps[i], g)
			p.into.RTT = append(p.into.RTT, rtt...)
		}
	}
	for i, p := range pairs {
		p.into.Gbps = median(gbps[i])
	}
	return nil
}

// handVXLAN builds, without peapod, a VXLAN pair between two node
// namespaces over their underlay (VNI 42, UDP 4789, learning off, MTU =
// eth0's - 50 as peapod.1's, static FDB and neighbour entries,
// 10.221.0.1 and .2/24 on the devices) and returns its two ends and what
// removes it.
func handVXLAN(a, b nodenettest.Endpoint) (nodenettest.Endpoint, nodenettest.Endpoint, func(), error) {
	ends := []nodenettest.Endpoint{a, b}
	ips := []netip.Addr{netip.MustParseAddr("10.221.0.1"), netip.MustParseAddr("10.221.0.2")}
	handles := make([]*netlink.Handle, 2)
	links := make([]netlink.Link, 2)
	remove := func() {
		for i, h := range handles {
			if h == nil {
				continue
			}
			if links[i] != nil {
				_ = h.LinkDel(links[i])
			}
			h.Close()
		}
	}
	for i, e := range ends {
		ns, err := vnetns.GetFromPath(e.NetNS)
		if err != nil {
			remove()
			return a, b, nil, err
		}
		handles[i], err = netlink.NewHandleAt(ns)
		ns.Close()
		if err != nil {
			remove()
			return a, b, nil, err
		}
		h := handles[i]
		eth0, err := h.LinkByName("eth0")
		if err != nil {
			remove()
			return a, b, nil, err
		}
		v := &netlink.Vxlan{
			LinkAttrs: netlink.LinkAttrs{Name: "ppbench.42", MTU: eth0.Attrs().MTU - 50},
			VxlanId:   42, VtepDevIndex: eth0.Attrs().Index, SrcAddr: e.IP.AsSlice(), Port: 4789,
		}
		if err := h.LinkAdd(v); err != nil {
			remove()
			return a, b, nil, err
		}
		if links[i], err = h.LinkByName(v.Name); err != nil {
			remove()
			return a, b, nil, err
		}
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: ips[i].AsSlice(), Mask: net.CIDRMask(24, 32)}}
		if err := errors.Join(h.AddrAdd(links[i], addr), h.LinkSetUp(links[i])); err != nil {
			remove()
			return a, b, nil, err
		}
		if links[i], err = h.LinkByName(v.Name); err != nil {
			remove()
			return a, b, nil, err
		}
	}
	for i, h := range handles {
		other := 1 - i
		mac := links[other].Attrs().HardwareAddr
		err := errors.Join(
			h.NeighAppend(&netlink.Neigh{LinkIndex: links[i].Attrs().Index, Family: unix.AF_BRIDGE, State: netlink.NUD_PERMANENT,
				Flags: netlink.NTF_SELF, IP: ends[other].IP.AsSlice(), HardwareAddr: mac}),
			h.NeighSet(&netlink.Neigh{LinkIndex: links[i].Attrs().Index, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT,
				IP: ips[other].AsSlice(), HardwareAddr: mac}))
		if err != nil {
			remove()
			return a, b, nil, err
		}
	}
	return nodenettest.Endpoint{NetNS: a.NetNS, IP: ips[0]}, nodenettest.Endpoint{NetNS: b.NetNS, IP: ips[1]}, remove, nil
}

// podStarts starts n pods one at a time, placed by the scheduler over
// every node, and records each create → Running.
func (c *benchCluster) podStarts(ctx context.Context, n int, into *[]time.Duration) error {
	if err := c.namespace(ctx, "seq"); err != nil {
		return err
	}
	took, err := startOneByOne(ctx, c.client, "seq", "seq", n)
	*into = took
	return err
}

// agentRSS runs n pods on node 2 (which runs `peapod agent` alone) and
// reads the agent's VmRSS once they all run.
func (c *benchCluster) agentRSS(ctx context.Context, n int, r *multiNodeResult) error {
	node := c.st.Nodes[1]
	if node.Role != "agent" || node.PID == 0 {
		return fmt.Errorf("node %s does not run an agent (role %s, pid %d)", node.Name, node.Role, node.PID)
	}
	if err := c.namespace(ctx, "rss"); err != nil {
		return err
	}
	names := make([]string, n)
	for i := range names {
		names[i] = node.Name
	}
	if _, err := c.runPods(ctx, "rss", names...); err != nil {
		return err
	}
	r.AgentRSSKiB, r.AgentAnonKiB, r.AgentPods = rssKiB(node.PID), statusKiB(node.PID, "RssAnon"), n
	if r.AgentRSSKiB == 0 {
		return fmt.Errorf("no VmRSS for the agent's pid %d", node.PID)
	}
	return nil
}

// joinsAndLeaves adds nodes one at a time (`peapod cluster node add`),
// timing each to its Node seen Ready and its route on every other node,
// then deletes each Node, timing until its route is gone from every other
// node, and removes it.
// The cluster range (10.42.0.0/16, 256 node ranges) hands a released range
// out again only after every never-used one, so each join here gets a
// range no node had and its route is new on every node: a route
// notification marks convergence. (A reused range would, with vxlan, keep
// its route, which names only the range, and change only the neighbour
// and FDB entry; the e2e test of a reused range checks those.)
func (c *benchCluster) joinsAndLeaves(ctx context.Context, busybox string, n int, r *multiNodeResult) error {
	w, err := c.client.CoreV1().Nodes().Watch(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	defer w.Stop()
	events := newNodeEvents(w)
	for i := 0; i < n; i++ {
		if err := c.reload(); err != nil {
			return err
		}
		before := map[string]bool{}
		routes, err := subscribeRoutes(c.st.Nodes)
		if err != nil {
			return err
		}
		for _, nd := range c.st.Nodes {
			before[nd.Name] = true
		}
		start := time.Now()
		out, err := exec.CommandContext(ctx, c.bin, "cluster", "node", "add", "--dir", c.dir, "--image", busybox).CombinedOutput()
		if err != nil {
			routes.close()
			return fmt.Errorf("node add: %w\n%s", err, out)
		}
		if err := c.reload(); err != nil {
			routes.close()
			return err
		}
		var added peapodcluster.Node
		for _, nd := range c.st.Nodes {
			if !before[nd.Name] {
				added = nd
			}
		}
		ready, annotated, cidr, err := events.joined(ctx, c.client, added.Name)
		if err != nil {
			routes.close()
			return err
		}
		r.Join = append(r.Join, ready.Sub(start))
		last, err := routes.waitAll(cidr, true)
		routes.close()
		if err != nil {
			return fmt.Errorf("route to %s's pods: %w", added.Name, err)
		}
		r.JoinRoutes = append(r.JoinRoutes, last.Sub(annotated))

		// It leaves: stopped, its Node deleted.
		others := slices.DeleteFunc(slices.Clone(c.st.Nodes), func(nd peapodcluster.Node) bool { return nd.Name == added.Name })
		if routes, err = subscribeRoutes(others); err != nil {
			return err
		}
		if out, err := exec.CommandContext(ctx, c.bin, "cluster", "node", "stop", added.Name, "--dir", c.dir, "--signal", "KILL").CombinedOutput(); err != nil {
			routes.close()
			return fmt.Errorf("node stop: %w\n%s", err, out)
		}
		deleted := time.Now()
		if err := c.client.CoreV1().Nodes().Delete(ctx, added.Name, metav1.DeleteOptions{}); err != nil {
			routes.close()
			return err
		}
		last, err = routes.waitAll(cidr, false)
		routes.close()
		if err != nil {
			return fmt.Errorf("route to %s's pods after the delete: %w", added.Name, err)
		}
		r.LeaveRoutes = append(r.LeaveRoutes, last.Sub(deleted))
		if out, err := exec.CommandContext(ctx, c.bin, "cluster", "node", "rm", added.Name, "--dir", c.dir).CombinedOutput(); err != nil {
			return fmt.Errorf("node rm: %w\n%s", err, out)
		}
	}
	return nil
}

// nodeEvents remembers, from one Node watch, when each Node object (by
// UID: a Node deleted and registered again under its name is another
// join, with a range of its own) was first seen with its podCIDR and
// network annotations, and first seen Ready.
type nodeEvents struct {
	mu        sync.Mutex
	ready     map[types.UID]time.Time
	annotated map[types.UID]time.Time
	cidr      map[types.UID]string
}

func newNodeEvents(w watch.Interface) *nodeEvents {
	e := &nodeEvents{ready: map[types.UID]time.Time{}, annotated: map[types.UID]time.Time{}, cidr: map[types.UID]string{}}
	go func() {
		for ev := range w.ResultChan() {
			n, ok := ev.Object.(*corev1.Node)
			if !ok || ev.Type == watch.Deleted {
				continue
			}
			now := time.Now()
			e.mu.Lock()
			if _, seen := e.annotated[n.UID]; !seen && n.Spec.PodCIDR != "" && n.Annotations[nodenet.AnnotationBackendType] != "" {
				e.annotated[n.UID], e.cidr[n.UID] = now, n.Spec.PodCIDR
			}
			for _, c := range n.Status.Conditions {
				if _, seen := e.ready[n.UID]; !seen && c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					e.ready[n.UID] = now
				}
			}
			e.mu.Unlock()
		}
	}()
	return e
}

// joined waits until the Node named name that the API holds now was seen
// annotated and Ready.
func (e *nodeEvents) joined(ctx context.Context, client kubernetes.Interface, name string) (ready, annotated time.Time, cidr string, err error) {
	node, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return ready, annotated, cidr, err
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		e.mu.Lock()
		ready, annotated, cidr = e.ready[node.UID], e.annotated[node.UID], e.cidr[node.UID]
		e.mu.Unlock()
		if !ready.IsZero() && !annotated.IsZero() {
			return ready, annotated, cidr, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return ready, annotated, cidr, fmt.Errorf("node %s not seen Ready with its network annotations", name)
		}
	}
}

// routeWatch follows the route notifications of several node namespaces,
// each stamped with the time it arrived: the caller reads them later (a
// join's only once the Node is seen Ready), so the time it reads one says
// nothing of when the kernel changed the route.
type routeWatch struct {
	nodes   []string
	updates []chan stampedRoute
	done    chan struct{}
}

// stampedRoute is a route notification and when it arrived.
type stampedRoute struct {
	netlink.RouteUpdate
	at time.Time
}

func subscribeRoutes(nodes []peapodcluster.Node) (*routeWatch, error) {
	w := &routeWatch{done: make(chan struct{})}
	for _, n := range nodes {
		ns, err := vnetns.GetFromPath(n.NetNS)
		if err != nil {
			w.close()
			return nil, err
		}
		ch := make(chan netlink.RouteUpdate, 1024)
		err = netlink.RouteSubscribeWithOptions(ch, w.done, netlink.RouteSubscribeOptions{Namespace: &ns})
		ns.Close()
		if err != nil {
			w.close()
			return nil, err
		}
		stamped := make(chan stampedRoute, 1024)
		go func() {
			for {
				select {
				case u, ok := <-ch:
					if !ok {
						return
					}
					select {
					case stamped <- stampedRoute{u, time.Now()}:
					case <-w.done:
						return
					}
				case <-w.done:
					return
				}
			}
		}()
		w.nodes, w.updates = append(w.nodes, n.Name), append(w.updates, stamped)
	}
	return w, nil
}

func (w *routeWatch) close() {
	select {
	case <-w.done:
	default:
		close(w.done)
	}
}

// waitAll waits until every node reported nodenet's route to cidr added
// (or removed), and returns when the last of those notifications arrived.
func (w *routeWatch) waitAll(cidr string, added bool) (time.Time, error) {
	typ := uint16(unix.RTM_NEWROUTE)
	if !added {
		typ = unix.RTM_DELROUTE
	}
	var last time.Time
	for i, ch := range w.updates {
		timeout := time.After(30 * time.Second)
		for seen := false; !seen; {
			select {
			case u := <-ch:
				if u.Type == typ && u.Protocol == nodenet.RouteProtocol && u.Dst != nil && u.Dst.String() == cidr {
					seen = true
					if u.at.After(last) {
						last = u.at
					}
				}
			case <-timeout:
				return last, fmt.Errorf("node %s: no route change for %s within 30 s", w.nodes[i], cidr)
			}
		}
	}
	return last, nil
}

// multiNodeRows adds the section's rows to the report.
func (b *bench) multiNodeRows() {
	r := b.mn
	rounds := fmt.Sprintf("%s, %d × %d s rounds, median", r.Tool, r.Rounds, b.sz.multiNode().Seconds)
	if b.have["mn-vxlan"] {
		b.r.add(row{Section: "pod network between nodes", What: "vxlan: pod → pod on another node, TCP (" + rounds + ")", Unit: "Gbit/s",
			P50: r.VXLAN.Gbps, P99: nan(), Anchor: "floor: hand-built VXLAN pair between the same node namespaces", AP50: r.VXLANFloor.Gbps, AP99: nan()})
		b.r.add(row{Section: "pod network between nodes", What: fmt.Sprintf("vxlan: pod → pod ping RTT, n=%d", len(r.VXLAN.RTT)), Unit: "ms",
			P50: percentile(r.VXLAN.RTT, .5), P99: percentile(r.VXLAN.RTT, .99), Anchor: "floor: hand-built VXLAN pair",
			AP50: percentile(r.VXLANFloor.RTT, .5), AP99: percentile(r.VXLANFloor.RTT, .99)})
	}
	if b.have["mn-hostgw"] {
		b.r.add(row{Section: "pod network between nodes", What: "host-gw: pod → pod on another node, TCP (" + rounds + ")", Unit: "Gbit/s",
			P50: r.HostGW.Gbps, P99: nan(), Anchor: "floor: the bare underlay between the node namespaces", AP50: r.Underlay.Gbps, AP99: nan()})
		b.r.add(row{Section: "pod network between nodes", What: fmt.Sprintf("host-gw: pod → pod ping RTT, n=%d", len(r.HostGW.RTT)), Unit: "ms",
			P50: percentile(r.HostGW.RTT, .5), P99: percentile(r.HostGW.RTT, .99), Anchor: "floor: the bare underlay",
			AP50: percentile(r.Underlay.RTT, .5), AP99: percentile(r.Underlay.RTT, .99)})
	}
	if b.have["mn-join"] {
		b.r.add(row{Section: "nodes", What: fmt.Sprintf("`peapod cluster node add` → Node Ready, n=%d", len(r.Join)), Unit: "ms",
			P50: percentile(r.Join, .5), P99: percentile(r.Join, .99), Anchor: "target (issue 10)", AP50: 3000, AP99: nan()})
		b.r.add(row{Section: "nodes", What: fmt.Sprintf("Node joins (podCIDR and annotations seen) → route on every other node, n=%d", len(r.JoinRoutes)), Unit: "ms",
			P50: percentile(r.JoinRoutes, .5), P99: percentile(r.JoinRoutes, .99), Anchor: "target (issue 10)", AP50: 1000, AP99: nan()})
		b.r.add(row{Section: "nodes", What: fmt.Sprintf("Node deleted → route gone from every other node, n=%d", len(r.LeaveRoutes)), Unit: "ms",
			P50: percentile(r.LeaveRoutes, .5), P99: percentile(r.LeaveRoutes, .99), Anchor: "target (issue 10)", AP50: 1000, AP99: nan()})
	}
	if b.have["mn-podstart"] {
		b.r.add(row{Section: "pod start", What: fmt.Sprintf("one at a time on a 3-node cluster (vxlan), runc, n=%d", len(r.PodStart)), Unit: "ms",
			P50: percentile(r.PodStart, .5), P99: percentile(r.PodStart, .99), Anchor: "peapod, one node (the first row)",
			AP50: percentile(b.seqRunc, .5), AP99: percentile(b.seqRunc, .99)})
	}
	if b.have["mn-rss"] {
		b.r.add(row{Section: "nodes", What: fmt.Sprintf("`peapod agent` alone with %d pods (%.1f MiB of it anonymous: heap, stacks)", r.AgentPods, float64(r.AgentAnonKiB)/1024), Unit: "MiB RSS",
			P50: float64(r.AgentRSSKiB) / 1024, P99: nan(), Anchor: "target (issue 10)", AP50: 40, AP99: nan()})
	}
}

// String is the figures in one line, for -only multinode.
func (r multiNodeResult) String() string {
	return strings.TrimSpace(fmt.Sprintf("vxlan %.2f/%.2f Gbit/s, host-gw %.2f/%.2f Gbit/s (br_netfilter off %.2f), join %v, routes %v/%v, pod start %v, agent %d KiB (%d KiB anonymous)",
		r.VXLAN.Gbps, r.VXLANFloor.Gbps, r.HostGW.Gbps, r.Underlay.Gbps, r.HostGWNoBridgeNF.Gbps, r.Join, r.JoinRoutes, r.LeaveRoutes, r.PodStart, r.AgentRSSKiB, r.AgentAnonKiB))
}
