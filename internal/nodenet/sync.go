package nodenet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// RouteProtocol marks the routes peapod programs (rtm_protocol; `ip route`
// shows "proto 112"), so a reconciliation, also after a restart, finds
// exactly ours and no one else's. 112 is unassigned in iproute2's
// rt_protos and by the routing daemons that register numbers there.
const RouteProtocol netlink.RouteProtocol = 112

// Sync reconciles the kernel to exactly peers: for vxlan an FDB entry,
// a permanent neighbour and an onlink route per peer; for host-gw a route
// via the peer's node IP; for none nothing. Entries of peers no longer
// listed (also from before a restart) are removed, duplicates removed,
// and entries already right are not touched, so live peers never flap.
// For vxlan it first re-ensures the device (re-creating it with the same
// MAC if someone deleted it).
//
// Peers it will not program are returned as refusals (malformed peers,
// and for host-gw a peer whose node IP is not on this node's L2 segment);
// the others are programmed regardless. err joins the failures of
// individual kernel operations; Sync goes on past them, so a retry has
// less to do. Sync needs a successful Setup first.
func (n *Network) Sync(ctx context.Context, peers []Peer) (refused []Refusal, err error) {
	if err := n.lock(); err != nil {
		return nil, err
	}
	defer n.mu.Unlock()
	if n.local == nil {
		return nil, errors.New("nodenet: Sync called before Setup")
	}
	ok, refused := checkPeers(peers, n.Self())
	var errs []error
	switch n.s.Backend {
	case BackendVXLAN:
		errs = n.syncVXLAN(ctx, ok)
	case BackendHostGW:
		var more []Refusal
		ok, more, errs = n.syncHostGW(ctx, ok)
		refused = append(refused, more...)
	default:
		ok = nil
		_, errs = n.reconcileRoutes(ctx, nil)
	}
	if err := n.recordPeers(ok); err != nil {
		errs = append(errs, err)
	}
	return refused, errors.Join(errs...)
}

func (n *Network) syncVXLAN(ctx context.Context, peers []Peer) []error {
	underlay, err := n.underlay()
	if err != nil {
		return []error{err}
	}
	link, _, err := n.ensureDevice(ctx, underlay)
	if err != nil {
		return []error{err}
	}
	dev := link.Attrs().Index
	var wantRoutes []routeEntry
	var wantNeighs []neighEntry
	var wantFDB []fdbEntry
	for _, p := range peers {
		wantRoutes = append(wantRoutes, vxlanRoute(p, dev))
		wantNeighs = append(wantNeighs, vxlanNeigh(p))
		wantFDB = append(wantFDB, vxlanFDB(p))
	}
	haveNeighs, haveFDB, err := n.deviceEntries(dev)
	if err != nil {
		return []error{err}
	}
	neighs := diffNeighs(wantNeighs, haveNeighs)
	fdb := diffFDB(wantFDB, haveFDB)

	// Neighbour and FDB entries before the route (so the first packet
	// routed finds them), routes removed before their entries.
	var errs []error
	for _, e := range neighs.Set {
		errs = appendErr(errs, n.nl.NeighSet(neighToNetlink(e, dev)), "set neighbour %s lladdr %s", e.IP, e.MAC)
	}
	for _, e := range fdb.Set {
		errs = appendErr(errs, n.nl.NeighAppend(fdbToNetlink(e, dev)), "add FDB entry %s dst %s", e.MAC, e.Dst)
	}
	_, routeErrs := n.reconcileRoutes(ctx, wantRoutes)
	errs = append(errs, routeErrs...)
	for _, e := range fdb.Del {
		errs = appendErr(errs, ignoreMissing(n.nl.NeighDel(fdbToNetlink(e, dev))), "remove FDB entry %s dst %s", e.MAC, e.Dst)
	}
	for _, e := range neighs.Del {
		errs = appendErr(errs, ignoreMissing(n.nl.NeighDel(neighToNetlink(e, dev))), "remove neighbour %s", e.IP)
	}
	if !neighs.empty() || !fdb.empty() {
		n.log.Info("programmed VXLAN peers", "peers", len(peers), "neighboursSet", len(neighs.Set), "neighboursRemoved", len(neighs.Del),
			"fdbSet", len(fdb.Set), "fdbRemoved", len(fdb.Del))
	}
	return errs
}

