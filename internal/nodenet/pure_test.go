package nodenet

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func validConfig() Config {
	return Config{
		Backend: BackendVXLAN, NodeName: "n1", NodeIP: "172.31.0.1",
		PodCIDR: "10.244.1.0/24", ClusterCIDR: "10.244.0.0/16", StateDir: "/var/lib/peapod/nodenet",
	}
}

func TestValidateNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   string // substring of the error; "" = valid
	}{
		{"valid", func(*Config) {}, ""},
		{"host-gw", func(c *Config) { c.Backend = BackendHostGW }, ""},
		{"none without node IP", func(c *Config) { c.Backend, c.NodeIP = BackendNone, "" }, ""},
		{"unknown backend", func(c *Config) { c.Backend = "udp" }, `Backend: unknown network backend "udp" (want vxlan, host-gw, none)`},
		{"no node name", func(c *Config) { c.NodeName = "" }, "NodeName is empty"},
		{"bad node IP", func(c *Config) { c.NodeIP = "172.31.0" }, `NodeIP "172.31.0": not an IPv4 address`},
		{"IPv6 node IP", func(c *Config) { c.NodeIP = "fd00::1" }, `NodeIP "fd00::1": not an IPv4 address`},
		{"node IP in cluster", func(c *Config) { c.NodeIP = "10.244.7.7" }, "NodeIP 10.244.7.7 is inside ClusterCIDR 10.244.0.0/16"},
		{"bad pod CIDR", func(c *Config) { c.PodCIDR = "10.244.1.0" }, `PodCIDR "10.244.1.0": not an IPv4 CIDR`},
		{"pod CIDR not canonical", func(c *Config) { c.PodCIDR = "10.244.1.5/24" }, "PodCIDR 10.244.1.5/24: not a network address (want 10.244.1.0/24)"},
		{"pod CIDR outside", func(c *Config) { c.PodCIDR = "10.245.1.0/24" }, "PodCIDR 10.245.1.0/24 is outside ClusterCIDR 10.244.0.0/16"},
		{"pod CIDR wider than cluster", func(c *Config) { c.PodCIDR = "10.0.0.0/8" }, "PodCIDR 10.0.0.0/8 is outside ClusterCIDR"},
		{"pod CIDR too small", func(c *Config) { c.PodCIDR = "10.244.1.0/31" }, "PodCIDR 10.244.1.0/31: too small"},
		{"bad cluster CIDR", func(c *Config) { c.ClusterCIDR = "everything" }, `ClusterCIDR "everything": not an IPv4 CIDR`},
		{"IPv6 cluster CIDR", func(c *Config) { c.ClusterCIDR = "fd00::/48" }, `ClusterCIDR "fd00::/48": not an IPv4 CIDR`},
		{"relative state dir", func(c *Config) { c.StateDir = "nodenet" }, `StateDir "nodenet": must be an absolute path`},
		{"device too long", func(c *Config) { c.Device = "peapod.vxlan.dev0" }, `Device "peapod.vxlan.dev0": longer than 15 characters`},
		{"device with slash", func(c *Config) { c.Device = "a/b" }, `Device "a/b": not a valid interface name`},
		{"relative netns", func(c *Config) { c.NetNS = "ns1" }, `NetNS "ns1": must be an absolute path`},
		{"checksum mode", func(c *Config) { c.ChecksumOffload = "maybe" }, `ChecksumOffload "maybe"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := validConfig()
			tc.change(&cfg)
			s, err := validate(cfg)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("validate: %v", err)
				}
				if s.Device != DefaultDevice {
					t.Errorf("device defaulted to %q, want %q", s.Device, DefaultDevice)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("validate error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func node(name, podCIDR string, ann map[string]string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann}, Spec: corev1.NodeSpec{PodCIDR: podCIDR}}
}

func vxlanAnn(ip, mac string) map[string]string {
	return map[string]string{AnnotationBackendType: "vxlan", AnnotationPublicIP: ip, AnnotationVTEPMAC: mac}
}

var testSelf = Self{
	Name: "a", Backend: BackendVXLAN, NodeIP: netip.MustParseAddr("172.31.0.1"),
	PodCIDR: netip.MustParsePrefix("10.244.1.0/24"), ClusterCIDR: netip.MustParsePrefix("10.244.0.0/16"),
}

func TestPeersFromNodes(t *testing.T) {
	nodes := []*corev1.Node{
		node("d", "10.244.4.0/24", vxlanAnn("172.31.0.4", "0a:00:00:00:00:04")),
		node("a", "10.244.1.0/24", vxlanAnn("172.31.0.1", "0a:00:00:00:00:01")), // self
		node("b", "10.244.2.0/24", vxlanAnn("172.31.0.2", "0a:00:00:00:00:02")),
		node("no-cidr", "", vxlanAnn("172.31.0.9", "0a:00:00:00:00:09")),
		node("no-annotations", "10.244.9.0/24", nil),
		node("no-mac-yet", "10.244.10.0/24", map[string]string{AnnotationBackendType: "vxlan", AnnotationPublicIP: "172.31.0.10"}),
		node("other-backend", "10.244.11.0/24", map[string]string{AnnotationBackendType: "host-gw", AnnotationPublicIP: "172.31.0.11"}),
		node("bad-ip", "10.244.12.0/24", vxlanAnn("172.31.0", "0a:00:00:00:00:12")),
		node("bad-mac", "10.244.13.0/24", vxlanAnn("172.31.0.13", "zz:00:00:00:00:13")),
		node("multicast-mac", "10.244.14.0/24", vxlanAnn("172.31.0.14", "01:00:5e:00:00:14")),
		node("outside", "10.99.0.0/24", vxlanAnn("172.31.0.15", "0a:00:00:00:00:15")),
		node("overlaps-self", "10.244.1.0/25", vxlanAnn("172.31.0.16", "0a:00:00:00:00:16")),
		node("overlaps-b", "10.244.2.0/24", vxlanAnn("172.31.0.17", "0a:00:00:00:00:17")),
		node("same-ip-as-b", "10.244.18.0/24", vxlanAnn("172.31.0.2", "0a:00:00:00:00:18")),
		node("same-mac-as-b", "10.244.19.0/24", vxlanAnn("172.31.0.19", "0a:00:00:00:00:02")),
		node("self-ip", "10.244.20.0/24", vxlanAnn("172.31.0.1", "0a:00:00:00:00:20")),
		node("ip-in-cluster", "10.244.21.0/24", vxlanAnn("10.244.200.1", "0a:00:00:00:00:21")),
		{ObjectMeta: metav1.ObjectMeta{Name: "cidrs-only", Annotations: vxlanAnn("172.31.0.22", "0a:00:00:00:00:22")},
			Spec: corev1.NodeSpec{PodCIDRs: []string{"10.244.22.0/24"}}},
		node("not-canonical", "10.244.23.1/24", vxlanAnn("172.31.0.23", "0a:00:00:00:00:23")),
	}
	peers, rejected := PeersFromNodes(nodes, testSelf)
	var names []string
	for _, p := range peers {
		names = append(names, p.Name)
	}
	if want := []string{"b", "cidrs-only", "d"}; !reflect.DeepEqual(names, want) {
		t.Errorf("peers = %v, want %v", names, want)
	}
	b := peers[0]
	if b.NodeIP != netip.MustParseAddr("172.31.0.2") || b.PodCIDR != netip.MustParsePrefix("10.244.2.0/24") || b.VTEPMAC.String() != "0a:00:00:00:00:02" {
		t.Errorf("peer b = %+v", b)
	}
	reasons := map[string]string{}
	for _, r := range rejected {
		reasons[r.Node] = r.Reason
	}
	for name, want := range map[string]string{
		"other-backend":  `backend-type is "host-gw", but this cluster's backend is "vxlan"`,
		"bad-ip":         `public-ip "172.31.0" is not an IPv4 address`,
		"bad-mac":        `vtep-mac "zz:00:00:00:00:13"`,
		"multicast-mac":  "a multicast address",
		"outside":        "spec.podCIDR 10.99.0.0/24 is outside the cluster range 10.244.0.0/16",
		"overlaps-self":  "overlaps this node's 10.244.1.0/24",
		"overlaps-b":     "overlaps node b's 10.244.2.0/24",
		"same-ip-as-b":   "172.31.0.2 is also node b's",
		"same-mac-as-b":  "VTEP MAC 0a:00:00:00:00:02 is also node b's",
		"self-ip":        "is this node's own address",
		"ip-in-cluster":  "is inside the cluster range",
		"not-canonical":  `spec.podCIDR "10.244.23.1/24" is not an IPv4 network address`,
		"no-cidr":        "",
		"no-annotations": "",
		"no-mac-yet":     "",
	} {
		got, found := reasons[name]
		if want == "" {
			if found {
				t.Errorf("node %s rejected (%s), want it skipped silently", name, got)
			}
			continue
		}
		if !strings.Contains(got, want) {
			t.Errorf("node %s: reason %q, want it to contain %q", name, got, want)
		}
	}
	if len(rejected) != 12 {
		t.Errorf("%d rejections, want 12: %v", len(rejected), rejected)
	}
}

