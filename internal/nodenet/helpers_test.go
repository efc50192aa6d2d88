package nodenet

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/peapod/peapod/internal/leakcheck"
	"github.com/peapod/peapod/internal/nodenet/nodenettest"
	"github.com/peapod/peapod/internal/testutil"
)

// TestMain proves the kernel tests leave nothing behind: every namespace
// of every lab (and with it every link, route and rule inside) is gone.
func TestMain(m *testing.M) {
	os.Exit(leakcheck.Suite(m, "nodenet", leakcheck.Options{ProcessNames: []string{"busybox", "iperf3", "iptables", "iptables-restore"}}, nil))
}

// labNode is one lab node with its Network.
type labNode struct {
	*nodenettest.Node
	net   *Network
	local Local
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// labConfig is the Config of a lab node.
func labConfig(n *nodenettest.Node, backend Backend) Config {
	return Config{
		Backend: backend, NodeName: n.Name, NodeIP: n.IP.String(), PodCIDR: n.PodCIDR.String(),
		ClusterCIDR: "10.244.0.0/16", StateDir: n.StateDir, NetNS: n.NetNS,
	}
}

// openNode makes a Network for a lab node, closed in cleanup.
func openNode(t testing.TB, n *nodenettest.Node, cfg Config) *Network {
	t.Helper()
	nw, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatalf("New for %s: %v", n.Name, err)
	}
	t.Cleanup(func() { _ = nw.Close() })
	return nw
}

// setupLab builds a lab and sets every node up with backend; the pods get
// the MTU Setup returns.
func setupLab(t testing.TB, nodes int, backend Backend, before func(*nodenettest.Node)) (*nodenettest.Lab, []*labNode) {
	t.Helper()
	testutil.RequiresRoot(t)
	lab := nodenettest.New(t, nodenettest.Options{Nodes: nodes})
	var out []*labNode
	for _, n := range lab.Nodes {
		if before != nil {
			before(n)
		}
		ln := &labNode{Node: n, net: openNode(t, n, labConfig(n, backend))}
		var err error
		if ln.local, err = ln.net.Setup(t.Context()); err != nil {
			t.Fatalf("Setup %s: %v", n.Name, err)
		}
		if ln.local.MTU > 0 {
			if err := n.SetPodMTU(ln.local.MTU); err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, ln)
	}
	return lab, out
}

// peer is how other nodes see ln.
func (ln *labNode) peer() Peer {
	return Peer{Name: ln.Name, NodeIP: ln.IP, PodCIDR: ln.PodCIDR, VTEPMAC: ln.local.VTEPMAC}
}

// peersOf lists the peers of nodes[i]: every other node.
func peersOf(nodes []*labNode, i int) []Peer {
	var out []Peer
	for j, n := range nodes {
		if j != i {
			out = append(out, n.peer())
		}
	}
	return out
}

func syncAll(t *testing.T, nodes []*labNode) {
	t.Helper()
	for i, n := range nodes {
		refused, err := n.net.Sync(t.Context(), peersOf(nodes, i))
		if err != nil || len(refused) > 0 {
			t.Fatalf("Sync %s: refused %v, err %v", n.Name, refused, err)
		}
	}
}

// pingAll pings every pod from every pod on another node.
func pingAll(t *testing.T, nodes []*labNode) {
	t.Helper()
	for _, a := range nodes {
		for _, b := range nodes {
			if a == b {
				continue
			}
			if err := nodenettest.Ping(t.Context(), a.Pods[0].Endpoint(), b.Pods[0].Endpoint(), 2*time.Second); err != nil {
				t.Errorf("pod on %s cannot ping pod on %s: %v", a.Name, b.Name, err)
			}
		}
	}
}

// expectSource opens a TCP connection and checks the server saw want as
// the source address.
func expectSource(t *testing.T, from, to nodenettest.Endpoint, want netip.Addr) {
	t.Helper()
	seen, err := nodenettest.Exchange(t.Context(), from, to, 7070)
	if err != nil {
		t.Errorf("TCP %s -> %s: %v", from.IP, to.IP, err)
		return
	}
	if seen != want {
		t.Errorf("TCP %s -> %s: server saw source %s, want %s (NAT on the way?)", from.IP, to.IP, seen, want)
	}
}