// deviceEntries lists the VXLAN device's permanent IPv4 neighbours and its
// FDB entries (all of them: the device is ours).
func (n *Network) deviceEntries(dev int) ([]neighEntry, []fdbEntry, error) {
	neighs, err := dump(func() ([]netlink.Neigh, error) { return n.nl.NeighList(dev, netlink.FAMILY_V4) })
	if err != nil {
		return nil, nil, fmt.Errorf("list neighbours of %s: %w", n.s.Device, err)
	}
	var haveNeighs []neighEntry
	for _, e := range neighs {
		if e.LinkIndex != dev || e.State&netlink.NUD_PERMANENT == 0 {
			continue // the kernel's own entries (incomplete, failed) age out
		}
		ip, _ := netip.AddrFromSlice(e.IP)
		haveNeighs = append(haveNeighs, neighEntry{IP: ip.Unmap(), MAC: e.HardwareAddr.String()})
	}
	fdbs, err := dump(func() ([]netlink.Neigh, error) { return n.nl.NeighList(dev, unix.AF_BRIDGE) })
	if err != nil {
		return nil, nil, fmt.Errorf("list FDB of %s: %w", n.s.Device, err)
	}
	var haveFDB []fdbEntry
	for _, e := range fdbs {
		if e.LinkIndex != dev {
			continue
		}
		ip, _ := netip.AddrFromSlice(e.IP)
		haveFDB = append(haveFDB, fdbEntry{MAC: e.HardwareAddr.String(), Dst: ip.Unmap()})
	}
	return haveNeighs, haveFDB, nil
}

// syncHostGW routes each peer via its node IP, refusing peers the kernel
// does not reach directly on a link (not on our L2 segment).
func (n *Network) syncHostGW(ctx context.Context, peers []Peer) (programmed []Peer, refused []Refusal, errs []error) {
	var want []routeEntry
	for _, p := range peers {
		link, reason := n.directLink(p.NodeIP)
		if reason != "" {
			refused = append(refused, Refusal{Peer: p, Reason: reason})
			continue
		}
		want = append(want, hostGWRoute(p, link))
		programmed = append(programmed, p)
	}
	_, errs = n.reconcileRoutes(ctx, want)
	return programmed, refused, errs
}

// directLink returns the link on which the kernel reaches ip without a
// gateway, or why it does not.
func (n *Network) directLink(ip netip.Addr) (int, string) {
	routes, err := n.nl.RouteGet(net.IP(ip.AsSlice()))
	if err != nil || len(routes) == 0 {
		return 0, fmt.Sprintf("host-gw: node IP %s is not reachable from this node (%v); host-gw needs every node on one L2 segment, use the vxlan backend otherwise", ip, err)
	}
	r := routes[0]
	switch {
	case r.Type == unix.RTN_LOCAL:
		return 0, fmt.Sprintf("host-gw: node IP %s is an address of this node", ip)
	case r.Gw != nil:
		return 0, fmt.Sprintf("host-gw: node IP %s is not on this node's L2 segment (reached through gateway %s); host-gw needs every node on one L2 segment, use the vxlan backend otherwise", ip, r.Gw)
	}
	return r.LinkIndex, ""
}