func TestPeersFromNodesHostGWNeedsNoMAC(t *testing.T) {
	self := testSelf
	self.Backend = BackendHostGW
	peers, rejected := PeersFromNodes([]*corev1.Node{
		node("b", "10.244.2.0/24", map[string]string{AnnotationBackendType: "host-gw", AnnotationPublicIP: "172.31.0.2"}),
		node("c", "10.244.3.0/24", vxlanAnn("172.31.0.3", "0a:00:00:00:00:03")),
	}, self)
	if len(peers) != 1 || peers[0].Name != "b" || peers[0].VTEPMAC != nil {
		t.Errorf("peers = %+v, want only b without a MAC", peers)
	}
	if len(rejected) != 1 || rejected[0].Node != "c" {
		t.Errorf("rejected = %v, want c (a vxlan node in a host-gw cluster)", rejected)
	}
	self.Backend = BackendNone
	if peers, rejected := PeersFromNodes([]*corev1.Node{node("b", "10.244.2.0/24", nil)}, self); peers != nil || rejected != nil {
		t.Errorf("none backend: peers %v, rejected %v, want none", peers, rejected)
	}
}

func TestCheckPeers(t *testing.T) {
	mac := func(s string) net.HardwareAddr { m, _ := net.ParseMAC(s); return m }
	peers := []Peer{
		{Name: "c", NodeIP: netip.MustParseAddr("172.31.0.3"), PodCIDR: netip.MustParsePrefix("10.244.3.0/24"), VTEPMAC: mac("0a:00:00:00:00:03")},
		{Name: "b", NodeIP: netip.MustParseAddr("172.31.0.2"), PodCIDR: netip.MustParsePrefix("10.244.2.0/24"), VTEPMAC: mac("0a:00:00:00:00:02")},
		{Name: "nomac", NodeIP: netip.MustParseAddr("172.31.0.4"), PodCIDR: netip.MustParsePrefix("10.244.4.0/24")},
		{Name: "dup", NodeIP: netip.MustParseAddr("172.31.0.5"), PodCIDR: netip.MustParsePrefix("10.244.2.0/24"), VTEPMAC: mac("0a:00:00:00:00:05")},
		{Name: "noip", PodCIDR: netip.MustParsePrefix("10.244.6.0/24"), VTEPMAC: mac("0a:00:00:00:00:06")},
	}
	ok, refused := checkPeers(peers, testSelf)
	if len(ok) != 2 || ok[0].Name != "b" || ok[1].Name != "c" {
		t.Errorf("ok = %v, want b, c", ok)
	}
	want := map[string]string{"nomac": "no VTEP MAC", "dup": "overlaps node b's", "noip": "not an IPv4 address"}
	if len(refused) != len(want) {
		t.Errorf("refused = %v", refused)
	}
	for _, r := range refused {
		if !strings.Contains(r.Reason, want[r.Peer.Name]) || want[r.Peer.Name] == "" {
			t.Errorf("refusal %v, want reason containing %q", r, want[r.Peer.Name])
		}
	}
}

