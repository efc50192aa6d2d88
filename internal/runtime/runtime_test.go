package runtime

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The tutorials' two-container pod: busybox httpd serves a file from a
// shared emptyDir and a second container fetches it over localhost.
const twoContainerPod = `
apiVersion: v1
kind: Pod
metadata:
  name: multi-container-pod
spec:
  volumes:
  - name: shared-data
    emptyDir: {}
  containers:
  - name: web
    image: busybox
    command: ["httpd", "-f", "-p", "80", "-h", "/data"]
    volumeMounts:
    - name: shared-data
      mountPath: /data
  - name: client
    image: busybox
    command: ["sh", "-c", "echo hello from the pod > /data/index.html && exec sleep 3600"]
    volumeMounts:
    - name: shared-data
      mountPath: /data
`

func TestTwoContainersShareLocalhostVolumeHostnameAndIP(t *testing.T) {
	h := newHarness(t)
	pod := h.pod(twoContainerPod)
	id := h.start(pod, "")
	st := h.status(id)
	if mine, err := h.rt.PodSandboxes(h.ctx, string(pod.UID)); err != nil || len(mine) != 1 || mine[0].ID != id {
		t.Errorf("PodSandboxes = %v, %v; want just %s", mine, err, id)
	}
	if len(st.IPs) != 1 {
		t.Fatalf("pod IPs = %v, want one", st.IPs)
	}
	eventually(t, 10*time.Second, func() error {
		out, code := h.execCode(id, "client", "wget", "-q", "-O", "-", "http://localhost:80/index.html")
		if code != 0 || out != "hello from the pod" {
			return fmt.Errorf("client fetched %q (exit %d) over localhost", out, code)
		}
		return nil
	})
	for _, name := range []string{"web", "client"} {
		if got := h.exec(id, name, "hostname"); got != "multi-container-pod" {
			t.Errorf("%s: hostname = %q, want the pod's name", name, got)
		}
		addr := h.exec(id, name, "ip", "-4", "-o", "addr", "show", "eth0")
		if !strings.Contains(addr, " "+st.IPs[0]+"/") {
			t.Errorf("%s: eth0 = %q, want the pod IP %s", name, addr, st.IPs[0])
		}
	}
	if st.PausePID == 0 || !st.Alive || st.HostVeth == "" || st.NetNSPath == "" {
		t.Errorf("sandbox status lacks plumbing: %+v", st)
	}
}

const port80Pod = `
apiVersion: v1
kind: Pod
metadata:
  name: %s
spec:
  containers:
  - name: web
    image: busybox
    command: ["sh", "-c", "echo I am %s > /tmp/index.html && exec httpd -f -p 80 -h /tmp"]
    ports:
    - containerPort: 80
`

