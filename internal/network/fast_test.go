package network

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/peapod/peapod/internal/network/netns"
)

// TestPortmapOnlyWithHostPorts: with peapod's default list, a pod without
// host ports is added without portmap and one with host ports with it;
// Check and Teardown use what the ADD used (config and port mappings from
// libcni's cache), even when called without the pod's port mappings.
func TestPortmapOnlyWithHostPorts(t *testing.T) {
	e := newEnv(t, nil)
	client := e.peer(t, "cli", "192.168.79.1/24", "192.168.79.2/24", nil)
	a := e.setup(t, "a")
	b := e.setup(t, "b", PortMapping{HostPort: 18082, ContainerPort: 80})
	if got := e.cachedConfig(t, a); string(got) != string(e.m.noPorts.Bytes) || strings.Contains(string(got), "portmap") {
		t.Errorf("pod without ports added with %s", got)
	}
	if got := e.cachedConfig(t, b); string(got) != string(e.m.list.Bytes) || !strings.Contains(string(got), "portmap") {
		t.Errorf("pod with ports added with %s", got)
	}
	e.serve(t, b.ns, ":80")
	if _, err := dial(client, "192.168.79.1:18082"); err != nil {
		t.Fatalf("client -> hostPort: %v", err)
	}
	noPorts := b.info
	noPorts.PortMappings = nil
	e.do(t, e.host, func() error { return e.m.Check(context.Background(), a.id, a.ns, noPorts) })
	// Debian's portmap 1.1.1 fails CHECK of any IPv4-only pod with host
	// ports when ip6tables works ("could not check ipv6 dnat"): that
	// error, from portmap's DNAT check, still shows that CHECK used the
	// cached mappings.
	err := netns.Do(e.host, func() error { return e.m.Check(context.Background(), b.id, b.ns, noPorts) })
	if err != nil && !strings.Contains(err.Error(), "ipv6 dnat") {
		t.Errorf("Check of the pod with host ports: %v", err)
	}
	e.do(t, e.host, func() error { return e.m.Teardown(context.Background(), b.id, b.ns, noPorts) })
	if _, err := dial(client, "192.168.79.1:18082"); err == nil {
		t.Error("hostPort still forwarded after Teardown without the pod's port mappings")
	}
	if save := e.iptablesSave(t, e.host); strings.Contains(save, b.id) {
		t.Errorf("rules of %s left after teardown:\n%s", b.id, save)
	}
	e.teardown(t, a, a.ns)
	left, _ := filepath.Glob(filepath.Join(e.cfg.IPAMDataDir, e.m.NetworkName(), "10.*"))
	cached, _ := filepath.Glob(filepath.Join(e.cfg.CacheDir, "results", "*"))
	if len(left) > 0 || len(cached) > 0 {
		t.Errorf("left behind: IPs %v, cache %v", left, cached)
	}
}

// TestMasqueradeOncePerManager: the ClusterCIDR rules are installed by
// the first Setup, retried by the next Setup after a failure, not
// re-checked by later Setups, and re-installed by a new Manager.
func TestMasqueradeOncePerManager(t *testing.T) {
	e := newEnv(t, func(e *testEnv, c *Config) { c.ClusterCIDR = "10." + itoa(e.octet) + ".0.0/16" })
	jumps := func() int { return strings.Count(e.iptablesSave(t, e.host), "-j "+masqChainPrefix) }

	// No iptables on PATH: the first Setup fails and leaks nothing.
	path := os.Getenv("PATH")
	t.Setenv("PATH", t.TempDir()) // restores PATH on cleanup
	ns := e.newNS(t, "f")
	err := netns.Do(e.host, func() error {
		_, err := e.m.Setup(context.Background(), "fail-masq", ns, PodInfo{Name: "f"})
		return err
	})
	if err == nil || !strings.Contains(err.Error(), masqChainPrefix) {
		t.Fatalf("Setup without iptables: %v", err)
	}
	if ips, _ := filepath.Glob(filepath.Join(e.cfg.IPAMDataDir, e.m.NetworkName(), "10.*")); len(ips) > 0 {
		t.Errorf("IPs leaked: %v", ips)
	}
	os.Setenv("PATH", path)

	e.setup(t, "a")
	if n := jumps(); n != 1 {
		t.Fatalf("%d jumps to %s after the retry, want 1", n, masqChainPrefix)
	}
	// Once installed, later Setups do not look again.
	e.do(t, e.host, func() error {
		return exec.Command("iptables", "-w", "-t", "nat", "-D", "POSTROUTING", "-s", e.cfg.PodCIDR,
			"-m", "comment", "--comment", masqJumpComment, "-j", masqChain(e.cfg.ClusterCIDR)).Run()
	})
	e.setup(t, "b")
	if n := jumps(); n != 0 {
		t.Errorf("%d jumps after a later Setup, want 0 (ensured once per Manager)", n)
	}
	// A new Manager (peapod restart) installs them again.
	m2, err := New(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.m = m2
	e.setup(t, "c")
	if n := jumps(); n != 1 {
		t.Errorf("%d jumps after a new Manager's Setup, want 1", n)
	}
}

// TestLegacyLoopbackTeardown: a "cni-loopback" network cached by an
// earlier peapod (which ran the loopback plugin) is deleted by Teardown.
func TestLegacyLoopbackTeardown(t *testing.T) {
	e := newEnv(t, nil)
	a := e.setup(t, "a")
	lrt := loopbackRuntimeConf(a.id, a.ns)
	e.do(t, e.host, func() error {
		_, err := e.m.cni.AddNetworkList(context.Background(), e.m.loopback, lrt)
		return err
	})
	if b, _, err := e.m.cni.GetNetworkListCachedConfig(e.m.loopback, lrt); err != nil || b == nil {
		t.Fatalf("loopback not cached: %v", err)
	}
	e.teardown(t, a, a.ns)
	if cached, _ := filepath.Glob(filepath.Join(e.cfg.CacheDir, "results", "*")); len(cached) > 0 {
		t.Errorf("cache left: %v", cached)
	}
}
