// Package leakcheck proves that kernel tests (and the e2e suite) leave
// nothing behind: network namespaces (and, for the namespaces named in
// Options.NetNSLinks, the links inside them), links, mounts, cgroups,
// processes, host-local IPAM reservations, iptables rules and routes of
// chosen protocols (the pod network's routes to other nodes), nftables
// tables and conntrack entries.
//
// Usage in a test:
//
//  1. opts := leakcheck.Options{IPAMDir: ..., CgroupNames: []string{"peapod-test"},
//     ProcessNames: []string{"pause", "runc", "sleep"}, DataDirs: []string{dataDir}}
//  2. before, err := leakcheck.Take(opts) before creating anything.
//  3. t.Cleanup(func() { leakcheck.Check(t, before, opts, 5*time.Second) })
//     registered before the cleanups that tear things down (cleanups run last
//     in, first out), so the check sees the world after teardown.
//
// A snapshot is of the whole machine. When other tests may run at the same
// time, set Options.Only to the names a test uses so their objects are not
// reported as this test's leaks.
package leakcheck

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// NetNSDir is where pinned network namespaces live (as `ip netns` uses).
const NetNSDir = "/run/netns"

// Snapshot is the set of watched kernel objects at one moment. Each entry is
// a stable string (see Take); a slice may hold the same entry twice (two
// mounts stacked on one point).
type Snapshot struct {
	NetNS     []string // "/run/netns/<name>"
	Links     []string // "<type> <name>", e.g. "veth veth1234", "bridge peapod0"
	Mounts    []string // "<fstype> <mountpoint>"
	Cgroups   []string // "<hierarchy mount>/<name>/...", every dir below a named subtree
	Processes []string // "<pid> <comm>: <cmdline>"
	IPAMFiles []string // paths of reservation files under IPAMDir
	Rules     []string // "<table> <rule>" from iptables-save, e.g. "filter -A FORWARD ..."
	Routes    []string // "<dst> via <gw> dev <link> proto <n>", with " in netns <name>" inside NetNSLinks namespaces
	NFTables  []string // "<family> <name>" of the watched nftables tables
	Conntrack []string // "<proto> <src> -> <dst> mark <mark>" of the watched flows
}

// Options says what to watch.
type Options struct {
	// IPAMDir is host-local's data dir (<data-dir>/cni/networks); its
	// reservation files are watched ("lock" and "last_reserved_ip.*" are
	// bookkeeping, not reservations, and are ignored). Empty: not watched.
	IPAMDir string
	// CgroupNames are directory names directly under every mounted cgroup
	// hierarchy (e.g. "peapod", "peapod-test"); every directory below them is
	// watched (the named directory itself is node-level and is not).
	CgroupNames []string
	// ProcessNames are comm names to watch (pause, runc, crun, busybox, sh,
	// sleep, httpd). The calling process is never reported.
	ProcessNames []string
	// DataDirs are directories under which every mount is watched (data
	// dirs, test temp dirs). Mounts whose point contains "peapod", overlay
	// mounts anywhere, and mounts under /run/netns are always watched;
	// /run/netns itself (made a shared mount once per boot) is not.
	DataDirs []string
	// NetNSLinks are name prefixes of namespaces pinned in NetNSDir (e.g.
	// "pp-" for the nodes of `peapod cluster`) whose own links are watched
	// too, as "<type> <name> in netns <namespace>": a node's pod bridge and
	// pod veths live in the node's namespace, not the host's, and would
	// otherwise escape the check if that namespace outlived its cluster.
	NetNSLinks []string
	// RuleMatches are substrings of the host's iptables rules to watch
	// (rules of iptables-save whose text contains one), e.g. the comment
	// "peapod cluster" that `peapod cluster` puts on the rules it adds.
	// Empty: rules are not watched.
	RuleMatches []string
	// RouteProtocols are route protocol numbers (rtm_protocol) whose IPv4
	// routes are watched, in the host namespace and in the NetNSLinks
	// namespaces, e.g. internal/nodenet's RouteProtocol for its routes to
	// other nodes' pods. Empty: routes are not watched.
	RouteProtocols []int
	// Only, if set, limits Check to leaks whose line contains one of these
	// substrings, so a test can ignore objects of tests running beside it.
	Only []string
	// NFTables are names of nftables tables (any family) to watch, e.g.
	// "peapod", the service proxy's. Empty: tables are not watched.
	NFTables []string
	// ConntrackMark, if not 0, watches the IPv4 conntrack flows whose mark
	// has one of these bits (the service proxy marks the connections it
	// translates).
	ConntrackMark uint32
}

