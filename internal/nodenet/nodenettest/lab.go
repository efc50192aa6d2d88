// Package nodenettest builds, for tests and benchmarks, a small network of
// "nodes" on one machine without touching the host's own links: a
// throwaway underlay namespace holding a bridge (and a gateway address on
// it), one network namespace per node joined to that bridge by a veth,
// and in each node a pod bridge with an address in the node's podCIDR and
// pod namespaces attached to it by veths, as peapod's CNI bridge would.
//
// Usage:
//
//  1. lab := nodenettest.New(t, nodenettest.Options{Nodes: 3}) builds it;
//     t.Cleanup removes every namespace (and with them every link, route
//     and rule inside), also when the test fails.
//  2. Run nodenet in a node with Config.NetNS = lab.Nodes[i].NetNS.
//  3. Prove traffic with Ping, Exchange and ExchangeUDP (TCP and UDP,
//     reporting the source address the server saw), Throughput and RTTs
//     between Endpoints (a pod's or a node's namespace and address). These
//     need no lab: any two namespaces and addresses will do (the end-to-end
//     tests use them on the pods of a `peapod cluster`).
package nodenettest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/peapod/peapod/internal/network/netns"
)

// Options shape a lab; zero values take the defaults.
type Options struct {
	// Nodes is how many nodes to build (default 3).
	Nodes int
	// ClusterCIDR is the pod network (default 10.244.0.0/16); node i
	// (from 1) gets its /24 number i.
	ClusterCIDR string
	// UnderlayCIDR is the underlay's /24 (default 172.31.250.0/24): node i
	// gets address i, the gateway (on the underlay bridge) address 254.
	UnderlayCIDR string
	// MTU is the underlay MTU (default 1500).
	MTU int
	// PodsPerNode is how many pods each node gets (default 1).
	PodsPerNode int
}

// PodBridge names the stand-in for the node's pod bridge.
const PodBridge = "pods0"

// Lab is a set of nodes on one underlay.
type Lab struct {
	// Name prefixes every namespace the lab pins in /run/netns.
	Name string
	// Underlay is the underlay namespace's path; Gateway the address its
	// bridge holds (every node's default route goes via it).
	Underlay string
	Gateway  netip.Addr
	Nodes    []*Node
	MTU      int

	t       testing.TB
	mu      sync.Mutex
	pins    []string
	handles []*netlink.Handle
}

// Node is one node's namespace.
type Node struct {
	Name     string
	NetNS    string
	IP       netip.Addr
	PodCIDR  netip.Prefix
	StateDir string
	Pods     []*Pod
	// Handle is a netlink handle in the node's namespace.
	Handle *netlink.Handle
	lab    *Lab
}

// Pod is one pod namespace on a node's pod bridge.
type Pod struct {
	Name  string
	NetNS string
	IP    netip.Addr
	Node  *Node
	// HostVeth is the pod's veth in the node namespace.
	HostVeth string
}

// Endpoint is somewhere traffic starts or ends: a namespace and an address
// in it.
type Endpoint struct {
	NetNS string
	IP    netip.Addr
}

// Endpoint returns the pod's namespace and IP.
func (p *Pod) Endpoint() Endpoint { return Endpoint{NetNS: p.NetNS, IP: p.IP} }

// Endpoint returns the node's namespace and underlay address.
func (n *Node) Endpoint() Endpoint { return Endpoint{NetNS: n.NetNS, IP: n.IP} }

