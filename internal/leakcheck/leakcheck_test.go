package leakcheck

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peapod/peapod/internal/testutil"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestLeaked(t *testing.T) {
	for _, tc := range []struct {
		name          string
		before, after Snapshot
		want          []string
	}{
		{name: "nothing", want: nil},
		{
			name:   "same",
			before: Snapshot{NetNS: []string{"/run/netns/a"}, Links: []string{"bridge br0"}},
			after:  Snapshot{NetNS: []string{"/run/netns/a"}, Links: []string{"bridge br0"}},
		},
		{
			name:   "removed is not a leak",
			before: Snapshot{NetNS: []string{"/run/netns/a"}, Mounts: []string{"tmpfs /x"}},
		},
		{
			name:   "one of each",
			before: Snapshot{Links: []string{"bridge br0"}},
			after: Snapshot{
				NetNS:     []string{"/run/netns/peapod-abc"},
				Links:     []string{"veth veth1234", "bridge br0"},
				Mounts:    []string{"tmpfs /d/v"},
				Cgroups:   []string{"/sys/fs/cgroup/pids/peapod/abc"},
				Processes: []string{"42 sleep: sleep 100"},
				IPAMFiles: []string{"/d/cni/networks/peapod/10.88.0.5"},
				Rules:     []string{"filter -A FORWARD -i ppu-x -o ppu-x -j ACCEPT"},
			},
			want: []string{
				"netns /run/netns/peapod-abc",
				"veth veth1234",
				"mount tmpfs /d/v",
				"cgroup /sys/fs/cgroup/pids/peapod/abc",
				"process 42 sleep: sleep 100",
				"ipam /d/cni/networks/peapod/10.88.0.5",
				"rule filter -A FORWARD -i ppu-x -o ppu-x -j ACCEPT",
			},
		},
		{
			name:   "stacked mount counts",
			before: Snapshot{Mounts: []string{"tmpfs /x"}},
			after:  Snapshot{Mounts: []string{"tmpfs /x", "tmpfs /x"}},
			want:   []string{"mount tmpfs /x"},
		},
		{
			name:  "sorted within a category",
			after: Snapshot{NetNS: []string{"/run/netns/b", "/run/netns/a"}},
			want:  []string{"netns /run/netns/a", "netns /run/netns/b"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.before.Leaked(tc.after); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Leaked = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestFilterAndMounts(t *testing.T) {
	if got := filter([]string{"veth a1", "veth b2", "netns /run/netns/a1"}, []string{"a1"}); !reflect.DeepEqual(got, []string{"veth a1", "netns /run/netns/a1"}) {
		t.Errorf("filter = %q", got)
	}
	mounts := []mountInfo{
		{"/", "ext4"},
		{"/run/netns", "tmpfs"},
		{"/run/netns/x", "nsfs"},
		{"/var/lib/peapod/pods/a/volumes/v", "tmpfs"},
		{"/data/rootfs", "overlay"},
		{"/tmp/pp1/m", "tmpfs"},
		{"/tmp/pp10", "tmpfs"},
		{"/dev/shm", "tmpfs"},
	}
	want := []string{"nsfs /run/netns/x", "tmpfs /var/lib/peapod/pods/a/volumes/v", "overlay /data/rootfs", "tmpfs /tmp/pp1/m"}
	if got := mountEntries(mounts, []string{"/tmp/pp1"}); !reflect.DeepEqual(got, want) {
		t.Errorf("mountEntries = %q, want %q", got, want)
	}
}

// recorder is a testing.TB that collects Errorf calls.
type recorder struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func TestTakeReal(t *testing.T) {
	testutil.RequiresRoot(t)
	suffix := fmt.Sprintf("%d", os.Getpid()%100000)
	nsName := "pp-leak-" + suffix
	vethName := "ppleak" + suffix
	cgName := "peapod-leaktest-" + suffix

	data, err := os.MkdirTemp("", "pp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(data) })
	ipam := filepath.Join(data, "networks", "net")
	if err := os.MkdirAll(ipam, 0o755); err != nil {
		t.Fatal(err)
	}
	// The named cgroup root is node-level: make it before the snapshot.
	cgRoot := "/sys/fs/cgroup/pids/" + cgName
	if err := os.Mkdir(cgRoot, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(cgRoot) })

	opts := Options{
		IPAMDir:      filepath.Join(data, "networks"),
		CgroupNames:  []string{cgName},
		ProcessNames: []string{"sleep"},
		DataDirs:     []string{data},
	}
	before, err := Take(opts)
	if err != nil {
		t.Fatal(err)
	}

	// Create one of each.
	if out, err := exec.Command("ip", "netns", "add", nsName).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	removeNS := func() { exec.Command("ip", "netns", "delete", nsName).Run() }
	t.Cleanup(removeNS)

	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: vethName}, PeerName: vethName + "p"}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	removeVeth := func() {
		if l, err := netlink.LinkByName(vethName); err == nil {
			netlink.LinkDel(l)
		}
	}
	t.Cleanup(removeVeth)

	mnt := filepath.Join(data, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	unmount := func() { unix.Unmount(mnt, unix.MNT_DETACH) }
	t.Cleanup(unmount)

	cgChild := filepath.Join(cgRoot, "pod1")
	if err := os.Mkdir(cgChild, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(cgChild) })

	cmd := exec.Command("sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop := func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}
	t.Cleanup(stop)
	// A pod's process: in a watched cgroup (a shell's sleep is not reported).
	if err := os.WriteFile(filepath.Join(cgChild, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}

	reservation := filepath.Join(ipam, "10.88.0.5")
	for _, f := range []string{reservation, filepath.Join(ipam, "lock"), filepath.Join(ipam, "last_reserved_ip.0")} {
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	realMnt, _ := filepath.EvalSymlinks(mnt)
	wantLines := []string{
		"netns /run/netns/" + nsName,
		"veth " + vethName,
		"veth " + vethName + "p",
		"mount nsfs /run/netns/" + nsName, // the pin is a bind mount
		"mount tmpfs " + realMnt,
		"cgroup " + cgChild,
		fmt.Sprintf("process %d sleep: sleep 1000", cmd.Process.Pid),
		"ipam " + reservation,
	}
	only := []string{nsName, vethName, realMnt, cgChild, reservation, fmt.Sprintf("process %d ", cmd.Process.Pid)}
	after, err := Take(opts)
	if err != nil {
		t.Fatal(err)
	}
	got := filter(before.Leaked(after), only)
	if !reflect.DeepEqual(got, wantLines) {
		t.Errorf("Leaked =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantLines, "\n"))
	}

	// Check reports each of them.
	checkOpts := opts
	checkOpts.Only = only
	rec := &recorder{TB: t}
	Check(rec, before, checkOpts, 200*time.Millisecond)
	if len(rec.errs) != len(wantLines) {
		t.Errorf("Check reported %d leaks, want %d: %q", len(rec.errs), len(wantLines), rec.errs)
	}

	// Remove them all; the process asynchronously, so Check must wait.
	removeNS()
	removeVeth()
	unmount()
	os.Remove(reservation)
	cmd.Process.Signal(unix.SIGTERM)
	go func() {
		cmd.Wait()
		os.Remove(cgChild) // empty once its process is gone
	}()

	rec = &recorder{TB: t}
	Check(rec, before, checkOpts, 5*time.Second)
	if len(rec.errs) != 0 {
		t.Errorf("after removal Check reported %q", rec.errs)
	}
}

type fakeM func() int

func (f fakeM) Run() int { return f() }

// Suite fails a suite that leaves something behind, and passes one that
// cleans up, even when its tests passed.
func TestSuite(t *testing.T) {
	testutil.RequiresRoot(t)
	name := fmt.Sprintf("pp-suite-%d", os.Getpid())
	path := filepath.Join(NetNSDir, name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	opts := Options{Only: []string{name}}
	leaky := fakeM(func() int {
		if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add: %v %s", err, out)
		}
		return 0
	})
	if code := Suite(leaky, "leaky", opts, nil); code != 1 {
		t.Errorf("a suite leaving netns %s: exit %d, want 1", path, code)
	}
	clean := fakeM(func() int { return 0 })
	removeFirst := func() { exec.Command("ip", "netns", "del", name).Run() }
	if code := Suite(clean, "clean", opts, removeFirst); code != 0 {
		t.Errorf("a suite that cleans up: exit %d, want 0", code)
	}
}

// The links and the routes of a watched protocol inside a watched node
// namespace, and the matching iptables rules, are reported while they
// exist, and no longer once removed.
func TestNetNSLinksAndRules(t *testing.T) {
	testutil.RequiresRoot(t)
	suffix := fmt.Sprintf("%d", os.Getpid()%100000)
	nsName := "pp-lknode-" + suffix
	chain := "PPLEAK-" + suffix
	comment := "peapod leaktest " + suffix
	opts := Options{NetNSLinks: []string{"pp-lknode-"}, RuleMatches: []string{comment}, RouteProtocols: []int{112}}
	before, err := Take(opts)
	if err != nil {
		t.Fatal(err)
	}

	if out, err := exec.Command("ip", "netns", "add", nsName).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	removeNS := func() { exec.Command("ip", "netns", "delete", nsName).Run() }
	t.Cleanup(removeNS)
	for _, args := range [][]string{
		{"link", "add", "ppbr9", "type", "bridge"},
		{"link", "add", "ppdum9", "type", "veth", "peer", "name", "ppdum9p"},
		{"link", "set", "ppdum9p", "up"},
		{"link", "set", "ppdum9", "up"},
		{"addr", "add", "172.31.254.1/24", "dev", "ppdum9"},
		{"route", "add", "10.42.9.0/24", "via", "172.31.254.2", "dev", "ppdum9", "proto", "112"},
		{"route", "add", "10.42.10.0/24", "via", "172.31.254.3", "dev", "ppdum9"}, // another protocol: not watched
	} {
		if out, err := exec.Command("ip", append([]string{"-n", nsName}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	// A chain of our own: the rule in it changes no traffic.
	removeChain := func() {
		exec.Command("iptables", "-w", "-F", chain).Run()
		exec.Command("iptables", "-w", "-X", chain).Run()
	}
	t.Cleanup(removeChain)
	for _, args := range [][]string{{"-N", chain}, {"-A", chain, "-m", "comment", "--comment", comment, "-j", "RETURN"}} {
		if out, err := exec.Command("iptables", append([]string{"-w"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("iptables %v: %v: %s", args, err, out)
		}
	}

	after, err := Take(opts)
	if err != nil {
		t.Fatal(err)
	}
	only := []string{nsName, comment}
	got := filter(before.Leaked(after), only)
	want := []string{
		"netns /run/netns/" + nsName,
		"bridge ppbr9 in netns " + nsName,
		"device lo in netns " + nsName,
		"veth ppdum9 in netns " + nsName,
		"veth ppdum9p in netns " + nsName,
		"mount nsfs /run/netns/" + nsName,
		fmt.Sprintf("rule filter -A %s -m comment --comment \"%s\" -j RETURN", chain, comment),
		"route 10.42.9.0/24 via 172.31.254.2 dev ppdum9 proto 112 in netns " + nsName,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Leaked =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	removeNS()
	removeChain()
	checkOpts := opts
	checkOpts.Only = only
	rec := &recorder{TB: t}
	Check(rec, before, checkOpts, 5*time.Second)
	if len(rec.errs) != 0 {
		t.Errorf("after removal Check reported %q", rec.errs)
	}
}

func TestParseNFTTables(t *testing.T) {
	out := "table ip nat\ntable ip peapod\ntable inet filter\ntable ip6 peapod\n"
	got := parseNFTTables(out, []string{"peapod"})
	if len(got) != 2 || got[0] != "ip peapod" || got[1] != "ip6 peapod" {
		t.Errorf("parseNFTTables = %q", got)
	}
	before := Snapshot{NFTables: []string{"ip nat"}}
	if l := before.Leaked(Snapshot{NFTables: []string{"ip nat", "ip peapod"}, Conntrack: []string{"proto 6 a -> b"}}); len(l) != 2 ||
		l[0] != "nftables table ip peapod" || l[1] != "conntrack proto 6 a -> b" {
		t.Errorf("Leaked = %q", l)
	}
}
