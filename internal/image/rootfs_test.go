package image

import (
	"archive/tar"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/peapod/peapod/internal/testutil"
)

// prepare mounts a rootfs for img in a temp dir, released on cleanup.
func prepare(t *testing.T, s *Store, img *Image) (dir, rootfs string) {
	t.Helper()
	dir = tempDir(t)
	rootfs, err := s.PrepareRootfs(t.Context(), img, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.ReleaseRootfs(t.Context(), dir) })
	return dir, rootfs
}

func TestBusyboxRootfs(t *testing.T) {
	testutil.RequiresRoot(t)
	s := newStore(t, Options{})
	imgs, err := s.Import(t.Context(), busyboxTar(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || len(imgs[0].Names) != 1 || imgs[0].Names[0] != "docker.io/library/busybox:latest" {
		t.Fatalf("imported %+v", imgs)
	}
	img, err := s.Get("busybox")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(img.Config.Cmd, " ") != "sh" || len(img.Layers) != 1 || img.Size <= 0 {
		t.Fatalf("image %+v", img)
	}
	dir, rootfs := prepare(t, s, img)
	if rootfs != filepath.Join(dir, "rootfs") {
		t.Fatalf("rootfs %s", rootfs)
	}
	if fi, err := os.Stat(filepath.Join(rootfs, "bin/sh")); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("bin/sh in merged view: %v", err)
	}
	// The merged view is a working root: run its shell in it.
	cmd := exec.Command("/bin/sh", "-c", "echo hi > /tmp/out && wget --help 2>&1 | head -1 >/dev/null && cat /tmp/out")
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: rootfs}
	cmd.Env = []string{"PATH=/bin:/usr/bin"}
	if out, err := cmd.CombinedOutput(); err != nil || string(out) != "hi\n" {
		t.Fatalf("sh in rootfs: %q, %v", out, err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "hello"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "upper", "hello")); err != nil {
		t.Fatalf("write did not land in upper: %v", err)
	}
	if _, err := os.Stat(filepath.Join(img.Layers[0], "hello")); err == nil {
		t.Fatal("write reached the layer")
	}
	// Idempotent: preparing again returns the same mount, not a second one.
	again, err := s.PrepareRootfs(t.Context(), img, dir, nil)
	if err != nil || again != rootfs || len(mountsUnder(t, dir)) != 1 {
		t.Fatalf("second prepare: %s, %v, mounts %v", again, err, mountsUnder(t, dir))
	}
	if err := s.Remove(t.Context(), "busybox"); !errors.Is(err, ErrInUse) {
		t.Fatalf("Remove of used image: %v, want ErrInUse", err)
	}
	if removed, err := s.Prune(t.Context()); err != nil || len(removed) != 0 {
		t.Fatalf("Prune removed %v, %v", removed, err)
	}

	if err := s.ReleaseRootfs(t.Context(), dir); err != nil {
		t.Fatal(err)
	}
	if m := mountsUnder(t, dir); len(m) != 0 {
		t.Fatalf("still mounted: %v", m)
	}
	for _, p := range []string{"upper", "work", "rootfs"} {
		if _, err := os.Stat(filepath.Join(dir, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind: %v", p, err)
		}
	}
	if err := s.ReleaseRootfs(t.Context(), dir); err != nil {
		t.Fatalf("second release: %v", err)
	}
	if err := s.ReleaseRootfs(t.Context(), filepath.Join(dir, "never")); err != nil {
		t.Fatalf("release of unknown dir: %v", err)
	}
	if err := s.Remove(t.Context(), "busybox"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(img.Layers[0]); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("layer not collected: %v", err)
	}
	if _, err := s.Get("busybox"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Remove: %v", err)
	}
}

func TestWhiteoutsInMergedRootfs(t *testing.T) {
	testutil.RequiresRoot(t)
	s := newStore(t, Options{})
	lower := layerTar(t,
		tarEntry{name: "a/", typ: tar.TypeDir, mode: 0o755},
		tarEntry{name: "a/x", data: "x"},
		tarEntry{name: "a/y", data: "y"},
		tarEntry{name: "f", data: "f"},
		tarEntry{name: "keep", data: "keep"},
	)
	upper := layerTar(t,
		tarEntry{name: "a/", typ: tar.TypeDir, mode: 0o755},
		tarEntry{name: "a/.wh..wh..opq"},
		tarEntry{name: "a/z", data: "z"},
		tarEntry{name: ".wh.f"},
	)
	if _, err := s.Import(t.Context(), writeArchive(t, "example.com/wh:1", imageOf(t, lower, upper))); err != nil {
		t.Fatal(err)
	}
	img, err := s.Get("example.com/wh:1")
	if err != nil {
		t.Fatal(err)
	}
	if len(img.Layers) != 2 {
		t.Fatalf("layers %v", img.Layers)
	}
	_, rootfs := prepare(t, s, img)
	for p, want := range map[string]bool{"keep": true, "a/z": true, "f": false, "a/x": false, "a/y": false} {
		_, err := os.Lstat(filepath.Join(rootfs, p))
		if got := err == nil; got != want {
			t.Errorf("%s present = %v, want %v (%v)", p, got, want, err)
		}
	}
}
