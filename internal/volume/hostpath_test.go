package volume

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/peapod/peapod/internal/testutil"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
)

func TestCheckHostPathType(t *testing.T) {
	testutil.RequiresRoot(t) // mknod of a block device
	old := syscall.Umask(0o022)
	t.Cleanup(func() { syscall.Umask(old) })

	dir := tempDir(t)
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	blk := filepath.Join(dir, "blk")
	if err := unix.Mknod(blk, unix.S_IFBLK|0o600, int(unix.Mkdev(7, 200))); err != nil {
		t.Fatal(err)
	}
	chr := "/dev/null"
	link := filepath.Join(dir, "link-to-sub")
	if err := os.Symlink(sub, link); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")

	for _, tc := range []struct {
		name    string
		path    string
		typ     corev1.HostPathType
		wantErr string
	}{
		{"unset missing", missing, corev1.HostPathUnset, ""},
		{"dir", sub, corev1.HostPathDirectory, ""},
		{"dir via symlink", link, corev1.HostPathDirectory, ""},
		{"dir is file", file, corev1.HostPathDirectory, "hostPath type check failed: " + file + " is not a directory"},
		{"dir missing", missing, corev1.HostPathDirectory, "hostPath type check failed: " + missing + " is not a directory"},
		{"file", file, corev1.HostPathFile, ""},
		{"file is dir", sub, corev1.HostPathFile, "is not a file"},
		{"file missing", missing, corev1.HostPathFile, "is not a file"},
		{"socket", sock, corev1.HostPathSocket, ""},
		{"socket is file", file, corev1.HostPathSocket, "is not a socket file"},
		{"char", chr, corev1.HostPathCharDev, ""},
		{"char is block", blk, corev1.HostPathCharDev, "is not a character device"},
		{"block", blk, corev1.HostPathBlockDev, ""},
		{"block is char", chr, corev1.HostPathBlockDev, "is not a block device"},
		{"block missing", missing, corev1.HostPathBlockDev, "is not a block device"},
		{"DirectoryOrCreate existing", sub, corev1.HostPathDirectoryOrCreate, ""},
		{"DirectoryOrCreate on file", file, corev1.HostPathDirectoryOrCreate, "is not a directory"},
		{"FileOrCreate existing", file, corev1.HostPathFileOrCreate, ""},
		{"FileOrCreate on dir", sub, corev1.HostPathFileOrCreate, "is not a file"},
		{"FileOrCreate missing parent", filepath.Join(dir, "nope", "f"), corev1.HostPathFileOrCreate, "create file"},
		{"invalid type", sub, "Bogus", "Bogus is an invalid volume type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckHostPathType(tc.path, tc.typ)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want containing %q", err, tc.wantErr)
			}
		})
	}

	t.Run("DirectoryOrCreate creates 0755 with parents", func(t *testing.T) {
		p := filepath.Join(dir, "new", "deep")
		if err := CheckHostPathType(p, corev1.HostPathDirectoryOrCreate); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(p)
		if err != nil || !st.IsDir() || st.Mode().Perm() != 0o755 {
			t.Fatalf("stat = %v, %v", st, err)
		}
	})
	t.Run("FileOrCreate creates empty 0644", func(t *testing.T) {
		p := filepath.Join(dir, "newfile")
		if err := CheckHostPathType(p, corev1.HostPathFileOrCreate); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(p)
		if err != nil || !st.Mode().IsRegular() || st.Mode().Perm() != 0o644 || st.Size() != 0 {
			t.Fatalf("stat = %v, %v", st, err)
		}
	})
}

func TestSetupHostPath(t *testing.T) {
	dir := tempDir(t)
	m := NewManager(nil)
	pd := podDir(t)
	pod := testPod(
		corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: dir + "/./", Type: ptr(corev1.HostPathDirectory)}}},
		corev1.Volume{Name: "made", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: dir + "/made", Type: ptr(corev1.HostPathDirectoryOrCreate)}}},
	)
	prep, err := m.Setup(t.Context(), pd, pod)
	if err != nil {
		t.Fatal(err)
	}
	if prep.Paths["data"] != dir || prep.Paths["made"] != dir+"/made" {
		t.Errorf("paths = %v", prep.Paths)
	}
	if err := m.Teardown(t.Context(), pd, pod); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir + "/made"); err != nil {
		t.Errorf("teardown touched a hostPath: %v", err)
	}

	bad := testPod(corev1.Volume{Name: "x", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: dir + "/absent", Type: ptr(corev1.HostPathFile)}}})
	if _, err := m.Setup(t.Context(), pd, bad); err == nil || !strings.Contains(err.Error(), "hostPath type check failed: "+dir+"/absent is not a file") {
		t.Errorf("err = %v", err)
	}
	rel := testPod(corev1.Volume{Name: "x", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "relative"}}})
	if _, err := m.Setup(t.Context(), pd, rel); err == nil || !strings.Contains(err.Error(), "spec.volumes[0].hostPath.path") {
		t.Errorf("err = %v", err)
	}
}
