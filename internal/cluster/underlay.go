package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"time"

	"github.com/moby/sys/mountinfo"
	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// hostRanges lists the IPv4 ranges the host already uses: its addresses'
// networks and its routes' destinations (the default route aside).
func hostRanges() ([]*net.IPNet, error) {
	var out []*net.IPNet
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return netlink.AddrList(nil, netlink.FAMILY_V4) })
	if err != nil {
		return nil, fmt.Errorf("list host addresses: %w", err)
	}
	for _, a := range addrs {
		if a.IPNet != nil {
			out = append(out, &net.IPNet{IP: a.IP.Mask(a.Mask), Mask: a.Mask})
		}
	}
	routes, err := retryDump(func() ([]netlink.Route, error) {
		return netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nil, fmt.Errorf("list host routes: %w", err)
	}
	for _, r := range routes {
		if r.Dst != nil && !r.Dst.IP.IsUnspecified() {
			out = append(out, r.Dst)
		}
	}
	return out, nil
}

// retryDump repeats a netlink dump interrupted by concurrent changes
// (pods of other nodes coming and going).
func retryDump[T any](dump func() ([]T, error)) ([]T, error) {
	out, err := dump()
	for try := 0; errors.Is(err, netlink.ErrDumpInterrupted) && try < 20; try++ {
		time.Sleep(10 * time.Millisecond)
		out, err = dump()
	}
	return out, err
}

// ensureBridge creates (or adopts) the underlay bridge, gives it addr and
// sets it up. It is idempotent.
func ensureBridge(name string, addr *net.IPNet) error {
	link, err := netlink.LinkByName(name)
	if errors.As(err, &netlink.LinkNotFoundError{}) {
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}
		if err := netlink.LinkAdd(br); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("create underlay bridge %s: %w", name, err)
		}
		link, err = netlink.LinkByName(name)
	}
	if err != nil {
		return fmt.Errorf("find underlay bridge %s: %w", name, err)
	}
	if _, ok := link.(*netlink.Bridge); !ok {
		return fmt.Errorf("underlay bridge %s: a %s link of that name exists", name, link.Type())
	}
	if err := netlink.AddrReplace(link, &netlink.Addr{IPNet: addr}); err != nil {
		return fmt.Errorf("address %s on %s: %w", addr, name, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}

// linkExists reports whether the host namespace has a link of that name.
func linkExists(name string) bool {
	_, err := netlink.LinkByName(name)
	return err == nil
}

// removeLink deletes a link of the host namespace; a missing one is fine.
func removeLink(name string) error {
	link, err := netlink.LinkByName(name)
	if errors.As(err, &netlink.LinkNotFoundError{}) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("find %s: %w", name, err)
	}
	if err := netlink.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	return nil
}

// plugNode wires the node namespace at nsPath to the bridge: a veth pair
// with hostEnd on the bridge and eth0 in the namespace holding addr, a
// default route via gw, and lo up. It replaces a half-made earlier attempt.
func plugNode(nsPath, bridge, hostEnd string, addr *net.IPNet, gw net.IP) error {
	ns, err := vnetns.GetFromPath(nsPath)
	if err != nil {
		return fmt.Errorf("open %s: %w", nsPath, err)
	}
	defer ns.Close()
	if err := removeLink(hostEnd); err != nil {
		return err
	}
	br, err := netlink.LinkByName(bridge)
	if err != nil {
		return fmt.Errorf("find underlay bridge %s: %w", bridge, err)
	}
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: hostEnd, MasterIndex: br.Attrs().Index},
		PeerName:      nodeLinkName,
		PeerNamespace: netlink.NsFd(int(ns)),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("create veth %s to %s: %w", hostEnd, nsPath, err)
	}
	if err := netlink.LinkSetUp(veth); err != nil {
		return fmt.Errorf("set %s up: %w", hostEnd, err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", nsPath, err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo in %s: %w", nsPath, err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("set lo up in %s: %w", nsPath, err)
	}
	eth, err := h.LinkByName(nodeLinkName)
	if err != nil {
		return fmt.Errorf("find %s in %s: %w", nodeLinkName, nsPath, err)
	}
	if err := h.AddrReplace(eth, &netlink.Addr{IPNet: addr}); err != nil {
		return fmt.Errorf("address %s on %s in %s: %w", addr, nodeLinkName, nsPath, err)
	}
	if err := h.LinkSetUp(eth); err != nil {
		return fmt.Errorf("set %s up in %s: %w", nodeLinkName, nsPath, err)
	}
	def := &netlink.Route{LinkIndex: eth.Attrs().Index, Gw: gw, Dst: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}}
	if err := h.RouteReplace(def); err != nil {
		return fmt.Errorf("default route via %s in %s: %w", gw, nsPath, err)
	}
	return nil
}