func TestDiffRoutes(t *testing.T) {
	r := func(dst, gw string, link int, onlink bool, prio int) routeEntry {
		return routeEntry{Dst: netip.MustParsePrefix(dst), Gw: netip.MustParseAddr(gw), LinkIndex: link, OnLink: onlink, Priority: prio}
	}
	unchanged := r("10.244.2.0/24", "10.244.2.0", 7, true, 0)
	changedWant := r("10.244.3.0/24", "10.244.3.0", 7, true, 0)
	changedHave := r("10.244.3.0/24", "172.31.0.3", 2, false, 0)
	added := r("10.244.4.0/24", "10.244.4.0", 7, true, 0)
	stale := r("10.244.5.0/24", "10.244.5.0", 7, true, 0)
	dupOtherPrio := r("10.244.2.0/24", "10.244.2.0", 7, true, 100)
	c := diffRoutes([]routeEntry{added, unchanged, changedWant}, []routeEntry{stale, unchanged, changedHave, dupOtherPrio})
	if want := []routeEntry{changedWant, added}; !reflect.DeepEqual(c.Set, want) {
		t.Errorf("Set = %v, want %v", c.Set, want)
	}
	if want := []routeEntry{dupOtherPrio, stale}; !reflect.DeepEqual(c.Del, want) {
		t.Errorf("Del = %v, want %v", c.Del, want)
	}
	if c := diffRoutes([]routeEntry{unchanged}, []routeEntry{unchanged}); !c.empty() {
		t.Errorf("an unchanged route is touched: %+v", c)
	}
}

