package proxy

import (
	"errors"
	"fmt"
	"net"
	"reflect"
	"syscall"

	"github.com/vishvananda/netlink"
)

// udpFilter matches UDP conntrack flows to a service frontend whose
// answer does not come from an endpoint in use there: flows to endpoints
// removed since, and flows that found no endpoint at all (they would
// keep a client's packets away from the new ones until they time out,
// as UDP has no handshake to start over). Pure.
type udpFilter struct {
	// frontends maps "ip:port" of ClusterIPs and external IPs to the
	// endpoints ("ip:port") allowed to answer there.
	frontends map[string]map[string]bool
	// nodePorts maps a NodePort to its allowed endpoints; it applies to
	// flows to a local address.
	nodePorts map[uint16]map[string]bool
	local     map[string]bool
}

var _ netlink.CustomConntrackFilter = (*udpFilter)(nil)

// MatchConntrackFlow implements netlink.CustomConntrackFilter.
func (f *udpFilter) MatchConntrackFlow(flow *netlink.ConntrackFlow) bool {
	if flow.Forward.Protocol != syscall.IPPROTO_UDP {
		return false
	}
	reply := net.JoinHostPort(flow.Reverse.SrcIP.String(), itoa(flow.Reverse.SrcPort))
	dst := net.JoinHostPort(flow.Forward.DstIP.String(), itoa(flow.Forward.DstPort))
	if allowed, ok := f.frontends[dst]; ok {
		return !allowed[reply]
	}
	if allowed, ok := f.nodePorts[flow.Forward.DstPort]; ok && f.local[flow.Forward.DstIP.String()] {
		return !allowed[reply]
	}
	return false
}

// udpFilterFor builds the filter for the UDP frontends that changed in
// changes (nil when none did). local lists this node's addresses.
func udpFilterFor(changes []change, local map[string]bool) *udpFilter {
	f := &udpFilter{frontends: map[string]map[string]bool{}, nodePorts: map[uint16]map[string]bool{}, local: local}
	changed := false
	add := func(fr udpFrontend, allowed map[string]bool) {
		for _, ip := range fr.ips {
			f.frontends[net.JoinHostPort(ip, itoa(fr.port))] = allowed
		}
		if fr.nodePort != 0 {
			f.nodePorts[uint16(fr.nodePort)] = allowed
		}
	}
	for _, c := range changes {
		var olds, news []udpFrontend
		if c.old != nil {
			olds = c.old.udp
		}
		if c.new != nil {
			news = c.new.udp
		}
		if reflect.DeepEqual(olds, news) {
			continue
		}
		changed = true
		// Frontends gone: no endpoint may answer there any more.
		for _, fr := range olds {
			add(fr, map[string]bool{})
		}
		for _, fr := range news {
			add(fr, fr.endpoints)
		}
	}
	if !changed {
		return nil
	}
	return f
}

// clearStaleUDP deletes the UDP conntrack flows made stale by changes,
// in the caller's network namespace, through netlink.
func clearStaleUDP(changes []change) error {
	f := udpFilterFor(changes, nil)
	if f == nil {
		return nil
	}
	local, err := localAddresses()
	if err != nil {
		return err
	}
	f.local = local
	if _, err := netlink.ConntrackDeleteFilters(netlink.ConntrackTable, netlink.FAMILY_V4, f); err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return fmt.Errorf("delete UDP conntrack entries: %w", err)
	}
	return nil
}

func localAddresses() (map[string]bool, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("list this node's addresses: %w", err)
	}
	out := map[string]bool{}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			out[n.IP.String()] = true
		}
	}
	return out, nil
}

// markFilter matches the flows this proxy translated (ConnMark).
type markFilter struct{}

// MatchConntrackFlow implements netlink.CustomConntrackFilter.
func (markFilter) MatchConntrackFlow(flow *netlink.ConntrackFlow) bool {
	return flow.Mark&ConnMark != 0
}

// deleteOurFlows removes every conntrack flow this proxy translated.
func deleteOurFlows() (uint, error) {
	n, err := netlink.ConntrackDeleteFilters(netlink.ConntrackTable, netlink.FAMILY_V4, markFilter{})
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return n, fmt.Errorf("delete the service proxy's conntrack entries: %w", err)
	}
	return n, nil
}