// setLinkUp sets a host link up or down (a node's network cut and restored).
func setLinkUp(name string, up bool) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find %s: %w", name, err)
	}
	if up {
		err = netlink.LinkSetUp(link)
	} else {
		err = netlink.LinkSetDown(link)
	}
	if err != nil {
		return fmt.Errorf("set %s up=%v: %w", name, up, err)
	}
	return nil
}

// underlayForwardRules are the host rules a cluster needs: with
// br_netfilter loaded, traffic bridged between nodes passes the host's
// FORWARD chain, whose policy may be DROP (Docker sets it so); these
// accept it, as Docker does for its own bridges. Each is a table and an
// iptables rule spec.
func underlayForwardRules(cluster, bridge string) [][]string {
	comment := fmt.Sprintf("peapod cluster %s: traffic between its nodes", cluster)
	return [][]string{{"filter", "FORWARD", "-i", bridge, "-o", bridge, "-m", "comment", "--comment", comment, "-j", "ACCEPT"}}
}

// ensureHostRule inserts rule (table, chain, spec...) at the top of its
// chain unless present.
func ensureHostRule(ctx context.Context, rule []string) error {
	table, spec := rule[0], rule[1:]
	if iptables(ctx, append([]string{"-t", table, "-C"}, spec...)...) == nil {
		return nil
	}
	if err := iptables(ctx, append([]string{"-t", table, "-I"}, spec...)...); err != nil {
		return fmt.Errorf("add host rule: %w", err)
	}
	return nil
}

// removeHostRule deletes every copy of rule; a missing rule is fine.
func removeHostRule(ctx context.Context, rule []string) error {
	if _, err := exec.LookPath("iptables"); err != nil {
		return nil // nothing can have been added
	}
	table, spec := rule[0], rule[1:]
	for iptables(ctx, append([]string{"-t", table, "-C"}, spec...)...) == nil {
		if err := iptables(ctx, append([]string{"-t", table, "-D"}, spec...)...); err != nil {
			return fmt.Errorf("remove host rule: %w", err)
		}
	}
	return nil
}

func iptables(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, "iptables", append([]string{"-w"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("iptables %v: %w: %s", args, err, bytes.TrimSpace(out))
	}
	return nil
}

// removeCgroupTree removes the cgroup directory rel (relative to each
// hierarchy's root) and every directory below it, deepest first, in every
// mounted hierarchy. Directories still holding processes cannot be
// removed and are reported. A missing tree is fine.
func removeCgroupTree(rel string) error {
	var errs []error
	for _, root := range cgroupHierarchies() {
		top := root + "/" + rel
		var dirs []string
		_ = walkDirs(top, &dirs)
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := unix.Rmdir(dirs[i]); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", dirs[i], err))
			}
		}
	}
	return errors.Join(errs...)
}

// removeEmptyCgroup removes the cgroup rel in every hierarchy if it has no
// children and no processes; a busy or missing one is left alone.
func removeEmptyCgroup(rel string) {
	for _, root := range cgroupHierarchies() {
		_ = unix.Rmdir(root + "/" + rel)
	}
}

// walkDirs appends dir and the directories below it, parents first.
func walkDirs(dir string, out *[]string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	*out = append(*out, dir)
	for _, e := range entries {
		if e.IsDir() {
			_ = walkDirs(dir+"/"+e.Name(), out)
		}
	}
	return nil
}

// cgroupHierarchies lists the mount points of every cgroup hierarchy (v1
// controllers and the v2 unified one).
func cgroupHierarchies() []string {
	mounts, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("cgroup", "cgroup2"))
	if err != nil {
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for _, m := range mounts {
		if !seen[m.Mountpoint] {
			seen[m.Mountpoint] = true
			out = append(out, m.Mountpoint)
		}
	}
	return out
}
