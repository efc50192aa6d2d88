package volume

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
	"github.com/peapod/peapod/internal/testutil"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func emptyDir(name string, medium corev1.StorageMedium, limit string) corev1.Volume {
	ed := &corev1.EmptyDirVolumeSource{Medium: medium}
	if limit != "" {
		ed.SizeLimit = ptr(resource.MustParse(limit))
	}
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: ed}}
}

// tmpfsAt returns the tmpfs mounts at exactly path (stacked ones counted).
func tmpfsAt(t *testing.T, path string) []*mountinfo.Info {
	t.Helper()
	real, err := realPath(path)
	if err != nil {
		t.Fatal(err)
	}
	mounts, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) {
		return m.Mountpoint != real || m.FSType != "tmpfs", false
	})
	if err != nil {
		t.Fatal(err)
	}
	return mounts
}

func fsSize(t *testing.T, path string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Blocks) * st.Bsize
}

func TestEmptyDirDisk(t *testing.T) {
	pd := podDir(t)
	m := NewManager(nil)
	pod := testPod(emptyDir("cache", "", "1Gi"), emptyDir("plain", "", ""))
	prep, err := m.Setup(t.Context(), pd, pod)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"cache", "plain"} {
		want := filepath.Join(pd, "volumes", PluginEmptyDir, name)
		if prep.Paths[name] != want {
			t.Errorf("path %s = %q, want %q", name, prep.Paths[name], want)
		}
		st, err := os.Stat(want)
		if err != nil || !st.IsDir() || st.Mode().Perm() != 0o777 {
			t.Errorf("%s: stat %v %v, want dir 0777", name, st, err)
		}
	}
	if got := prep.EmptyDirLimits; len(got) != 1 || got["cache"] != 1<<30 {
		t.Errorf("EmptyDirLimits = %v", got)
	}
	// Setup again keeps the contents.
	if err := os.WriteFile(filepath.Join(prep.Paths["cache"], "f"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Setup(t.Context(), pd, pod); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(prep.Paths["cache"], "f")); err != nil || string(b) != "keep" {
		t.Errorf("content after second Setup: %q %v", b, err)
	}
	for i := 0; i < 2; i++ {
		if err := m.Teardown(t.Context(), pd, pod); err != nil {
			t.Fatalf("teardown %d: %v", i, err)
		}
	}
	if _, err := os.Stat(filepath.Join(pd, "volumes")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("volumes dir still there: %v", err)
	}
}

func TestEmptyDirFSGroup(t *testing.T) {
	testutil.RequiresRoot(t)
	pd := podDir(t)
	pod := testPod(emptyDir("shared", "", ""))
	pod.Spec.SecurityContext = &corev1.PodSecurityContext{FSGroup: ptr(int64(2345))}
	prep, err := NewManager(nil).Setup(t.Context(), pd, pod)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(prep.Paths["shared"], &st); err != nil {
		t.Fatal(err)
	}
	if st.Gid != 2345 || st.Mode&unix.S_ISGID == 0 || st.Mode&0o777 != 0o777 {
		t.Errorf("gid %d mode %o, want gid 2345 setgid 0777", st.Gid, st.Mode)
	}
}

func TestEmptyDirMemory(t *testing.T) {
	testutil.RequiresRoot(t)
	for _, tc := range []struct {
		name     string
		limit    string
		memLimit string // every container's memory limit
		wantSize int64  // 0: kernel default (half of RAM)
	}{
		{name: "sizeLimit", limit: "64Mi", wantSize: 64 << 20},
		{name: "pod limit smaller than sizeLimit", limit: "64Mi", memLimit: "32Mi", wantSize: 32 << 20},
		{name: "sizeLimit smaller than pod limit", limit: "16Mi", memLimit: "32Mi", wantSize: 16 << 20},
		{name: "pod limit only", memLimit: "48Mi", wantSize: 48 << 20},
		{name: "no limits"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pd := podDir(t)
			m := NewManager(nil)
			pod := testPod(emptyDir("mem", corev1.StorageMediumMemory, tc.limit))
			if tc.memLimit != "" {
				pod.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(tc.memLimit)}
			}
			prep, err := m.Setup(t.Context(), pd, pod)
			if err != nil {
				t.Fatal(err)
			}
			dir := prep.Paths["mem"]
			if n := len(tmpfsAt(t, dir)); n != 1 {
				t.Fatalf("%d tmpfs mounts at %s, want 1", n, dir)
			}
			want := tc.wantSize
			if want == 0 {
				var si unix.Sysinfo_t
				if err := unix.Sysinfo(&si); err != nil {
					t.Fatal(err)
				}
				want = int64(si.Totalram) * int64(si.Unit) / 2
			}
			if got := fsSize(t, dir); got < want-(1<<20) || got > want+(1<<20) {
				t.Errorf("tmpfs size %d, want %d", got, want)
			}
			st, err := os.Stat(dir)
			if err != nil || st.Mode().Perm() != 0o777 || st.Mode()&os.ModeSticky == 0 {
				t.Errorf("mode %v %v", st, err)
			}
			if len(prep.EmptyDirLimits) != 0 {
				t.Errorf("memory emptyDir in EmptyDirLimits: %v", prep.EmptyDirLimits)
			}
			// Idempotent Setup: no second mount, contents kept.
			if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := m.Setup(t.Context(), pd, pod); err != nil {
				t.Fatal(err)
			}
			if n := len(tmpfsAt(t, dir)); n != 1 {
				t.Errorf("%d tmpfs mounts after second Setup", n)
			}
			if _, err := os.Stat(filepath.Join(dir, "f")); err != nil {
				t.Errorf("content lost: %v", err)
			}
			for i := 0; i < 2; i++ {
				if err := m.Teardown(t.Context(), pd, pod); err != nil {
					t.Fatalf("teardown %d: %v", i, err)
				}
				if n := len(tmpfsAt(t, dir)); n != 0 {
					t.Fatalf("teardown %d left %d tmpfs mounts", i, n)
				}
			}
			if _, err := os.Stat(filepath.Join(pd, "volumes")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("volumes dir still there: %v", err)
			}
		})
	}
}

