package cluster

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/peapod/peapod/internal/leakcheck"
	"github.com/peapod/peapod/internal/network/netns"
	"github.com/peapod/peapod/internal/testutil"
)

// TestUnderlayAndNodeProcesses builds the underlay and two node
// namespaces as Up does (without peapod processes): the host and the
// nodes reach each other, a process started for a node is in the node's
// network namespace and in the host's mount namespace, disconnect cuts a
// node off, stopping and the sweep of a namespace's processes work, an
// etcd member runs in its own namespace with TLS and client certificates
// and is stopped and started as nodes are, and teardown leaves nothing
// (the member's data and the etcd PKI included), twice over.
func TestUnderlayAndNodeProcesses(t *testing.T) {
	testutil.RequiresRoot(t)
	ctx := context.Background()
	const name = "ktest"
	opts := leakcheck.Options{
		NetNSLinks:   []string{netnsPrefix + name},
		RuleMatches:  []string{"peapod cluster " + name},
		ProcessNames: []string{"sleep", "etcd"},
		CgroupNames:  []string{cgroupRoot},
	}
	before, err := leakcheck.Take(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { leakcheck.Check(t, before, opts, 5*time.Second) })

	dir := filepath.Join(t.TempDir(), name)
	if err := prepareDir(dir); err != nil {
		t.Fatal(err)
	}
	st := &State{Name: name, Dir: dir, Binary: "/bin/true", ClusterCIDR: DefaultClusterCIDR}
	if err := st.save(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := os.Stat(statePath(dir)); err == nil {
			if err := teardown(context.Background(), st, time.Second, io.Discard); err != nil {
				t.Errorf("teardown: %v", err)
			}
		}
	})
	if err := makeUnderlay(ctx, st, "", 2, 1); err != nil {
		t.Fatal(err)
	}
	for i, role := range []string{"server", "agent"} {
		if _, err := st.makeNode(i+1, role, nil); err != nil {
			t.Fatal(err)
		}
	}
	n1, n2 := &st.Nodes[0], &st.Nodes[1]

	// A second cluster of the same name is refused, and its cleanup
	// leaves the first one's bridge and namespaces alone.
	dir2 := filepath.Join(t.TempDir(), name)
	if err := prepareDir(dir2); err != nil {
		t.Fatal(err)
	}
	st2 := &State{Name: name, Dir: dir2, Binary: "/bin/true", ClusterCIDR: DefaultClusterCIDR}
	if err := makeUnderlay(ctx, st2, "", 1, 0); err == nil || !strings.Contains(err.Error(), "already runs on this machine") {
		t.Errorf("second cluster %s: %v, want refused", name, err)
	}
	if err := teardown(ctx, st2, time.Second, io.Discard); err != nil {
		t.Errorf("teardown of the refused cluster: %v", err)
	}
	if !linkExists(st.Bridge) || !netns.Exists(n1.NetNS) {
		t.Fatal("tearing down the refused cluster removed the running one's bridge or namespace")
	}

	// A listener in node 2's namespace: its socket stays there.
	var ln net.Listener
	if err := netns.Do(n2.NetNS, func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(n2.Address, "0"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	dial := func(fromNode *Node) error {
		d := func() error {
			c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second)
			if err == nil {
				c.Close()
			}
			return err
		}
		if fromNode == nil {
			return d()
		}
		return netns.Do(fromNode.NetNS, d)
	}
	if err := dial(nil); err != nil {
		t.Errorf("host to node 2: %v", err)
	}
	if err := dial(n1); err != nil {
		t.Errorf("node 1 to node 2 over the bridge: %v", err)
	}

	if err := (&Cluster{State: st}).Disconnect(n2.Name); err != nil {
		t.Fatal(err)
	}
	if n2.LinkState() != "disconnected" {
		t.Errorf("link state %q after disconnect", n2.LinkState())
	}
	if err := dial(nil); err == nil {
		t.Error("host reached disconnected node 2")
	}
	if err := (&Cluster{State: st}).Connect(n2.Name); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() error { return dial(nil) })

	// A node process: node 2's network namespace, the host's mount namespace, its own session.
	n2.Args = []string{"1000"}
	st.Binary = "/bin/sleep"
	if err := st.startNode(n2); err != nil {
		t.Fatal(err)
	}
	st.Binary = "/bin/true"
	if !n2.running() || n2.ProcessState() == "stopped" {
		t.Fatalf("started process %d not running", n2.PID)
	}
	sameNS := func(a, b string) bool {
		var sa, sb syscall.Stat_t
		return syscall.Stat(a, &sa) == nil && syscall.Stat(b, &sb) == nil && sa.Ino == sb.Ino && sa.Dev == sb.Dev
	}
	proc := func(f string) string { return filepath.Join("/proc", strconv.Itoa(n2.PID), "ns", f) }
	if !sameNS(proc("net"), n2.NetNS) {
		t.Error("node process is not in the node's network namespace")
	}
	if !sameNS(proc("mnt"), "/proc/self/ns/mnt") {
		t.Error("node process is not in the host's mount namespace")
	}
	if sid, err := unix.Getsid(n2.PID); err != nil || sid != n2.PID {
		t.Errorf("node process session %d (%v), want its own (%d)", sid, err, n2.PID)
	}
	if err := n2.stopProcess(ctx, syscall.SIGTERM, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if n2.running() {
		t.Error("process runs after stopProcess")
	}
	if err := n2.stopProcess(ctx, syscall.SIGTERM, time.Second); err != nil {
		t.Errorf("stopping a stopped process: %v", err)
	}

	// A process nobody recorded is swept with its namespace.
	stray := exec.Command("/bin/sleep", "1000")
	if err := netns.Do(n1.NetNS, stray.Start); err != nil {
		t.Fatal(err)
	}
	if err := killProcessesIn(ctx, n1.NetNS); err != nil {
		t.Fatal(err)
	}
	if err := stray.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("stray process: %v, want killed", err)
	}

	// An external etcd of one member, on the underlay.
	if _, err := st.makeEtcdMember(1); err != nil {
		t.Fatal(err)
	}
	st.EtcdPKI = filepath.Join(dir, etcdPKIDirName)
	if err := writeEtcdPKI(st.EtcdPKI, st.Etcd); err != nil {
		t.Fatal(err)
	}
	if err := startEtcd(ctx, st); err != nil {
		t.Fatal(err)
	}
	member := &st.Etcd[0]
	var memberNS syscall.Stat_t
	if err := syscall.Stat(filepath.Join("/proc", strconv.Itoa(member.PID), "ns", "net"), &memberNS); err != nil {
		t.Fatal(err)
	}
	var pinned syscall.Stat_t
	if err := syscall.Stat(member.NetNS, &pinned); err != nil || pinned.Ino != memberNS.Ino {
		t.Error("etcd does not run in its member's namespace")
	}
	files, _ := st.EtcdClientTLS()
	if err := etcdAnswers(ctx, member.ClientURL(), EtcdTLS{CAFile: files.CAFile}); err == nil {
		t.Error("etcd answered a client without a certificate")
	}
	c := &Cluster{State: st}
	if err := c.StopNode(ctx, member.Name, syscall.SIGKILL, 0); err != nil {
		t.Fatal(err)
	}
	if err := etcdAnswers(ctx, member.ClientURL(), files); err == nil {
		t.Error("a stopped member answered")
	}
	started, err := c.StartNode(member.Name)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := c.WaitReady(wctx, started, member.Name); err != nil {
		t.Fatalf("member after restart: %v", err)
	}

	ln.Close() // its socket would keep node 2's namespace alive
	if err := teardown(ctx, st, time.Second, io.Discard); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s after teardown: %v", dir, err)
	}
	if linkExists(etcdHostVeth(name, 1)) || netns.Exists(filepath.Join(netns.DefaultDir, netnsName(EtcdMemberName(name, 1)))) {
		t.Error("the etcd member's veth or namespace survived teardown")
	}
	if err := Down(ctx, dir, time.Second, io.Discard); err != nil {
		t.Errorf("Down after teardown: %v", err)
	}
}

func waitFor(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