// Take snapshots the objects opts watches. A category that cannot be read
// because it does not exist (no /run/netns, no IPAM dir) is empty.
func Take(opts Options) (Snapshot, error) {
	var s Snapshot
	var err error
	if s.NetNS, err = netnsEntries(); err != nil {
		return s, err
	}
	if s.Links, err = linkEntries(); err != nil {
		return s, err
	}
	inner, err := netnsLinkEntries(s.NetNS, opts.NetNSLinks)
	if err != nil {
		return s, err
	}
	s.Links = append(s.Links, inner...)
	if s.Rules, err = ruleEntries(opts.RuleMatches); err != nil {
		return s, err
	}
	if s.Routes, err = routeEntries(s.NetNS, opts.NetNSLinks, opts.RouteProtocols); err != nil {
		return s, err
	}
	mounts, err := readMountInfo()
	if err != nil {
		return s, err
	}
	s.Mounts = mountEntries(mounts, opts.DataDirs)
	if s.Cgroups, err = cgroupEntries(mounts, opts.CgroupNames); err != nil {
		return s, err
	}
	if s.Processes, err = processEntries(opts.ProcessNames, opts.CgroupNames); err != nil {
		return s, err
	}
	if s.IPAMFiles, err = ipamEntries(opts.IPAMDir); err != nil {
		return s, err
	}
	if s.NFTables, err = nftTableEntries(opts.NFTables); err != nil {
		return s, err
	}
	if s.Conntrack, err = conntrackEntries(opts.ConntrackMark); err != nil {
		return s, err
	}
	return s, nil
}

// Leaked returns what is in after but not in s, one human-readable line
// each ("netns /run/netns/peapod-abc", "veth veth1234", "mount tmpfs /x",
// "cgroup /sys/fs/cgroup/pids/peapod/abc", "process 42 sleep: sleep 100",
// "ipam /var/lib/peapod/cni/networks/peapod/10.88.0.5", "rule filter -A
// FORWARD ...", "route 10.42.1.0/24 via 172.31.0.3 dev eth0 proto 112"),
// in that category
// order, sorted within each. Entries are compared as multisets.
func (s Snapshot) Leaked(after Snapshot) []string {
	var out []string
	add := func(prefix string, before, after []string) {
		for _, e := range diff(before, after) {
			out = append(out, prefix+e)
		}
	}
	add("netns ", s.NetNS, after.NetNS)
	add("", s.Links, after.Links)
	add("mount ", s.Mounts, after.Mounts)
	add("cgroup ", s.Cgroups, after.Cgroups)
	add("process ", s.Processes, after.Processes)
	add("ipam ", s.IPAMFiles, after.IPAMFiles)
	add("rule ", s.Rules, after.Rules)
	add("route ", s.Routes, after.Routes)
	add("nftables table ", s.NFTables, after.NFTables)
	add("conntrack ", s.Conntrack, after.Conntrack)
	return out
}

// diff is after minus before as multisets, sorted.
func diff(before, after []string) []string {
	count := make(map[string]int, len(before))
	for _, e := range before {
		count[e]++
	}
	var out []string
	for _, e := range after {
		if count[e] > 0 {
			count[e]--
			continue
		}
		out = append(out, e)
	}
	sort.Strings(out)
	return out
}