// New builds a lab; everything is removed in t.Cleanup.
func New(t testing.TB, opts Options) *Lab {
	t.Helper()
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	if opts.ClusterCIDR == "" {
		opts.ClusterCIDR = "10.244.0.0/16"
	}
	if opts.UnderlayCIDR == "" {
		opts.UnderlayCIDR = "172.31.250.0/24"
	}
	if opts.MTU == 0 {
		opts.MTU = 1500
	}
	if opts.PodsPerNode == 0 {
		opts.PodsPerNode = 1
	}
	cluster := netip.MustParsePrefix(opts.ClusterCIDR)
	underlay := netip.MustParsePrefix(opts.UnderlayCIDR)
	if cluster.Bits() > 23 || underlay.Bits() != 24 {
		t.Fatalf("nodenettest: ClusterCIDR must be /23 or wider and UnderlayCIDR a /24")
	}
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	l := &Lab{Name: "ppnn" + hex.EncodeToString(suffix), MTU: opts.MTU, t: t}
	t.Cleanup(l.destroy)

	l.Underlay = l.pin(t, "u")
	uh := l.handle(t, l.Underlay)
	l.Gateway = nth(underlay.Addr(), 254)
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "ul0", MTU: opts.MTU}}
	must(t, "create underlay bridge", uh.LinkAdd(br))
	must(t, "underlay bridge up", uh.LinkSetUp(br))
	must(t, "underlay bridge address", uh.AddrAdd(br, addr(netip.PrefixFrom(l.Gateway, 24))))
	must(t, "underlay lo up", setLoUp(uh))

	for i := 1; i <= opts.Nodes; i++ {
		n := &Node{
			Name:    fmt.Sprintf("node%d", i),
			IP:      nth(underlay.Addr(), i),
			PodCIDR: netip.PrefixFrom(nth(cluster.Addr(), i*256), 24),
			lab:     l,
		}
		n.NetNS = l.pin(t, fmt.Sprintf("n%d", i))
		n.StateDir = filepath.Join(t.TempDir(), n.Name)
		n.Handle = l.handle(t, n.NetNS)
		ns, err := vnetns.GetFromPath(n.NetNS)
		must(t, "open node netns", err)
		veth := &netlink.Veth{
			LinkAttrs: netlink.LinkAttrs{Name: fmt.Sprintf("ul-%s", n.Name), MTU: opts.MTU, MasterIndex: br.Index},
			PeerName:  "eth0", PeerNamespace: netlink.NsFd(ns),
		}
		err = uh.LinkAdd(veth)
		ns.Close()
		must(t, "create underlay veth of "+n.Name, err)
		must(t, "underlay veth up", uh.LinkSetUp(veth))
		eth0, err := n.Handle.LinkByName("eth0")
		must(t, "find eth0 of "+n.Name, err)
		must(t, "eth0 address", n.Handle.AddrAdd(eth0, addr(netip.PrefixFrom(n.IP, 24))))
		must(t, "eth0 up", n.Handle.LinkSetUp(eth0))
		must(t, "lo up", setLoUp(n.Handle))
		must(t, "default route", n.Handle.RouteAdd(&netlink.Route{Gw: l.Gateway.AsSlice(), LinkIndex: eth0.Attrs().Index}))
		pods := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: PodBridge}}
		must(t, "create pod bridge", n.Handle.LinkAdd(pods))
		must(t, "pod bridge address", n.Handle.AddrAdd(pods, addr(netip.PrefixFrom(nth(n.PodCIDR.Addr(), 1), 24))))
		must(t, "pod bridge up", n.Handle.LinkSetUp(pods))
		for j := 0; j < opts.PodsPerNode; j++ {
			n.AddPod(t)
		}
		l.Nodes = append(l.Nodes, n)
	}
	return l
}

// AddPod attaches a new pod namespace to the node's pod bridge, with the
// next address of the podCIDR and a default route via the bridge.
func (n *Node) AddPod(t testing.TB) *Pod {
	t.Helper()
	i := len(n.Pods) + 1
	p := &Pod{Name: fmt.Sprintf("%s-pod%d", n.Name, i), IP: nth(n.PodCIDR.Addr(), 1+i), Node: n, HostVeth: fmt.Sprintf("vpod%d", i)}
	p.NetNS = n.lab.pin(t, fmt.Sprintf("n%sp%d", n.Name[len("node"):], i))
	ph := n.lab.handle(t, p.NetNS)
	bridge, err := n.Handle.LinkByName(PodBridge)
	must(t, "find pod bridge", err)
	ns, err := vnetns.GetFromPath(p.NetNS)
	must(t, "open pod netns", err)
	veth := &netlink.Veth{
		LinkAttrs: netlink.LinkAttrs{Name: p.HostVeth, MTU: bridge.Attrs().MTU, MasterIndex: bridge.Attrs().Index},
		PeerName:  "eth0", PeerNamespace: netlink.NsFd(ns),
	}
	err = n.Handle.LinkAdd(veth)
	ns.Close()
	must(t, "create pod veth", err)
	must(t, "pod veth up", n.Handle.LinkSetUp(veth))
	eth0, err := ph.LinkByName("eth0")
	must(t, "find pod eth0", err)
	must(t, "pod address", ph.AddrAdd(eth0, addr(netip.PrefixFrom(p.IP, n.PodCIDR.Bits()))))
	must(t, "pod eth0 up", ph.LinkSetUp(eth0))
	must(t, "pod lo up", setLoUp(ph))
	must(t, "pod default route", ph.RouteAdd(&netlink.Route{Gw: nth(n.PodCIDR.Addr(), 1).AsSlice(), LinkIndex: eth0.Attrs().Index}))
	n.Pods = append(n.Pods, p)
	return p
}

// SetPodMTU sets the MTU of the pod bridge, the pods' host veths and the
// pods' eth0, as the agent does with the MTU nodenet.Setup returns.
func (n *Node) SetPodMTU(mtu int) error {
	for _, name := range append([]string{PodBridge}, n.podVeths()...) {
		link, err := n.Handle.LinkByName(name)
		if err != nil {
			return fmt.Errorf("find %s: %w", name, err)
		}
		if err := n.Handle.LinkSetMTU(link, mtu); err != nil {
			return fmt.Errorf("set MTU of %s: %w", name, err)
		}
	}
	for _, p := range n.Pods {
		err := netns.Do(p.NetNS, func() error {
			link, err := netlink.LinkByName("eth0")
			if err != nil {
				return err
			}
			return netlink.LinkSetMTU(link, mtu)
		})
		if err != nil {
			return fmt.Errorf("set MTU of %s's eth0: %w", p.Name, err)
		}
	}
	return nil
}