func TestDiffNeighs(t *testing.T) {
	e := func(ip, mac string) neighEntry { return neighEntry{IP: netip.MustParseAddr(ip), MAC: mac} }
	c := diffNeighs(
		[]neighEntry{e("10.244.2.0", "0a:00:00:00:00:02"), e("10.244.3.0", "0a:00:00:00:00:33"), e("10.244.4.0", "0a:00:00:00:00:04")},
		[]neighEntry{e("10.244.2.0", "0a:00:00:00:00:02"), e("10.244.3.0", "0a:00:00:00:00:03"), e("10.244.5.0", "0a:00:00:00:00:05")})
	if want := []neighEntry{e("10.244.3.0", "0a:00:00:00:00:33"), e("10.244.4.0", "0a:00:00:00:00:04")}; !reflect.DeepEqual(c.Set, want) {
		t.Errorf("Set = %v, want %v", c.Set, want)
	}
	if want := []neighEntry{e("10.244.5.0", "0a:00:00:00:00:05")}; !reflect.DeepEqual(c.Del, want) {
		t.Errorf("Del = %v, want %v", c.Del, want)
	}
}

func TestDiffFDB(t *testing.T) {
	e := func(mac, dst string) fdbEntry { return fdbEntry{MAC: mac, Dst: netip.MustParseAddr(dst)} }
	c := diffFDB(
		[]fdbEntry{e("0a:00:00:00:00:02", "172.31.0.2"), e("0a:00:00:00:00:03", "172.31.0.33"), e("0a:00:00:00:00:04", "172.31.0.4")},
		[]fdbEntry{
			e("0a:00:00:00:00:02", "172.31.0.2"),
			e("0a:00:00:00:00:02", "172.31.0.2"),  // listed twice: removed once, never re-added
			e("0a:00:00:00:00:03", "172.31.0.3"),  // the peer moved: new remote added, old removed
			e("0a:00:00:00:00:05", "172.31.0.5"),  // stale peer
			e("0a:00:00:00:00:04", "172.31.0.99"), // a wanted MAC's extra remote
		})
	if want := []fdbEntry{e("0a:00:00:00:00:03", "172.31.0.33"), e("0a:00:00:00:00:04", "172.31.0.4")}; !reflect.DeepEqual(c.Set, want) {
		t.Errorf("Set = %v, want %v", c.Set, want)
	}
	if want := []fdbEntry{e("0a:00:00:00:00:03", "172.31.0.3"), e("0a:00:00:00:00:04", "172.31.0.99"), e("0a:00:00:00:00:05", "172.31.0.5")}; !reflect.DeepEqual(c.Del, want) {
		t.Errorf("Del = %v, want %v", c.Del, want)
	}
}

func TestChecksumWorkaroundDecision(t *testing.T) {
	for _, tc := range []struct {
		mode    ChecksumOffload
		release string
		off     bool
	}{
		{ChecksumOffloadAuto, "4.19.0-26-amd64", true},
		{ChecksumOffloadAuto, "5.6.19", true},
		{ChecksumOffloadAuto, "5.7.0", false},
		{ChecksumOffloadAuto, "6.1.0-18-amd64", false},
		{ChecksumOffloadAuto, "5.10rc1", false},
		{ChecksumOffloadAuto, "garbage", false},
		{ChecksumOffloadOff, "6.1.0", true},
		{ChecksumOffloadOn, "4.19.0", false},
	} {
		if got := disableChecksumOffload(tc.mode, tc.release); got != tc.off {
			t.Errorf("disableChecksumOffload(%q, %q) = %v, want %v", tc.mode, tc.release, got, tc.off)
		}
	}
}

func TestForwardRules(t *testing.T) {
	got := forwardRules("10.244.0.0/16")
	for _, want := range []string{"*filter\n", ":PEAPOD-FORWARD - [0:0]\n",
		"-A PEAPOD-FORWARD -s 10.244.0.0/16 ", "-A PEAPOD-FORWARD -d 10.244.0.0/16 ", "-j ACCEPT\n", "COMMIT\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("forward rules lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "MASQUERADE") || strings.Contains(got, "*nat") {
		t.Errorf("forward rules must not NAT:\n%s", got)
	}
}

