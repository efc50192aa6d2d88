package network

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/peapod/peapod/internal/testutil"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/peapod/peapod/internal/network/netns"
)

// testEnv is one throwaway "host" network namespace with a Manager whose
// bridge, IPAM, cache and conf dirs are private to the test.
type testEnv struct {
	dir  string // temp root; netns pins live in dir/ns
	host string // the "host" netns path
	cfg  Config
	m    *Manager
	// octet makes this test's addresses unique: 10.<octet>.x.y.
	octet int
}

// newEnv creates a test host netns and a Manager for it. mutate, if not
// nil, adjusts the Config before New.
func newEnv(t testing.TB, mutate func(e *testEnv, c *Config)) *testEnv {
	t.Helper()
	testutil.RequiresRoot(t)
	dir, err := os.MkdirTemp("", "pp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = unix.Unmount(filepath.Join(dir, "ns"), unix.MNT_DETACH)
		_ = os.RemoveAll(dir)
	})
	e := &testEnv{dir: dir, octet: 100 + rand.IntN(150)}
	e.host = e.newNS(t, "host")
	e.do(t, e.host, func() error { return linkUp("lo") })
	e.cfg = Config{
		ConfDir:     filepath.Join(dir, "net.d"),
		CacheDir:    filepath.Join(dir, "cache"),
		IPAMDataDir: filepath.Join(dir, "networks"),
		BridgeName:  fmt.Sprintf("ppt%x", rand.Uint32()),
		PodCIDR:     fmt.Sprintf("10.%d.1.0/24", e.octet),
	}
	if mutate != nil {
		mutate(e, &e.cfg)
	}
	e.m, err = New(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// newNS creates a netns pinned under the env's dir, removed on cleanup.
func (e *testEnv) newNS(t testing.TB, name string) string {
	t.Helper()
	p, err := netns.New(filepath.Join(e.dir, "ns"), name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := netns.Remove(p); err != nil {
			t.Error(err)
		}
	})
	return p
}

func (e *testEnv) do(t testing.TB, ns string, fn func() error) {
	t.Helper()
	if err := netns.Do(ns, fn); err != nil {
		t.Fatal(err)
	}
}

// pod is a pod netns attached with Setup (in the host netns) and torn
// down on cleanup.
type pod struct {
	id, ns string
	info   PodInfo
	res    *Result
}

func (e *testEnv) setup(t testing.TB, name string, pms ...PortMapping) *pod {
	t.Helper()
	p := &pod{
		id:   fmt.Sprintf("%s-%x", name, rand.Uint64()),
		ns:   e.newNS(t, name),
		info: PodInfo{Namespace: "default", Name: name, UID: fmt.Sprintf("uid-%x", rand.Uint64()), PortMappings: pms},
	}
	t.Cleanup(func() {
		_ = netns.Do(e.host, func() error { return e.m.Teardown(context.Background(), p.id, p.ns, p.info) })
	})
	e.do(t, e.host, func() error {
		var err error
		p.res, err = e.m.Setup(context.Background(), p.id, p.ns, p.info)
		return err
	})
	return p
}

func (e *testEnv) teardown(t testing.TB, p *pod, nsPath string) {
	t.Helper()
	e.do(t, e.host, func() error { return e.m.Teardown(context.Background(), p.id, nsPath, p.info) })
}

// iptablesSave returns iptables-save output of the netns.
func (e *testEnv) iptablesSave(t *testing.T, ns string) string {
	t.Helper()
	var out []byte
	e.do(t, ns, func() error {
		var err error
		out, err = exec.Command("iptables-save").Output()
		return err
	})
	return string(out)
}

// perPodChains lists CNI chains other than portmap's shared ones.
func perPodChains(save string) []string {
	var out []string
	for _, l := range strings.Split(save, "\n") {
		if strings.HasPrefix(l, ":CNI-") && !strings.HasPrefix(l, ":CNI-HOSTPORT-") {
			out = append(out, strings.Fields(l)[0][1:])
		}
	}
	return out
}

func linkUp(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	return netlink.LinkSetUp(l)
}

// peer connects a new netns to the host netns with a veth pair:
// hostAddr on the host side, peerAddr on the peer's eth0, and the given
// routes (dst CIDR via gateway) in the peer.
func (e *testEnv) peer(t *testing.T, name, hostAddr, peerAddr string, routes map[string]string) string {
	t.Helper()
	ns := e.newNS(t, name)
	hostIf := "pp" + name
	e.do(t, e.host, func() error {
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: hostIf}, PeerName: hostIf + "p"}); err != nil {
			return err
		}
		a, err := netlink.ParseAddr(hostAddr)
		if err != nil {
			return err
		}
		l, err := netlink.LinkByName(hostIf)
		if err != nil {
			return err
		}
		if err := netlink.AddrAdd(l, a); err != nil {
			return err
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return err
		}
		p, err := netlink.LinkByName(hostIf + "p")
		if err != nil {
			return err
		}
		f, err := os.Open(ns)
		if err != nil {
			return err
		}
		defer f.Close()
		return netlink.LinkSetNsFd(p, int(f.Fd()))
	})
	e.do(t, ns, func() error {
		l, err := netlink.LinkByName(hostIf + "p")
		if err != nil {
			return err
		}
		if err := netlink.LinkSetName(l, "eth0"); err != nil {
			return err
		}
		a, err := netlink.ParseAddr(peerAddr)
		if err != nil {
			return err
		}
		if err := netlink.AddrAdd(l, a); err != nil {
			return err
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return err
		}
		if err := linkUp("lo"); err != nil {
			return err
		}
		for dst, gw := range routes {
			_, d, err := net.ParseCIDR(dst)
			if err != nil {
				return err
			}
			if err := netlink.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: d, Gw: net.ParseIP(gw)}); err != nil {
				return fmt.Errorf("route %s via %s: %w", dst, gw, err)
			}
		}
		return nil
	})
	return ns
}

// serve listens on addr inside ns; each connection is answered with the
// client address the server sees ("ip:port") and closed.
func (e *testEnv) serve(t *testing.T, ns, addr string) {
	t.Helper()
	var ln net.Listener
	e.do(t, ns, func() error {
		var err error
		ln, err = net.Listen("tcp4", addr)
		return err
	})
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, c.RemoteAddr().String())
			c.Close()
		}
	}()
}

// dial connects from ns to addr and returns the source IP the server saw.
func dial(ns, addr string) (string, error) {
	var seen string
	err := netns.Do(ns, func() error {
		c, err := net.DialTimeout("tcp4", addr, 3*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		b, err := io.ReadAll(c)
		if err != nil {
			return err
		}
		host, _, err := net.SplitHostPort(string(b))
		seen = host
		return err
	})
	return seen, err
}

// ipOf strips the prefix length from a CIDR address.
func ipOf(t *testing.T, cidr string) string {
	t.Helper()
	ip, _, err := net.ParseCIDR(cidr)
	if err != nil {
		t.Fatal(err)
	}
	return ip.String()
}

// cachedConfig returns the conflist bytes libcni cached for p's ADD, nil
// if none.
func (e *testEnv) cachedConfig(t testing.TB, p *pod) []byte {
	t.Helper()
	b, _, err := e.m.cni.GetNetworkListCachedConfig(e.m.list, e.m.runtimeConf(p.id, p.ns, p.info, nil))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
