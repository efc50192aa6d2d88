package userns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/peapod/peapod/internal/testutil"
)

// userNamespace starts a process in a new user namespace mapping 0..65535
// to host IDs from hostID and returns the namespace's path; the process
// is killed at cleanup.
func userNamespace(t *testing.T, hostID int) string {
	t.Helper()
	cmd := exec.Command("sleep", "3600")
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: hostID, Size: Length}}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, UidMappings: m, GidMappings: m}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return fmt.Sprintf("/proc/%d/ns/user", cmd.Process.Pid)
}

// TestMountIDMapped: through the idmapped mount, a file the host's root
// owns shows as owned by the namespace's root (its first host ID), on
// disk (ext4 or whatever the temp dir is on) and on tmpfs; a filesystem
// the kernel cannot idmap is ErrUnsupported.
func TestMountIDMapped(t *testing.T) {
	testutil.RequiresRoot(t)
	const hostID = 7 * Length
	ns := userNamespace(t, hostID)
	base := t.TempDir()
	tmpfs := filepath.Join(base, "tmpfs")
	if err := os.Mkdir(tmpfs, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", tmpfs, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(tmpfs, unix.MNT_DETACH) })
	for _, src := range []string{filepath.Join(base, "disk"), tmpfs} {
		if err := os.MkdirAll(src, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		dst := src + "-idmapped"
		if err := os.Mkdir(dst, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := MountIDMapped(src, dst, ns, true); err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		var st unix.Stat_t
		err := unix.Stat(filepath.Join(dst, "f"), &st)
		if uerr := unix.Unmount(dst, unix.MNT_DETACH); uerr != nil {
			t.Error(uerr)
		}
		if err != nil {
			t.Fatal(err)
		}
		if st.Uid != hostID || st.Gid != hostID {
			t.Errorf("%s: root's file shows as %d:%d through the idmapped mount, want %d:%d", src, st.Uid, st.Gid, hostID, hostID)
		}
	}
	dst := filepath.Join(base, "proc")
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	err := MountIDMapped("/proc", dst, ns, false)
	if err == nil {
		_ = unix.Unmount(dst, unix.MNT_DETACH)
	}
	if !errors.Is(err, ErrUnsupported) {
		t.Errorf("idmapping /proc: %v, want ErrUnsupported", err)
	}
}
