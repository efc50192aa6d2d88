package network

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/peapod/peapod/internal/network/netns"
)

// TestPodToPod: two pods get distinct IPs in PodCIDR, see them on eth0,
// reach each other and are reached from the host, without NAT between
// them (1, 2).
func TestPodToPod(t *testing.T) {
	e := newEnv(t, nil)
	a := e.setup(t, "a")
	b := e.setup(t, "b")

	_, podNet, _ := net.ParseCIDR(e.cfg.PodCIDR)
	for _, p := range []*pod{a, b} {
		if len(p.res.IPs) != 1 || p.res.Interface != "eth0" || p.res.HostVeth == "" || p.res.Mac == "" || p.res.Gateway == "" {
			t.Fatalf("pod %s result %+v", p.id, p.res)
		}
		if !podNet.Contains(net.ParseIP(ipOf(t, p.res.IPs[0]))) {
			t.Errorf("pod %s IP %s not in %s", p.id, p.res.IPs[0], e.cfg.PodCIDR)
		}
		// The pod sees exactly Result.IPs on eth0, and the MAC.
		e.do(t, p.ns, func() error {
			l, err := netlink.LinkByName("eth0")
			if err != nil {
				return err
			}
			if l.Attrs().HardwareAddr.String() != p.res.Mac {
				t.Errorf("eth0 MAC %s, result %s", l.Attrs().HardwareAddr, p.res.Mac)
			}
			addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
			if err != nil {
				return err
			}
			if len(addrs) != 1 || addrs[0].IPNet.String() != p.res.IPs[0] {
				t.Errorf("eth0 addrs %v, result %v", addrs, p.res.IPs)
			}
			lo, err := netlink.LinkByName("lo")
			if err != nil {
				return err
			}
			if lo.Attrs().Flags&net.FlagUp == 0 {
				t.Error("lo is down")
			}
			return nil
		})
		// The host side exists in the host netns, on the bridge.
		e.do(t, e.host, func() error {
			l, err := netlink.LinkByName(p.res.HostVeth)
			if err != nil {
				return err
			}
			br, err := netlink.LinkByName(e.cfg.BridgeName)
			if err != nil {
				return err
			}
			if l.Attrs().MasterIndex != br.Attrs().Index {
				t.Errorf("host veth %s not on bridge %s", p.res.HostVeth, e.cfg.BridgeName)
			}
			return nil
		})
	}
	// Plugins ran in the test host netns, not in the real host's.
	if _, err := netlink.LinkByName(e.cfg.BridgeName); err == nil {
		t.Errorf("bridge %s was created in the real host netns", e.cfg.BridgeName)
	}
	if a.res.IPs[0] == b.res.IPs[0] {
		t.Fatalf("both pods got %s", a.res.IPs[0])
	}

	e.serve(t, b.ns, ":8080")
	e.serve(t, a.ns, ":8080")
	seen, err := dial(a.ns, net.JoinHostPort(ipOf(t, b.res.IPs[0]), "8080"))
	if err != nil {
		t.Fatalf("pod a -> pod b: %v", err)
	}
	if seen != ipOf(t, a.res.IPs[0]) {
		t.Errorf("pod b saw source %s, want pod a's IP %s (pod-to-pod traffic was NATed)", seen, a.res.IPs[0])
	}
	for _, p := range []*pod{a, b} {
		seen, err := dial(e.host, net.JoinHostPort(ipOf(t, p.res.IPs[0]), "8080"))
		if err != nil {
			t.Fatalf("host -> pod %s: %v", p.id, err)
		}
		if seen != p.res.Gateway {
			t.Errorf("pod saw host as %s, want gateway %s", seen, p.res.Gateway)
		}
	}
}

