package cluster

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"peapod", "a", "e2e", "ab-cd", "x1234567"} {
		if err := ValidateName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "Peapod", "1abc", "abc-", "toolong12", "a_b", "a.b"} {
		err := ValidateName(bad)
		if err == nil || !strings.Contains(err.Error(), "--name") {
			t.Errorf("%q: error %v, want one naming --name", bad, err)
		}
	}
	// Every derived Linux name fits the kernel's 15 characters.
	long := "abcdefgh"
	for _, n := range []string{underlayBridge(long), hostVeth(long, MaxNodes), podBridge(MaxNodes)} {
		if len(n) > 15 {
			t.Errorf("interface name %q is longer than 15 characters", n)
		}
	}
}

func TestNodeNames(t *testing.T) {
	if got := NodeName("demo", 2); got != "demo-node2" {
		t.Errorf("NodeName = %q", got)
	}
	// A node's namespace must never look like a pod's (peapod-<sandbox id>).
	if ns := netnsName(NodeName("peapod", 1)); strings.HasPrefix(ns, "peapod-") || ns != "pp-peapod-node1" {
		t.Errorf("netnsName = %q", ns)
	}
	if got := cgroupParent("demo", "demo-node1"); got != "peapod-cluster/demo/demo-node1" {
		t.Errorf("cgroupParent = %q", got)
	}
}

func mustCIDR(t *testing.T, s string) *net.IPNet {
	t.Helper()
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestUnderlayAddr(t *testing.T) {
	u := mustCIDR(t, "172.31.4.0/24")
	for i, want := range []string{"172.31.4.1/24", "172.31.4.2/24", "172.31.4.3/24"} {
		got, err := underlayAddr(u, i)
		if err != nil || got.String() != want {
			t.Errorf("underlayAddr(%d) = %v, %v; want %s", i, got, err, want)
		}
	}
	if _, err := underlayAddr(u, 253); err != nil {
		t.Errorf("node 253 (.254) fits a /24: %v", err)
	}
	if _, err := underlayAddr(u, 254); err == nil {
		t.Error("node 254 would be the broadcast address")
	}
	small := mustCIDR(t, "10.0.0.0/30") // .1 host, .2 node 1, .3 broadcast
	if _, err := underlayAddr(small, 1); err != nil {
		t.Errorf("a /30 holds one node: %v", err)
	}
	if _, err := underlayAddr(small, 2); err == nil {
		t.Error("a /30 holds no second node")
	}
}

func TestParseUnderlay(t *testing.T) {
	if n, err := parseUnderlay("192.168.77.0/24", 3); err != nil || n.String() != "192.168.77.0/24" {
		t.Errorf("parseUnderlay = %v, %v", n, err)
	}
	for cidr, want := range map[string]string{
		"nonsense":        "invalid CIDR",
		"192.168.77.1/24": "not a network address",
		"fd00::/64":       "IPv4 only",
		"10.0.0.0/30":     "too small for 3 nodes",
	} {
		_, err := parseUnderlay(cidr, 3)
		if err == nil || !strings.Contains(err.Error(), "--underlay-cidr") || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want --underlay-cidr and %q", cidr, err, want)
		}
	}
}

func TestPickUnderlay(t *testing.T) {
	inUse := []*net.IPNet{
		mustCIDR(t, "10.0.0.0/8"),
		mustCIDR(t, "172.31.0.0/24"), // another cluster
		mustCIDR(t, "172.31.1.7/32"), // a route into the next range
	}
	got, err := pickUnderlay(defaultUnderlays(), inUse)
	if err != nil || got.String() != "172.31.2.0/24" {
		t.Errorf("pickUnderlay = %v, %v; want 172.31.2.0/24", got, err)
	}
	// A route covering all of them leaves nothing.
	if _, err := pickUnderlay(defaultUnderlays(), []*net.IPNet{mustCIDR(t, "172.16.0.0/12")}); err == nil || !strings.Contains(err.Error(), "--underlay-cidr") {
		t.Errorf("error %v, want one pointing to --underlay-cidr", err)
	}
}

