package nodenet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/vishvananda/netlink"
)

// Setup prepares this node's share of the pod network and returns what the
// agent must publish and the MTU pods must use. It is idempotent: run
// again (an agent restart) it adopts what is there and changes only what
// differs.
//
//   - vxlan: creates or adopts the VXLAN device (VNI 1, UDP 8472, learning
//     off, local = node IP, parent = the underlay link holding the node IP,
//     MTU = underlay MTU - 50) with the MAC recorded in the state dir (a
//     new one recorded on first use), gives it the podCIDR's network
//     address as a /32 (as flannel.1: it is the source address of the
//     node's own traffic to remote pods, and what peers route to), sets it
//     up and applies the checksum-offload workaround where it applies.
//     A device with that name but an incompatible configuration is
//     re-created with the same MAC.
//   - host-gw: finds the underlay link; removes a VXLAN device left by an
//     earlier vxlan configuration.
//   - none: removes the VXLAN device and routes a former backend left.
//
// For every backend it enables IPv4 forwarding (vxlan, host-gw) and the
// forward rules for the cluster range. Before changing anything it checks
// what needs the kernel (NodeIP is an address of this node), so a bad
// config changes nothing; if a later step fails, a device this call
// created is removed again.
func (n *Network) Setup(ctx context.Context) (local Local, retErr error) {
	if err := n.lock(); err != nil {
		return local, err
	}
	defer n.mu.Unlock()
	var underlay netlink.Link
	if n.s.Backend != BackendNone {
		var err error
		if underlay, err = n.underlay(); err != nil {
			return local, err
		}
		local.Underlay = underlay.Attrs().Name
		local.MTU = underlay.Attrs().MTU
	}
	if err := writeConfig(n.s); err != nil {
		return local, err
	}
	switch n.s.Backend {
	case BackendVXLAN:
		link, created, err := n.ensureDevice(ctx, underlay)
		if err != nil {
			return local, err
		}
		if created {
			defer func() {
				if retErr != nil {
					_ = n.nl.LinkDel(link)
				}
			}()
		}
		if err := n.applyChecksumWorkaround(); err != nil {
			return local, err
		}
		local.MTU = link.Attrs().MTU
		local.Device = link.Attrs().Name
		local.VTEPMAC = link.Attrs().HardwareAddr
	default:
		if err := n.removeDevice(); err != nil {
			return local, err
		}
		if n.s.Backend == BackendNone {
			if _, errs := n.reconcileRoutes(ctx, nil); len(errs) > 0 {
				return local, errors.Join(errs...)
			}
		}
	}
	if n.s.Backend != BackendNone {
		if err := n.inNS(enableIPv4Forwarding); err != nil {
			return local, err
		}
	}
	if err := n.ensureForwarding(ctx); err != nil {
		return local, err
	}
	local.Annotations = localAnnotations(n.s.Backend, n.s.nodeIP, local.VTEPMAC)
	n.local = &local
	n.log.Info("pod network between nodes set up", "backend", n.s.Backend, "podCIDR", n.s.podCIDR,
		"nodeIP", n.s.NodeIP, "underlay", local.Underlay, "device", local.Device, "vtepMAC", local.VTEPMAC.String(), "mtu", local.MTU)
	return local, nil
}

// ensureDevice creates or adopts the VXLAN device on underlay, with the
// recorded MAC, the /32 address and up; created says this call made it.
func (n *Network) ensureDevice(ctx context.Context, underlay netlink.Link) (link netlink.Link, created bool, err error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	existing, err := n.nl.LinkByName(n.s.Device)
	if err != nil && !isLinkNotFound(err) {
		return nil, false, fmt.Errorf("find VXLAN device %s: %w", n.s.Device, err)
	}
	mac, err := readMAC(n.s.StateDir)
	if err != nil {
		return nil, false, err
	}
	if mac == nil {
		// No record: keep the MAC of a device we find (peers may know
		// it), else make one. Record it before the device exists.
		if v, ok := existing.(*netlink.Vxlan); ok && len(v.HardwareAddr) == 6 {
			mac = v.HardwareAddr
		} else if mac, err = newMAC(); err != nil {
			return nil, false, err
		}
		if err := writeMAC(n.s.StateDir, mac); err != nil {
			return nil, false, err
		}
	}
	want := &netlink.Vxlan{
		LinkAttrs:    netlink.LinkAttrs{Name: n.s.Device, MTU: underlay.Attrs().MTU - vxlanOverhead, HardwareAddr: mac},
		VxlanId:      VNI,
		VtepDevIndex: underlay.Attrs().Index,
		SrcAddr:      net.IP(n.s.nodeIP.AsSlice()),
		Port:         Port,
		Learning:     false,
	}
	if existing != nil && existing.Type() != "vxlan" {
		return nil, false, fmt.Errorf("a %s link named %s exists and is not a VXLAN device: remove it, or choose another device name", existing.Type(), n.s.Device)
	}
	if existing != nil {
		if why := deviceIncompatible(existing, want); why != "" {
			n.log.Warn("re-creating the VXLAN device: its configuration is incompatible", "device", n.s.Device, "difference", why)
			if err := n.nl.LinkDel(existing); err != nil && !isLinkNotFound(err) {
				return nil, false, fmt.Errorf("delete incompatible VXLAN device %s: %w", n.s.Device, err)
			}
			existing = nil
		}
	}
	if existing == nil {
		if err := n.nl.LinkAdd(want); err != nil {
			return nil, false, fmt.Errorf("create VXLAN device %s: %w", n.s.Device, err)
		}
		created = true
	} else {
		if existing.Attrs().MTU != want.MTU {
			if err := n.nl.LinkSetMTU(existing, want.MTU); err != nil {
				return nil, false, fmt.Errorf("set MTU of %s: %w", n.s.Device, err)
			}
		}
		if existing.Attrs().HardwareAddr.String() != mac.String() {
			if err := n.nl.LinkSetHardwareAddr(existing, mac); err != nil {
				return nil, false, fmt.Errorf("set MAC of %s: %w", n.s.Device, err)
			}
		}
	}
	link, err = n.nl.LinkByName(n.s.Device)
	if err == nil {
		err = n.ensureDeviceAddr(link)
	}
	if err == nil && link.Attrs().Flags&net.FlagUp == 0 {
		if err = n.nl.LinkSetUp(link); err != nil {
			err = fmt.Errorf("set %s up: %w", n.s.Device, err)
		} else {
			link, err = n.nl.LinkByName(n.s.Device)
		}
	}
	if err != nil {
		if created {
			_ = n.nl.LinkDel(want)
		}
		return nil, false, fmt.Errorf("configure VXLAN device %s: %w", n.s.Device, err)
	}
	return link, created, nil
}

