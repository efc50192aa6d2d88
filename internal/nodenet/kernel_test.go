package nodenet

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/peapod/peapod/internal/network/netns"
	"github.com/peapod/peapod/internal/nodenet/nodenettest"
)

// TestVXLANPodToPod: three nodes on one underlay, each with the VXLAN
// device and its peers programmed: every pod pings every pod on another
// node; TCP from a pod to a pod, from a node to a pod and from a pod to
// another node arrives with the sender's own address (no NAT).
func TestVXLANPodToPod(t *testing.T) {
	_, nodes := setupLab(t, 3, BackendVXLAN, nil)
	syncAll(t, nodes)

	for _, ln := range nodes {
		link, err := ln.Handle.LinkByName(DefaultDevice)
		if err != nil {
			t.Fatalf("%s has no %s: %v", ln.Name, DefaultDevice, err)
		}
		v, ok := link.(*netlink.Vxlan)
		if !ok {
			t.Fatalf("%s: %s is a %s", ln.Name, DefaultDevice, link.Type())
		}
		eth0, _ := ln.Handle.LinkByName("eth0")
		if v.VxlanId != 1 || v.Port != 8472 || v.Learning || !v.SrcAddr.Equal(ln.IP.AsSlice()) ||
			v.VtepDevIndex != eth0.Attrs().Index || v.MTU != 1450 || v.Flags&net.FlagUp == 0 {
			t.Errorf("%s: device vni %d port %d learning %v local %s parent %d (eth0 %d) mtu %d flags %v; want vni 1 port 8472 learning off local %s on eth0, mtu 1450, up",
				ln.Name, v.VxlanId, v.Port, v.Learning, v.SrcAddr, v.VtepDevIndex, eth0.Attrs().Index, v.MTU, v.Flags, ln.IP)
		}
		if ln.local.MTU != 1450 || ln.local.Device != DefaultDevice || v.HardwareAddr.String() != ln.local.VTEPMAC.String() {
			t.Errorf("%s: Setup returned %+v, device MAC %s", ln.Name, ln.local, v.HardwareAddr)
		}
		addrs, _ := ln.Handle.AddrList(link, netlink.FAMILY_V4)
		if len(addrs) != 1 || addrs[0].IPNet.String() != netip.PrefixFrom(ln.PodCIDR.Addr(), 32).String() {
			t.Errorf("%s: device addresses %v, want only %s/32", ln.Name, addrs, ln.PodCIDR.Addr())
		}
		ann := ln.local.Annotations
		if ann[AnnotationBackendType] != "vxlan" || ann[AnnotationPublicIP] != ln.IP.String() || ann[AnnotationVTEPMAC] != v.HardwareAddr.String() {
			t.Errorf("%s: annotations %v", ln.Name, ann)
		}
	}
	for i, ln := range nodes {
		checkState(t, ln, wantVXLANState(peersOf(nodes, i)))
	}

	pingAll(t, nodes)
	a, b := nodes[0], nodes[1]
	expectSource(t, a.Pods[0].Endpoint(), b.Pods[0].Endpoint(), a.Pods[0].IP)
	// The node's own traffic to remote pods leaves from its device's
	// address, the podCIDR's network address (as with flannel.1).
	expectSource(t, a.Endpoint(), b.Pods[0].Endpoint(), a.PodCIDR.Addr())
	expectSource(t, a.Pods[0].Endpoint(), b.Endpoint(), a.Pods[0].IP)

	// Status reads it all back from the kernel.
	st, err := a.net.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Device == nil || st.Device.MTU != 1450 || st.Device.Parent != "eth0" || st.Device.LocalIP != a.IP.String() || !st.Forwarding {
		t.Errorf("status: device %+v forwarding %v", st.Device, st.Forwarding)
	}
	if len(st.Peers) != 2 {
		t.Fatalf("status peers: %+v", st.Peers)
	}
	for _, p := range st.Peers {
		if !p.RouteOK || !p.FDB || !p.Neighbour || p.Name == "" || p.VTEPMAC == "" {
			t.Errorf("status peer %+v: want name, MAC, route, FDB and neighbour", p)
		}
	}
	var out bytes.Buffer
	if err := Render(&out, st); err != nil {
		t.Fatal(err)
	}
	if want := b.PodCIDR.String() + " via " + b.PodCIDR.Addr().String() + " dev peapod.1 onlink"; !strings.Contains(out.String(), want) {
		t.Errorf("rendered status lacks %q:\n%s", want, out.String())
	}
	t.Logf("peapod net on %s:\n%s", a.Name, out.String())
}

