package spec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/peapod/peapod/internal/testutil"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// removeCgroup removes the (empty) cgroup at path from every hierarchy
// mounted under /sys/fs/cgroup, v1 controllers and the unified one alike.
func removeCgroup(t *testing.T, path string) {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", path))
	if err != nil {
		t.Error(err)
	}
	for _, d := range dirs {
		if err := os.Remove(d); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("remove cgroup %s: %v", d, err)
		}
	}
}

// makeRootfs builds a minimal rootfs: a copy of /bin/busybox with the
// applets the test uses as symlinks, and /etc/passwd and /etc/group.
func makeRootfs(t *testing.T, dir string) {
	t.Helper()
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.Open("/bin/busybox")
	if err != nil {
		testutil.Missing(t, "busybox-static: %v", err)
	}
	defer src.Close()
	dst, err := os.OpenFile(filepath.Join(bin, "busybox"), os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"sh", "id", "grep", "cat", "touch", "hostname", "echo", "wc", "head", "readlink"} {
		if err := os.Symlink("busybox", filepath.Join(bin, a)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
		"etc/group":  "root:x:0:\napp:x:1000:\nvideo:x:44:app\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// runContainer builds the spec for in, writes a bundle and runs it in the
// foreground with the given OCI runtime. It returns the combined output and
// the container's exit code; the container, its state and its cgroup are
// removed in cleanup.
func runContainer(t *testing.T, runtime string, in Input, id string) (string, int) {
	t.Helper()
	s, err := Build(in)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	bundle, err := os.MkdirTemp("", "pp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(bundle) })
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(bundle, "state")
	t.Cleanup(func() {
		out, err := exec.Command(runtime, "--root", state, "delete", "-f", id).CombinedOutput()
		if err != nil && !strings.Contains(string(out), "does not exist") && !strings.Contains(string(out), "not found") {
			t.Logf("%s delete: %v: %s", runtime, err, out)
		}
		removeCgroup(t, in.CgroupsPath)
	})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, runtime, "--root", state, "run", "--bundle", bundle, id)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &exit) && ctx.Err() == nil:
		return out.String(), exit.ExitCode()
	default:
		t.Fatalf("%s run: %v: %s", runtime, err, out.String())
		return "", -1
	}
}

// startNamespaceHolder starts a process in new UTS, IPC and network
// namespaces with the given hostname, standing in for pause, and returns its
// pid. It is killed in cleanup.
func startNamespaceHolder(t *testing.T, hostname string) int {
	t.Helper()
	cmd := exec.Command("unshare", "--uts", "--ipc", "--net", "/bin/busybox", "sh", "-c",
		"/bin/busybox hostname "+hostname+" && echo ready && exec /bin/busybox sleep 300")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start namespace holder: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	buf := make([]byte, 6)
	if _, err := io.ReadFull(stdout, buf); err != nil || string(buf) != "ready\n" {
		t.Fatalf("namespace holder not ready: %q %v", buf, err)
	}
	return cmd.Process.Pid
}

// nsLinks returns the uts, ipc and net namespace links of pid.
func nsLinks(t *testing.T, pid int) []string {
	var out []string
	for _, ns := range []string{"uts", "ipc", "net"} {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, l)
	}
	return out
}

// hostCapBnd returns this process's "CapBnd:\t..." status line.
func hostCapBnd(t *testing.T) string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "CapBnd:") {
			return l
		}
	}
	t.Fatal("no CapBnd")
	return ""
}

