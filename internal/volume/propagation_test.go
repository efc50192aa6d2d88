package volume

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"

	"github.com/peapod/peapod/internal/testutil"
)

func TestNeedsSharedVolumes(t *testing.T) {
	prop := func(m corev1.MountPropagationMode) *corev1.MountPropagationMode { return &m }
	pod := testPod(emptyDir("scratch", "", ""), corev1.Volume{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/mnt"}}})
	if NeedsSharedVolumes(pod) {
		t.Fatal("a pod without propagation needs no shared volumes")
	}
	pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "host", MountPath: "/h", MountPropagation: prop(corev1.MountPropagationHostToContainer)}}
	if NeedsSharedVolumes(pod) {
		t.Fatal("propagation on a hostPath needs the host's mount shared, not the pod's volumes")
	}
	pod.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "d",
		VolumeMounts: []corev1.VolumeMount{{Name: "scratch", MountPath: "/s", MountPropagation: prop(corev1.MountPropagationHostToContainer)}}}}}
	if !NeedsSharedVolumes(pod) {
		t.Fatal("HostToContainer on an emptyDir needs the pod's volumes shared")
	}
}

// TestBindSubPath binds the resolved descriptor, so that the bind shows
// the subPath even after its path is swapped for a symlink out of the
// volume, and refuses escapes; TeardownDir removes the binds.
func TestBindSubPath(t *testing.T) {
	testutil.RequiresRoot(t)
	pd := podDir(t)
	vol := filepath.Join(pd, "volumes", "v")
	outside := tempDir(t)
	for _, d := range []string{vol, filepath.Join(pd, SubPathsDir, "v", "c")} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("host"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(vol, "out")); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(pd, SubPathsDir, "v", "c", "0")
	if err := BindSubPath(vol, "logs/web-0", target); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(target, "x"), []byte("in"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(vol, "logs/web-0/x")); err != nil || string(b) != "in" {
		t.Fatalf("the bind does not show the subPath: %q %v", b, err)
	}
	// Swapping the subPath for a symlink out of the volume after the bind
	// changes nothing for the bind: it holds the directory, not the path.
	if err := os.Rename(filepath.Join(vol, "logs/web-0"), filepath.Join(vol, "logs/moved")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(vol, "logs/web-0")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(target, "secret")); err == nil {
		t.Fatal("the bind followed the swapped path out of the volume")
	}
	// A file subPath binds a file; a second bind at the same target
	// replaces the first.
	if err := os.WriteFile(filepath.Join(vol, "app.conf"), []byte("conf"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(pd, SubPathsDir, "v", "c", "1")
	for range 2 {
		if err := BindSubPath(vol, "app.conf", file); err != nil {
			t.Fatal(err)
		}
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "conf" {
		t.Fatalf("file subPath: %q %v", b, err)
	}
	if n := len(mountsAt(t, file)); n != 1 {
		t.Fatalf("%d mounts at the file target after binding twice, want 1", n)
	}
	// Escapes are refused, and nothing is mounted for them.
	for _, sub := range []string{"out", "out/secret", "logs/web-0", "../x", "/etc"} {
		bad := filepath.Join(pd, SubPathsDir, "v", "c", "bad")
		err := BindSubPath(vol, sub, bad)
		if err == nil || (!errors.Is(err, ErrSubPathEscape) && !strings.Contains(err.Error(), "must not be an absolute path")) {
			t.Errorf("BindSubPath(%q) = %v, want a refusal", sub, err)
		}
		if len(mountsAt(t, bad)) != 0 {
			t.Errorf("BindSubPath(%q) left a mount", sub)
		}
	}
	if err := NewManager(nil).TeardownDir(t.Context(), pd); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(pd, SubPathsDir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("volume-subpaths left behind: %v", err)
	}
}

// TestShareVolumes: a pod asking for propagation on its own volumes gets
// its volumes directory on a shared mount, so a mount made below it shows
// through a HostToContainer-style (slave) bind, and CheckPropagation
// answers as containerd does.
func TestShareVolumes(t *testing.T) {
	testutil.RequiresRoot(t)
	pd := podDir(t)
	prop := corev1.MountPropagationBidirectional
	yes := true
	pod := testPod(emptyDir("scratch", "", ""), emptyDir("ram", corev1.StorageMediumMemory, ""))
	pod.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: &yes}
	pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "scratch", MountPath: "/s", MountPropagation: &prop}}
	prep, err := NewManager(nil).Setup(t.Context(), pd, pod)
	if err != nil {
		t.Fatal(err)
	}
	scratch := prep.Paths["scratch"]
	for _, mode := range []corev1.MountPropagationMode{corev1.MountPropagationBidirectional, corev1.MountPropagationHostToContainer} {
		if err := CheckPropagation(scratch, mode); err != nil {
			t.Errorf("%s on a shared volume: %v", mode, err)
		}
	}
	if again, err := ShareVolumes(pd); err != nil || again {
		t.Errorf("ShareVolumes again: bound %v, %v; want nothing to do", again, err)
	}
	// A slave bind of the volume (what runc makes for HostToContainer)
	// receives a mount made on the host side afterwards.
	view := filepath.Join(tempDir(t), "view")
	if err := os.Mkdir(view, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(scratch, view, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	defer unmount(view)
	if err := unix.Mount("", view, "", unix.MS_SLAVE, ""); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(scratch, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", sub, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	if len(mountsAt(t, filepath.Join(view, "sub"))) != 1 {
		t.Error("a mount under the shared volume did not reach the slave bind")
	}
	if err := unmount(filepath.Join(view, "sub")); err != nil {
		t.Fatal(err)
	}
	if err := unmount(view); err != nil {
		t.Fatal(err)
	}
	// The private mount holding a test's temp dir carries nothing.
	private := tempDir(t)
	if m, err := mountOf(private); err == nil && !hasTag(m, "shared:") && !hasTag(m, "master:") {
		err := CheckPropagation(private, corev1.MountPropagationHostToContainer)
		if err == nil || !strings.Contains(err.Error(), "but it is not a shared or slave mount") {
			t.Errorf("HostToContainer from a private mount: %v", err)
		}
		err = CheckPropagation(private, corev1.MountPropagationBidirectional)
		if err == nil || !strings.Contains(err.Error(), "but it is not a shared mount") {
			t.Errorf("Bidirectional from a private mount: %v", err)
		}
	}
	// TeardownDir takes the shared bind, the tmpfs mounted through it and
	// the memory emptyDir away.
	if err := NewManager(nil).TeardownDir(t.Context(), pd); err != nil {
		t.Fatal(err)
	}
}

// mountsAt lists the mounts at exactly path.
func mountsAt(t *testing.T, path string) []string {
	t.Helper()
	real, err := realPath(path)
	if err != nil {
		t.Fatal(err)
	}
	all, err := mountsUnder(real)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range all {
		if m == real {
			out = append(out, m)
		}
	}
	return out
}
