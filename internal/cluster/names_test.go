package cluster

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
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
		{func(o *Options) { o.Servers = 4 }, "--servers 4: want 1 to --nodes (3)"},
		{func(o *Options) { o.Servers = 2 }, "--servers 2 needs --external-etcd"},
		{func(o *Options) { o.EtcdMembers = MaxEtcdMembers + 1 }, "--external-etcd 8"},
		{func(o *Options) { o.EtcdMembers, o.UnderlayCIDR = 3, "10.9.0.0/26" }, "too small for the etcd members"},
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

// TestHAArgs: two servers on a three-member etcd. Both servers get the
// etcd flags; each agent gets every server, starting from a different one;
// each member's etcd knows the whole initial cluster, with TLS and client
// certificates on both ports.
func TestHAArgs(t *testing.T) {
	st := &State{Name: "ha", Dir: "/c", ClusterCIDR: "10.42.0.0/16", Backend: "vxlan", Token: "K10abc::x.y",
		Features: Features{NetworkBackend: true, ServerAllocatesPodCIDRs: true, NodeIP: true},
		Servers:  []string{"https://172.31.0.2:6443", "https://172.31.0.3:6443"}, EtcdPKI: "/c/etcd-pki"}
	for j := 1; j <= 3; j++ {
		st.Etcd = append(st.Etcd, Node{Index: j, Name: EtcdMemberName("ha", j), Role: roleEtcd, Address: fmt.Sprintf("172.31.0.%d", 100+j), DataDir: "/c/" + EtcdMemberName("ha", j)})
	}
	st.Server = st.Servers[0]
	second := &Node{Index: 2, Name: "ha-node2", Role: roleServer, Address: "172.31.0.3", DataDir: "/c/ha-node2", PodBridge: "ppbr2", CgroupParent: "peapod-cluster/ha/ha-node2"}
	got := strings.Join(serverArgs(st, second, nil), " ")
	want := "server --data-dir /c/ha-node2 --node-name ha-node2 --bridge ppbr2 --cgroup-parent peapod-cluster/ha/ha-node2 --cluster-cidr 10.42.0.0/16 --node-ip 172.31.0.3 --listen 172.31.0.3:6443 --network-backend vxlan " +
		"--etcd-servers https://172.31.0.101:2379,https://172.31.0.102:2379,https://172.31.0.103:2379 --etcd-cafile /c/etcd-pki/ca.crt --etcd-certfile /c/etcd-pki/apiserver-etcd-client.crt --etcd-keyfile /c/etcd-pki/apiserver-etcd-client.key"
	if got != want {
		t.Errorf("second server's args:\n got %s\nwant %s", got, want)
	}
	for i, first := range map[int]string{3: "https://172.31.0.3:6443,https://172.31.0.2:6443", 4: "https://172.31.0.2:6443,https://172.31.0.3:6443"} {
		agent := &Node{Index: i, Name: NodeName("ha", i), Role: roleAgent, Address: fmt.Sprintf("172.31.0.%d", i+1)}
		if got := strings.Join(agentArgs(st, agent), " "); !strings.HasPrefix(got, "agent --server "+first+" --token") {
			t.Errorf("node %d's args: %s; want --server %s", i, got, first)
		}
	}
	got = strings.Join(etcdArgs(st, &st.Etcd[1]), " ")
	for _, want := range []string{
		"--name ha-etcd2 --data-dir /c/ha-etcd2/data",
		"--listen-client-urls https://172.31.0.102:2379 --advertise-client-urls https://172.31.0.102:2379",
		"--listen-peer-urls https://172.31.0.102:2380 --initial-advertise-peer-urls https://172.31.0.102:2380",
		"--initial-cluster ha-etcd1=https://172.31.0.101:2380,ha-etcd2=https://172.31.0.102:2380,ha-etcd3=https://172.31.0.103:2380",
		"--client-cert-auth --trusted-ca-file /c/etcd-pki/ca.crt --cert-file /c/etcd-pki/member-ha-etcd2.crt --key-file /c/etcd-pki/member-ha-etcd2.key",
		"--peer-client-cert-auth --peer-trusted-ca-file /c/etcd-pki/ca.crt --peer-cert-file /c/etcd-pki/member-ha-etcd2.crt",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("etcd args lack %q:\n%s", want, got)
		}
	}
	if n, err := st.nodeRef("ha-etcd3"); err != nil || n.Role != roleEtcd {
		t.Errorf("nodeRef(ha-etcd3) = %v, %v", n, err)
	}
	_, underlay, _ := net.ParseCIDR("172.31.0.0/24")
	if a, err := underlayAddr(underlay, etcdAddrIndex(3)); err != nil || a.IP.String() != "172.31.0.103" {
		t.Errorf("member 3's address: %v %v", a, err)
	}
	if len(etcdHostVeth("abcdefgh", MaxEtcdMembers)) > 15 {
		t.Errorf("veth name %s too long for Linux", etcdHostVeth("abcdefgh", MaxEtcdMembers))
	}
}

// TestEtcdPKI: the members' certificates serve and authenticate peers
// (server and client use) for their address; the API servers' client
// certificate is client-only; all from the etcd CA, keys 0600.
func TestEtcdPKI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etcd-pki")
	members := []Node{{Name: "ha-etcd1", Address: "172.31.0.101"}}
	if err := writeEtcdPKI(dir, members); err != nil {
		t.Fatal(err)
	}
	st := &State{EtcdPKI: dir}
	files, ok := st.EtcdClientTLS()
	if !ok {
		t.Fatal("no client TLS")
	}
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(files.CAFile)
	pool.AppendCertsFromPEM(caPEM)
	member := readPEMCert(t, filepath.Join(dir, "member-ha-etcd1.crt"))
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := member.Verify(x509.VerifyOptions{Roots: pool, DNSName: "172.31.0.101", KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Errorf("member certificate for %v: %v", usage, err)
		}
	}
	client := readPEMCert(t, files.CertFile)
	if _, err := client.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil || client.Subject.CommonName != "kube-apiserver-etcd-client" {
		t.Errorf("client certificate %s: %v", client.Subject.CommonName, err)
	}
	if _, err := client.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("the client certificate serves")
	}
	for _, key := range []string{files.KeyFile, filepath.Join(dir, "ca.key"), filepath.Join(dir, "member-ha-etcd1.key")} {
		if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", key, fi.Mode(), err)
		}
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("pki dir mode %v", fi.Mode())
	}
}

func readPEMCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
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

// TestNextIndex: a node added after one was removed takes a new number
// (so a new name and underlay address), never the removed node's, also
// when the removed one had the highest number; a record without
// LastIndex (from an older binary) numbers past the nodes it lists.
func TestNextIndex(t *testing.T) {
	nodes := func(idx ...int) []Node {
		var out []Node
		for _, i := range idx {
			out = append(out, Node{Index: i, Name: NodeName("c", i)})
		}
		return out
	}
	for _, tc := range []struct {
		what string
		st   State
		want int
	}{
		{"fresh 3-node cluster", State{Nodes: nodes(1, 2, 3), LastIndex: 3}, 4},
		{"node 4 added and removed", State{Nodes: nodes(1, 2, 3), LastIndex: 4}, 5},
		{"a middle node removed", State{Nodes: nodes(1, 3), LastIndex: 3}, 4},
		{"record from before LastIndex", State{Nodes: nodes(1, 2, 3)}, 4},
	} {
		if got := tc.st.nextIndex(); got != tc.want {
			t.Errorf("%s: nextIndex %d, want %d", tc.what, got, tc.want)
		}
	}
}
