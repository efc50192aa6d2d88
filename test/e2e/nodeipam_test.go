package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The node IPAM tests' cluster range holds four node ranges (/26), so a
// few fake Nodes fill it.
const (
	ipamBridge  = "ppipam0"
	ipamCluster = "10.234.0.0/24"
	ipamMask    = "26"
	ipamR0      = "10.234.0.0/26" // the server's own node
	ipamR1      = "10.234.0.64/26"
	ipamR2      = "10.234.0.128/26"
	ipamR3      = "10.234.0.192/26"
)

// TestNodeIPAM: the server gives every Node its pod range from
// --cluster-cidr, as kube-controller-manager's range allocator does, and
// its own node starts its pod network on that range. The subtests run in
// order on one cluster, each building on the ranges the last handed out.
func TestNodeIPAM(t *testing.T) {
	c := startOwnNetworkCluster(t, ipamBridge, ipamCluster, "--node-cidr-mask-size", ipamMask)
	// Steps, not subtests: what one step makes (fake Nodes, the pod) must
	// outlive it, and a failed step leaves the next nothing to check.
	testServerNodeRange(t, c)
	testAgentPodCIDRMismatch(t, c)
	testReleasedRangeAfterNeverUsed(t, c)
	testFullRange(t, c)
	testPodCIDRImmutable(t, c)
	testRestartKeepsRanges(t, c)
	testRestartWithOtherSettingsRefused(t, c)
	testWaitingNodeGetsReleasedRange(t, c)
}

// waitPodCIDR waits until the node has a podCIDR and returns it, checking
// that podCIDR and podCIDRs agree.
func (c *cluster) waitPodCIDR(name string) string {
	c.t.Helper()
	var got string
	c.eventually(30*time.Second, func() error {
		n, err := c.client.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if n.Spec.PodCIDR == "" {
			return fmt.Errorf("node %s has no podCIDR yet", name)
		}
		if len(n.Spec.PodCIDRs) != 1 || n.Spec.PodCIDRs[0] != n.Spec.PodCIDR {
			return fmt.Errorf("node %s: podCIDR %q and podCIDRs %q disagree", name, n.Spec.PodCIDR, n.Spec.PodCIDRs)
		}
		got = n.Spec.PodCIDR
		return nil
	})
	return got
}

func (c *cluster) expectPodCIDR(name, want string) {
	c.t.Helper()
	if got := c.waitPodCIDR(name); got != want {
		c.t.Errorf("node %s got podCIDR %s, want %s", name, got, want)
	}
}

// podCIDRs maps every Node to its podCIDR ("" for none).
func (c *cluster) podCIDRs() map[string]string {
	c.t.Helper()
	nodes, err := c.client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	out := map[string]string{}
	for _, n := range nodes.Items {
		out[n.Name] = n.Spec.PodCIDR
	}
	return out
}

func testServerNodeRange(t *testing.T, c *cluster) {
	if got := c.must("get", "node", "e2e-node", "-o", "jsonpath={.spec.podCIDR} {.spec.podCIDRs[*]}"); got != ipamR0+" "+ipamR0 {
		t.Errorf("kubectl get node: podCIDR podCIDRs = %q, want the first range of --cluster-cidr, %s", got, ipamR0)
	}
	node, err := c.client.CoreV1().Nodes().Get(context.Background(), "e2e-node", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var internalIP string
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			internalIP = a.Address
		}
	}
	if internalIP == "" || node.Annotations["network.peapod.io/public-ip"] != internalIP {
		t.Errorf("public-ip annotation %q, InternalIP %q: want the node's address in both", node.Annotations["network.peapod.io/public-ip"], internalIP)
	}
	if got := node.Annotations["network.peapod.io/backend-type"]; got != "vxlan" {
		t.Errorf("backend-type annotation = %q, want vxlan (the server's default)", got)
	}

	cm, err := c.client.CoreV1().ConfigMaps("kube-system").Get(context.Background(), "peapod-network", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the cluster's network settings: %v", err)
	}
	want := map[string]string{"clusterCIDR": ipamCluster, "nodeCIDRMaskSize": ipamMask, "serviceCIDR": "10.96.0.0/12", "backend": "vxlan"}
	for k, v := range want {
		if cm.Data[k] != v {
			t.Errorf("ConfigMap kube-system/peapod-network data.%s = %q, want %q", k, cm.Data[k], v)
		}
	}

	// The node's bridge and its pods are on that range.
	br, err := netlink.LinkByName(ipamBridge)
	if err != nil {
		t.Fatalf("bridge %s: %v", ipamBridge, err)
	}
	addrs, err := netlink.AddrList(br, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) != 1 || addrs[0].IPNet.String() != "10.234.0.1/26" {
		t.Errorf("bridge %s addresses = %v, want the range's gateway 10.234.0.1/26", ipamBridge, addrs)
	}
	// The server's own node sets up the pod network between nodes as any
	// node does: with vxlan, its device (whose MAC it publishes, and whose
	// MTU the bridge and the pods take) and no peers.
	dev, err := netlink.LinkByName("peapod.1")
	if err != nil {
		t.Fatalf("the server's node has no VXLAN device: %v", err)
	}
	if mac := node.Annotations["network.peapod.io/vtep-mac"]; mac != dev.Attrs().HardwareAddr.String() {
		t.Errorf("vtep-mac annotation %q, want the device's MAC %s", mac, dev.Attrs().HardwareAddr)
	}
	if br.Attrs().MTU != dev.Attrs().MTU {
		t.Errorf("bridge %s MTU %d, want the VXLAN device's %d", ipamBridge, br.Attrs().MTU, dev.Attrs().MTU)
	}
	out, err := exec.Command(peapodBinary(t), "net", "--data-dir", c.dir).CombinedOutput()
	for _, want := range []string{"BACKEND     vxlan", "pod CIDR " + ipamR0, "DEVICE      peapod.1", "(no peers)"} {
		if err != nil || !strings.Contains(string(out), want) {
			t.Errorf("peapod net on the server's node: %v, lacks %q:\n%s", err, want, out)
		}
	}
	ns := c.namespace("ipam")
	c.apply(fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: ranged, namespace: %s}