// TestHostGWPodToPod: host-gw routes each peer's podCIDR via its node IP;
// a peer behind the underlay's gateway (not on the L2 segment) is refused
// with the reason while the others are programmed.
func TestHostGWPodToPod(t *testing.T) {
	_, nodes := setupLab(t, 3, BackendHostGW, nil)
	for _, ln := range nodes {
		if ln.local.MTU != 1500 || ln.local.Device != "" || ln.local.Annotations[AnnotationVTEPMAC] != "" || ln.local.Annotations[AnnotationBackendType] != "host-gw" {
			t.Errorf("%s: Setup returned %+v", ln.Name, ln.local)
		}
		if _, err := ln.Handle.LinkByName(DefaultDevice); err == nil {
			t.Errorf("%s: host-gw made a VXLAN device", ln.Name)
		}
	}
	far := Peer{Name: "far", NodeIP: netip.MustParseAddr("192.0.2.10"), PodCIDR: netip.MustParsePrefix("10.244.99.0/24")}
	for i, ln := range nodes {
		refused, err := ln.net.Sync(t.Context(), append(peersOf(nodes, i), far))
		if err != nil {
			t.Fatalf("Sync %s: %v", ln.Name, err)
		}
		if len(refused) != 1 || refused[0].Peer.Name != "far" || !strings.Contains(refused[0].Reason, "not on this node's L2 segment (reached through gateway 172.31.250.254)") {
			t.Errorf("%s: refused %v, want far refused as off-segment", ln.Name, refused)
		}
		var want kernelState
		for _, p := range peersOf(nodes, i) {
			want.routes = append(want.routes, p.PodCIDR.String()+" via "+p.NodeIP.String()+" dev eth0")
		}
		checkState(t, ln, want)
	}
	pingAll(t, nodes)
	a, b := nodes[0], nodes[1]
	expectSource(t, a.Pods[0].Endpoint(), b.Pods[0].Endpoint(), a.Pods[0].IP)
	expectSource(t, a.Endpoint(), b.Pods[0].Endpoint(), a.IP)
	expectSource(t, a.Pods[0].Endpoint(), b.Endpoint(), a.Pods[0].IP)

	st, err := a.net.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Device != nil || len(st.Peers) != 2 || !st.Peers[0].RouteOK || !st.Peers[1].RouteOK {
		t.Errorf("status %+v", st)
	}
}