func TestTeardownDirOnly(t *testing.T) {
	testutil.RequiresRoot(t)
	pd := podDir(t)
	pod := testPod(emptyDir("a", corev1.StorageMediumMemory, "8Mi"), emptyDir("b", corev1.StorageMediumMemory, "8Mi"), emptyDir("c", "", ""))
	prep, err := NewManager(nil).Setup(t.Context(), pd, pod)
	if err != nil {
		t.Fatal(err)
	}
	// A mount stacked on top and one nested inside, as leftovers might be.
	if err := unix.Mount("tmpfs", prep.Paths["a"], "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	nested := filepath.Join(prep.Paths["b"], "nested")
	if err := os.Mkdir(nested, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", nested, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	// A fresh manager and no pod: everything comes from the directory.
	m := NewManager(nil)
	for i := 0; i < 2; i++ {
		if err := m.TeardownDir(context.Background(), pd); err != nil {
			t.Fatalf("TeardownDir %d: %v", i, err)
		}
	}
	real, _ := realPath(pd)
	if left, err := mountsUnder(real); err != nil || len(left) != 0 {
		t.Errorf("mounts left: %v %v", left, err)
	}
	if _, err := os.Stat(filepath.Join(pd, "volumes")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("volumes dir still there: %v", err)
	}
	// A pod dir that never had volumes, or does not exist at all.
	if err := m.TeardownDir(context.Background(), filepath.Join(pd, "does-not-exist")); err != nil {
		t.Errorf("TeardownDir of a missing dir: %v", err)
	}
}

func TestSetupErrorsAndRollback(t *testing.T) {
	testutil.RequiresRoot(t)
	hp := tempDir(t)
	for _, tc := range []struct {
		name    string
		vols    []corev1.Volume
		wantErr string
	}{
		{
			name: "unsupported after tmpfs",
			vols: []corev1.Volume{
				emptyDir("mem", corev1.StorageMediumMemory, "8Mi"),
				emptyDir("disk", "", ""),
				{Name: "nfs", VolumeSource: corev1.VolumeSource{NFS: &corev1.NFSVolumeSource{Server: "s", Path: "/p"}}},
			},
			wantErr: "spec.volumes[2].nfs: not supported yet",
		},
		{
			name:    "nfs",
			vols:    []corev1.Volume{{Name: "n", VolumeSource: corev1.VolumeSource{NFS: &corev1.NFSVolumeSource{Server: "x", Path: "/"}}}},
			wantErr: "spec.volumes[0].nfs: not supported yet",
		},
		{
			name:    "no type",
			vols:    []corev1.Volume{{Name: "n"}},
			wantErr: "spec.volumes[0]: must specify a volume type",
		},
		{
			name:    "hugepages",
			vols:    []corev1.Volume{emptyDir("h", corev1.StorageMediumHugePages, "")},
			wantErr: "spec.volumes[0].emptyDir.medium",
		},
		{
			name: "hostPath check after emptyDir",
			vols: []corev1.Volume{
				emptyDir("mem", corev1.StorageMediumMemory, "8Mi"),
				{Name: "h", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: hp, Type: ptr(corev1.HostPathSocket)}}},
			},
			wantErr: "is not a socket file",
		},
		{
			name:    "bad name",
			vols:    []corev1.Volume{emptyDir("../escape", "", "")},
			wantErr: "spec.volumes[0].name: Invalid value",
		},
		{
			name:    "duplicate name",
			vols:    []corev1.Volume{emptyDir("a", "", ""), emptyDir("a", "", "")},
			wantErr: "spec.volumes[1].name: Duplicate value",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pd := podDir(t)
			_, err := NewManager(nil).Setup(t.Context(), pd, testPod(tc.vols...))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want containing %q", err, tc.wantErr)
			}
			real, _ := realPath(pd)
			if left, _ := mountsUnder(real); len(left) != 0 {
				t.Errorf("rollback left mounts: %v", left)
			}
			entries, _ := os.ReadDir(filepath.Join(pd, "volumes", PluginEmptyDir))
			if len(entries) != 0 {
				t.Errorf("rollback left dirs: %v", entries)
			}
		})
	}
}

func TestRollbackKeepsExisting(t *testing.T) {
	testutil.RequiresRoot(t)
	pd := podDir(t)
	m := NewManager(nil)
	good := testPod(emptyDir("mem", corev1.StorageMediumMemory, "8Mi"))
	prep, err := m.Setup(t.Context(), pd, good)
	if err != nil {
		t.Fatal(err)
	}
	// A failing second Setup must not undo what the first one made.
	bad := testPod(emptyDir("mem", corev1.StorageMediumMemory, "8Mi"), emptyDir("new", "", ""),
		corev1.Volume{Name: "claim", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "c"}}})
	if _, err := m.Setup(t.Context(), pd, bad); err == nil {
		t.Fatal("Setup succeeded")
	}
	if n := len(tmpfsAt(t, prep.Paths["mem"])); n != 1 {
		t.Errorf("existing tmpfs unmounted by rollback (%d mounts)", n)
	}
	if _, err := os.Stat(filepath.Join(pd, "volumes", PluginEmptyDir, "new")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("new dir not rolled back: %v", err)
	}
}