// reconcileRoutes makes our routes (RouteProtocol, main table) exactly
// want, touching only those that differ.
func (n *Network) reconcileRoutes(ctx context.Context, want []routeEntry) (changes[routeEntry], []error) {
	if err := ctx.Err(); err != nil {
		return changes[routeEntry]{}, []error{err}
	}
	have, err := n.ourRoutes()
	if err != nil {
		return changes[routeEntry]{}, []error{err}
	}
	entries := make([]routeEntry, 0, len(have))
	for _, r := range have {
		entries = append(entries, routeFromNetlink(r))
	}
	c := diffRoutes(want, entries)
	var errs []error
	for _, r := range c.Set {
		errs = appendErr(errs, n.nl.RouteReplace(routeToNetlink(r)), "set route %s via %s", r.Dst, r.Gw)
	}
	for _, r := range c.Del {
		errs = appendErr(errs, ignoreMissing(n.nl.RouteDel(routeToNetlink(r))), "remove route %s via %s", r.Dst, r.Gw)
	}
	if !c.empty() {
		n.log.Info("programmed routes to peers", "routes", len(want), "set", len(c.Set), "removed", len(c.Del))
	}
	return c, errs
}

// ourRoutes lists the IPv4 routes with RouteProtocol in the main table.
func (n *Network) ourRoutes() ([]netlink.Route, error) {
	filter := &netlink.Route{Protocol: RouteProtocol, Table: unix.RT_TABLE_MAIN}
	routes, err := dump(func() ([]netlink.Route, error) {
		return n.nl.RouteListFiltered(netlink.FAMILY_V4, filter, netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	return routes, nil
}

func (n *Network) recordPeers(peers []Peer) error {
	data, err := encodePeers(peers)
	if err != nil {
		return err
	}
	if string(data) == string(n.lastPeers) {
		return nil
	}
	if err := writeFileAtomic(filepath.Join(n.s.StateDir, peersFile), data); err != nil {
		return err
	}
	n.lastPeers = data
	return nil
}

func routeFromNetlink(r netlink.Route) routeEntry {
	e := routeEntry{LinkIndex: r.LinkIndex, OnLink: r.Flags&int(netlink.FLAG_ONLINK) != 0, Priority: r.Priority}
	if r.Dst != nil {
		ip, _ := netip.AddrFromSlice(r.Dst.IP)
		ones, _ := r.Dst.Mask.Size()
		e.Dst = netip.PrefixFrom(ip.Unmap(), ones)
	} else {
		e.Dst = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	}
	if gw, ok := netip.AddrFromSlice(r.Gw); ok {
		e.Gw = gw.Unmap()
	}
	return e
}

func routeToNetlink(e routeEntry) *netlink.Route {
	r := &netlink.Route{
		LinkIndex: e.LinkIndex,
		Dst:       &net.IPNet{IP: e.Dst.Addr().AsSlice(), Mask: net.CIDRMask(e.Dst.Bits(), 32)},
		Protocol:  RouteProtocol,
		Table:     unix.RT_TABLE_MAIN,
		Scope:     netlink.SCOPE_UNIVERSE,
		Priority:  e.Priority,
	}
	if e.Gw.IsValid() {
		r.Gw = e.Gw.AsSlice()
	}
	if e.OnLink {
		r.SetFlag(netlink.FLAG_ONLINK)
	}
	return r
}

func neighToNetlink(e neighEntry, dev int) *netlink.Neigh {
	mac, _ := net.ParseMAC(e.MAC)
	return &netlink.Neigh{LinkIndex: dev, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT,
		Type: unix.RTN_UNICAST, IP: e.IP.AsSlice(), HardwareAddr: mac}
}

func fdbToNetlink(e fdbEntry, dev int) *netlink.Neigh {
	mac, _ := net.ParseMAC(e.MAC)
	var ip net.IP
	if e.Dst.IsValid() {
		ip = e.Dst.AsSlice()
	}
	return &netlink.Neigh{LinkIndex: dev, Family: unix.AF_BRIDGE, State: netlink.NUD_PERMANENT,
		Flags: netlink.NTF_SELF, IP: ip, HardwareAddr: mac}
}

// ignoreMissing makes deleting what is already gone a success.
func ignoreMissing(err error) error {
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
		return nil
	}
	return err
}

func appendErr(errs []error, err error, format string, args ...any) []error {
	if err == nil {
		return errs
	}
	return append(errs, fmt.Errorf(format+": %w", append(args, err)...))
}
