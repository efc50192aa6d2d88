package oci_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/peapod/peapod/internal/runtime/oci"
	"github.com/peapod/peapod/internal/runtime/pause"
	"github.com/peapod/peapod/internal/testutil"
)

func tempDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "pp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// runtimes returns the handlers to test. Each must be usable: one that
// CheckUsable refuses fails the test under PEAPOD_REQUIRE_ROOT=1 (in newPod),
// naming the reason, and skips it otherwise.
func runtimes(t *testing.T) map[string]string {
	return map[string]string{"runc": "/usr/sbin/runc", "crun": "/usr/bin/crun"}
}

// pod is a pause process in a fresh netns, torn down on cleanup.
type pod struct {
	dir   string
	netns string
	proc  *pause.Process
	c     *pause.Client
	rt    *oci.Runtime
}

func newPod(t *testing.T, handler, binary string, sharePID bool) *pod {
	t.Helper()
	if err := oci.CheckUsable(handler, binary); err != nil {
		// The README promises runc and crun; `make setup` installs both
		// and gives crun the cgroup layout it needs.
		testutil.Missing(t, "runtime %s not usable here: %v", handler, err)
	}
	p := &pod{dir: tempDir(t)}
	p.rt = &oci.Runtime{Handler: handler, Binary: binary, Root: filepath.Join(p.dir, "oci", handler)}
	name := fmt.Sprintf("pptest-oci-%d-%s", os.Getpid(), strconv.FormatInt(time.Now().UnixNano()%1e9, 36))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	p.netns = "/run/netns/" + name
	bin := filepath.Join(p.dir, "pause")
	if err := pause.Install(bin); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	proc, err := pause.Start(ctx, pause.StartOptions{Binary: bin, Dir: p.dir, NetNSPath: p.netns, Hostname: "podhost", SharePID: sharePID})
	if err != nil {
		t.Fatal(err)
	}
	p.proc = proc
	p.rt.Shim = bin
	t.Cleanup(func() {
		if err := pause.Stop(context.Background(), *proc, p.dir); err != nil {
			t.Errorf("stop pause: %v", err)
		}
	})
	p.c = pause.Dial(p.dir)
	return p
}

var applets = []string{"sh", "echo", "cat", "sleep", "hostname", "ps", "stty", "tty", "ls", "readlink", "true"}

// bundle writes a minimal bundle for id running args, joining the pod's
// net/ipc/uts (and pid, with sharePID) namespaces by path.
func (p *pod) bundle(t *testing.T, id string, args ...string) string {
	t.Helper()
	b := filepath.Join(p.dir, "ctr-"+id)
	rootfs := filepath.Join(b, "rootfs")
	if err := os.MkdirAll(filepath.Join(rootfs, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range applets {
		if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	ns := func(typ specs.LinuxNamespaceType, name string) specs.LinuxNamespace {
		return specs.LinuxNamespace{Type: typ, Path: fmt.Sprintf("/proc/%d/ns/%s", p.proc.PID, name)}
	}
	pidNS := specs.LinuxNamespace{Type: specs.PIDNamespace}
	if p.proc.PIDNamespacePID != 0 {
		pidNS.Path = fmt.Sprintf("/proc/%d/ns/pid", p.proc.PIDNamespacePID)
	}
	spec := specs.Spec{
		Version: "1.0.2", // crun 1.8.1 rejects newer ociVersions
		Root:    &specs.Root{Path: rootfs},
		Process: &specs.Process{
			Args: args, Cwd: "/", Env: []string{"PATH=/bin"},
			NoNewPrivileges: true,
		},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
		},
		Linux: &specs.Linux{
			CgroupsPath: "/peapod-test/" + id,
			Namespaces: []specs.LinuxNamespace{
				ns(specs.NetworkNamespace, "net"), ns(specs.IPCNamespace, "ipc"), ns(specs.UTSNamespace, "uts"),
				pidNS, {Type: specs.MountNamespace},
			},
		},
	}
	cfg, err := json.MarshalIndent(spec, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b, "config.json"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

// ctr is one launched container.
type ctr struct {
	id, bundle, log, exit, pidFile, rtLog string
	pid                                   int
}

// launch runs a container through pause with the runtime's `run -d`; it is
// force-deleted and its cgroups removed on cleanup.
func (p *pod) launch(t *testing.T, id string, args ...string) *ctr {
	t.Helper()
	id = fmt.Sprintf("%s-%s-%d", id, p.rt.Handler, os.Getpid())
	c := &ctr{id: id, bundle: p.bundle(t, id, args...)}
	c.log = filepath.Join(c.bundle, "ctr.log")
	c.exit = filepath.Join(c.bundle, "exit")
	c.pidFile = filepath.Join(c.bundle, "pid")
	c.rtLog = filepath.Join(c.bundle, "runtime.json")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.rt.Delete(ctx, id, true); err != nil {
			t.Errorf("cleanup delete %s: %v", id, err)
		}
		removeCgroups(id)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pid, err := p.c.Launch(ctx, pause.LaunchRequest{
		ID: id, Argv: p.rt.RunArgs(id, c.bundle, c.pidFile, c.rtLog),
		LogPath: c.log, ExitPath: c.exit, PIDPath: c.pidFile, RuntimeLogPath: c.rtLog,
	})
	if err != nil {
		t.Fatal(err)
	}
	c.pid = pid
	return c
}

// removeCgroups removes /sys/fs/cgroup/*/peapod-test/<id> and, if empty,
// peapod-test itself.
func removeCgroups(id string) {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/peapod-test")
	for _, d := range dirs {
		_ = os.Remove(filepath.Join(d, id))
		_ = os.Remove(d)
	}
}

func waitExit(t *testing.T, path string) *pause.ExitStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	es, err := pause.WaitExit(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	return es
}