// Check reports, with t.Errorf, each object leaked since before. Teardown
// may finish asynchronously (a reaped process, a lazily detached mount), so
// Check takes after-snapshots until there is no leak or settle has elapsed,
// and reports the last one's leaks.
func Check(t testing.TB, before Snapshot, opts Options, settle time.Duration) {
	t.Helper()
	deadline := time.Now().Add(settle)
	for {
		after, err := Take(opts)
		if err != nil {
			t.Errorf("leakcheck: %v", err)
			return
		}
		leaks := filter(before.Leaked(after), opts.Only)
		if len(leaks) == 0 {
			return
		}
		if !time.Now().Before(deadline) {
			for _, l := range leaks {
				t.Errorf("leaked: %s", l)
			}
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func filter(lines, only []string) []string {
	if len(only) == 0 {
		return lines
	}
	var out []string
	for _, l := range lines {
		for _, o := range only {
			if strings.Contains(l, o) {
				out = append(out, l)
				break
			}
		}
	}
	return out
}

func netnsEntries() ([]string, error) {
	entries, err := os.ReadDir(NetNSDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", NetNSDir, err)
	}
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		out = append(out, filepath.Join(NetNSDir, e.Name()))
	}
	return out, nil
}

func linkEntries() ([]string, error) {
	links, err := netlink.LinkList()
	// A dump racing with link changes elsewhere is interrupted: list again.
	for try := 0; errors.Is(err, netlink.ErrDumpInterrupted) && try < 10; try++ {
		time.Sleep(10 * time.Millisecond)
		links, err = netlink.LinkList()
	}
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	out := make([]string, 0, len(links))
	for _, l := range links {
		out = append(out, l.Type()+" "+l.Attrs().Name)
	}
	return out, nil
}

// netnsLinkEntries lists the links inside each pinned namespace whose name
// starts with one of prefixes. A namespace removed while it is read is
// skipped: it holds nothing any more.
func netnsLinkEntries(pins, prefixes []string) ([]string, error) {
	var out []string
	for _, pin := range pins {
		name := filepath.Base(pin)
		if !hasAnyPrefix(name, prefixes) {
			continue
		}
		ns, err := netns.GetFromPath(pin)
		if err != nil {
			continue // removed meanwhile, or a stale pin no namespace backs
		}
		links, err := func() ([]netlink.Link, error) {
			defer ns.Close()
			h, err := netlink.NewHandleAt(ns)
			if err != nil {
				return nil, err
			}
			defer h.Close()
			links, err := h.LinkList()
			for try := 0; errors.Is(err, netlink.ErrDumpInterrupted) && try < 10; try++ {
				time.Sleep(10 * time.Millisecond)
				links, err = h.LinkList()
			}
			return links, err
		}()
		if err != nil {
			return nil, fmt.Errorf("list links in netns %s: %w", name, err)
		}
		for _, l := range links {
			out = append(out, fmt.Sprintf("%s %s in netns %s", l.Type(), l.Attrs().Name, name))
		}
	}
	return out, nil
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// routeEntries lists the IPv4 routes whose protocol is one of protocols,
// in the calling namespace and in each pinned namespace whose name starts
// with one of prefixes (skipping one removed while it is read).
func routeEntries(pins, prefixes []string, protocols []int) ([]string, error) {
	if len(protocols) == 0 {
		return nil, nil
	}
	list := func(h *netlink.Handle, where string) ([]string, error) {
		var out []string
		for _, proto := range protocols {
			filter := &netlink.Route{Protocol: netlink.RouteProtocol(proto)}
			routes, err := h.RouteListFiltered(netlink.FAMILY_V4, filter, netlink.RT_FILTER_PROTOCOL)
			for try := 0; errors.Is(err, netlink.ErrDumpInterrupted) && try < 10; try++ {
				time.Sleep(10 * time.Millisecond)
				routes, err = h.RouteListFiltered(netlink.FAMILY_V4, filter, netlink.RT_FILTER_PROTOCOL)
			}
			if err != nil {
				return nil, fmt.Errorf("list routes%s: %w", where, err)
			}
			for _, r := range routes {
				dev := fmt.Sprintf("if%d", r.LinkIndex)
				if l, err := h.LinkByIndex(r.LinkIndex); err == nil {
					dev = l.Attrs().Name
				}
				out = append(out, fmt.Sprintf("%v via %v dev %s proto %d%s", r.Dst, r.Gw, dev, proto, where))
			}
		}
		return out, nil
	}
	host, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("open netlink: %w", err)
	}
	out, err := list(host, "")
	host.Close()
	if err != nil {
		return nil, err
	}
	for _, pin := range pins {
		name := filepath.Base(pin)
		if !hasAnyPrefix(name, prefixes) {
			continue
		}
		ns, err := netns.GetFromPath(pin)
		if err != nil {
			continue // removed meanwhile
		}
		h, err := netlink.NewHandleAt(ns)
		ns.Close()
		if err != nil {
			continue
		}
		routes, err := list(h, " in netns "+name)
		h.Close()
		if err != nil {
			return nil, err
		}
		out = append(out, routes...)
	}
	return out, nil
}

// ruleEntries lists the host's iptables rules (every table) whose text
// contains one of matches, as "<table> <rule>".
func ruleEntries(matches []string) ([]string, error) {
	if len(matches) == 0 {
		return nil, nil
	}
	data, err := exec.Command("iptables-save").Output()
	if err != nil {
		return nil, fmt.Errorf("iptables-save: %w", err)
	}
	var out []string
	table := ""
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case strings.HasPrefix(line, "*"):
			table = line[1:]
		case strings.HasPrefix(line, "-A ") && filter([]string{line}, matches) != nil:
			out = append(out, table+" "+line)
		}
	}
	return out, nil
}

// mountInfo is the part of a /proc/self/mountinfo line leakcheck uses.
type mountInfo struct {
	mountPoint, fsType string
}

func readMountInfo() ([]mountInfo, error) {
	mounts, err := mountinfo.GetMounts(nil)
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	out := make([]mountInfo, 0, len(mounts))
	for _, m := range mounts {
		out = append(out, mountInfo{mountPoint: m.Mountpoint, fsType: m.FSType})
	}
	return out, nil
}

