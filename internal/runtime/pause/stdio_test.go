package pause

import (
	"bufio"
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/peapod/peapod/internal/testutil"
)

// readLine reads one line from r within a few seconds.
func readLine(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	type res struct {
		s   string
		err error
	}
	ch := make(chan res, 1)
	go func() { s, err := r.ReadString('\n'); ch <- res{s, err} }()
	select {
	case got := <-ch:
		if got.err != nil {
			t.Fatalf("read attached output: %v (got %q)", got.err, got.s)
		}
		return got.s
	case <-time.After(10 * time.Second):
		t.Fatal("no attached output within 10s")
		return ""
	}
}

func TestStdinPipeAttachAndCloseStdin(t *testing.T) {
	testutil.RequiresRoot(t)
	_, dir := startPause(t, false)
	c := Dial(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id := "in1"
	script := `while read l; do echo "got $l"; echo "err $l" >&2; done; echo bye; exit 5`
	req := LaunchRequest{
		ID:       id,
		LogPath:  filepath.Join(dir, id+".log"),
		ExitPath: filepath.Join(dir, id+".exit"),
		PIDPath:  filepath.Join(dir, id+".pid"),
		// Busybox gives background jobs /dev/null: pass stdin as fd 3.
		Argv:  []string{"/bin/busybox", "sh", "-c", `exec 3<&0; /bin/busybox sh -c "exec 0<&3 3<&-; $0" & echo $! > "$1"; sleep 0.1`, script, filepath.Join(dir, id+".pid")},
		Stdin: true,
	}
	pid, err := c.Launch(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })

	outRC, err := c.Attach(ctx, id, Stdout)
	if err != nil {
		st, _ := c.Status(ctx)
		t.Logf("status %+v", st)
		t.Log(readLog(t, req.LogPath))
		t.Fatal(err)
	}
	defer outRC.Close()
	errRC, err := c.Attach(ctx, id, Stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer errRC.Close()
	// A subscriber that goes away is dropped without disturbing the others.
	gone, err := c.Attach(ctx, id, Stdout)
	if err != nil {
		t.Fatal(err)
	}
	gone.Close()

	in, tty, err := c.OpenStdin(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if tty {
		t.Error("OpenStdin reports a tty for a pipe")
	}
	if err := c.Resize(ctx, id, 80, 24); err == nil {
		t.Error("Resize without a terminal succeeded")
	}
	out, errs := bufio.NewReader(outRC), bufio.NewReader(errRC)
	for _, w := range []string{"a", "b"} {
		if _, err := io.WriteString(in, w+"\n"); err != nil {
			t.Fatal(err)
		}
		if got := readLine(t, out); got != "got "+w+"\n" {
			t.Errorf("stdout = %q", got)
		}
		if got := readLine(t, errs); got != "err "+w+"\n" {
			t.Errorf("stderr = %q", got)
		}
	}
	// Our copy closed, the container still waits: pause holds the pipe.
	in.Close()
	time.Sleep(200 * time.Millisecond)
	if _, err := ReadExit(req.ExitPath); err == nil {
		t.Fatal("container saw EOF while pause still held its stdin")
	}
	if err := c.CloseStdin(ctx, id); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(out)
	if err != nil || string(rest) != "bye\n" {
		t.Errorf("rest of stdout = %q, %v; want bye and EOF", rest, err)
	}
	if es := waitExit(t, req.ExitPath); es.ExitCode != 5 {
		t.Errorf("exit code %d, want 5", es.ExitCode)
	}
	log := strings.Join(readLog(t, req.LogPath), "\n")
	for _, want := range []string{"stdout F got a", "stderr F err b", "stdout F bye"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if _, _, err := c.OpenStdin(ctx, id); err == nil {
		t.Error("OpenStdin of an exited container succeeded")
	}
	if _, err := c.Attach(ctx, id, Stdout); err == nil {
		t.Error("Attach to an exited container succeeded")
	}
}

func TestNoStdinWithoutTheFlag(t *testing.T) {
	testutil.RequiresRoot(t)
	_, dir := startPause(t, false)
	c := Dial(dir)
	shLaunch(t, c, dir, "plain", "sleep 30")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, err := c.OpenStdin(ctx, "plain"); !errors.Is(err, ErrNoStdin) {
		t.Errorf("OpenStdin = %v, want ErrNoStdin", err)
	}
	if _, _, err := c.OpenStdin(ctx, "nosuch"); err == nil || errors.Is(err, ErrNoStdin) {
		t.Errorf("OpenStdin of an unknown container = %v", err)
	}
	if err := c.CloseStdin(ctx, "plain"); err != nil {
		t.Errorf("CloseStdin without stdin: %v, want idempotent success", err)
	}
}
