package netns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/peapod/peapod/internal/testutil"

	"golang.org/x/sys/unix"
)

// tempDir is a short temp dir removed (after unmounting) on cleanup.
func tempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// New makes dir a (self bind) mount point; undo that.
		_ = unix.Unmount(dir, unix.MNT_DETACH)
		_ = os.RemoveAll(dir)
	})
	return dir
}

// threadNetNS is the inode of the calling thread's network namespace.
// (/proc/self is the main thread, which another test may have used.)
func threadNetNS(t *testing.T) uint64 {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return inode(t, "/proc/thread-self/ns/net")
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func TestNewDoRemove(t *testing.T) {
	testutil.RequiresRoot(t)
	dir := tempDir(t)
	path, err := New(dir, "a")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Remove(path) })
	if path != filepath.Join(dir, "a") {
		t.Fatalf("path = %s", path)
	}
	if !Exists(path) {
		t.Fatal("Exists = false after New")
	}
	hostIno := threadNetNS(t)
	nsIno := inode(t, path)
	if hostIno == nsIno {
		t.Fatal("new netns has the same inode as ours")
	}

	// The directory is a shared mount, like /run/netns under iproute2.
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var shared bool
	for _, l := range strings.Split(string(mi), "\n") {
		f := strings.Fields(l)
		if len(f) > 6 && f[4] == dir && strings.Contains(l, "shared:") {
			shared = true
		}
	}
	if !shared {
		t.Errorf("%s is not a shared mount", dir)
	}

	var inside uint64
	err = Do(path, func() error {
		inside = inode(t, "/proc/thread-self/ns/net")
		// A child process inherits the thread's namespace.
		out, err := exec.Command("/bin/busybox", "cat", "/proc/self/net/dev").Output()
		if err != nil {
			return err
		}
		if strings.Contains(string(out), "eth0") || !strings.Contains(string(out), "lo:") {
			return fmt.Errorf("child process not in the new netns:\n%s", out)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if inside != nsIno {
		t.Fatalf("Do ran in netns %d, want %d", inside, nsIno)
	}
	if threadNetNS(t) != hostIno || inode(t, "/proc/self/ns/net") != hostIno {
		t.Fatal("caller's namespace changed")
	}

	wantErr := errors.New("boom")
	if err := Do(path, func() error { return wantErr }); !errors.Is(err, wantErr) {
		t.Fatalf("Do error = %v, want %v", err, wantErr)
	}

	if _, err := New(dir, "a"); err == nil {
		t.Fatal("New over an existing pin succeeded")
	}
	if !Exists(path) {
		t.Fatal("failed New removed the existing pin")
	}

	if err := Remove(path); err != nil {
		t.Fatal(err)
	}
	if Exists(path) {
		t.Fatal("Exists after Remove")
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pin file still there: %v", err)
	}
	if err := Remove(path); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
	if err := Do(path, func() error { return nil }); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Do on removed netns: %v, want ErrNotExist", err)
	}
}

func TestExistsAndBadNames(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{plain, filepath.Join(dir, "missing")} {
		if Exists(p) {
			t.Errorf("Exists(%s) = true", p)
		}
	}
	if err := Do(plain, func() error { return nil }); err == nil {
		t.Error("Do on a plain file succeeded")
	}
	for _, name := range []string{"", ".", "..", "a/b"} {
		if _, err := New(dir, name); err == nil {
			t.Errorf("New(%q) succeeded", name)
		}
	}
}

// TestPin: a namespace a process holds (here, one New pinned) pinned again
// under another name is the same namespace, and outlives the first pin.
func TestPin(t *testing.T) {
	testutil.RequiresRoot(t)
	dir := tempDir(t)
	first, err := New(dir, "made")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Remove(first) })
	pinned, err := Pin(first, dir, "pinned")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Remove(pinned) })
	if inode(t, pinned) != inode(t, first) {
		t.Fatal("the pin is another namespace")
	}
	want := inode(t, first)
	if err := Remove(first); err != nil {
		t.Fatal(err)
	}
	if !Exists(pinned) || inode(t, pinned) != want {
		t.Fatal("the namespace did not outlive its first pin")
	}
	if _, err := Pin(pinned, dir, "pinned"); err == nil {
		t.Error("pinning over an existing pin succeeded")
	}
	if _, err := Pin("/etc/hostname", dir, "bogus"); err == nil {
		t.Error("a regular file was pinned as a netns")
	}
	if _, err := os.Stat(filepath.Join(dir, "bogus")); err == nil {
		t.Error("a failed Pin left its pin file")
	}
	if err := Remove(pinned); err != nil || Exists(pinned) {
		t.Fatalf("Remove: %v, exists %v", err, Exists(pinned))
	}
}