spec:
  nodeSelector: {kubernetes.io/hostname: e2e-node}
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: busybox, command: [sleep, "3600"]}
`, ns))
	p := c.waitPod(ns, "ranged", 60*time.Second, "Running", running)
	ip, err := netip.ParseAddr(p.Status.PodIP)
	if err != nil || !netip.MustParsePrefix(ipamR0).Contains(ip) {
		t.Errorf("pod IP %q is not in the node's range %s", p.Status.PodIP, ipamR0)
	}
	if mtu := c.must("-n", ns, "exec", "ranged", "--", "cat", "/sys/class/net/eth0/mtu"); mtu != fmt.Sprint(dev.Attrs().MTU) {
		t.Errorf("pod eth0 MTU %s, want the VXLAN device's %d", mtu, dev.Attrs().MTU)
	}
}

// testAgentPodCIDRMismatch: an agent given a --pod-cidr other than the
// range the server gives its Node refuses to start, naming the flag and
// both ranges, before it sets up anything on the machine.
func testAgentPodCIDRMismatch(t *testing.T, c *cluster) {
	bin := peapodBinary(t)
	tokenOut, err := exec.Command(bin, "token", "create", "--data-dir", c.dir).CombinedOutput()
	if err != nil {
		t.Fatalf("peapod token create: %v\n%s", err, tokenOut)
	}
	dir, err := os.MkdirTemp("", "ppipamagent")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	const name, bridge = "ipam-agent", "ppipam1"
	t.Cleanup(func() {
		_ = c.client.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "agent", "--server", "https://"+c.listen, "--token", strings.TrimSpace(string(tokenOut)),
		"--data-dir", dir, "--node-name", name, "--bridge", bridge, "--agent-listen", ":"+closedPort(t),
		"--pod-cidr", "10.99.0.0/24").CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("peapod agent with a disagreeing --pod-cidr: %v, want exit status 1\n%s", err, out)
	}
	wantMsg := "--pod-cidr 10.99.0.0/24 disagrees with node ipam-agent's podCIDR " + ipamR1
	if !strings.Contains(string(out), wantMsg) {
		t.Errorf("peapod agent said:\n%s\nwant %q", out, wantMsg)
	}
	if _, err := netlink.LinkByName(bridge); err == nil {
		t.Errorf("the refused agent made its bridge %s", bridge)
	}
	if _, err := os.Stat(dir + "/cni/node-network.json"); err == nil {
		t.Errorf("the refused agent set up a pod network in %s", dir)
	}
	// Its Node is deleted: its range goes back behind the never-used ones.
	if err := c.client.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}

// testReleasedRangeAfterNeverUsed: the agent's deleted Node gave back R1;
// new Nodes get R2 and R3, never used, before R1.
func testReleasedRangeAfterNeverUsed(t *testing.T, c *cluster) {
	addFakeNode(t, c.client, "ipam-a", nil, "4", "8Gi")
	c.expectPodCIDR("ipam-a", ipamR2)
	addFakeNode(t, c.client, "ipam-b", nil, "4", "8Gi")
	c.expectPodCIDR("ipam-b", ipamR3)
	addFakeNode(t, c.client, "ipam-c", nil, "4", "8Gi")
	c.expectPodCIDR("ipam-c", ipamR1)
	seen := map[string]string{}
	for node, r := range c.podCIDRs() {
		if other, dup := seen[r]; dup && r != "" {
			t.Errorf("nodes %s and %s share the range %s", node, other, r)
		}
		seen[r] = node
	}
}

// testFullRange: with every range taken, a new Node stays without one and
// gets a Warning CIDRNotAvailable event.
func testFullRange(t *testing.T, c *cluster) {
	addFakeNode(t, c.client, "ipam-d", nil, "4", "8Gi")
	c.waitCIDRNotAvailable("ipam-d", 1)
	n, err := c.client.CoreV1().Nodes().Get(context.Background(), "ipam-d", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n.Spec.PodCIDR != "" || len(n.Spec.PodCIDRs) != 0 {
		t.Errorf("node ipam-d got %q/%q from a full cluster range", n.Spec.PodCIDR, n.Spec.PodCIDRs)
	}
}

// waitCIDRNotAvailable waits until the node has a CIDRNotAvailable event
// seen at least count times.
func (c *cluster) waitCIDRNotAvailable(node string, count int32) {
	c.t.Helper()
	c.eventually(30*time.Second, func() error {
		evs, err := c.client.CoreV1().Events("").List(context.Background(), metav1.ListOptions{
			FieldSelector: "involvedObject.kind=Node,involvedObject.name=" + node + ",reason=CIDRNotAvailable",
		})
		if err != nil {
			return err
		}
		var total int32
		for _, e := range evs.Items {
			if e.Type != corev1.EventTypeWarning || e.Message != "Node "+node+" status is now: CIDRNotAvailable" {
				return fmt.Errorf("event %s %s %q", e.Type, e.Reason, e.Message)
			}
			total += max(e.Count, 1)
		}
		if total < count {
			return fmt.Errorf("node %s: %d CIDRNotAvailable events, want %d", node, total, count)
		}
		return nil
	})
}

// testPodCIDRImmutable: a Node's range never changes through the API, as
// Kubernetes words it.
func testPodCIDRImmutable(t *testing.T, c *cluster) {
	const msg = `node updates may not change podCIDR except from "" to valid`
	out, err := c.kubectl("patch", "node", "ipam-a", "--type", "merge",
		"-p", `{"spec":{"podCIDR":"`+ipamR3+`","podCIDRs":["`+ipamR3+`"]}}`)
	if err == nil || !strings.Contains(out, msg) {
		t.Errorf("kubectl patch of a node's podCIDR: %v\n%s\nwant a refusal with %q", err, out, msg)
	}
	n, err := c.client.CoreV1().Nodes().Get(context.Background(), "e2e-node", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Spec.PodCIDR, n.Spec.PodCIDRs = "", nil
	if _, err := c.client.CoreV1().Nodes().Update(context.Background(), n, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), msg) {
		t.Errorf("clearing a node's podCIDR: %v, want Invalid with %q", err, msg)
	}
	c.expectPodCIDR("ipam-a", ipamR2)
	c.expectPodCIDR("e2e-node", ipamR0)
}

// testRestartKeepsRanges: a restarted server re-occupies the ranges Nodes
// hold; none changes, and the waiting Node still waits.
func testRestartKeepsRanges(t *testing.T, c *cluster) {
	before := c.podCIDRs()
	c.kill(syscall.SIGTERM)
	c.start()
	c.waitCIDRNotAvailable("ipam-d", 2) // tried again, still full
	after := c.podCIDRs()
	for node, r := range before {
		if after[node] != r {
			t.Errorf("node %s: podCIDR %q before the restart, %q after", node, r, after[node])
		}
	}
	if after["ipam-d"] != "" {
		t.Errorf("node ipam-d got %s after the restart; every range is held", after["ipam-d"])
	}
	if p := c.pod("ipam", "ranged"); !netip.MustParsePrefix(ipamR0).Contains(netip.MustParseAddr(p.Status.PodIP)) {
		t.Errorf("pod IP %s after the restart is not in %s", p.Status.PodIP, ipamR0)
	}
}

// testRestartWithOtherSettingsRefused: the server refuses to start with a
// cluster range or backend other than the cluster's, naming the flag;
// restarted as before, it works on.
func testRestartWithOtherSettingsRefused(t *testing.T, c *cluster) {
	before := c.podCIDRs()
	c.kill(syscall.SIGTERM)
	for _, tc := range []struct{ args, want []string }{
		{[]string{"--cluster-cidr", "10.235.0.0/24"}, []string{"--cluster-cidr 10.235.0.0/24: the cluster already uses " + ipamCluster, "strand"}},
		{[]string{"--network-backend", "host-gw"}, []string{"--network-backend host-gw: the cluster already uses vxlan"}},
		{[]string{"--node-cidr-mask-size", "27"}, []string{"--node-cidr-mask-size 27: the cluster already uses 26"}},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		out, err := exec.CommandContext(ctx, peapodBinary(t), append(c.serverArgs(), tc.args...)...).CombinedOutput()
		cancel()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Errorf("peapod server %v: %v, want exit status 1\n%s", tc.args, err, lastBytes(out))
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(string(out), w) {
				t.Errorf("peapod server %v said:\n%s\nwant %q", tc.args, lastBytes(out), w)
			}
		}
	}
	c.start()
	after := c.podCIDRs()
	for node, r := range before {
		if after[node] != r {
			t.Errorf("node %s: podCIDR %q before the refused restarts, %q after", node, r, after[node])
		}
	}
	// The node's pod outlived the refused starts, unchanged.
	p := c.waitPod("ipam", "ranged", 30*time.Second, "Running", running)
	if !netip.MustParsePrefix(ipamR0).Contains(netip.MustParseAddr(p.Status.PodIP)) || p.Status.ContainerStatuses[0].RestartCount != 0 {
		t.Errorf("pod ipam/ranged after the refused restarts: IP %s, %d restarts", p.Status.PodIP, p.Status.ContainerStatuses[0].RestartCount)
	}
	cm, err := c.client.CoreV1().ConfigMaps("kube-system").Get(context.Background(), "peapod-network", metav1.GetOptions{})
	if err != nil || cm.Data["clusterCIDR"] != ipamCluster || cm.Data["backend"] != "vxlan" || cm.Data["nodeCIDRMaskSize"] != ipamMask {
		t.Errorf("the cluster's settings after the refused restarts: %v, %v", cm, err)
	}
}

func lastBytes(b []byte) string {
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// testWaitingNodeGetsReleasedRange: deleting a Node hands its range to
// the Node waiting for one, without any update of the waiting Node.
func testWaitingNodeGetsReleasedRange(t *testing.T, c *cluster) {
	if err := c.client.CoreV1().Nodes().Delete(context.Background(), "ipam-b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	c.expectPodCIDR("ipam-d", ipamR3)
}

// TestServerRefusesBadNetworkFlags: bad network flags stop `peapod
// server` (and `peapod agent`) with exit status 1 and a message naming
// the flag, before anything is made: the data dir stays empty and no
// bridge appears.
func TestServerRefusesBadNetworkFlags(t *testing.T) {
	bin := peapodBinary(t)
	const bridge = "ppbadflag0"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"server", "--cluster-cidr", "10.42.0.0/33"}, `--cluster-cidr "10.42.0.0/33": not a CIDR`},
		{[]string{"server", "--cluster-cidr", "fd00:42::/56"}, `--cluster-cidr "fd00:42::/56": not IPv4`},
		{[]string{"server", "--cluster-cidr", "10.42.0.1/16"}, "did you mean 10.42.0.0/16"},
		{[]string{"server", "--service-cidr", "10.42.128.0/20"}, "--service-cidr 10.42.128.0/20 overlaps --cluster-cidr 10.42.0.0/16"},
		{[]string{"server", "--service-cidr", "banana"}, `--service-cidr "banana": not a CIDR`},
		{[]string{"server", "--node-cidr-mask-size", "8"}, "--node-cidr-mask-size 8: smaller than --cluster-cidr 10.42.0.0/16's prefix length /16"},
		{[]string{"server", "--node-cidr-mask-size", "31"}, "--node-cidr-mask-size 31: leaves no room for pods"},
		{[]string{"server", "--network-backend", "udp"}, `--network-backend "udp": unknown; want vxlan, host-gw or none`},
		{[]string{"server", "--node-ip", "203.0.113.77"}, "--node-ip 203.0.113.77: no interface of this machine has this address"},
		{[]string{"server", "--node-ip", "not-an-ip"}, `--node-ip "not-an-ip": not an IP address`},
		{[]string{"agent", "--server", "https://127.0.0.1:1", "--node-ip", "203.0.113.77"}, "--node-ip 203.0.113.77: no interface of this machine has this address"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			dir := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			args := append(append([]string{}, tc.args...), "--data-dir", dir, "--bridge", bridge, "--listen", "127.0.0.1:0")
			if tc.args[0] == "agent" {
				args = args[:len(args)-2] // agents have no --listen
			}
			out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("peapod %v: %v, want exit status 1\n%s", args, err, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("peapod said %q, want %q", out, tc.want)
			}
			if entries, _ := os.ReadDir(dir); len(entries) > 0 {
				t.Errorf("the refused command left %d entries in its data dir", len(entries))
			}
			if _, err := netlink.LinkByName(bridge); err == nil {
				t.Errorf("the refused command made bridge %s", bridge)
			}
		})
	}
}
