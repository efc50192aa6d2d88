package nodenet

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
)

// The pure half of Sync: desired kernel entries from peers, and the
// smallest change from what the kernel has to what is desired. Entries the
// kernel already has exactly are left alone, so a resync never rewrites
// (and never flaps) a live peer's entry.

// routeEntry is one route to a peer's podCIDR, as Sync compares them.
type routeEntry struct {
	Dst       netip.Prefix
	Gw        netip.Addr
	LinkIndex int
	OnLink    bool
	Priority  int
}

// neighEntry is a permanent neighbour on the VXLAN device: a peer's
// podCIDR network address and the peer's VTEP MAC.
type neighEntry struct {
	IP  netip.Addr
	MAC string
}

// fdbEntry is a VXLAN forwarding entry: frames for a peer's VTEP MAC go
// to the peer's node IP.
type fdbEntry struct {
	MAC string
	Dst netip.Addr
}

// changes is what to program (Set: add, or replace in place) and what to
// remove.
type changes[T any] struct {
	Set, Del []T
}

func (c changes[T]) empty() bool { return len(c.Set) == 0 && len(c.Del) == 0 }

// vxlanRoute is the route to p's podCIDR through the VXLAN device: via the
// podCIDR's network address (which the peer's device holds), onlink, so
// the kernel resolves it with the permanent neighbour entry.
func vxlanRoute(p Peer, device int) routeEntry {
	return routeEntry{Dst: p.PodCIDR, Gw: p.PodCIDR.Addr(), LinkIndex: device, OnLink: true}
}

// hostGWRoute is the route to p's podCIDR via p's node IP on link.
func hostGWRoute(p Peer, link int) routeEntry {
	return routeEntry{Dst: p.PodCIDR, Gw: p.NodeIP, LinkIndex: link}
}

func vxlanNeigh(p Peer) neighEntry { return neighEntry{IP: p.PodCIDR.Addr(), MAC: p.VTEPMAC.String()} }

func vxlanFDB(p Peer) fdbEntry { return fdbEntry{MAC: p.VTEPMAC.String(), Dst: p.NodeIP} }

// diffRoutes: routes in want (one per Dst) the kernel lacks or has
// otherwise are Set (a replace of the route with that Dst at priority 0);
// every other route of ours, stale or duplicate, is removed.
func diffRoutes(want, have []routeEntry) changes[routeEntry] {
	wanted := map[netip.Prefix]routeEntry{}
	for _, w := range want {
		wanted[w.Dst] = w
	}
	var c changes[routeEntry]
	settled := map[netip.Prefix]bool{} // Dst whose priority-0 slot is decided
	keep := map[netip.Prefix]bool{}
	for _, h := range sorted(have, compareRoutes) {
		w, ok := wanted[h.Dst]
		switch {
		case ok && h.Priority == 0 && !settled[h.Dst]:
			settled[h.Dst] = true
			keep[h.Dst] = h == w // else replaced in place by the Set below
		default:
			c.Del = append(c.Del, h)
		}
	}
	for _, w := range sorted(want, compareRoutes) {
		if !keep[w.Dst] {
			c.Set = append(c.Set, w)
		}
	}
	return c
}

// diffNeighs: neighbours in want the kernel lacks or has with another MAC
// are Set (NeighSet replaces); permanent neighbours not wanted are removed.
func diffNeighs(want, have []neighEntry) changes[neighEntry] {
	has := map[netip.Addr]string{}
	for _, h := range have {
		has[h.IP] = h.MAC
	}
	wanted := map[netip.Addr]bool{}
	var c changes[neighEntry]
	for _, w := range sorted(want, compareNeighs) {
		wanted[w.IP] = true
		if mac, ok := has[w.IP]; !ok || mac != w.MAC {
			c.Set = append(c.Set, w)
		}
	}
	for _, h := range sorted(have, compareNeighs) {
		if !wanted[h.IP] {
			c.Del = append(c.Del, h)
		}
	}
	return c
}

