package nodenet

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/vishvananda/netlink"
)

// Status is the node's pod network between nodes as the kernel has it,
// for display (`peapod net`). Peer names come from the record of the last
// Sync; everything else is read from the kernel.
type Status struct {
	Backend     Backend `json:"backend"`
	NodeName    string  `json:"nodeName"`
	NodeIP      string  `json:"nodeIP,omitempty"`
	PodCIDR     string  `json:"podCIDR"`
	ClusterCIDR string  `json:"clusterCIDR"`
	// Device is the VXLAN device, nil when there is none.
	Device *DeviceStatus `json:"device,omitempty"`
	// Forwarding says the FORWARD chain jumps to peapod's chain that
	// accepts the cluster range.
	Forwarding bool `json:"forwarding"`
	// Peers are the recorded peers, then routes of ours no recorded peer
	// explains (Name empty).
	Peers []PeerStatus `json:"peers"`
}

// DeviceStatus is the VXLAN device as the kernel has it.
type DeviceStatus struct {
	Name    string `json:"name"`
	Up      bool   `json:"up"`
	MTU     int    `json:"mtu"`
	MAC     string `json:"mac"`
	LocalIP string `json:"localIP"`
	Parent  string `json:"parent"`
	VNI     int    `json:"vni"`
	Port    int    `json:"port"`
}

// PeerStatus is one peer and what the kernel holds for it.
type PeerStatus struct {
	Name    string `json:"name"`
	NodeIP  string `json:"nodeIP"`
	PodCIDR string `json:"podCIDR"`
	VTEPMAC string `json:"vtepMAC,omitempty"`
	// Route is the kernel's route to PodCIDR ("" when there is none);
	// RouteOK says it is the route the backend wants.
	Route   string `json:"route"`
	RouteOK bool   `json:"routeOK"`
	// FDB and Neighbour (vxlan) say the peer's FDB entry (VTEP MAC to
	// node IP) and permanent neighbour are on the device.
	FDB       bool `json:"fdb"`
	Neighbour bool `json:"neighbour"`
}

// Status reads the kernel state of this node's pod network between nodes.
func (n *Network) Status(ctx context.Context) (Status, error) {
	if err := n.lock(); err != nil {
		return Status{}, err
	}
	defer n.mu.Unlock()
	st := Status{Backend: n.s.Backend, NodeName: n.s.NodeName, NodeIP: n.s.NodeIP, PodCIDR: n.s.PodCIDR, ClusterCIDR: n.s.ClusterCIDR}
	peers, err := readPeers(n.s.StateDir)
	if err != nil {
		return st, err
	}
	names := map[int]string{}
	linkName := func(index int) string {
		if name, ok := names[index]; ok {
			return name
		}
		name := fmt.Sprintf("if%d", index)
		if l, err := n.nl.LinkByIndex(index); err == nil {
			name = l.Attrs().Name
		}
		names[index] = name
		return name
	}

	dev := 0
	var neighs []neighEntry
	var fdb []fdbEntry
	link, err := n.nl.LinkByName(n.s.Device)
	if err != nil && !isLinkNotFound(err) {
		return st, fmt.Errorf("find VXLAN device %s: %w", n.s.Device, err)
	}
	if v, ok := link.(*netlink.Vxlan); ok {
		dev = v.Index
		st.Device = &DeviceStatus{
			Name: v.Name, Up: v.Flags&net.FlagUp != 0, MTU: v.MTU, MAC: v.HardwareAddr.String(),
			LocalIP: v.SrcAddr.String(), Parent: linkName(v.VtepDevIndex), VNI: v.VxlanId, Port: v.Port,
		}
		if neighs, fdb, err = n.deviceEntries(dev); err != nil {
			return st, err
		}
	}
	routes, err := n.ourRoutes()
	if err != nil {
		return st, err
	}
	byDst := map[netip.Prefix]routeEntry{}
	for _, r := range routes {
		e := routeFromNetlink(r)
		byDst[e.Dst] = e
	}
	describe := func(e routeEntry) string {
		s := e.Dst.String()
		if e.Gw.IsValid() {
			s += " via " + e.Gw.String()
		}
		s += " dev " + linkName(e.LinkIndex)
		if e.OnLink {
			s += " onlink"
		}
		return s
	}
	for _, p := range peers {
		ps := PeerStatus{Name: p.Name, NodeIP: p.NodeIP.String(), PodCIDR: p.PodCIDR.String()}
		if p.VTEPMAC != nil {
			ps.VTEPMAC = p.VTEPMAC.String()
		}
		if r, ok := byDst[p.PodCIDR]; ok {
			delete(byDst, p.PodCIDR)
			ps.Route = describe(r)
			switch n.s.Backend {
			case BackendVXLAN:
				ps.RouteOK = dev != 0 && r == vxlanRoute(p, dev)
			case BackendHostGW:
				ps.RouteOK = r.Gw == p.NodeIP && !r.OnLink
			}
		}
		if p.VTEPMAC != nil {
			ps.FDB = slices.Contains(fdb, vxlanFDB(p))
			ps.Neighbour = slices.Contains(neighs, vxlanNeigh(p))
		}
		st.Peers = append(st.Peers, ps)
	}
	var unexplained []PeerStatus
	for _, r := range byDst {
		unexplained = append(unexplained, PeerStatus{PodCIDR: r.Dst.String(), Route: describe(r)})
	}
	slices.SortFunc(unexplained, func(a, b PeerStatus) int { return cmp.Compare(a.PodCIDR, b.PodCIDR) })
	st.Peers = append(st.Peers, unexplained...)
	st.Forwarding = n.forwardingInstalled(ctx)
	return st, nil
}

// Render writes st as `peapod net` prints it: the node, its device, and a
// table of peers.
func Render(w io.Writer, st Status) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "BACKEND\t%s\n", st.Backend)
	fmt.Fprintf(tw, "NODE\t%s\tnode IP %s\tpod CIDR %s\tcluster CIDR %s\n", st.NodeName, orDash(st.NodeIP), st.PodCIDR, st.ClusterCIDR)
	if d := st.Device; d != nil {
		state := "down"
		if d.Up {
			state = "up"
		}
		fmt.Fprintf(tw, "DEVICE\t%s\t%s, mtu %d, mac %s\tlocal %s on %s\tvni %d, port %d\n", d.Name, state, d.MTU, d.MAC, d.LocalIP, d.Parent, d.VNI, d.Port)
	} else {
		fmt.Fprintf(tw, "DEVICE\t-\n")
	}
	fwd := "missing: FORWARD does not accept the cluster range"
	if st.Forwarding {
		fwd = "FORWARD accepts the cluster range (" + forwardChain + ")"
	}
	fmt.Fprintf(tw, "FORWARDING\t%s\n", fwd)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	header := []string{"PEER", "NODE IP", "POD CIDR", "VTEP MAC", "ROUTE"}
	if st.Backend == BackendVXLAN {
		header = append(header, "FDB", "NEIGH")
	}
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, p := range st.Peers {
		route := orDash(p.Route)
		if p.Route == "" {
			route = "missing"
		} else if !p.RouteOK {
			route += " (unexpected)"
		}
		row := []string{orDash(p.Name), orDash(p.NodeIP), p.PodCIDR, orDash(p.VTEPMAC), route}
		if st.Backend == BackendVXLAN {
			row = append(row, yesNo(p.FDB), yesNo(p.Neighbour))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	if len(st.Peers) == 0 {
		fmt.Fprintln(tw, "(no peers)")
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
