package pause

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/peapod/peapod/internal/testutil"
)

// TestMain doubles as a helper process that starts a pause and then waits
// to be SIGKILLed, to prove pause outlives its starter.
func TestMain(m *testing.M) {
	if dir := os.Getenv("PAUSE_TEST_HELPER_DIR"); dir != "" {
		p, err := Start(context.Background(), StartOptions{Binary: os.Getenv("PAUSE_TEST_HELPER_BIN"), Dir: dir})
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(1)
		}
		b, _ := json.Marshal(p)
		fmt.Println(string(b))
		time.Sleep(time.Hour)
	}
	os.Exit(m.Run())
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// shLaunch launches script as a "container": a busybox shell started in the
// background by a launcher shell that writes its PID and exits, as
// `runc run -d` does.
func shLaunch(t *testing.T, c *Client, dir, id, script string) (int, LaunchRequest) {
	t.Helper()
	req := LaunchRequest{
		ID:       id,
		LogPath:  filepath.Join(dir, id+".log"),
		ExitPath: filepath.Join(dir, id+".exit"),
		PIDPath:  filepath.Join(dir, id+".pid"),
		Argv:     []string{"/bin/busybox", "sh", "-c", `/bin/busybox sh -c "$0" & echo $! > "$1"; sleep 0.1`, script, filepath.Join(dir, id+".pid")},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pid, err := c.Launch(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	return pid, req
}

func waitExit(t *testing.T, path string) *ExitStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	es, err := WaitExit(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

var criLine = regexp.MustCompile(`^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z) (stdout|stderr) ([PF]) (.*)$`)

func TestLaunchLogsAndExitCode(t *testing.T) {
	testutil.RequiresRoot(t)
	_, dir := startPause(t, false)
	c := Dial(dir)
	// Exits while the launcher still runs (pause learns its PID later), and
	// writes a line longer than 16 KiB and one without a newline.
	script := `echo out1; echo err1 >&2; echo out2; echo err2 >&2
/bin/busybox head -c 20000 /dev/zero | /bin/busybox tr '\0' x; echo
printf tail; exit 3`
	before := time.Now()
	_, req := shLaunch(t, c, dir, "c1", script)
	es := waitExit(t, req.ExitPath)
	if es.ExitCode != 3 || es.Signal != 0 || es.FinishedAt.Before(before.Add(-time.Second)) {
		t.Fatalf("exit = %+v", es)
	}
	var out, errs []string
	var long string
	for _, l := range readLog(t, req.LogPath) {
		m := criLine.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("not a CRI log line: %.80q", l)
		}
		if _, err := time.Parse(time.RFC3339Nano, m[1]); err != nil {
			t.Fatal(err)
		}
		switch {
		case m[2] == "stdout" && strings.HasPrefix(m[4], "xxx"):
			long += m[4]
			if m[3] == "P" && len(m[4]) != 16*1024 {
				t.Errorf("partial line of %d bytes", len(m[4]))
			}
		case m[2] == "stdout":
			out = append(out, m[3]+" "+m[4])
		default:
			errs = append(errs, m[3]+" "+m[4])
		}
	}
	if got := strings.Join(out, "|"); got != "F out1|F out2|F tail" {
		t.Errorf("stdout = %q", got)
	}
	if got := strings.Join(errs, "|"); got != "F err1|F err2" {
		t.Errorf("stderr = %q", got)
	}
	if long != strings.Repeat("x", 20000) {
		t.Errorf("long line has %d bytes", len(long))
	}
	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Containers) != 1 || st.Containers[0].State != StateExited || st.Containers[0].ExitCode != 3 {
		t.Fatalf("status = %+v", st)
	}
}

func TestSignalExitAndNamespaces(t *testing.T) {
	testutil.RequiresRoot(t)
	p, dir := startPause(t, false)
	c := Dial(dir)
	pid, req := shLaunch(t, c, dir, "sleeper", `hostname; exec /bin/busybox sleep 100`)
	// The container inherits pause's net, ipc and uts namespaces.
	for _, ns := range []string{"net", "ipc", "uts"} {
		a, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", p.PID, ns))
		b, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
		self, _ := os.Readlink("/proc/self/ns/" + ns)
		if a == "" || a != b || a == self {
			t.Errorf("%s ns: pause %q container %q self %q", ns, a, b, self)
		}
	}
	if _, err := ReadExit(req.ExitPath); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("ReadExit before exit: %v", err)
	}
	st, err := c.Status(context.Background())
	if err != nil || len(st.Containers) != 1 || st.Containers[0].State != StateRunning || st.Containers[0].PID != pid {
		t.Fatalf("status = %+v, %v", st, err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if es := waitExit(t, req.ExitPath); es.ExitCode != 137 || es.Signal != 9 {
		t.Fatalf("exit = %+v", es)
	}
	if l := readLog(t, req.LogPath); len(l) != 1 || !strings.HasSuffix(l[0], " stdout F podhost") {
		t.Fatalf("log = %q", l)
	}
	// The same ID may be launched again once exited. The process outlives
	// the test's launcher shell, which would otherwise reap it itself (a
	// real runtime's `run -d` leaves that to pause).
	_, req2 := shLaunch(t, c, dir, "sleeper", `/bin/busybox sleep 0.3; exit 0`)
	if es := waitExit(t, req2.ExitPath); es.ExitCode != 0 {
		t.Fatalf("relaunch exit = %+v", es)
	}
}

func TestLaunchFailureAndReconnect(t *testing.T) {
	testutil.RequiresRoot(t)
	_, dir := startPause(t, false)
	rtLog := filepath.Join(dir, "runtime.json")
	writeFile(t, rtLog, `{"level":"error","msg":"no such bundle","time":"x"}`+"\n")
	_, err := Dial(dir).Launch(context.Background(), LaunchRequest{
		ID: "bad", Argv: []string{"/bin/busybox", "sh", "-c", "echo failing >&2; exit 2"},
		LogPath: filepath.Join(dir, "bad.log"), ExitPath: filepath.Join(dir, "bad.exit"),
		PIDPath: filepath.Join(dir, "bad.pid"), RuntimeLogPath: rtLog,
	})
	var le *LaunchError
	if !errors.As(err, &le) || le.ExitCode != 2 || !strings.Contains(le.Message, "no such bundle") {
		t.Fatalf("err = %v", err)
	}
	// A missing launcher binary fails the same way (exit 127).
	_, err = Dial(dir).Launch(context.Background(), LaunchRequest{
		ID: "missing", Argv: []string{"/nonexistent"}, LogPath: filepath.Join(dir, "m.log"),
		ExitPath: filepath.Join(dir, "m.exit"), PIDPath: filepath.Join(dir, "m.pid"),
	})
	if !errors.As(err, &le) || le.ExitCode != 127 {
		t.Fatalf("err = %v", err)
	}

	// Drop the client (peapod restarting) and reconnect: pause still knows.
	pid, _ := shLaunch(t, Dial(dir), dir, "long", `exec /bin/busybox sleep 100`)
	st, err := Dial(dir).Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range st.Containers {
		if c.ID == "long" && c.PID == pid && c.State == StateRunning {
			found = true
		}
	}
	if !found {
		t.Fatalf("status after reconnect = %+v", st)
	}
}

func TestSharePID(t *testing.T) {
	testutil.RequiresRoot(t)
	p, dir := startPause(t, true)
	if p.PIDNamespacePID <= 0 {
		t.Fatalf("PIDNamespacePID = %d", p.PIDNamespacePID)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.PIDNamespacePID))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^NSpid:\s+\d+\s+1$`).Match(b) {
		t.Fatalf("reaper is not PID 1 of a new namespace:\n%s", b)
	}
	st, err := Dial(dir).Status(context.Background())
	if err != nil || st.PIDNamespacePID != p.PIDNamespacePID {
		t.Fatalf("status = %+v, %v", st, err)
	}
	// Stopping pause takes its reaper (and so the namespace) down with it.
	reaper := Process{PID: p.PIDNamespacePID}
	reaper.StartTime, _ = startTime(reaper.PID)
	if err := Stop(context.Background(), *p, dir); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for Alive(reaper) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if Alive(reaper) {
		t.Fatal("PID namespace reaper outlived pause")
	}
}

func TestStopIdempotentAndRSS(t *testing.T) {
	testutil.RequiresRoot(t)
	p, dir := startPause(t, false)
	if !Alive(*p) {
		t.Fatal("not alive after Start")
	}
	_, _ = shLaunch(t, Dial(dir), dir, "c", `while :; do echo tick; /bin/busybox sleep 0.01; done`)
	time.Sleep(300 * time.Millisecond)
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.PID))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no VmRSS")
	}
	rss, _ := strconv.Atoi(string(m[1]))
	t.Logf("pause VmRSS with one logging container: %d KiB", rss)
	if rss > 1024 {
		t.Errorf("pause RSS %d KiB, want well under 1 MiB", rss)
	}
	if Alive(Process{PID: p.PID, StartTime: p.StartTime + 1}) {
		t.Error("Alive ignores start time")
	}
	for i := 0; i < 2; i++ {
		if err := Stop(context.Background(), *p, dir); err != nil {
			t.Fatalf("stop %d: %v", i, err)
		}
	}
	if Alive(*p) {
		t.Fatal("alive after Stop")
	}
	if _, err := os.Stat(filepath.Join(dir, SocketName)); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
}

func TestLogReopen(t *testing.T) {
	testutil.RequiresRoot(t)
	_, dir := startPause(t, false)
	ctl := filepath.Join(dir, "go")
	_, req := shLaunch(t, Dial(dir), dir, "c", `echo before; while [ ! -e `+ctl+` ]; do /bin/busybox sleep 0.02; done; echo after`)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if b, _ := os.ReadFile(req.LogPath); strings.Contains(string(b), "before") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("first line never logged")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := os.Rename(req.LogPath, req.LogPath+".1"); err != nil { // rotation
		t.Fatal(err)
	}
	writeFile(t, ctl, "")
	waitExit(t, req.ExitPath)
	if l := readLog(t, req.LogPath); len(l) != 1 || !strings.HasSuffix(l[0], "stdout F after") {
		t.Fatalf("new log = %q", l)
	}
}

func TestSurvivesStarterKill(t *testing.T) {
	testutil.RequiresRoot(t)
	bin := filepath.Join(tempDir(t), "pause")
	if err := Install(bin); err != nil {
		t.Fatal(err)
	}
	dir := tempDir(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PAUSE_TEST_HELPER_DIR="+dir, "PAUSE_TEST_HELPER_BIN="+bin)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	var p Process
	if err := json.Unmarshal([]byte(line), &p); err != nil {
		t.Fatalf("helper said %q", line)
	}
	t.Cleanup(func() { _ = Stop(context.Background(), p, dir) })
	_ = cmd.Process.Kill() // SIGKILL the "peapod" that started it
	_ = cmd.Wait()
	time.Sleep(100 * time.Millisecond)
	if !Alive(p) {
		t.Fatal("pause died with its starter")
	}
	if _, err := Dial(dir).Status(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := Stop(context.Background(), p, dir); err != nil {
		t.Fatal(err)
	}
	if Alive(p) {
		t.Fatal("alive after Stop")
	}
}

func TestInstall(t *testing.T) {
	path := filepath.Join(tempDir(t), "bin", "pause")
	if err := Install(path); err != nil {
		t.Fatal(err)
	}
	st1, err := os.Stat(path)
	if err != nil || st1.Mode().Perm() != 0o755 || st1.Size() != int64(len(Binary())) {
		t.Fatalf("stat = %v, %v", st1, err)
	}
	ino := func(fi os.FileInfo) uint64 { return fi.Sys().(*syscall.Stat_t).Ino }
	if err := Install(path); err != nil {
		t.Fatal(err)
	}
	st2, _ := os.Stat(path)
	if ino(st1) != ino(st2) {
		t.Error("Install rewrote an identical file")
	}
	writeFile(t, path, "old")
	if err := Install(path); err != nil {
		t.Fatal(err)
	}
	if st3, _ := os.Stat(path); st3.Size() != int64(len(Binary())) {
		t.Error("Install did not replace a different file")
	}
}

func TestWaitExitContext(t *testing.T) {
	dir := tempDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := WaitExit(ctx, filepath.Join(dir, "exit")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		_ = os.WriteFile(filepath.Join(dir, "exit.tmp"), []byte("0 0 2020-01-01T00:00:00Z\n"), 0o644)
		_ = os.Rename(filepath.Join(dir, "exit.tmp"), filepath.Join(dir, "exit"))
	}()
	es, err := WaitExit(context.Background(), filepath.Join(dir, "exit"))
	if err != nil || es.ExitCode != 0 {
		t.Fatalf("es = %+v, err = %v", es, err)
	}
}

func nsLink(t *testing.T, pid int, kind string) string {
	t.Helper()
	l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, kind))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestHostNamespaces: without --netns and with HostIPC and HostUTS pause
// stays in the caller's network, IPC and UTS namespaces (a hostNetwork,
// hostIPC pod's) and leaves the hostname alone.
func TestHostNamespaces(t *testing.T) {
	testutil.RequiresRoot(t)
	bin := filepath.Join(tempDir(t), "pause")
	if err := Install(bin); err != nil {
		t.Fatal(err)
	}
	dir := tempDir(t)
	host, _ := os.Hostname()
	p, err := Start(t.Context(), StartOptions{Binary: bin, Dir: dir, HostIPC: true, HostUTS: true, Hostname: "never-set"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := Stop(context.Background(), *p, dir); err != nil {
			t.Errorf("stop pause: %v", err)
		}
	}()
	self := os.Getpid()
	for _, kind := range []string{"net", "ipc", "uts"} {
		if nsLink(t, p.PID, kind) != nsLink(t, self, kind) {
			t.Errorf("pause is not in the caller's %s namespace", kind)
		}
	}
	if now, _ := os.Hostname(); now != host {
		t.Errorf("the node's hostname changed from %q to %q", host, now)
	}
	if _, err := Start(t.Context(), StartOptions{Binary: bin, Dir: tempDir(t), HostIPC: true, IPCNSPath: "/proc/1/ns/ipc"}); err == nil {
		t.Errorf("an IPC namespace both the host's and joined is accepted")
	}
}

// TestHolder: the user-namespace holder maps the pod's range, owns new
// network, IPC, UTS and PID namespaces (it is PID 1 of the last), and a
// pause joining them stays in the node's user namespace, to launch the
// runtime as the node's root.
func TestHolder(t *testing.T) {
	testutil.RequiresRoot(t)
	bin := filepath.Join(tempDir(t), "pause")
	if err := Install(bin); err != nil {
		t.Fatal(err)
	}
	const hostID = 9 * 65536
	h, err := StartHolder(t.Context(), HolderOptions{Binary: bin, HostID: hostID, Length: 65536, SharePID: true})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = Stop(context.Background(), *h, "")
		}
	}()
	uidMap, _ := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", h.PID))
	if got := strings.Join(strings.Fields(string(uidMap)), " "); got != "0 589824 65536" {
		t.Errorf("holder uid_map %q", got)
	}
	// It names itself once it runs its loop, just after exec.
	var comm []byte
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if comm, _ = os.ReadFile(fmt.Sprintf("/proc/%d/comm", h.PID)); strings.TrimSpace(string(comm)) == "pause-holder" {
			break
		}
	}
	if strings.TrimSpace(string(comm)) != "pause-holder" || h.PIDNamespacePID != h.PID {
		t.Errorf("holder comm %q, PID namespace PID %d (pid %d)", comm, h.PIDNamespacePID, h.PID)
	}
	self := os.Getpid()
	for _, kind := range []string{"user", "net", "ipc", "uts", "pid"} {
		if nsLink(t, h.PID, kind) == nsLink(t, self, kind) {
			t.Errorf("holder shares the caller's %s namespace", kind)
		}
	}
	dir := tempDir(t)
	p, err := Start(t.Context(), StartOptions{Binary: bin, Dir: dir, NetNSPath: h.NamespacePath("net"),
		IPCNSPath: h.NamespacePath("ipc"), UTSNSPath: h.NamespacePath("uts"), Hostname: "podhost"})
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"net", "ipc", "uts"} {
		if nsLink(t, p.PID, kind) != nsLink(t, h.PID, kind) {
			t.Errorf("pause did not join the holder's %s namespace", kind)
		}
	}
	if nsLink(t, p.PID, "user") != nsLink(t, self, "user") {
		t.Errorf("pause left the node's user namespace")
	}
	if out, err := exec.Command("nsenter", "-t", strconv.Itoa(h.PID), "-u", "hostname").Output(); err != nil || strings.TrimSpace(string(out)) != "podhost" {
		t.Errorf("hostname in the pod's UTS namespace: %q, %v", out, err)
	}
	if err := Stop(context.Background(), *p, dir); err != nil {
		t.Error(err)
	}
	if err := Stop(context.Background(), *h, ""); err != nil {
		t.Error(err)
	}
	stopped = true
	if Alive(*h) {
		t.Errorf("holder alive after Stop")
	}
	if _, err := StartHolder(t.Context(), HolderOptions{Binary: bin, HostID: 0, Length: 65536}); err == nil {
		t.Errorf("a holder mapping the host's root is accepted")
	}
}
