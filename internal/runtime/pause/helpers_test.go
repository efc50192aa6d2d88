package pause

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// tempDir is a short temp dir (unix socket paths), removed on cleanup.
func tempDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "pp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// newNetns creates a named netns with `ip netns add`, removed on cleanup.
func newNetns(t *testing.T) string {
	t.Helper()
	name := "pptest-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	return "/run/netns/" + name
}

// startPause installs the embedded binary and starts a pause in a fresh
// netns; it is stopped on cleanup.
func startPause(t *testing.T, sharePID bool) (*Process, string) {
	t.Helper()
	bin := filepath.Join(tempDir(t), "pause")
	if err := Install(bin); err != nil {
		t.Fatal(err)
	}
	dir := tempDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := Start(ctx, StartOptions{Binary: bin, Dir: dir, NetNSPath: newNetns(t), Hostname: "podhost", SharePID: sharePID})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := Stop(context.Background(), *p, dir); err != nil {
			t.Errorf("stop pause: %v", err)
		}
	})
	return p, dir
}

// readLog reads a CRI log file's lines.
func readLog(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
}