// TestMasquerade: traffic from a pod to outside PodCIDR leaves with the
// host's address; the bridge plugin's per-pod rule exists, and is gone
// after Teardown (3).
func TestMasquerade(t *testing.T) {
	e := newEnv(t, nil)
	outside := e.peer(t, "out", "192.168.77.1/24", "192.168.77.2/24", nil)
	e.serve(t, outside, "192.168.77.2:9000")
	a := e.setup(t, "a")

	seen, err := dial(a.ns, "192.168.77.2:9000")
	if err != nil {
		t.Fatalf("pod -> outside: %v", err)
	}
	if seen != "192.168.77.1" {
		t.Errorf("outside saw %s, want the host's 192.168.77.1 (masquerade)", seen)
	}
	save := e.iptablesSave(t, e.host)
	if !strings.Contains(save, `id: \"`+a.id+`\"`) || !strings.Contains(save, "MASQUERADE") {
		t.Errorf("no masquerade rule for %s:\n%s", a.id, save)
	}
	e.teardown(t, a, a.ns)
	save = e.iptablesSave(t, e.host)
	if strings.Contains(save, a.id) || len(perPodChains(save)) > 0 {
		t.Errorf("rules left after teardown:\n%s", save)
	}
}

// TestClusterCIDR: with ClusterCIDR set, traffic to another node's pod
// subnet keeps the pod's IP, and traffic leaving the cluster is
// masqueraded by peapod's own chain.
func TestClusterCIDR(t *testing.T) {
	var octet int
	e := newEnv(t, func(e *testEnv, c *Config) {
		octet = e.octet
		c.ClusterCIDR = "10." + itoa(octet) + ".0.0/16"
	})
	// "node2" holds another pod subnet of the cluster, routed back via
	// the host like a multi-node route would be.
	node2 := e.peer(t, "node2", "10."+itoa(octet)+".2.254/24", "10."+itoa(octet)+".2.1/24",
		map[string]string{e.cfg.PodCIDR: "10." + itoa(octet) + ".2.254"})
	outside := e.peer(t, "out", "192.168.77.1/24", "192.168.77.2/24", nil)
	e.serve(t, node2, ":9000")
	e.serve(t, outside, ":9000")
	a := e.setup(t, "a")
	b := e.setup(t, "b") // second Setup re-ensures the rules: no duplicates

	seen, err := dial(a.ns, "10."+itoa(octet)+".2.1:9000")
	if err != nil {
		t.Fatalf("pod -> node2: %v", err)
	}
	if seen != ipOf(t, a.res.IPs[0]) {
		t.Errorf("node2 saw %s, want pod IP %s (no NAT inside the cluster)", seen, a.res.IPs[0])
	}
	seen, err = dial(a.ns, "192.168.77.2:9000")
	if err != nil {
		t.Fatalf("pod -> outside: %v", err)
	}
	if seen != "192.168.77.1" {
		t.Errorf("outside saw %s, want 192.168.77.1 (masquerade)", seen)
	}
	save := e.iptablesSave(t, e.host)
	if n := strings.Count(save, "-A POSTROUTING -s "+e.cfg.PodCIDR); n != 1 {
		t.Errorf("%d jumps to %s, want 1:\n%s", n, masqChainPrefix, save)
	}
	if n := strings.Count(save, "-A "+masqChainPrefix); n != 3 {
		t.Errorf("%d rules in %s, want 3:\n%s", n, masqChainPrefix, save)
	}
	e.teardown(t, a, a.ns)
	e.teardown(t, b, b.ns)
	if save := e.iptablesSave(t, e.host); len(perPodChains(save)) > 0 {
		t.Errorf("per-pod chains left:\n%s", save)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestRemoveStaleRange: a node whose range changed (its Node registered
// again and was given a new one) starts pods on the new range on the same
// bridge, once the old range's gateway address and masquerade jump are
// gone; without that the bridge plugin refuses a second IPv4 address.
func TestRemoveStaleRange(t *testing.T) {
	var cluster string
	e := newEnv(t, func(e *testEnv, c *Config) {
		cluster = "10." + itoa(e.octet) + ".0.0/16"
		c.ClusterCIDR = cluster
	})
	a := e.setup(t, "a")
	e.teardown(t, a, a.ns)
	oldRange := e.cfg.PodCIDR
	cfg := e.cfg
	cfg.PodCIDR = "10." + itoa(e.octet) + ".2.0/24"
	m, err := New(cfg) // as the next runtime.New makes it
	if err != nil {
		t.Fatal(err)
	}
	e.do(t, e.host, func() error { return m.RemoveStaleRange(context.Background(), oldRange, cluster) })
	if save := e.iptablesSave(t, e.host); strings.Contains(save, "-s "+oldRange) {
		t.Errorf("masquerade jump of %s left:\n%s", oldRange, save)
	}
	e.do(t, e.host, func() error {
		br, err := netlink.LinkByName(cfg.BridgeName)
		if err != nil {
			return err
		}
		addrs, err := netlink.AddrList(br, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, addr := range addrs {
			if strings.HasPrefix(addr.IP.String(), "10."+itoa(e.octet)+".1.") {
				t.Errorf("bridge keeps the old gateway %s", addr.IPNet)
			}
		}
		return nil
	})
	e.m, e.cfg = m, cfg
	b := e.setup(t, "b")
	if !strings.HasPrefix(b.res.IPs[0], "10."+itoa(e.octet)+".2.") {
		t.Errorf("pod on the new range got %s, want an address in %s", b.res.IPs[0], cfg.PodCIDR)
	}
	// Idempotent: nothing of the old range is left to remove.
	e.do(t, e.host, func() error { return m.RemoveStaleRange(context.Background(), oldRange, cluster) })
	e.teardown(t, b, b.ns)
}

// TestTeardown: DEL releases the IP and the veth and all rules, and is
// idempotent, also after the netns is gone (4).
func TestTeardown(t *testing.T) {
	e := newEnv(t, nil)
	a := e.setup(t, "a", PortMapping{HostPort: 18080, ContainerPort: 80})
	ipamFile := filepath.Join(e.cfg.IPAMDataDir, e.m.NetworkName(), ipOf(t, a.res.IPs[0]))
	if _, err := os.Stat(ipamFile); err != nil {
		t.Fatalf("IPAM reservation missing: %v", err)
	}
	e.teardown(t, a, a.ns)
	if _, err := os.Stat(ipamFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("IPAM reservation %s still there: %v", ipamFile, err)
	}
	e.do(t, e.host, func() error {
		if _, err := netlink.LinkByName(a.res.HostVeth); err == nil {
			t.Errorf("host veth %s still there", a.res.HostVeth)
		}
		return nil
	})
	e.do(t, a.ns, func() error {
		if _, err := netlink.LinkByName("eth0"); err == nil {
			t.Error("pod eth0 still there")
		}
		return nil
	})
	if save := e.iptablesSave(t, e.host); strings.Contains(save, a.id) || len(perPodChains(save)) > 0 {
		t.Errorf("rules left after teardown:\n%s", save)
	}
	cached, _ := filepath.Glob(filepath.Join(e.cfg.CacheDir, "results", "*"+a.id+"*"))
	if len(cached) > 0 {
		t.Errorf("libcni cache left: %v", cached)
	}
	e.teardown(t, a, a.ns) // twice

	// Netns deleted before Teardown: the kernel destroys the veth, DEL
	// must still release the IP and remove the rules.
	b := e.setup(t, "b", PortMapping{HostPort: 18081, ContainerPort: 80})
	ipamFile = filepath.Join(e.cfg.IPAMDataDir, e.m.NetworkName(), ipOf(t, b.res.IPs[0]))
	if err := netns.Remove(b.ns); err != nil {
		t.Fatal(err)
	}
	e.teardown(t, b, b.ns)
	e.teardown(t, b, "")
	if _, err := os.Stat(ipamFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("IPAM reservation %s still there after teardown of a gone netns: %v", ipamFile, err)
	}
	if save := e.iptablesSave(t, e.host); strings.Contains(save, b.id) || len(perPodChains(save)) > 0 {
		t.Errorf("rules left after teardown of a gone netns:\n%s", save)
	}
}

// TestCheck: CHECK passes on a healthy pod and fails once eth0 is gone;
// Teardown then still cleans up (5).
func TestCheck(t *testing.T) {
	e := newEnv(t, nil)
	a := e.setup(t, "a")
	e.do(t, e.host, func() error { return e.m.Check(context.Background(), a.id, a.ns, a.info) })
	// lo is brought up in-process; Check notices when it is down.
	e.do(t, a.ns, func() error {
		l, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.LinkSetDown(l)
	})
	if err := netns.Do(e.host, func() error { return e.m.Check(context.Background(), a.id, a.ns, a.info) }); err == nil ||
		!strings.Contains(err.Error(), "lo is down") {
		t.Fatalf("Check with lo down: %v", err)
	}
	e.do(t, a.ns, func() error { return linkUp("lo") })
	e.do(t, e.host, func() error { return e.m.Check(context.Background(), a.id, a.ns, a.info) })
	e.do(t, a.ns, func() error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		return netlink.LinkDel(l)
	})
	err := netns.Do(e.host, func() error { return e.m.Check(context.Background(), a.id, a.ns, a.info) })
	if err == nil {
		t.Fatal("Check passed with eth0 deleted")
	}
	t.Logf("Check after eth0 deleted: %v", err)
	e.teardown(t, a, a.ns)
	if save := e.iptablesSave(t, e.host); strings.Contains(save, a.id) || len(perPodChains(save)) > 0 {
		t.Errorf("rules left after teardown:\n%s", save)
	}
	if err := netns.Do(e.host, func() error { return e.m.Check(context.Background(), a.id, a.ns, a.info) }); err == nil {
		t.Error("Check passed after Teardown")
	}
}

// TestUserConfList: a conflist placed in ConfDir is used instead of the
// default (6).
func TestUserConfList(t *testing.T) {
	var userBridge, userCIDR string
	e := newEnv(t, func(e *testEnv, c *Config) {
		userBridge = c.BridgeName + "u"
		userCIDR = "10." + itoa(e.octet) + ".9.0/24"
		conf := `{"cniVersion":"1.0.0","name":"usernet","plugins":[{"type":"bridge","bridge":"` + userBridge +
			`","isGateway":true,"ipam":{"type":"host-local","subnet":"` + userCIDR + `","dataDir":"` + c.IPAMDataDir + `"}}]}`
		if err := os.MkdirAll(c.ConfDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(c.ConfDir, "50-user.conflist"), []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	if e.m.NetworkName() != "usernet" || e.m.ConfigFile() != filepath.Join(e.cfg.ConfDir, "50-user.conflist") {
		t.Fatalf("network %q from %s, want usernet", e.m.NetworkName(), e.m.ConfigFile())
	}
	if _, err := os.Stat(filepath.Join(e.cfg.ConfDir, DefaultConfFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("default conflist written although a user config exists: %v", err)
	}
	a := e.setup(t, "a")
	// The user's list ran as written (no trimming) though a has no ports.
	if cached := e.cachedConfig(t, a); string(cached) != string(e.m.list.Bytes) {
		t.Errorf("ADD used %s, want the user's list", cached)
	}
	_, n, _ := net.ParseCIDR(userCIDR)
	if !n.Contains(net.ParseIP(ipOf(t, a.res.IPs[0]))) {
		t.Errorf("IP %s not in the user's subnet %s", a.res.IPs[0], userCIDR)
	}
	e.do(t, e.host, func() error {
		_, err := netlink.LinkByName(userBridge)
		return err
	})
}

// TestHostPort: a hostPort on the host's address reaches the pod's
// containerPort from another netns (7).
func TestHostPort(t *testing.T) {
	e := newEnv(t, nil)
	client := e.peer(t, "cli", "192.168.78.1/24", "192.168.78.2/24", nil)
	a := e.setup(t, "a", PortMapping{HostPort: 18080, ContainerPort: 80, Protocol: "TCP"})
	e.serve(t, a.ns, ":80")
	seen, err := dial(client, "192.168.78.1:18080")
	if err != nil {
		t.Fatalf("client -> host:18080: %v", err)
	}
	if seen != "192.168.78.2" {
		t.Errorf("pod saw %s, want the client's 192.168.78.2", seen)
	}
	// Hairpin: the pod reaches itself through the host port.
	if _, err := dial(a.ns, "192.168.78.1:18080"); err != nil {
		t.Errorf("pod -> own hostPort: %v", err)
	}
	e.teardown(t, a, a.ns)
	if _, err := dial(client, "192.168.78.1:18080"); err == nil {
		t.Error("hostPort still forwarded after Teardown")
	}
	if save := e.iptablesSave(t, e.host); strings.Contains(save, a.id) || len(perPodChains(save)) > 0 {
		t.Errorf("rules left after teardown:\n%s", save)
	}
}

// TestSetupFailureLeaksNothing: a failing plugin makes Setup fail and roll
// back the IP and veth it got.
func TestSetupFailureLeaksNothing(t *testing.T) {
	e := newEnv(t, func(e *testEnv, c *Config) {
		conf := `{"cniVersion":"1.0.0","name":"broken","plugins":[{"type":"bridge","bridge":"` + c.BridgeName +
			`","isGateway":true,"ipam":{"type":"host-local","subnet":"` + c.PodCIDR + `","dataDir":"` + c.IPAMDataDir +
			`"}},{"type":"no-such-plugin"}]}`
		if err := os.MkdirAll(c.ConfDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(c.ConfDir, "00-broken.conflist"), []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	ns := e.newNS(t, "a")
	err := netns.Do(e.host, func() error {
		_, err := e.m.Setup(context.Background(), "fail1", ns, PodInfo{Name: "a"})
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "no-such-plugin") {
		t.Fatalf("Setup error = %v, want one naming no-such-plugin", err)
	}
	ips, _ := filepath.Glob(filepath.Join(e.cfg.IPAMDataDir, "broken", "10.*"))
	if len(ips) > 0 {
		t.Errorf("IPs leaked: %v", ips)
	}
	e.do(t, ns, func() error {
		if _, err := netlink.LinkByName("eth0"); err == nil {
			t.Error("eth0 leaked")
		}
		return nil
	})
	var out []byte
	e.do(t, e.host, func() error {
		var err error
		out, err = exec.Command("ip", "-o", "link", "show", "type", "veth").Output()
		return err
	})
	if len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("veth leaked:\n%s", out)
	}
}

// TestConcurrentSetup: pods set up and torn down in parallel (as per-pod
// workers do) get distinct IPs, with ClusterCIDR rules installed once.
func TestConcurrentSetup(t *testing.T) {
	e := newEnv(t, func(e *testEnv, c *Config) { c.ClusterCIDR = "10." + itoa(e.octet) + ".0.0/16" })
	const n = 6
	ns := make([]string, n)
	for i := range ns {
		ns[i] = e.newNS(t, "c"+itoa(i))
	}
	ips := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = netns.Do(e.host, func() error {
				r, err := e.m.Setup(context.Background(), "c"+itoa(i), ns[i], PodInfo{Name: "c" + itoa(i)})
				if err == nil {
					ips[i] = r.IPs[0]
				}
				return err
			})
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Errorf("setup %d: %v", i, errs[i])
		}
		if seen[ips[i]] {
			t.Errorf("IP %s given twice", ips[i])
		}
		seen[ips[i]] = true
	}
	if save := e.iptablesSave(t, e.host); strings.Count(save, "-j "+masqChainPrefix) != 1 {
		t.Errorf("want one jump to %s:\n%s", masqChainPrefix, save)
	}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = netns.Do(e.host, func() error {
				return e.m.Teardown(context.Background(), "c"+itoa(i), ns[i], PodInfo{Name: "c" + itoa(i)})
			})
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("teardown %d: %v", i, errs[i])
		}
	}
	left, _ := filepath.Glob(filepath.Join(e.cfg.IPAMDataDir, e.m.NetworkName(), "10.*"))
	if len(left) > 0 {
		t.Errorf("IPs left: %v", left)
	}
}