func (n *Node) podVeths() []string {
	var out []string
	for _, p := range n.Pods {
		out = append(out, p.HostVeth)
	}
	return out
}

// Run runs a command in the node's namespace and returns its combined
// output.
func (n *Node) Run(ctx context.Context, name string, args ...string) (string, error) {
	return run(ctx, n.NetNS, name, args...)
}

func run(ctx context.Context, nsPath, name string, args ...string) (string, error) {
	var out []byte
	err := netns.Do(nsPath, func() error {
		var err error
		out, err = exec.CommandContext(ctx, name, args...).CombinedOutput()
		return err
	})
	if err != nil {
		return string(out), fmt.Errorf("%s %v in %s: %w: %s", name, args, filepath.Base(nsPath), err, out)
	}
	return string(out), nil
}

// pin creates and pins a namespace named after the lab.
func (l *Lab) pin(t testing.TB, name string) string {
	t.Helper()
	path, err := netns.New("", l.Name+"-"+name)
	must(t, "create netns", err)
	l.mu.Lock()
	l.pins = append(l.pins, path)
	l.mu.Unlock()
	return path
}

func (l *Lab) handle(t testing.TB, path string) *netlink.Handle {
	t.Helper()
	ns, err := vnetns.GetFromPath(path)
	must(t, "open netns", err)
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	must(t, "netlink handle", err)
	l.mu.Lock()
	l.handles = append(l.handles, h)
	l.mu.Unlock()
	return h
}

// destroy closes the lab's handles and removes its namespaces, pods first;
// each namespace's links, routes and rules go with it.
func (l *Lab) destroy() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, h := range l.handles {
		h.Close()
	}
	var errs []error
	for i := len(l.pins) - 1; i >= 0; i-- {
		errs = append(errs, netns.Remove(l.pins[i]))
	}
	if err := errors.Join(errs...); err != nil {
		l.t.Errorf("nodenettest: remove the lab: %v", err)
	}
}

func setLoUp(h *netlink.Handle) error {
	lo, err := h.LinkByName("lo")
	if err != nil {
		return err
	}
	return h.LinkSetUp(lo)
}

// nth returns base + i (IPv4).
func nth(base netip.Addr, i int) netip.Addr {
	b := base.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(i)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func addr(p netip.Prefix) *netlink.Addr {
	return &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}}
}

func must(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("nodenettest: %s: %v", what, err)
	}
}

// HandVXLAN builds, by hand and without nodenet, a VXLAN pair between two
// nodes over the same underlay (VNI 42, UDP 4789, learning off, MTU =
// underlay - 50, static FDB and neighbour entries, 10.99.0.1 and .2/24 on
// the devices): the floor nodenet's vxlan backend is measured against. It
// returns the two ends; the devices go with the lab.
func HandVXLAN(t testing.TB, a, b *Node) (Endpoint, Endpoint) {
	t.Helper()
	nodes := []*Node{a, b}
	ips := []netip.Addr{netip.MustParseAddr("10.99.0.1"), netip.MustParseAddr("10.99.0.2")}
	links := make([]*netlink.Vxlan, 2)
	for i, n := range nodes {
		eth0, err := n.Handle.LinkByName("eth0")
		must(t, "find eth0", err)
		v := &netlink.Vxlan{
			LinkAttrs: netlink.LinkAttrs{Name: "hand.42", MTU: eth0.Attrs().MTU - 50},
			VxlanId:   42, VtepDevIndex: eth0.Attrs().Index, SrcAddr: n.IP.AsSlice(), Port: 4789,
		}
		must(t, "create hand-built VXLAN device", n.Handle.LinkAdd(v))
		link, err := n.Handle.LinkByName("hand.42")
		must(t, "find hand-built VXLAN device", err)
		links[i] = link.(*netlink.Vxlan)
		must(t, "address", n.Handle.AddrAdd(link, addr(netip.PrefixFrom(ips[i], 24))))
		must(t, "up", n.Handle.LinkSetUp(link))
	}
	for i, n := range nodes {
		other := 1 - i
		mac := links[other].HardwareAddr
		must(t, "FDB", n.Handle.NeighAppend(&netlink.Neigh{LinkIndex: links[i].Index, Family: unix.AF_BRIDGE, State: netlink.NUD_PERMANENT,
			Flags: netlink.NTF_SELF, IP: nodes[other].IP.AsSlice(), HardwareAddr: mac}))
		must(t, "neighbour", n.Handle.NeighSet(&netlink.Neigh{LinkIndex: links[i].Index, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT,
			IP: ips[other].AsSlice(), HardwareAddr: mac}))
	}
	return Endpoint{NetNS: a.NetNS, IP: ips[0]}, Endpoint{NetNS: b.NetNS, IP: ips[1]}
}
