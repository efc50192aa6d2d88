package network

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/vishvananda/netlink"
)

// NodeIP returns the node's address: configured, if set (it must be an
// IP), else the first IPv4 address of the interface holding the default
// route, else 127.0.0.1 (a node without a default route reaches only
// itself). It is what the kubelet reports as the node's InternalIP, a
// hostNetwork pod's IP and every pod's hostIP.
func NodeIP(configured string) (string, error) {
	if configured != "" {
		if net.ParseIP(configured) == nil {
			return "", fmt.Errorf("node IP %q is not an IP address", configured)
		}
		return configured, nil
	}
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	// A dump racing with route changes (pods coming and going) is
	// interrupted: read it again rather than settle for loopback.
	for try := 0; errors.Is(err, netlink.ErrDumpInterrupted) && try < 10; try++ {
		time.Sleep(10 * time.Millisecond)
		routes, err = netlink.RouteList(nil, netlink.FAMILY_V4)
	}
	if err == nil {
		for _, r := range routes {
			if r.Dst != nil && !r.Dst.IP.IsUnspecified() {
				continue
			}
			link, err := netlink.LinkByIndex(r.LinkIndex)
			if err != nil {
				continue
			}
			addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
			if err == nil && len(addrs) > 0 {
				return addrs[0].IP.String(), nil
			}
		}
	}
	return "127.0.0.1", nil
}
