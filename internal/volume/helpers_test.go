package volume

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/peapod/peapod/internal/leakcheck"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// podDir makes a throwaway pod directory whose volumes are torn down and
// which is removed when the test ends, also on failure.
func podDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pp")
	if err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs last: after the teardown below and the
	// test's own Teardown, nothing may remain mounted under the pod dir.
	if os.Geteuid() == 0 {
		opts := leakcheck.Options{DataDirs: []string{dir}, Only: []string{dir}}
		before, err := leakcheck.Take(opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { leakcheck.Check(t, before, opts, time.Second) })
	}
	t.Cleanup(func() {
		if err := NewManager(nil).TeardownDir(context.Background(), dir); err != nil {
			t.Errorf("cleanup teardown: %v", err)
		}
		os.RemoveAll(dir)
	})
	return dir
}

func tempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	dir, err = filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func testPod(vols ...corev1.Volume) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns1", UID: "uid-1"},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "c", Image: "busybox"}},
			Volumes:    vols,
		},
	}
}

func ptr[T any](v T) *T { return &v }