func TestPodRanges(t *testing.T) {
	cluster, err := parseClusterCIDR("10.42.0.0/16", 3)
	if err != nil {
		t.Fatal(err)
	}
	if got := nodePodCIDR(cluster, 1); got != "10.42.0.0/24" {
		t.Errorf("node 1 range %s", got)
	}
	if got := nodePodCIDR(cluster, 3); got != "10.42.2.0/24" {
		t.Errorf("node 3 range %s", got)
	}
	flags, pod := podRangeFlags(Features{}, cluster, 2, false)
	if pod != "10.42.1.0/24" || !slices.Equal(flags, []string{"--pod-cidr", "10.42.1.0/24", "--cluster-cidr", "10.42.0.0/16"}) {
		t.Errorf("without server allocation: %v %q", flags, pod)
	}
	alloc := Features{ServerAllocatesPodCIDRs: true}
	if flags, pod := podRangeFlags(alloc, cluster, 1, true); pod != "" || !slices.Equal(flags, []string{"--cluster-cidr", "10.42.0.0/16"}) {
		t.Errorf("server, with server allocation: %v %q", flags, pod)
	}
	if flags, pod := podRangeFlags(alloc, cluster, 2, false); pod != "" || len(flags) != 0 {
		t.Errorf("agent, with server allocation: %v %q", flags, pod)
	}
	for cidr, want := range map[string]string{"10.42.0.0/25": "too small", "10.42.0.0/23": "too small", "x": "invalid CIDR", "fd00::/48": "IPv4 only"} {
		if _, err := parseClusterCIDR(cidr, 3); err == nil || !strings.Contains(err.Error(), "--cluster-cidr") || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want --cluster-cidr and %q", cidr, err, want)
		}
	}
}

func TestNodeArgs(t *testing.T) {
	st := &State{Name: "demo", ClusterCIDR: "10.42.0.0/16", Backend: "host-gw", Server: "https://172.31.0.2:6443", Token: "K10abc::x.y", AgentArgs: []string{"--warm-sandboxes=0"}}
	server := &Node{Index: 1, Name: "demo-node1", Role: "server", Address: "172.31.0.2", DataDir: "/d/demo-node1", PodBridge: "ppbr1", CgroupParent: "peapod-cluster/demo/demo-node1"}
	agent := &Node{Index: 2, Name: "demo-node2", Role: "agent", Address: "172.31.0.3", DataDir: "/d/demo-node2", PodBridge: "ppbr2", CgroupParent: "peapod-cluster/demo/demo-node2"}

	got := strings.Join(serverArgs(st, server, []string{"--node-monitor-grace-period=5s"}), " ")
	want := "server --data-dir /d/demo-node1 --node-name demo-node1 --bridge ppbr1 --cgroup-parent peapod-cluster/demo/demo-node1 --pod-cidr 10.42.0.0/24 --cluster-cidr 10.42.0.0/16 --listen 172.31.0.2:6443 --node-monitor-grace-period=5s"
	if got != want {
		t.Errorf("server args (old binary):\n got %s\nwant %s", got, want)
	}
	got = strings.Join(agentArgs(st, agent), " ")
	want = "agent --server https://172.31.0.2:6443 --token K10abc::x.y --data-dir /d/demo-node2 --node-name demo-node2 --bridge ppbr2 --cgroup-parent peapod-cluster/demo/demo-node2 --pod-cidr 10.42.1.0/24 --cluster-cidr 10.42.0.0/16 --warm-sandboxes=0"
	if got != want {
		t.Errorf("agent args (old binary):\n got %s\nwant %s", got, want)
	}
	if got := strings.Join(resetArgs(st, agent), " "); got != "--data-dir /d/demo-node2 --bridge ppbr2 --cgroup-parent peapod-cluster/demo/demo-node2 --pod-cidr 10.42.1.0/24 --cluster-cidr 10.42.0.0/16" {
		t.Errorf("reset args: %s", got)
	}

	st.Features = Features{NetworkBackend: true, ServerAllocatesPodCIDRs: true, NodeIP: true}
	got = strings.Join(serverArgs(st, server, nil), " ")
	want = "server --data-dir /d/demo-node1 --node-name demo-node1 --bridge ppbr1 --cgroup-parent peapod-cluster/demo/demo-node1 --cluster-cidr 10.42.0.0/16 --node-ip 172.31.0.2 --listen 172.31.0.2:6443 --network-backend host-gw"
	if got != want {
		t.Errorf("server args (new binary):\n got %s\nwant %s", got, want)
	}
	got = strings.Join(agentArgs(st, agent), " ")
	want = "agent --server https://172.31.0.2:6443 --token K10abc::x.y --data-dir /d/demo-node2 --node-name demo-node2 --bridge ppbr2 --cgroup-parent peapod-cluster/demo/demo-node2 --node-ip 172.31.0.3 --warm-sandboxes=0"
	if got != want {
		t.Errorf("agent args (new binary):\n got %s\nwant %s", got, want)
	}
	if got := strings.Join(resetArgs(st, agent), " "); got != "--data-dir /d/demo-node2 --bridge ppbr2 --cgroup-parent peapod-cluster/demo/demo-node2" {
		t.Errorf("reset args (new binary): %s", got)
	}
}