// diffFDB: a VXLAN FDB entry is a MAC with a list of remote IPs. Wanted
// (MAC, Dst) pairs the kernel lacks are Set (appended); every other pair,
// including a wanted MAC's other remotes, is removed. Adding before
// removing means a peer that changed its node IP is never without one.
func diffFDB(want, have []fdbEntry) changes[fdbEntry] {
	has := map[fdbEntry]bool{}
	for _, h := range have {
		has[h] = true
	}
	wanted := map[fdbEntry]bool{}
	var c changes[fdbEntry]
	for _, w := range sorted(want, compareFDB) {
		wanted[w] = true
		if !has[w] {
			c.Set = append(c.Set, w)
		}
	}
	seen := map[fdbEntry]bool{}
	for _, h := range sorted(have, compareFDB) {
		if !wanted[h] && !seen[h] {
			c.Del = append(c.Del, h)
		}
		seen[h] = true
	}
	return c
}

// Refusal is a peer Sync did not program, for a reason retrying will not
// fix until the peer or this node changes.
type Refusal struct {
	Peer   Peer
	Reason string
}

func (r Refusal) Error() string { return "peer " + r.Peer.Name + ": " + r.Reason }

// checkPeers splits peers into those Sync may program and refusals: the
// same checks as PeersFromNodes, for callers that build peers otherwise.
// It is pure.
func checkPeers(peers []Peer, self Self) ([]Peer, []Refusal) {
	var ok []Peer
	var refused []Refusal
	for _, p := range sorted(peers, func(a, b Peer) int { return cmp.Compare(a.Name, b.Name) }) {
		reason := ""
		switch {
		case p.Name == "":
			reason = "no name"
		case !p.NodeIP.Is4():
			reason = fmt.Sprintf("node IP %v is not an IPv4 address", p.NodeIP)
		case !p.PodCIDR.IsValid() || !p.PodCIDR.Addr().Is4() || p.PodCIDR.Masked() != p.PodCIDR:
			reason = fmt.Sprintf("podCIDR %v is not an IPv4 network address", p.PodCIDR)
		case p.PodCIDR.Bits() < self.ClusterCIDR.Bits() || !self.ClusterCIDR.Contains(p.PodCIDR.Addr()):
			reason = fmt.Sprintf("podCIDR %s is outside the cluster range %s", p.PodCIDR, self.ClusterCIDR)
		case self.ClusterCIDR.Contains(p.NodeIP):
			reason = fmt.Sprintf("node IP %s is inside the cluster range %s", p.NodeIP, self.ClusterCIDR)
		case self.Backend == BackendVXLAN && len(p.VTEPMAC) == 0:
			reason = "no VTEP MAC"
		default:
			reason = conflictReason(p, self, ok)
		}
		if reason != "" {
			refused = append(refused, Refusal{Peer: p, Reason: reason})
			continue
		}
		ok = append(ok, p)
	}
	return ok, refused
}

func sorted[T any](s []T, f func(a, b T) int) []T {
	out := slices.Clone(s)
	slices.SortFunc(out, f)
	return out
}

func compareRoutes(a, b routeEntry) int {
	return cmp.Or(a.Dst.Addr().Compare(b.Dst.Addr()), cmp.Compare(a.Dst.Bits(), b.Dst.Bits()),
		cmp.Compare(a.Priority, b.Priority), a.Gw.Compare(b.Gw), cmp.Compare(a.LinkIndex, b.LinkIndex))
}

func compareNeighs(a, b neighEntry) int {
	return cmp.Or(a.IP.Compare(b.IP), cmp.Compare(a.MAC, b.MAC))
}

func compareFDB(a, b fdbEntry) int {
	return cmp.Or(cmp.Compare(a.MAC, b.MAC), a.Dst.Compare(b.Dst))
}
