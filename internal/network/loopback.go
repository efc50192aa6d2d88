package network

import (
	"fmt"
	"net"

	"github.com/vishvananda/netlink"

	"github.com/peapod/peapod/internal/network/netns"
)

// loopbackUp brings lo up inside the network namespace at netnsPath, which
// is all the CNI loopback plugin's ADD does (the kernel gives lo
// 127.0.0.1/8 and ::1 as it comes up). It is done in-process, as the
// kubelet's dockershim did, to spare a plugin exec per pod; nothing needs
// undoing, as lo dies with the namespace. It is idempotent.
func loopbackUp(netnsPath string) error {
	err := netns.Do(netnsPath, func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(lo)
	})
	if err != nil {
		return fmt.Errorf("bring up lo in %s: %w", netnsPath, err)
	}
	return nil
}

// checkLoopback fails unless lo is up with 127.0.0.1 inside the network
// namespace at netnsPath.
func checkLoopback(netnsPath string) error {
	return netns.Do(netnsPath, func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return fmt.Errorf("check lo in %s: %w", netnsPath, err)
		}
		if lo.Attrs().Flags&net.FlagUp == 0 {
			return fmt.Errorf("check lo in %s: lo is down", netnsPath)
		}
		addrs, err := netlink.AddrList(lo, netlink.FAMILY_V4)
		if err != nil {
			return fmt.Errorf("check lo in %s: %w", netnsPath, err)
		}
		for _, a := range addrs {
			if a.IP.Equal(net.IPv4(127, 0, 0, 1)) {
				return nil
			}
		}
		return fmt.Errorf("check lo in %s: no 127.0.0.1", netnsPath)
	})
}