// kernelState is what a node's kernel holds of ours, as comparable strings.
type kernelState struct {
	routes, neighs, fdb []string
}

func readKernel(t testing.TB, ln *labNode) kernelState {
	t.Helper()
	var st kernelState
	routes, err := ln.net.ourRoutes()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		e := routeFromNetlink(r)
		link, _ := ln.Handle.LinkByIndex(e.LinkIndex)
		s := fmt.Sprintf("%s via %s dev %s", e.Dst, e.Gw, link.Attrs().Name)
		if e.OnLink {
			s += " onlink"
		}
		if e.Priority != 0 {
			s += fmt.Sprintf(" metric %d", e.Priority)
		}
		st.routes = append(st.routes, s)
	}
	link, err := ln.Handle.LinkByName(DefaultDevice)
	if err != nil {
		return st
	}
	neighs, fdb, err := ln.net.deviceEntries(link.Attrs().Index)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range neighs {
		st.neighs = append(st.neighs, n.IP.String()+" lladdr "+n.MAC)
	}
	for _, f := range fdb {
		st.fdb = append(st.fdb, f.MAC+" dst "+f.Dst.String())
	}
	return st
}

// wantVXLANState is the kernel state the contract asks for with peers.
func wantVXLANState(peers []Peer) kernelState {
	var st kernelState
	for _, p := range peers {
		st.routes = append(st.routes, fmt.Sprintf("%s via %s dev %s onlink", p.PodCIDR, p.PodCIDR.Addr(), DefaultDevice))
		st.neighs = append(st.neighs, fmt.Sprintf("%s lladdr %s", p.PodCIDR.Addr(), p.VTEPMAC))
		st.fdb = append(st.fdb, fmt.Sprintf("%s dst %s", p.VTEPMAC, p.NodeIP))
	}
	return st
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	count := map[string]int{}
	for _, s := range a {
		count[s]++
	}
	for _, s := range b {
		if count[s] == 0 {
			return false
		}
		count[s]--
	}
	return true
}

func checkState(t *testing.T, ln *labNode, want kernelState) {
	t.Helper()
	got := readKernel(t, ln)
	if !sameSet(got.routes, want.routes) {
		t.Errorf("%s routes:\n  got  %q\n  want %q", ln.Name, got.routes, want.routes)
	}
	if !sameSet(got.neighs, want.neighs) {
		t.Errorf("%s neighbours:\n  got  %q\n  want %q", ln.Name, got.neighs, want.neighs)
	}
	if !sameSet(got.fdb, want.fdb) {
		t.Errorf("%s FDB:\n  got  %q\n  want %q", ln.Name, got.fdb, want.fdb)
	}
}

// watcher records a namespace's route, neighbour (and FDB) and link
// notifications, to prove what a resync changed.
type watcher struct {
	h      *netlink.Handle
	routes chan netlink.RouteUpdate
	neighs chan netlink.NeighUpdate
	links  chan netlink.LinkUpdate
	bridge netlink.Link
	seq    int
}

func watch(t *testing.T, n *nodenettest.Node) *watcher {
	t.Helper()
	ns, err := vnetns.GetFromPath(n.NetNS)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	w := &watcher{h: n.Handle, routes: make(chan netlink.RouteUpdate, 4096), neighs: make(chan netlink.NeighUpdate, 4096), links: make(chan netlink.LinkUpdate, 4096)}
	if err := netlink.RouteSubscribeWithOptions(w.routes, done, netlink.RouteSubscribeOptions{Namespace: &ns}); err != nil {
		t.Fatal(err)
	}
	if err := netlink.NeighSubscribeWithOptions(w.neighs, done, netlink.NeighSubscribeOptions{Namespace: &ns}); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSubscribeWithOptions(w.links, done, netlink.LinkSubscribeOptions{Namespace: &ns}); err != nil {
		t.Fatal(err)
	}
	if w.bridge, err = n.Handle.LinkByName(nodenettest.PodBridge); err != nil {
		t.Fatal(err)
	}
	return w
}

