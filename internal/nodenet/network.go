package nodenet

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"sync"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"

	"github.com/peapod/peapod/internal/network/netns"
)

// Network is one node's share of the pod network between nodes, bound to
// one network namespace. Its methods are safe for concurrent use; they
// serialise on one lock, as they all reconcile the same kernel state.
type Network struct {
	s   settings
	nl  *netlink.Handle
	log *slog.Logger

	mu sync.Mutex
	// closed is set by Close: a closed netlink handle would silently
	// talk to the calling thread's namespace instead, so nothing may use
	// it after.
	closed bool
	// local is what Setup returned; nil until Setup succeeds.
	local *Local
	// lastPeers is what peers.json holds, to skip rewriting it unchanged.
	lastPeers []byte
}

// Local is what Setup established and the agent must act on.
type Local struct {
	// Annotations are to be published on this node's Node (the contract's
	// backend-type, public-ip and, for vxlan, vtep-mac); empty for none.
	Annotations map[string]string
	// MTU is the MTU pod interfaces (bridge and veths) must use: the
	// underlay's minus 50 for vxlan, the underlay's for host-gw, 0 (no
	// opinion: keep the default) for none.
	MTU int
	// Underlay is the link holding the node IP ("" for none).
	Underlay string
	// Device is the VXLAN device ("" unless vxlan), VTEPMAC its MAC.
	Device  string
	VTEPMAC net.HardwareAddr
}

// New validates cfg (errors name the field) and opens a netlink handle in
// cfg.NetNS. It changes nothing; Setup does. Close releases the handle.
func New(cfg Config, log *slog.Logger) (*Network, error) {
	s, err := validate(cfg)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	h, err := openHandle(s.NetNS)
	if err != nil {
		return nil, err
	}
	return &Network{s: s, nl: h, log: log.With("component", "nodenet")}, nil
}

// Load opens the network that Setup last configured with stateDir, as
// recorded there, in the namespace at netnsPath ("" = the caller's): for
// Status and Teardown by commands that do not know the cluster's settings
// (`peapod net`, `peapod reset`). It returns an error wrapping
// fs.ErrNotExist when no Setup left a record (or Teardown removed it).
func Load(stateDir, netnsPath string, log *slog.Logger) (*Network, error) {
	cfg, err := readConfig(stateDir)
	if err != nil {
		return nil, err
	}
	cfg.StateDir, cfg.NetNS = stateDir, netnsPath
	return New(cfg, log)
}

// IsNotConfigured reports whether err (from Load) means no pod network
// between nodes was set up with that state dir.
func IsNotConfigured(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// ErrClosed is returned by the methods of a Network after Close.
var ErrClosed = errors.New("nodenet: network closed")

// Close releases the netlink handle; later calls of n's methods return
// ErrClosed. The kernel state stays. Idempotent.
func (n *Network) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.closed {
		n.closed = true
		n.nl.Close()
	}
	return nil
}

// lock takes n's lock, or returns ErrClosed (without the lock held).
func (n *Network) lock() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return ErrClosed
	}
	return nil
}

// Self describes this node for PeersFromNodes.
func (n *Network) Self() Self {
	return Self{Name: n.s.NodeName, Backend: n.s.Backend, NodeIP: n.s.nodeIP, PodCIDR: n.s.podCIDR, ClusterCIDR: n.s.clusterCIDR}
}

// Backend returns the configured backend.
func (n *Network) Backend() Backend { return n.s.Backend }

// openHandle returns a netlink handle in the namespace at path ("" = the
// caller's).
func openHandle(path string) (*netlink.Handle, error) {
	if path == "" {
		h, err := netlink.NewHandle()
		if err != nil {
			return nil, fmt.Errorf("open netlink: %w", err)
		}
		return h, nil
	}
	ns, err := vnetns.GetFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("nodenet config: NetNS %s: %w", path, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("open netlink in %s: %w", path, err)
	}
	return h, nil
}

// inNS runs fn in the configured namespace: fn's thread (and the processes
// it starts) are in it. Needed for what netlink handles cannot carry: the
// iptables binaries, /proc/sys and ethtool ioctls.
func (n *Network) inNS(fn func() error) error {
	if n.s.NetNS == "" {
		return fn()
	}
	return netns.Do(n.s.NetNS, fn)
}

// dump retries a netlink dump the kernel interrupted because the table
// changed meanwhile (the result would be partial).
func dump[T any](list func() ([]T, error)) ([]T, error) {
	var out []T
	var err error
	for range 20 {
		if out, err = list(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return out, err
		}
	}
	return out, err
}

// underlay returns the link that holds the node IP; errors name NodeIP.
func (n *Network) underlay() (netlink.Link, error) {
	addrs, err := dump(func() ([]netlink.Addr, error) { return n.nl.AddrList(nil, netlink.FAMILY_V4) })
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	var have []string
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		if ip.Unmap() == n.s.nodeIP {
			link, err := n.nl.LinkByIndex(a.LinkIndex)
			if err != nil {
				return nil, fmt.Errorf("find the link holding node IP %s: %w", n.s.nodeIP, err)
			}
			return link, nil
		}
		if !ip.IsLoopback() {
			have = append(have, ip.String())
		}
	}
	return nil, fmt.Errorf("nodenet config: NodeIP %s is not an address of this node (it has %v)", n.s.nodeIP, have)
}
