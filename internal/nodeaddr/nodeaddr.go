// Package nodeaddr finds a node's own address: the IPv4 address its peers
// and the API server reach it at, which becomes the Node's InternalIP and
// the source of its overlay traffic, with the interface that holds it.
//
// Resolve(flag) checks an address given with --node-ip against the
// machine's interfaces, or, given none, picks the first IPv4 address of
// the interface the default route leaves through, as the kubelet and
// flannel do. A machine without a default route is a cluster of one: it
// gets loopback.
package nodeaddr

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
)

// Address is a node's address and the interface that holds it.
type Address struct {
	IP netip.Addr
	// Link is the interface's name, MTU its MTU: the overlay's device
	// rides on it and must be smaller by its encapsulation.
	Link string
	MTU  int
}

// Resolve returns the node's address: nodeIP, which must be an IPv4
// address configured on this machine, or, when nodeIP is empty, the
// address of the default route's interface (loopback if there is no
// default route). Errors name --node-ip. It acts in the calling thread's
// network namespace.
func Resolve(nodeIP string) (Address, error) {
	if nodeIP != "" {
		return configured(nodeIP)
	}
	a, ok, err := DefaultRoute()
	if err != nil {
		return Address{}, fmt.Errorf("find the default route for the node's address (give --node-ip): %w", err)
	}
	if ok {
		return a, nil
	}
	return configured("127.0.0.1")
}

// DefaultRoute returns the first routable IPv4 address of the interface
// the IPv4 default route leaves through; ok is false when there is no
// default route or its interface has no such address. The kubelet,
// flannel and kube-apiserver (for --advertise-address) pick the same one.
func DefaultRoute() (a Address, ok bool, err error) {
	routes, err := retryInterrupted(func() ([]netlink.Route, error) { return netlink.RouteList(nil, netlink.FAMILY_V4) })
	if err != nil {
		return Address{}, false, fmt.Errorf("list routes: %w", err)
	}
	for _, r := range routes {
		if r.Dst != nil && !r.Dst.IP.IsUnspecified() {
			continue
		}
		link, err := netlink.LinkByIndex(r.LinkIndex)
		if err != nil {
			continue
		}
		addrs, err := retryInterrupted(func() ([]netlink.Addr, error) { return netlink.AddrList(link, netlink.FAMILY_V4) })
		if err != nil {
			continue
		}
		for _, ad := range addrs {
			if ip, ok := netip.AddrFromSlice(ad.IP.To4()); ok && ip.IsGlobalUnicast() {
				return Address{IP: ip, Link: link.Attrs().Name, MTU: link.Attrs().MTU}, true, nil
			}
		}
	}
	return Address{}, false, nil
}

// configured finds the interface holding nodeIP.
func configured(nodeIP string) (Address, error) {
	ip, err := netip.ParseAddr(nodeIP)
	if err != nil {
		return Address{}, fmt.Errorf("--node-ip %q: not an IP address", nodeIP)
	}
	if !ip.Unmap().Is4() {
		return Address{}, fmt.Errorf("--node-ip %s: not IPv4 (peapod's node network is IPv4 only)", nodeIP)
	}
	ip = ip.Unmap()
	addrs, err := retryInterrupted(func() ([]netlink.Addr, error) { return netlink.AddrList(nil, netlink.FAMILY_V4) })
	if err != nil {
		return Address{}, fmt.Errorf("--node-ip %s: list this machine's addresses: %w", nodeIP, err)
	}
	for _, a := range addrs {
		if !a.IP.Equal(net.IP(ip.AsSlice())) {
			continue
		}
		link, err := netlink.LinkByIndex(a.LinkIndex)
		if err != nil {
			return Address{}, fmt.Errorf("--node-ip %s: interface %d: %w", nodeIP, a.LinkIndex, err)
		}
		return Address{IP: ip, Link: link.Attrs().Name, MTU: link.Attrs().MTU}, nil
	}
	return Address{}, fmt.Errorf("--node-ip %s: no interface of this machine has this address (see `ip -4 addr`)", nodeIP)
}

// retryInterrupted repeats a netlink dump that raced with a change (pods
// coming and going change routes and addresses) rather than settle for a
// partial answer.
func retryInterrupted[T any](dump func() ([]T, error)) ([]T, error) {
	out, err := dump()
	for try := 0; errors.Is(err, netlink.ErrDumpInterrupted) && try < 10; try++ {
		time.Sleep(10 * time.Millisecond)
		out, err = dump()
	}
	return out, err
}