func TestPodsOnOnePortEachHaveTheirOwnIP(t *testing.T) {
	h := newHarness(t)
	a := h.start(h.pod(fmt.Sprintf(port80Pod, "pod-a", "pod-a")), "")
	b := h.start(h.pod(fmt.Sprintf(port80Pod, "pod-b", "pod-b")), "")
	ipA, ipB := h.status(a).IPs[0], h.status(b).IPs[0]
	if ipA == ipB {
		t.Fatalf("both pods got IP %s", ipA)
	}
	// Pod to pod, by IP, both ways.
	eventually(t, 10*time.Second, func() error {
		if out, code := h.execCode(a, "web", "wget", "-q", "-O", "-", "http://"+ipB+"/"); code != 0 || out != "I am pod-b" {
			return fmt.Errorf("pod-a fetched %q (exit %d) from pod-b", out, code)
		}
		if out, code := h.execCode(b, "web", "wget", "-q", "-O", "-", "http://"+ipA+"/"); code != 0 || out != "I am pod-a" {
			return fmt.Errorf("pod-b fetched %q (exit %d) from pod-a", out, code)
		}
		return nil
	})
	// Node to pod.
	client := &http.Client{Timeout: 5 * time.Second}
	for ip, want := range map[string]string{ipA: "I am pod-a", ipB: "I am pod-b"} {
		resp, err := client.Get("http://" + ip + "/")
		if err != nil {
			t.Fatalf("node to pod %s: %v", ip, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.TrimSpace(string(body)) != want {
			t.Errorf("node fetched %q from %s, want %q", body, ip, want)
		}
	}
}

// sysvshm builds the static helper that creates and finds SysV shared
// memory segments (busybox has no ipcmk) into dir.
func sysvshm(t *testing.T, dir string) {
	t.Helper()
	out, err := exec.Command("musl-gcc", "-static", "-O2", "-o", filepath.Join(dir, "sysvshm"), "testdata/sysvshm.c").CombinedOutput()
	if err != nil {
		t.Fatalf("build sysvshm: %v\n%s", err, out)
	}
}

const ipcPod = `
apiVersion: v1
kind: Pod
metadata:
  name: %s
spec:
  volumes:
  - name: tools
    hostPath:
      path: %s
      type: Directory
  containers:
  - name: one
    image: busybox
    command: ["sleep", "3600"]
    volumeMounts:
    - {name: tools, mountPath: /tools, readOnly: true}
  - name: two
    image: busybox
    command: ["sleep", "3600"]
    volumeMounts:
    - {name: tools, mountPath: /tools, readOnly: true}
`

func TestContainersOfAPodShareIPC(t *testing.T) {
	h := newHarness(t)
	tools := t.TempDir()
	sysvshm(t, tools)
	p := h.start(h.pod(fmt.Sprintf(ipcPod, "ipc-a", tools)), "")
	other := h.start(h.pod(fmt.Sprintf(ipcPod, "ipc-b", tools)), "")

	h.exec(p, "one", "sh", "-c", "echo shared > /dev/shm/note")
	if got := h.exec(p, "two", "cat", "/dev/shm/note"); got != "shared" {
		t.Errorf("second container read %q from /dev/shm", got)
	}
	if out, code := h.execCode(other, "one", "cat", "/dev/shm/note"); code == 0 {
		t.Errorf("another pod sees the /dev/shm file: %q", out)
	}

	id := h.exec(p, "one", "/tools/sysvshm", "create", "0x5eed")
	if got := h.exec(p, "two", "/tools/sysvshm", "find", "0x5eed"); got != id {
		t.Errorf("second container finds segment %q, want %q", got, id)
	}
	if out, code := h.execCode(other, "one", "/tools/sysvshm", "find", "0x5eed"); code == 0 {
		t.Errorf("another pod finds the SysV segment: %q", out)
	}
}

const sharedPIDPod = `
apiVersion: v1
kind: Pod
metadata:
  name: shared-pid
spec:
  shareProcessNamespace: true
  containers:
  - name: sleeper
    image: busybox
    command: ["sleep", "3600"]
  - name: watcher
    image: busybox
    command: ["sleep", "3601"]
`

func TestShareProcessNamespace(t *testing.T) {
	h := newHarness(t)
	id := h.start(h.pod(sharedPIDPod), "")
	ps := h.exec(id, "watcher", "ps", "-o", "args")
	if !strings.Contains(ps, "sleep 3600") {
		t.Errorf("watcher does not see sleeper's process:\n%s", ps)
	}
	// Without sharing, a container sees only its own processes.
	solo := h.start(h.pod(strings.Replace(strings.Replace(sharedPIDPod, "shareProcessNamespace: true", "shareProcessNamespace: false", 1), "shared-pid", "solo-pid", 1)), "")
	if ps := h.exec(solo, "watcher", "ps", "-o", "args"); strings.Contains(ps, "sleep 3600") {
		t.Errorf("without shareProcessNamespace, watcher sees sleeper:\n%s", ps)
	}
}

func TestKilledContainerRestartsInTheSameSandbox(t *testing.T) {
	h := newHarness(t)
	id := h.start(h.pod(fmt.Sprintf(port80Pod, "restarter", "restarter")), "")
	before := h.status(id)
	first := h.container(id, "web")
	if err := syscall.Kill(first.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st, err := h.rt.WaitContainer(h.ctx, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != ContainerExited || st.ExitCode != 137 || st.Reason != "Error" {
		t.Errorf("killed container: state %s exit %d reason %q, want Exited 137 Error", st.State, st.ExitCode, st.Reason)
	}
	cid, err := h.rt.CreateContainer(h.ctx, id, "web", ContainerOptions{Attempt: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.rt.StartContainer(h.ctx, cid); err != nil {
		t.Fatal(err)
	}
	after := h.status(id)
	if after.IPs[0] != before.IPs[0] || after.PausePID != before.PausePID {
		t.Errorf("restart changed the sandbox: IP %s→%s, pause %d→%d", before.IPs[0], after.IPs[0], before.PausePID, after.PausePID)
	}
	if c := h.container(id, "web"); c.Attempt != 1 || c.State != ContainerRunning {
		t.Errorf("restarted container: attempt %d state %s", c.Attempt, c.State)
	}
	eventually(t, 10*time.Second, func() error {
		resp, err := (&http.Client{Timeout: time.Second}).Get("http://" + before.IPs[0] + "/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})

	// A dead pause process means a lost sandbox.
	if err := syscall.Kill(before.PausePID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() error {
		if alive, err := h.rt.SandboxAlive(id); err != nil || alive {
			return fmt.Errorf("sandbox alive=%v err=%v after its pause was killed", alive, err)
		}
		return nil
	})
	if _, err := h.rt.CreateContainer(h.ctx, id, "web", ContainerOptions{Attempt: 2}); !errors.Is(err, ErrSandboxLost) {
		t.Errorf("create in a lost sandbox: %v, want ErrSandboxLost", err)
	}
}

func TestExitCodeAndLogsSurviveARuntimeRestart(t *testing.T) {
	h := newHarness(t)
	id := h.start(h.pod(`
apiVersion: v1
kind: Pod
metadata: {name: logger}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "echo out; echo err >&2; sleep 1; exit 7"]
`), "")
	// A new Runtime over the same data dir, as after peapod restarts
	// while the container runs.
	rt2, err := New(h.ctx, h.cfg, h.rt.log)
	if err != nil {
		t.Fatal(err)
	}
	c := h.container(id, "main")
	st, err := rt2.WaitContainer(h.ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.ExitCode != 7 || st.Reason != "Error" || st.FinishedAt.IsZero() {
		t.Errorf("exit as seen after restart: %+v", st)
	}
	data, err := os.ReadFile(st.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 2 {
		t.Fatalf("log has %d lines, want 2:\n%s", len(lines), data)
	}
	for _, want := range []string{" stdout F out", " stderr F err"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("log lacks CRI line %q:\n%s", want, data)
		}
	}
	if _, err := time.Parse(time.RFC3339Nano, strings.Fields(lines[0])[0]); err != nil {
		t.Errorf("log line timestamp: %v", err)
	}
}

func TestSamePodUnderRuncAndCrun(t *testing.T) {
	h := newHarness(t)
	for _, handler := range []string{"runc", "crun"} {
		t.Run(handler, func(t *testing.T) {
			if _, err := h.rt.Handler(handler); err != nil {
				if os.Getenv("PEAPOD_REQUIRE_ROOT") == "1" {
					t.Fatalf("handler %s unavailable: %v (make test's setup should have made it usable)", handler, err)
				}
				t.Skip(err)
			}
			pod := h.pod(strings.Replace(twoContainerPod, "multi-container-pod", "on-"+handler, 1))
			id := h.start(pod, handler)
			eventually(t, 10*time.Second, func() error {
				if out, code := h.execCode(id, "client", "wget", "-q", "-O", "-", "http://localhost/index.html"); code != 0 || out != "hello from the pod" {
					return fmt.Errorf("under %s the client fetched %q (exit %d)", handler, out, code)
				}
				return nil
			})
			for _, c := range h.status(id).Containers {
				if c.Handler != handler || c.State != ContainerRunning {
					t.Errorf("container %s: handler %s state %s", c.Name, c.Handler, c.State)
				}
			}
			if err := h.rt.DeletePod(h.ctx, id, time.Second); err != nil {
				t.Fatal(err)
			}
		})
	}
}