// TestReconcileAfterRestart: a restarted agent's Sync removes what is
// stale from before (a departed peer's route, neighbour and FDB entry, a
// duplicate route), programs nothing twice, and rewrites nothing of the
// live peers: the netlink notifications during the resync are only the
// removals. A second resync changes nothing at all; a peer leaving
// removes only its own entries.
func TestReconcileAfterRestart(t *testing.T) {
	_, nodes := setupLab(t, 3, BackendVXLAN, nil)
	syncAll(t, nodes)
	a := nodes[0]
	dev, err := a.Handle.LinkByName(DefaultDevice)
	if err != nil {
		t.Fatal(err)
	}
	idx := dev.Attrs().Index

	// Leftovers of a peer that left while the agent was down, and a
	// duplicate of a live peer's route at another metric.
	gone := Peer{Name: "gone", NodeIP: netip.MustParseAddr("172.31.250.77"), PodCIDR: netip.MustParsePrefix("10.244.77.0/24"), VTEPMAC: net.HardwareAddr{0x0a, 0, 0, 0, 0, 0x77}}
	for _, err := range []error{
		a.Handle.NeighSet(neighToNetlink(vxlanNeigh(gone), idx)),
		a.Handle.NeighAppend(fdbToNetlink(vxlanFDB(gone), idx)),
		a.Handle.RouteAdd(routeToNetlink(vxlanRoute(gone, idx))),
		a.Handle.RouteAdd(routeToNetlink(func() routeEntry {
			r := vxlanRoute(nodes[1].peer(), idx)
			r.Priority = 50
			return r
		}())),
	} {
		if err != nil {
			t.Fatalf("plant leftovers: %v", err)
		}
	}

	w := watch(t, a.Node)
	w.drain(t, idx)
	restarted := openNode(t, a.Node, labConfig(a.Node, BackendVXLAN))
	if _, err := restarted.Setup(t.Context()); err != nil {
		t.Fatal(err)
	}
	a.net = restarted
	if refused, err := restarted.Sync(t.Context(), peersOf(nodes, 0)); err != nil || len(refused) > 0 {
		t.Fatalf("Sync after restart: %v %v", refused, err)
	}
	routes, neighs, links := w.drain(t, idx)
	checkState(t, a, wantVXLANState(peersOf(nodes, 0)))
	// Removing an entry notifies (a neighbour goes FAILED, then away); any
	// notification about a live peer's entry is a flap. The duplicate of
	// node2's route is the one exception: its removal names node2's range.
	updates := append(append(routes, neighs...), links...)
	if len(updates) == 0 {
		t.Errorf("the resync after a restart removed nothing")
	}
	for _, u := range updates {
		switch {
		case concerns(u, gone):
		case strings.HasPrefix(u, "del ") && strings.Contains(u, "metric 50"):
		default:
			t.Errorf("the resync after a restart touched a live peer's entry: %s", u)
		}
	}
	if len(links) != 0 {
		t.Errorf("the resync after a restart changed the device: %q", links)
	}

	// Nothing to do: nothing happens.
	again := openNode(t, a.Node, labConfig(a.Node, BackendVXLAN))
	if _, err := again.Setup(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := again.Sync(t.Context(), peersOf(nodes, 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := again.Sync(t.Context(), peersOf(nodes, 0)); err != nil {
		t.Fatal(err)
	}
	if routes, neighs, links := w.drain(t, idx); len(routes)+len(neighs)+len(links) > 0 {
		t.Errorf("an unchanged resync rewrote entries: routes %q neighbours %q links %q", routes, neighs, links)
	}

	// node3 leaves: only its entries go; pod traffic to node2 continues.
	if _, err := again.Sync(t.Context(), []Peer{nodes[1].peer()}); err != nil {
		t.Fatal(err)
	}
	routes, neighs, _ = w.drain(t, idx)
	for _, u := range append(routes, neighs...) {
		if !concerns(u, nodes[2].peer()) {
			t.Errorf("node3 leaving touched something else: %s", u)
		}
	}
	checkState(t, a, wantVXLANState([]Peer{nodes[1].peer()}))
	if err := nodenettest.Ping(t.Context(), a.Pods[0].Endpoint(), nodes[1].Pods[0].Endpoint(), 2*time.Second); err != nil {
		t.Errorf("pod on node2 unreachable after node3 left: %v", err)
	}
	if err := nodenettest.Ping(t.Context(), a.Pods[0].Endpoint(), nodes[2].Pods[0].Endpoint(), time.Second); err == nil {
		t.Errorf("pod on node3 still reachable after node3 left")
	}
}

// TestRangeChangesOwner: a podCIDR that passes from a deleted node to a
// new one (node IPAM hands a released range out again), with the delete
// and the add in one Sync as when their events coalesce, ends with every
// entry pointing at the new owner and nothing of the old one's: host-gw
// replaces the route's gateway in place, vxlan keeps the route (which
// names only the range) and replaces its neighbour and FDB entry. The
// other peer's entries are not touched, and the new owner's pods answer.
func TestRangeChangesOwner(t *testing.T) {
	for _, backend := range []Backend{BackendHostGW, BackendVXLAN} {
		t.Run(string(backend), func(t *testing.T) {
			_, nodes := setupLab(t, 3, backend, nil)
			syncAll(t, nodes)
			a, b, c := nodes[0], nodes[1], nodes[2]
			// c's range, as a's kernel had it from its previous owner: a
			// node on the same segment that is gone.
			old := Peer{Name: "old", NodeIP: netip.MustParseAddr("172.31.250.200"), PodCIDR: c.PodCIDR, VTEPMAC: net.HardwareAddr{0x0a, 0, 0, 0, 0, 0xc8}}
			if backend == BackendHostGW {
				old.VTEPMAC = nil
			}
			if refused, err := a.net.Sync(t.Context(), []Peer{b.peer(), old}); err != nil || len(refused) > 0 {
				t.Fatalf("Sync with the old owner: refused %v, err %v", refused, err)
			}
			want := func(peers ...Peer) kernelState {
				if backend == BackendVXLAN {
					return wantVXLANState(peers)
				}
				var st kernelState
				for _, p := range peers {
					st.routes = append(st.routes, p.PodCIDR.String()+" via "+p.NodeIP.String()+" dev eth0")
				}
				return st
			}
			checkState(t, a, want(b.peer(), old))

			dev := -1
			if link, err := a.Handle.LinkByName(DefaultDevice); err == nil {
				dev = link.Attrs().Index
			}
			w := watch(t, a.Node)
			w.drain(t, dev)
			if refused, err := a.net.Sync(t.Context(), []Peer{b.peer(), c.peer()}); err != nil || len(refused) > 0 {
				t.Fatalf("Sync with the new owner: refused %v, err %v", refused, err)
			}
			routes, neighs, links := w.drain(t, dev)
			checkState(t, a, want(b.peer(), c.peer()))
			for _, u := range append(append(routes, neighs...), links...) {
				if !concerns(u, c.peer()) && !concerns(u, old) || concerns(u, b.peer()) {
					t.Errorf("the change of owner touched something else: %s", u)
				}
			}
			newRoute := fmt.Sprintf("new %s gw %s", c.PodCIDR, c.IP)
			switch backend {
			case BackendHostGW:
				if !slices.ContainsFunc(routes, func(u string) bool { return strings.HasPrefix(u, newRoute) }) {
					t.Errorf("no notification of the route to %s via the new owner %s: %q", c.PodCIDR, c.IP, routes)
				}
			case BackendVXLAN:
				if len(routes) != 0 {
					t.Errorf("the route to %s (the same for any owner) was rewritten: %q", c.PodCIDR, routes)
				}
			}
			if err := nodenettest.Ping(t.Context(), a.Pods[0].Endpoint(), c.Pods[0].Endpoint(), 2*time.Second); err != nil {
				t.Errorf("pod on the new owner %s unreachable: %v", c.Name, err)
			}
			expectSource(t, a.Pods[0].Endpoint(), c.Pods[0].Endpoint(), a.Pods[0].IP)
		})
	}
}

// concerns reports whether a notification (as drain renders it) names one
// of p's addresses, ranges or MAC.
func concerns(update string, p Peer) bool {
	for _, f := range strings.Fields(update) {
		switch f {
		case p.PodCIDR.String(), p.PodCIDR.Addr().String(), p.NodeIP.String(), p.VTEPMAC.String():
			return true
		}
	}
	return false
}

// TestMACSurvivesTeardownAndRecreation: the VTEP MAC is recorded in the
// state dir; Teardown removes everything else, and a new Setup (or a
// device deleted by hand and re-made by Sync, or an incompatible device
// replaced) keeps the MAC, so peers' entries stay valid. With the record
// lost, an existing device's MAC is adopted.
func TestMACSurvivesTeardownAndRecreation(t *testing.T) {
	_, nodes := setupLab(t, 2, BackendVXLAN, nil)
	syncAll(t, nodes)
	a := nodes[0]
	mac := a.local.VTEPMAC.String()

	if err := a.net.Teardown(t.Context()); err != nil {
		t.Fatalf("Teardown: %v", err)
	}
	if _, err := a.Handle.LinkByName(DefaultDevice); err == nil {
		t.Error("device left after Teardown")
	}
	checkState(t, a, kernelState{})
	if a.net.forwardingInstalled(t.Context()) {
		t.Error("forward rules left after Teardown")
	}
	if out, err := a.Run(t.Context(), "iptables", "-w", "-S"); err != nil || strings.Contains(out, forwardChain) {
		t.Errorf("iptables after Teardown (%v):\n%s", err, out)
	}
	for _, f := range []string{configFile, peersFile} {
		if _, err := os.Stat(filepath.Join(a.StateDir, f)); !os.IsNotExist(err) {
			t.Errorf("%s left after Teardown: %v", f, err)
		}
	}
	if _, err := Load(a.StateDir, a.NetNS, nil); !IsNotConfigured(err) {
		t.Errorf("Load after Teardown = %v, want not configured", err)
	}
	if err := a.net.Teardown(t.Context()); err != nil {
		t.Errorf("second Teardown: %v", err)
	}

	local, err := a.net.Setup(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if local.VTEPMAC.String() != mac {
		t.Errorf("MAC after Teardown + Setup = %s, want %s", local.VTEPMAC, mac)
	}

	// Deleted by hand: the next Sync re-creates it, same MAC, and traffic
	// flows again.
	link, _ := a.Handle.LinkByName(DefaultDevice)
	if err := a.Handle.LinkDel(link); err != nil {
		t.Fatal(err)
	}
	syncAll(t, nodes)
	if link, err = a.Handle.LinkByName(DefaultDevice); err != nil || link.Attrs().HardwareAddr.String() != mac {
		t.Errorf("device after re-creation: %v, %v; want MAC %s", link, err, mac)
	}
	pingAll(t, nodes)

	// An incompatible device with our name (VNI 5) is replaced, same MAC.
	_ = a.Handle.LinkDel(link)
	eth0, _ := a.Handle.LinkByName("eth0")
	odd := &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: DefaultDevice}, VxlanId: 5, VtepDevIndex: eth0.Attrs().Index, Port: 4789}
	if err := a.Handle.LinkAdd(odd); err != nil {
		t.Fatal(err)
	}
	if _, err := a.net.Setup(t.Context()); err != nil {
		t.Fatal(err)
	}
	link, _ = a.Handle.LinkByName(DefaultDevice)
	if v, ok := link.(*netlink.Vxlan); !ok || v.VxlanId != 1 || v.Port != 8472 || v.HardwareAddr.String() != mac {
		t.Errorf("incompatible device not replaced: %+v", link)
	}

	// Record lost, device present: its MAC is adopted and recorded.
	if err := os.RemoveAll(a.StateDir); err != nil {
		t.Fatal(err)
	}
	fresh := openNode(t, a.Node, labConfig(a.Node, BackendVXLAN))
	if local, err = fresh.Setup(t.Context()); err != nil || local.VTEPMAC.String() != mac {
		t.Errorf("Setup without a record: MAC %s, %v; want the device's %s", local.VTEPMAC, err, mac)
	}
	if got, _ := readMAC(a.StateDir); got.String() != mac {
		t.Errorf("recorded MAC %s, want %s", got, mac)
	}
}

// TestForwardPolicyDrop: with the hosts' FORWARD policy DROP, pods still
// reach each other across nodes because of PEAPOD-FORWARD; without its
// jump they do not, and EnsureForwarding restores it.
func TestForwardPolicyDrop(t *testing.T) {
	drop := func(n *nodenettest.Node) {
		if out, err := n.Run(t.Context(), "iptables", "-w", "-P", "FORWARD", "DROP"); err != nil {
			t.Fatalf("set FORWARD policy: %v %s", err, out)
		}
	}
	_, nodes := setupLab(t, 2, BackendVXLAN, drop)
	syncAll(t, nodes)
	a, b := nodes[0], nodes[1]
	pingAll(t, nodes)

	if out, err := a.Run(t.Context(), "iptables", append([]string{"-w", "-D"}, forwardJump...)...); err != nil {
		t.Fatalf("remove the jump: %v %s", err, out)
	}
	if err := nodenettest.Ping(t.Context(), b.Pods[0].Endpoint(), a.Pods[0].Endpoint(), time.Second); err == nil {
		t.Fatal("pods reach each other with FORWARD DROP and no PEAPOD-FORWARD jump: the test proves nothing")
	}
	if err := a.net.EnsureForwarding(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := a.net.EnsureForwarding(t.Context()); err != nil {
		t.Fatal(err)
	}
	out, err := a.Run(t.Context(), "iptables", "-w", "-S", "FORWARD")
	if err != nil || strings.Count(out, "-j "+forwardChain) != 1 {
		t.Errorf("FORWARD after two EnsureForwarding (%v), want one jump:\n%s", err, out)
	}
	pingAll(t, nodes)
	if out, err := a.Run(t.Context(), "iptables-save"); err != nil || strings.Contains(out, "MASQUERADE") || strings.Contains(out, "SNAT") {
		t.Errorf("nodenet installed NAT (%v):\n%s", err, out)
	}
}

// TestSetupRefusesForeignNodeIP: a node IP that is not on the node is
// refused naming the field, before anything is changed.
func TestSetupRefusesForeignNodeIP(t *testing.T) {
	lab, _ := setupLab(t, 1, BackendNone, nil)
	n := lab.Nodes[0]
	cfg := labConfig(n, BackendVXLAN)
	cfg.NodeIP = "172.31.250.77"
	cfg.StateDir = filepath.Join(t.TempDir(), "nodenet")
	nw := openNode(t, n, cfg)
	_, err := nw.Setup(t.Context())
	if err == nil || !strings.Contains(err.Error(), "NodeIP 172.31.250.77 is not an address of this node") {
		t.Fatalf("Setup = %v, want the NodeIP refused", err)
	}
	if _, err := n.Handle.LinkByName(DefaultDevice); err == nil {
		t.Error("a device was made for a refused config")
	}
	if _, err := os.Stat(cfg.StateDir); !os.IsNotExist(err) {
		t.Errorf("state dir written for a refused config: %v", err)
	}
	if _, err := nw.Sync(t.Context(), nil); err == nil {
		t.Error("Sync before a successful Setup did not fail")
	}
	_ = nw.Close()
	if _, err := nw.Sync(t.Context(), nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Sync after Close = %v, want ErrClosed (a closed handle would program the caller's namespace)", err)
	}
	if err := nw.Teardown(t.Context()); !errors.Is(err, ErrClosed) {
		t.Errorf("Teardown after Close = %v, want ErrClosed", err)
	}
	bad := labConfig(n, BackendVXLAN)
	bad.NetNS = "/run/netns/does-not-exist-ppnn"
	if _, err := New(bad, nil); err == nil || !strings.Contains(err.Error(), "NetNS /run/netns/does-not-exist-ppnn") {
		t.Errorf("New with a missing netns = %v", err)
	}
}

// TestChecksumOffloadWorkaround: "off" turns the device's TX checksum
// offload off; auto leaves it on kernels that have the fix.
func TestChecksumOffloadWorkaround(t *testing.T) {
	lab, _ := setupLab(t, 2, BackendNone, nil)
	for i, mode := range []ChecksumOffload{ChecksumOffloadOff, ChecksumOffloadAuto} {
		n := lab.Nodes[i]
		cfg := labConfig(n, BackendVXLAN)
		cfg.ChecksumOffload = mode
		if _, err := openNode(t, n, cfg).Setup(t.Context()); err != nil {
			t.Fatal(err)
		}
		var on bool
		err := netns.Do(n.NetNS, func() error {
			var err error
			on, err = txChecksum(DefaultDevice, nil)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		want := !disableChecksumOffload(mode, kernelRelease())
		if on != want {
			t.Errorf("mode %q on kernel %s: tx checksum offload %v, want %v", mode, kernelRelease(), on, want)
		}
	}
}

// TestSwitchBackend: host-gw after vxlan removes the device and the
// vxlan routes; none removes host-gw's routes; forwarding stays.
func TestSwitchBackend(t *testing.T) {
	_, nodes := setupLab(t, 2, BackendVXLAN, nil)
	syncAll(t, nodes)
	a := nodes[0]
	for _, backend := range []Backend{BackendHostGW, BackendNone} {
		for i, ln := range nodes {
			ln.net = openNode(t, ln.Node, labConfig(ln.Node, backend))
			var err error
			if ln.local, err = ln.net.Setup(t.Context()); err != nil {
				t.Fatal(err)
			}
			if _, err := ln.net.Sync(t.Context(), peersOf(nodes, i)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := a.Handle.LinkByName(DefaultDevice); err == nil {
			t.Errorf("%s: VXLAN device left", backend)
		}
		var want kernelState
		if backend == BackendHostGW {
			want.routes = []string{nodes[1].PodCIDR.String() + " via " + nodes[1].IP.String() + " dev eth0"}
			pingAll(t, nodes)
		}
		checkState(t, a, want)
		if !a.net.forwardingInstalled(t.Context()) {
			t.Errorf("%s: forward rules missing", backend)
		}
	}
}