// deviceIncompatible says how existing differs from want in what cannot
// be changed in place (flannel's vxlanLinksIncompat, plus learning), or "".
func deviceIncompatible(existing netlink.Link, want *netlink.Vxlan) string {
	v, ok := existing.(*netlink.Vxlan)
	if !ok {
		return fmt.Sprintf("link type %s, want vxlan", existing.Type())
	}
	switch {
	case v.VxlanId != want.VxlanId:
		return fmt.Sprintf("VNI %d, want %d", v.VxlanId, want.VxlanId)
	case v.VtepDevIndex != want.VtepDevIndex:
		return fmt.Sprintf("parent link index %d, want %d", v.VtepDevIndex, want.VtepDevIndex)
	case !v.SrcAddr.Equal(want.SrcAddr):
		return fmt.Sprintf("local address %v, want %v", v.SrcAddr, want.SrcAddr)
	case v.Port != want.Port:
		return fmt.Sprintf("UDP port %d, want %d", v.Port, want.Port)
	case v.Learning != want.Learning:
		return fmt.Sprintf("learning %v, want %v", v.Learning, want.Learning)
	case v.Group != nil && !v.Group.IsUnspecified():
		return fmt.Sprintf("multicast group %v, want none", v.Group)
	case v.GBP || v.FlowBased:
		return "GBP or external (flow-based) mode set"
	}
	return ""
}

// ensureDeviceAddr leaves exactly the podCIDR's network address /32 on the
// device (the device is ours: any other address is stale, e.g. a former
// podCIDR's).
func (n *Network) ensureDeviceAddr(link netlink.Link) error {
	want := netip.PrefixFrom(n.s.podCIDR.Addr(), 32)
	addrs, err := dump(func() ([]netlink.Addr, error) { return n.nl.AddrList(link, netlink.FAMILY_V4) })
	if err != nil {
		return fmt.Errorf("list addresses: %w", err)
	}
	have := false
	for _, a := range addrs {
		ip, _ := netip.AddrFromSlice(a.IP)
		ones, _ := a.Mask.Size()
		if netip.PrefixFrom(ip.Unmap(), ones) == want {
			have = true
			continue
		}
		if err := n.nl.AddrDel(link, &a); err != nil {
			return fmt.Errorf("remove stale address %s: %w", a.IPNet, err)
		}
	}
	if have {
		return nil
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: want.Addr().AsSlice(), Mask: net.CIDRMask(32, 32)}}
	if err := n.nl.AddrAdd(link, addr); err != nil {
		return fmt.Errorf("add address %s: %w", want, err)
	}
	return nil
}

// applyChecksumWorkaround turns the device's TX checksum offload off when
// Config.ChecksumOffload and the kernel call for it.
func (n *Network) applyChecksumWorkaround() error {
	if !disableChecksumOffload(n.s.ChecksumOffload, kernelRelease()) {
		return nil
	}
	return n.inNS(func() error {
		on, err := txChecksum(n.s.Device, nil)
		if err != nil || !on {
			return err
		}
		off := false
		_, err = txChecksum(n.s.Device, &off)
		return err
	})
}

// removeDevice deletes the VXLAN device if there is one (a link of
// another type with that name is not ours and stays).
func (n *Network) removeDevice() error {
	link, err := n.nl.LinkByName(n.s.Device)
	if isLinkNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("find VXLAN device %s: %w", n.s.Device, err)
	}
	if link.Type() != "vxlan" {
		return nil
	}
	if err := n.nl.LinkDel(link); err != nil && !isLinkNotFound(err) {
		return fmt.Errorf("delete VXLAN device %s: %w", n.s.Device, err)
	}
	return nil
}

// enableIPv4Forwarding sets net.ipv4.ip_forward in the calling thread's
// namespace (the node routes pod traffic; kubelet and k3s require it too).
func enableIPv4Forwarding() error {
	const path = "/proc/sys/net/ipv4/ip_forward"
	if b, err := os.ReadFile(path); err == nil && len(b) > 0 && b[0] == '1' {
		return nil
	}
	if err := os.WriteFile(path, []byte("1"), 0o644); err != nil {
		return fmt.Errorf("enable IPv4 forwarding: %w", err)
	}
	return nil
}

func isLinkNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf)
}
