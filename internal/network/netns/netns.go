// Package netns creates, pins, enters and removes Linux network namespaces.
//
// A namespace is pinned by bind-mounting its nsfs file onto a regular file
// (by default under /run/netns, so `ip netns` lists it), which keeps it
// alive without any process inside. The design follows containerd's
// pkg/netns and CNI's pkg/ns:
//
//  1. New creates a namespace on a locked OS thread, pins it and switches
//     the thread back; Pin pins one a process already holds.
//  2. Do runs a function inside a pinned namespace on a locked OS thread;
//     only that goroutine (and processes it starts) is in the namespace.
//  3. Remove unmounts and deletes the pin; it is idempotent.
//
// Threads and namespaces: a network namespace belongs to an OS thread, not
// to a goroutine. Code running under Do must not start goroutines that
// expect to be in the namespace (they may run on other threads). Child
// processes started from the locked goroutine (os/exec) inherit the
// namespace, which is how CNI plugins are run inside a test "host"
// namespace.
package netns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// DefaultDir is where iproute2 and peapod pin network namespaces.
const DefaultDir = "/run/netns"

// New creates a new network namespace and pins it at dir/name, returning
// that path. An empty dir means DefaultDir. The directory is created if
// needed and made a shared mount point, as `ip netns add` does, so that
// pins propagate into (and unmounts out of) mount namespaces created later.
// It fails if dir/name already exists. On error nothing is left behind.
// New does not change the calling goroutine's namespace.
func New(dir, name string) (path string, retErr error) {
	path, err := pinFile(dir, name)
	if err != nil {
		return "", err
	}
	defer func() {
		if retErr != nil {
			_ = unix.Unmount(path, unix.MNT_DETACH)
			_ = os.Remove(path)
		}
	}()

	errCh := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(threadNetNSPath())
		if err != nil {
			runtime.UnlockOSThread()
			errCh <- fmt.Errorf("open current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errCh <- fmt.Errorf("unshare netns: %w", err)
			return
		}
		mountErr := unix.Mount(threadNetNSPath(), path, "none", unix.MS_BIND, "")
		if mountErr != nil {
			mountErr = fmt.Errorf("bind mount netns at %s: %w", path, mountErr)
		}
		// Switch back rather than just discarding the thread: if this is
		// the main thread, Go never terminates it, and /proc/self/net
		// would show the new namespace for the rest of the process.
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Stay locked: the thread dies with this goroutine.
			errCh <- errors.Join(mountErr, fmt.Errorf("return to original netns: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errCh <- mountErr
	}()
	if err := <-errCh; err != nil {
		return "", fmt.Errorf("create netns %s: %w", path, err)
	}
	return path, nil
}

// Pin pins the existing network namespace at nsPath (a process's
// /proc/PID/ns/net, say) at dir/name, as New pins the one it creates, and
// returns that path: containerd's NewNetNSFromPID, for a namespace made in
// a pod's user namespace. It fails if dir/name already exists or nsPath is
// not a network namespace; on error nothing is left behind.
func Pin(nsPath, dir, name string) (path string, retErr error) {
	if err := isNetNS(nsPath); err != nil {
		return "", fmt.Errorf("pin netns: %w", err)
	}
	path, err := pinFile(dir, name)
	if err != nil {
		return "", err
	}
	if err := unix.Mount(nsPath, path, "none", unix.MS_BIND, ""); err != nil {
		_ = os.Remove(path)
		return "", fmt.Errorf("pin netns %s at %s: %w", nsPath, path, err)
	}
	return path, nil
}

// pinFile validates name, prepares dir (a shared mount point) and creates
// the empty file dir/name a namespace is bind-mounted onto.
func pinFile(dir, name string) (string, error) {
	if dir == "" {
		dir = DefaultDir
	}
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return "", fmt.Errorf("create netns: invalid name %q", name)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create netns dir %s: %w", dir, err)
	}
	if err := ensureSharedMount(dir); err != nil {
		return "", err
	}
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return "", fmt.Errorf("create netns pin %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(path)
		return "", fmt.Errorf("create netns pin %s: %w", path, err)
	}
	return path, nil
}

// ensureSharedMount makes dir a shared mount point, bind-mounting it onto
// itself first if it is not a mount point (iproute2's netns_add). A lock
// on the directory serialises concurrent callers so the self bind mount is
// made once.
func ensureSharedMount(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open netns dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := unix.Flock(int(d.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("lock netns dir %s: %w", dir, err)
	}
	defer unix.Flock(int(d.Fd()), unix.LOCK_UN) //nolint:errcheck // closing also unlocks

	err = unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("make %s a shared mount: %w", dir, err)
	}
	// Not a mount point yet.
	if err := unix.Mount(dir, dir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind mount %s onto itself: %w", dir, err)
	}
	if err := unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make %s a shared mount: %w", dir, err)
	}
	return nil
}

// Remove unmounts (lazily, MNT_DETACH) and deletes the pin at path. The
// namespace itself is freed by the kernel once no process or open file
// holds it. A missing or already unmounted path is success, so Remove is
// idempotent.
func Remove(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil &&
		!errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount netns %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove netns %s: %w", path, err)
	}
	return nil
}

// Exists reports whether path is a pinned (mounted) network namespace.
func Exists(path string) bool {
	return isNetNS(path) == nil
}

// isNetNS returns nil if path is an nsfs file for a network namespace.
func isNetNS(path string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return fmt.Errorf("stat netns %s: %w", path, err)
	}
	if st.Type != unix.NSFS_MAGIC && st.Type != unix.PROC_SUPER_MAGIC {
		return fmt.Errorf("%s is not a network namespace (fs type %#x)", path, st.Type)
	}
	return nil
}

// Do runs fn inside the network namespace at path and returns its error.
// fn runs on a fresh goroutine locked to its OS thread; processes it starts
// inherit the namespace, goroutines it starts do not. If switching back to
// the original namespace fails, the thread is left locked so the runtime
// discards it, and the failure is joined to fn's error.
func Do(path string, fn func() error) error {
	if err := isNetNS(path); err != nil {
		return fmt.Errorf("enter netns: %w", err)
	}
	target, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", path, err)
	}
	defer target.Close()

	errCh := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(threadNetNSPath())
		if err != nil {
			runtime.UnlockOSThread()
			errCh <- fmt.Errorf("open current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errCh <- fmt.Errorf("enter netns %s: %w", path, err)
			return
		}
		fnErr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Stay locked: the thread dies with this goroutine.
			errCh <- errors.Join(fnErr, fmt.Errorf("return from netns %s: %w", path, err))
			return
		}
		runtime.UnlockOSThread()
		errCh <- fnErr
	}()
	return <-errCh
}

// threadNetNSPath is the nsfs path of the calling OS thread's network
// namespace; the caller must have locked its goroutine to the thread.
func threadNetNSPath() string {
	return fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
}
