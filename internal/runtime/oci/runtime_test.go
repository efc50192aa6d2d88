package oci_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/peapod/peapod/internal/testutil"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/peapod/peapod/internal/runtime/oci"
	"github.com/peapod/peapod/internal/runtime/pause"
)

var criLine = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr) F (.*)$`)

func forEachRuntime(t *testing.T, f func(t *testing.T, handler, binary string)) {
	testutil.RequiresRoot(t)
	names := []string{}
	rts := runtimes(t)
	for h := range rts {
		names = append(names, h)
	}
	sort.Strings(names)
	for _, h := range names {
		t.Run(h, func(t *testing.T) { f(t, h, rts[h]) })
	}
}

func TestRunLogsAndExitCode(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, handler, binary string) {
		p := newPod(t, handler, binary, false)
		c := p.launch(t, "logs", "sh", "-c", "echo out1; echo err1 >&2; echo out2; echo err2 >&2; exit 3")
		es := waitExit(t, c.exit)
		if es.ExitCode != 3 || es.Signal != 0 {
			t.Fatalf("exit = %+v", es)
		}
		b, err := os.ReadFile(c.log)
		if err != nil {
			t.Fatal(err)
		}
		streams := map[string][]string{}
		for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
			m := criLine.FindStringSubmatch(l)
			if m == nil {
				t.Fatalf("not a CRI line: %q", l)
			}
			streams[m[1]] = append(streams[m[1]], m[2])
		}
		if got := strings.Join(streams["stdout"], ","); got != "out1,out2" {
			t.Errorf("stdout %q", got)
		}
		if got := strings.Join(streams["stderr"], ","); got != "err1,err2" {
			t.Errorf("stderr %q", got)
		}
		ctx := context.Background()
		st, err := p.rt.State(ctx, c.id)
		if err != nil || st.Status != "stopped" {
			t.Fatalf("state = %+v, %v", st, err)
		}
		if err := p.rt.Delete(ctx, c.id, false); err != nil {
			t.Fatal(err)
		}
		if err := p.rt.Delete(ctx, c.id, false); err != nil {
			t.Fatalf("second delete: %v", err)
		}
		if _, err := p.rt.State(ctx, c.id); !errors.Is(err, oci.ErrNotFound) {
			t.Fatalf("state after delete: %v", err)
		}
	})
}

func TestKillExecAndNamespaces(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, handler, binary string) {
		ctx := context.Background()
		p := newPod(t, handler, binary, false)
		c := p.launch(t, "sleeper", "sleep", "1000")
		st, err := p.rt.State(ctx, c.id)
		if err != nil || st.Status != "running" || st.PID != c.pid {
			t.Fatalf("state = %+v, %v (launch pid %d)", st, err, c.pid)
		}
		for _, ns := range []string{"net", "ipc", "uts"} {
			a, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", p.proc.PID, ns))
			b, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", c.pid, ns))
			if a == "" || a != b {
				t.Errorf("%s ns: pause %q, container %q", ns, a, b)
			}
		}
		var netns syscall.Stat_t
		_ = syscall.Stat(p.netns, &netns)
		if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", c.pid)); l != fmt.Sprintf("net:[%d]", netns.Ino) {
			t.Errorf("container netns %s, pinned netns inode %d", l, netns.Ino)
		}

		// Exec without a tty: output, stdin, exit code.
		var out, errb bytes.Buffer
		code, err := p.rt.Exec(ctx, c.id, specs.Process{Args: []string{"sh", "-c", "hostname; read x; echo got $x; echo e >&2; exit 5"}, Cwd: "/", Env: []string{"PATH=/bin"}},
			oci.ExecIO{Stdin: strings.NewReader("abc\n"), Stdout: &out, Stderr: &errb})
		if err != nil || code != 5 || out.String() != "podhost\ngot abc\n" || errb.String() != "e\n" {
			t.Fatalf("exec: code %d err %v stdout %q stderr %q", code, err, out.String(), errb.String())
		}
		// The exec ends with its process though the client's stdin stays
		// open (a client that cannot half-close it, as WebSocket clients
		// before v5.channel.k8s.io).
		stdin, stdinW := io.Pipe()
		defer stdinW.Close()
		go func() { _, _ = stdinW.Write([]byte("line\n")) }()
		out.Reset()
		bounded, cancel := context.WithTimeout(ctx, time.Minute)
		code, err = p.rt.Exec(bounded, c.id, specs.Process{Args: []string{"sh", "-c", "read x; echo got $x; exit 4"}, Cwd: "/", Env: []string{"PATH=/bin"}},
			oci.ExecIO{Stdin: stdin, Stdout: &out})
		cancel()
		if err != nil || code != 4 || out.String() != "got line\n" {
			t.Fatalf("exec with stdin left open: code %d err %v stdout %q", code, err, out.String())
		}
		// Exec with a tty: the initial size is applied; stderr is merged.
		out.Reset()
		resize := make(chan oci.TerminalSize, 1)
		resize <- oci.TerminalSize{Width: 100, Height: 40}
		code, err = p.rt.Exec(ctx, c.id, specs.Process{Args: []string{"sh", "-c", "sleep 0.2; stty size; tty; echo e >&2; exit 7"}, Cwd: "/", Env: []string{"PATH=/bin"}},
			oci.ExecIO{Stdout: &out, TTY: true, Resize: resize})
		if err != nil || code != 7 || !strings.Contains(out.String(), "40 100") || !strings.Contains(out.String(), "/dev/pts/") || !strings.Contains(out.String(), "e\r\n") {
			t.Fatalf("tty exec: code %d err %v output %q", code, err, out.String())
		}
		// The runtime's own failure is an error with its message.
		code, err = p.rt.Exec(ctx, c.id, specs.Process{Args: []string{"/nonexistent"}, Cwd: "/"}, oci.ExecIO{})
		if err == nil || !strings.Contains(err.Error(), "nonexistent") {
			t.Fatalf("exec missing binary: code %d err %v", code, err)
		}
		t.Logf("exec missing binary: code %d, %v", code, err)

		// Restarted peapod: a new client sees the container.
		sts, err := pause.Dial(p.dir).Status(ctx)
		if err != nil || len(sts.Containers) != 1 || sts.Containers[0].PID != c.pid || sts.Containers[0].State != pause.StateRunning {
			t.Fatalf("status = %+v, %v", sts, err)
		}

		if err := p.rt.Kill(ctx, c.id, syscall.SIGKILL, false); err != nil {
			t.Fatal(err)
		}
		if es := waitExit(t, c.exit); es.ExitCode != 137 || es.Signal != 9 {
			t.Fatalf("exit = %+v", es)
		}
		if err := p.rt.Kill(ctx, c.id, syscall.SIGKILL, false); err != nil {
			t.Fatalf("kill stopped container: %v", err)
		}
		if err := p.rt.Delete(ctx, c.id, false); err != nil {
			t.Fatal(err)
		}
		if err := p.rt.Kill(ctx, c.id, syscall.SIGTERM, true); err != nil {
			t.Fatalf("kill deleted container: %v", err)
		}
	})
}

func TestSharedPIDNamespace(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, handler, binary string) {
		ctx := context.Background()
		p := newPod(t, handler, binary, true)
		a := p.launch(t, "a", "sleep", "1001")
		b := p.launch(t, "b", "sleep", "1002")
		for _, c := range []*ctr{a, b} {
			ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", c.pid))
			want, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", p.proc.PIDNamespacePID))
			if ns != want {
				t.Fatalf("container pid ns %s, want %s", ns, want)
			}
		}
		var out bytes.Buffer
		code, err := p.rt.Exec(ctx, b.id, specs.Process{Args: []string{"ps", "-o", "pid,args"}, Cwd: "/", Env: []string{"PATH=/bin"}}, oci.ExecIO{Stdout: &out, Stderr: &out})
		if err != nil || code != 0 {
			t.Fatalf("ps: %d %v %s", code, err, out.String())
		}
		if !strings.Contains(out.String(), "sleep 1001") || !strings.Contains(out.String(), "sleep 1002") ||
			!regexp.MustCompile(`(?m)^\s*1 .*pause`).MatchString(out.String()) {
			t.Fatalf("b does not see a's processes and the reaper as PID 1:\n%s", out.String())
		}
		for _, c := range []*ctr{a, b} {
			if err := p.rt.Kill(ctx, c.id, syscall.SIGKILL, true); err != nil {
				t.Fatal(err)
			}
			if es := waitExit(t, c.exit); es.ExitCode != 137 {
				t.Fatalf("exit = %+v", es)
			}
		}
	})
}

func TestLaunchFailureCarriesRuntimeMessage(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, handler, binary string) {
		p := newPod(t, handler, binary, false)
		id := "broken-" + handler
		b := p.bundle(t, id, "/no/such/binary")
		rtLog := b + "/runtime.json"
		t.Cleanup(func() { _ = p.rt.Delete(context.Background(), id, true); removeCgroups(id) })
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err := p.c.Launch(ctx, pause.LaunchRequest{ID: id, Argv: p.rt.RunArgs(id, b, b+"/pid", rtLog),
			LogPath: b + "/log", ExitPath: b + "/exit", PIDPath: b + "/pid", RuntimeLogPath: rtLog})
		var le *pause.LaunchError
		if !errors.As(err, &le) || !strings.Contains(err.Error(), "/no/such/binary") {
			t.Fatalf("err = %v", err)
		}
		t.Logf("launch error: %v", err)
		if msg := oci.LogError(rtLog); msg == "" {
			t.Error("LogError found nothing")
		}
	})
}

func TestVersionAndCheckUsable(t *testing.T) {
	testutil.RequiresRoot(t)
	r := &oci.Runtime{Handler: "runc", Binary: "/usr/sbin/runc"}
	v, err := r.Version(context.Background())
	if err != nil || !strings.HasPrefix(v, "runc version") {
		t.Fatalf("version %q, %v", v, err)
	}
	if err := oci.CheckUsable("runc", "/usr/sbin/runc"); err != nil {
		t.Fatal(err)
	}
	if err := oci.CheckUsable("nope", "/nonexistent/runtime"); err == nil {
		t.Fatal("missing binary accepted")
	}
	t.Logf("crun usable: %v", oci.CheckUsable("crun", "/usr/bin/crun"))
}

var _ = time.Second