// TestRuntimeRunsSpec runs built specs with the real runc and crun and checks
// from inside the container that user, capabilities, seccomp, read-only
// rootfs, mounts, hostname, env and cgroup limits took effect.
func TestRuntimeRunsSpec(t *testing.T) {
	testutil.RequiresRoot(t)
	top, err := os.MkdirTemp("", "pp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(top) })
	rootfs := filepath.Join(top, "rootfs")
	makeRootfs(t, rootfs)
	hosts := filepath.Join(top, "hosts")
	if err := os.WriteFile(hosts, []byte("127.0.0.1 localhost\n10.1.2.3 web\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	shm := filepath.Join(top, "shm")
	vol := filepath.Join(top, "vol")
	for _, d := range []string{shm, vol} {
		if err := os.Mkdir(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	cgroupParent := "/peapod-spectest"
	t.Cleanup(func() { removeCgroup(t, cgroupParent) })

	holder := startNamespaceHolder(t, "podhost")
	cases := []struct {
		name     string
		script   string
		mutate   func(*Input)
		want     []string // lines expected in the output
		wantExit int
	}{
		{
			name:   "root defaults",
			script: "id -u; grep -E '^(CapEff|CapBnd|CapInh|CapAmb|NoNewPrivs|Seccomp):' /proc/1/status; hostname; echo HOST=$HOSTNAME FOO=$FOO",
			mutate: func(in *Input) {
				in.Container.Env = []corev1.EnvVar{fieldEnv("POD", "metadata.name"), {Name: "FOO", Value: "$(POD)!"}}
			},
			want: []string{"0", "CapEff:\t00000000a80425fb", "CapBnd:\t00000000a80425fb", "CapInh:\t0000000000000000",
				"CapAmb:\t0000000000000000", "NoNewPrivs:\t0", "Seccomp:\t2", "web", "HOST=web FOO=web!"},
		},
		{
			name:   "runAsUser with groups",
			script: "id -u; id -g; id -G; grep -E '^(CapEff|CapBnd|NoNewPrivs):' /proc/1/status",
			mutate: func(in *Input) {
				in.Pod.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: ptr[int64](1000), SupplementalGroups: []int64{4000}, FSGroup: ptr[int64](2000)}
				in.Container.SecurityContext = &corev1.SecurityContext{AllowPrivilegeEscalation: ptr(false)}
			},
			// The spec lists the default set for any user, but with an empty
			// ambient set the kernel clears a non-root process's effective
			// and permitted sets at execve; the bounding set remains.
			want: []string{"1000", "1000", "1000 44 2000 4000", "CapEff:\t0000000000000000", "CapBnd:\t00000000a80425fb", "NoNewPrivs:\t1"},
		},
		{
			name:   "image user by name, runAsNonRoot",
			script: "id -u; id -g",
			mutate: func(in *Input) {
				in.Image.User = "app"
				in.Container.SecurityContext = &corev1.SecurityContext{RunAsNonRoot: ptr(true), RunAsGroup: ptr[int64](3000)}
			},
			want: []string{"1000", "3000"},
		},
		{
			name:   "capability drop ALL add NET_BIND_SERVICE",
			script: "grep -E '^(CapEff|CapBnd|CapPrm):' /proc/1/status",
			mutate: func(in *Input) {
				in.Container.SecurityContext = &corev1.SecurityContext{Capabilities: &corev1.Capabilities{
					Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"CAP_NET_BIND_SERVICE", "sys_time"}}}
			},
			want: []string{"CapPrm:\t0000000002000400", "CapEff:\t0000000002000400", "CapBnd:\t0000000002000400"},
		},
		{
			name: "read-only rootfs and mounts",
			script: "touch /x 2>/dev/null && echo root-writable || echo root-readonly; " +
				"touch /sys/x 2>&1 | grep -q Read-only && echo sys-ro || echo sys-not-ro; " +
				"touch /dev/shm/x && echo shm-writable; touch /vol/x && echo vol-writable; " +
				"touch /etc/hosts 2>/dev/null && echo hosts-writable || echo hosts-readonly; " +
				"grep web /etc/hosts; wc -c < /proc/timer_list; exit 3",
			mutate: func(in *Input) {
				in.Container.SecurityContext = &corev1.SecurityContext{ReadOnlyRootFilesystem: ptr(true)}
				in.Mounts = []Mount{{HostPath: vol, ContainerPath: "/vol"}}
			},
			want:     []string{"root-readonly", "sys-ro", "shm-writable", "vol-writable", "hosts-readonly", "10.1.2.3 web", "0"},
			wantExit: 3,
		},
		{
			name: "cgroup limits",
			script: "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us " +
				"/sys/fs/cgroup/cpu/cpu.cfs_period_us /sys/fs/cgroup/cpu/cpu.shares",
			mutate: func(in *Input) {
				in.Container.Resources = corev1.ResourceRequirements{
					Limits:   corev1.ResourceList{"cpu": resource.MustParse("500m"), "memory": resource.MustParse("64Mi")},
					Requests: corev1.ResourceList{"cpu": resource.MustParse("250m")},
				}
			},
			want: []string{"67108864", "50000", "100000", "256"},
		},
		{
			// Join namespaces held by another process, as containers join
			// pause's: the hostname is the one set there, not spec.hostname.
			name:   "joined namespaces",
			script: "hostname; for n in uts ipc net; do readlink /proc/self/ns/$n; done",
			mutate: func(in *Input) {
				in.Namespaces = SandboxNamespaces{
					Net: fmt.Sprintf("/proc/%d/ns/net", holder),
					IPC: fmt.Sprintf("/proc/%d/ns/ipc", holder),
					UTS: fmt.Sprintf("/proc/%d/ns/uts", holder),
				}
			},
			want: append([]string{"podhost"}, nsLinks(t, holder)...),
		},
		{
			name: "privileged",
			script: "grep -E '^(Seccomp|CapBnd):' /proc/1/status; head -c 10 /proc/timer_list | wc -c; " +
				"touch /sys/x 2>&1 | grep -q Read-only && echo sys-ro || echo sys-not-ro",
			mutate: func(in *Input) {
				in.Container.SecurityContext = &corev1.SecurityContext{Privileged: ptr(true)}
			},
			want: []string{"Seccomp:\t0", hostCapBnd(t), "10", "sys-not-ro"},
		},
	}
	hostCaps, err := CurrentCapabilities()
	if err != nil {
		t.Fatal(err)
	}
	for _, runtime := range []string{"runc", "crun"} {
		if _, err := exec.LookPath(runtime); err != nil {
			// Not a silent pass with no subtests: each runtime the README
			// promises runs every case.
			t.Run(runtime, func(t *testing.T) { testutil.Missing(t, "runtime %s not installed: %v", runtime, err) })
			continue
		}
		for i, tc := range cases {
			t.Run(runtime+"/"+tc.name, func(t *testing.T) {
				in := testInput()
				in.Rootfs = rootfs
				in.Namespaces = SandboxNamespaces{}
				in.Image = ImageConfig{Env: []string{"PATH=/bin"}}
				in.Passwd, _ = os.ReadFile(filepath.Join(rootfs, "etc/passwd"))
				in.Group, _ = os.ReadFile(filepath.Join(rootfs, "etc/group"))
				in.EtcHosts, in.ShmDir = hosts, shm
				in.DefaultRlimitNofile = 1024
				in.HostCapabilities = hostCaps
				in.Container.Command = []string{"/bin/sh", "-c", tc.script}
				id := fmt.Sprintf("spectest-%d-%s-%d", os.Getpid(), runtime, i)
				in.CgroupsPath = cgroupParent + "/" + id
				if tc.mutate != nil {
					tc.mutate(&in)
				}
				out, code := runContainer(t, runtime, in, id)
				if code != tc.wantExit {
					t.Fatalf("exit %d, want %d; output:\n%s", code, tc.wantExit, out)
				}
				lines := map[string]bool{}
				for _, l := range strings.Split(out, "\n") {
					lines[strings.TrimSpace(l)] = true
				}
				for _, w := range tc.want {
					if !lines[strings.TrimSpace(w)] {
						t.Errorf("output lacks line %q; output:\n%s", w, out)
					}
				}
			})
		}
	}
}