func under(path, dir string) bool {
	dir = strings.TrimSuffix(filepath.Clean(dir), "/")
	return path == dir || strings.HasPrefix(path, dir+"/")
}

func mountEntries(mounts []mountInfo, dataDirs []string) []string {
	roots := make([]string, 0, len(dataDirs))
	for _, d := range dataDirs {
		roots = append(roots, d)
		if r, err := filepath.EvalSymlinks(d); err == nil && r != d {
			roots = append(roots, r)
		}
	}
	var out []string
	for _, m := range mounts {
		mp := m.mountPoint
		watched := strings.Contains(mp, "peapod") || m.fsType == "overlay" ||
			(under(mp, NetNSDir) && mp != NetNSDir)
		for _, r := range roots {
			watched = watched || under(mp, r)
		}
		if watched {
			out = append(out, m.fsType+" "+mp)
		}
	}
	return out
}

func cgroupEntries(mounts []mountInfo, names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	seen := map[string]bool{}
	var out []string
	for _, m := range mounts {
		if (m.fsType != "cgroup" && m.fsType != "cgroup2") || seen[m.mountPoint] {
			continue
		}
		seen[m.mountPoint] = true
		for _, name := range names {
			root := filepath.Join(m.mountPoint, name)
			err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					if errors.Is(err, fs.ErrNotExist) {
						return nil // gone while walking, or never there
					}
					return err
				}
				if d.IsDir() && p != root {
					out = append(out, p)
				}
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("walk cgroup %s: %w", root, err)
			}
		}
	}
	return out, nil
}

// processEntries lists processes with a watched name that belong to a pod
// or to peapod: in a watched cgroup, in another network namespace than
// ours (a pod's), or peapod's own binaries. A developer's `sleep` in a
// shell beside the tests is none of these.
func processEntries(names, cgroups []string) ([]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	selfNet, _ := os.Readlink("/proc/self/ns/net")
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list /proc: %w", err)
	}
	self := os.Getpid()
	var out []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err != nil {
			continue // exited meanwhile
		}
		c := strings.TrimSpace(string(comm))
		if !want[c] || !ownedByPods(e.Name(), c, selfNet, cgroups) {
			continue
		}
		cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		cmdline := strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))
		out = append(out, fmt.Sprintf("%d %s: %s", pid, c, cmdline))
	}
	return out, nil
}

func ownedByPods(pid, comm, selfNet string, cgroups []string) bool {
	// pause, and its PID-1 reaper and user-namespace holder
	// (pause-pid1, pause-holder), are peapod's wherever they run.
	if strings.HasPrefix(comm, "pause") || comm == "peapod" {
		return true
	}
	if net, err := os.Readlink(filepath.Join("/proc", pid, "ns", "net")); err == nil && net != selfNet {
		return true
	}
	data, err := os.ReadFile(filepath.Join("/proc", pid, "cgroup"))
	if err != nil {
		return false
	}
	for _, name := range cgroups {
		if strings.Contains(string(data), "/"+name+"/") {
			return true
		}
	}
	return false
}

func ipamEntries(dir string) ([]string, error) {
	if dir == "" {
		return nil, nil
	}
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		name := d.Name()
		if d.IsDir() || name == "lock" || strings.HasPrefix(name, "last_reserved_ip") {
			return nil
		}
		out = append(out, p)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk IPAM dir %s: %w", dir, err)
	}
	return out, nil
}

// Suite runs a test binary's tests between two snapshots and reports what
// the second holds that the first did not: the suite-wide leak check a
// TestMain makes with `os.Exit(leakcheck.Suite(m, "runtime", opts, nil))`.
// cleanup, if set, runs after the tests and before the second snapshot.
// Without root it only runs the tests. The second snapshot is retried for
// up to five seconds, as teardown may finish asynchronously.
func Suite(m interface{ Run() int }, name string, opts Options, cleanup func()) int {
	if os.Geteuid() != 0 {
		return m.Run()
	}
	before, err := Take(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "leak check:", err)
		return 1
	}
	code := m.Run()
	if cleanup != nil {
		cleanup()
	}
	var leaks []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		after, err := Take(opts)
		if err != nil {
			fmt.Fprintln(os.Stderr, "leak check:", err)
			return 1
		}
		if leaks = filter(before.Leaked(after), opts.Only); len(leaks) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(leaks) > 0 {
		fmt.Fprintf(os.Stderr, "the %s suite leaked %d resources:\n  %s\n", name, len(leaks), strings.Join(leaks, "\n  "))
		return 1
	}
	return code
}