// clusterNet is the labs' cluster range.
var clusterNet = netip.MustParsePrefix("10.244.0.0/16")

// sentinelNet is where the watcher's marker routes go.
var sentinelNet = netip.MustParsePrefix("198.51.100.0/24")

// drain returns every notification about nodenet's objects (routes of
// RouteProtocol or into the cluster range; neighbours, FDB entries and
// link changes of the device with index dev) that arrived before the
// markers it then makes come through (a route, a neighbour and a link
// change on the pod bridge, which nodenet never touches): netlink delivers
// a socket's notifications in order, so whatever the code under test did
// before drain is in the result. The kernel's own noise elsewhere (ARP
// state changes on the underlay, bridge learning) is left out.
func (w *watcher) drain(t *testing.T, dev int) (routes []string, neighs []string, links []string) {
	t.Helper()
	w.seq++
	dst := netip.PrefixFrom(nth(sentinelNet.Addr(), w.seq), 32)
	mac := net.HardwareAddr{2, 0, 0, 0, 0, byte(w.seq)}
	marker := &netlink.Route{LinkIndex: w.bridge.Attrs().Index, Dst: &net.IPNet{IP: dst.Addr().AsSlice(), Mask: net.CIDRMask(32, 32)}, Scope: netlink.SCOPE_LINK}
	if err := w.h.RouteAdd(marker); err != nil {
		t.Fatal(err)
	}
	if err := w.h.NeighSet(&netlink.Neigh{LinkIndex: w.bridge.Attrs().Index, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT, IP: dst.Addr().AsSlice(), HardwareAddr: mac}); err != nil {
		t.Fatal(err)
	}
	alias := fmt.Sprintf("marker-%d", w.seq)
	if err := w.h.LinkSetAlias(w.bridge, alias); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(10 * time.Second)
	for done := 0; done < 3; {
		select {
		case u := <-w.routes:
			if u.Dst != nil && sentinelNet.Contains(netip.AddrFrom4([4]byte(u.Dst.IP.To4()))) {
				if u.Type == unix.RTM_NEWROUTE && u.Dst.IP.Equal(dst.Addr().AsSlice()) {
					done++
				}
				continue
			}
			if u.Protocol != RouteProtocol && (u.Dst == nil || !clusterNet.Contains(netip.AddrFrom4([4]byte(u.Dst.IP.To4())))) {
				continue
			}
			routes = append(routes, fmt.Sprintf("%s %s gw %s proto %d metric %d", msgType(u.Type), u.Dst, u.Gw, u.Protocol, u.Priority))
		case u := <-w.neighs:
			if u.LinkIndex == w.bridge.Attrs().Index {
				if u.Type == unix.RTM_NEWNEIGH && u.IP.Equal(dst.Addr().AsSlice()) {
					done++
				}
				continue
			}
			if u.LinkIndex != dev {
				continue
			}
			neighs = append(neighs, fmt.Sprintf("%s family %d %s lladdr %s", msgType(u.Type), u.Family, u.IP, u.HardwareAddr))
		case u := <-w.links:
			if u.Attrs().Index == w.bridge.Attrs().Index {
				if u.Attrs().Alias == alias {
					done++
				}
				continue
			}
			if u.Attrs().Index != dev {
				continue
			}
			links = append(links, fmt.Sprintf("%s %s", msgType(u.Header.Type), u.Attrs().Name))
		case <-timeout:
			t.Fatalf("the watcher's markers did not come through within 10s")
		}
	}
	return routes, neighs, links
}

func msgType(t uint16) string {
	switch t {
	case unix.RTM_NEWROUTE, unix.RTM_NEWNEIGH, unix.RTM_NEWLINK:
		return "new"
	case unix.RTM_DELROUTE, unix.RTM_DELNEIGH, unix.RTM_DELLINK:
		return "del"
	}
	return fmt.Sprint(t)
}

func nth(base netip.Addr, i int) netip.Addr {
	b := base.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) + uint32(i)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