func TestOptionsValidate(t *testing.T) {
	img := filepath.Join(t.TempDir(), "busybox.tar")
	if err := os.WriteFile(img, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	valid := func() Options {
		return Options{Nodes: 3, Images: []string{img}, Binary: "/bin/true", Dir: t.TempDir()}
	}
	o := valid()
	if err := o.validate(); err != nil {
		t.Fatal(err)
	}
	if o.Name != DefaultName || o.Backend != DefaultBackend || o.ClusterCIDR != DefaultClusterCIDR || o.Wait == 0 || o.Out == nil {
		t.Errorf("defaults not filled in: %+v", o)
	}
	for _, tc := range []struct {
		edit func(*Options)
		want string
	}{
		{func(o *Options) { o.Nodes = 0 }, "--nodes 0"},
		{func(o *Options) { o.Nodes = MaxNodes + 1 }, "--nodes 100"},
		{func(o *Options) { o.Name = "Bad_Name" }, "--name"},
		{func(o *Options) { o.Backend = "udp" }, "--network-backend \"udp\""},
		{func(o *Options) { o.Backend, o.BackendSet = "host-gw", true }, "has no --network-backend flag"},
		{func(o *Options) { o.UnderlayCIDR = "10.1.2.3/24" }, "--underlay-cidr"},
		{func(o *Options) { o.ClusterCIDR = "10.42.0.0/30" }, "--cluster-cidr"},
		{func(o *Options) { o.Images = []string{"/nonexistent.tar"} }, "--image \"/nonexistent.tar\""},
		{func(o *Options) { o.Images = []string{t.TempDir()} }, "not a regular file"},
	} {
		o := valid()
		tc.edit(&o)
		if err := o.validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want one saying %q", err, tc.want)
		}
	}
	o = valid()
	o.Backend, o.BackendSet, o.Features.NetworkBackend = "host-gw", true, true
	if err := o.validate(); err != nil {
		t.Errorf("a binary with --network-backend takes it: %v", err)
	}
}

func TestPrepareDir(t *testing.T) {
	root := t.TempDir()
	fresh := filepath.Join(root, "a", "b")
	if err := prepareDir(fresh); err != nil {
		t.Fatalf("new dir: %v", err)
	}
	if err := prepareDir(fresh); err != nil {
		t.Fatalf("empty dir: %v", err)
	}
	// A directory with someone else's files: Down would remove it, so Up refuses.
	if err := os.WriteFile(filepath.Join(root, "precious"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := prepareDir(root); err == nil || !strings.Contains(err.Error(), "--dir") {
		t.Errorf("non-empty dir: error %v, want one naming --dir", err)
	}
}

func TestStateRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if _, err := loadState(dir); err == nil || !strings.Contains(err.Error(), ErrNoCluster.Error()) {
		t.Fatalf("empty dir: %v", err)
	}
	st := &State{Name: "demo", Dir: dir, Token: "secret", Nodes: []Node{{Index: 1, Name: "demo-node1", DataDir: filepath.Join(dir, "demo-node1"), PID: 42, StartTime: 7}}}
	if err := st.save(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(statePath(dir))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file %v, %v: want mode 0600 (it holds the join token)", fi, err)
	}
	got, err := loadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Nodes[0].PID != 42 || got.Token != "secret" || got.Kubeconfig() != filepath.Join(dir, "demo-node1", "admin.kubeconfig") {
		t.Errorf("round trip: %+v", got)
	}
	if n, err := got.nodeRef("1"); err != nil || n.Name != "demo-node1" {
		t.Errorf("nodeRef(1) = %v, %v", n, err)
	}
	if _, err := got.nodeRef("demo-node9"); err == nil || !strings.Contains(err.Error(), "demo-node1") {
		t.Errorf("unknown node: error %v, want the list of nodes", err)
	}
}

func TestProcStat(t *testing.T) {
	start, state, err := procStat(os.Getpid())
	if err != nil || start == 0 || state != 'R' && state != 'S' {
		t.Errorf("procStat(self) = %d, %c, %v", start, state, err)
	}
	self := Node{PID: os.Getpid(), StartTime: start}
	if !self.running() {
		t.Error("this process is not running?")
	}
	self.StartTime++ // a reused PID: another process
	if self.running() {
		t.Error("a PID with another start time counts as running")
	}
}