func TestStateRecords(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nodenet")
	if mac, err := readMAC(dir); err != nil || mac != nil {
		t.Fatalf("readMAC of nothing = %v, %v; want nil, nil", mac, err)
	}
	mac, err := newMAC()
	if err != nil {
		t.Fatal(err)
	}
	if mac[0]&1 != 0 || mac[0]&2 == 0 {
		t.Errorf("MAC %s is not locally administered unicast", mac)
	}
	if err := writeMAC(dir, mac); err != nil {
		t.Fatal(err)
	}
	if got, err := readMAC(dir); err != nil || got.String() != mac.String() {
		t.Errorf("readMAC = %v, %v; want %s", got, err, mac)
	}
	if err := os.WriteFile(filepath.Join(dir, macFile), []byte("nonsense\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readMAC(dir); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, macFile)) {
		t.Errorf("readMAC of a corrupt record = %v, want an error naming the file", err)
	}

	s, err := validate(validConfig())
	if err != nil {
		t.Fatal(err)
	}
	s.StateDir = dir
	if err := writeConfig(s); err != nil {
		t.Fatal(err)
	}
	cfg, err := readConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := validConfig()
	want.StateDir, want.Device = "", DefaultDevice
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("recorded config = %+v, want %+v", cfg, want)
	}
	if _, err := readConfig(t.TempDir()); !IsNotConfigured(err) {
		t.Errorf("readConfig of an empty dir = %v, want not configured", err)
	}

	peers := []Peer{{Name: "b", NodeIP: netip.MustParseAddr("172.31.0.2"), PodCIDR: netip.MustParsePrefix("10.244.2.0/24"), VTEPMAC: mac}}
	data, err := encodePeers(peers)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(filepath.Join(dir, peersFile), data); err != nil {
		t.Fatal(err)
	}
	got, err := readPeers(dir)
	if err != nil || len(got) != 1 || got[0].Name != "b" || got[0].PodCIDR != peers[0].PodCIDR || got[0].VTEPMAC.String() != mac.String() {
		t.Errorf("readPeers = %+v, %v", got, err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary file %s left in the state dir", e.Name())
		}
	}
}

func TestRender(t *testing.T) {
	st := Status{
		Backend: BackendVXLAN, NodeName: "a", NodeIP: "172.31.0.1", PodCIDR: "10.244.1.0/24", ClusterCIDR: "10.244.0.0/16",
		Device:     &DeviceStatus{Name: "peapod.1", Up: true, MTU: 1450, MAC: "0a:00:00:00:00:01", LocalIP: "172.31.0.1", Parent: "eth0", VNI: 1, Port: 8472},
		Forwarding: true,
		Peers: []PeerStatus{
			{Name: "b", NodeIP: "172.31.0.2", PodCIDR: "10.244.2.0/24", VTEPMAC: "0a:00:00:00:00:02",
				Route: "10.244.2.0/24 via 10.244.2.0 dev peapod.1 onlink", RouteOK: true, FDB: true, Neighbour: true},
			{Name: "c", NodeIP: "172.31.0.3", PodCIDR: "10.244.3.0/24", VTEPMAC: "0a:00:00:00:00:03"},
		},
	}
	var buf bytes.Buffer
	if err := Render(&buf, st); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"BACKEND     vxlan",
		"DEVICE      peapod.1  up, mtu 1450, mac 0a:00:00:00:00:01",
		"local 172.31.0.1 on eth0",
		"FORWARD accepts the cluster range (PEAPOD-FORWARD)",
		"PEER  NODE IP     POD CIDR       VTEP MAC           ROUTE",
		"b     172.31.0.2  10.244.2.0/24  0a:00:00:00:00:02  10.244.2.0/24 via 10.244.2.0 dev peapod.1 onlink  yes  yes",
		"c     172.31.0.3  10.244.3.0/24  0a:00:00:00:00:03  missing",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("render lacks %q:\n%s", want, out)
		}
	}
}

func TestPeerRelevantChange(t *testing.T) {
	a := node("b", "10.244.2.0/24", vxlanAnn("172.31.0.2", "0a:00:00:00:00:02"))
	heartbeat := a.DeepCopy()
	heartbeat.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	heartbeat.Annotations["other"] = "x"
	if peerRelevantChange(a, heartbeat) {
		t.Error("a status heartbeat counts as a peer change")
	}
	moved := a.DeepCopy()
	moved.Annotations[AnnotationPublicIP] = "172.31.0.22"
	if !peerRelevantChange(a, moved) {
		t.Error("a new public IP is not a peer change")
	}
	cidr := node("b", "", nil)
	if !peerRelevantChange(cidr, a) {
		t.Error("a podCIDR being set is not a peer change")
	}
	if !published(a, vxlanAnn("172.31.0.2", "0a:00:00:00:00:02")) || published(a, map[string]string{AnnotationVTEPMAC: "0a:00:00:00:00:99"}) {
		t.Error("published() is wrong")
	}
}
