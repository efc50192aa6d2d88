package agent

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/peapod/peapod/internal/controller/persistentvolume"
)

// TestLocalPathDirToRemove: a node removes only its own released
// local-path volumes' directories, and only directly under its storage
// directory.
func TestLocalPathDirToRemove(t *testing.T) {
	mk := func(mod func(*corev1.PersistentVolume)) *corev1.PersistentVolume {
		pv := &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: "pvc-1", Annotations: map[string]string{
				persistentvolume.AnnProvisionedBy: persistentvolume.LocalPathProvisioner, persistentvolume.AnnLocalPathNode: "n1"}},
			Spec: corev1.PersistentVolumeSpec{PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
				PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/data/storage/pvc-1_ns_c"}}},
			Status: corev1.PersistentVolumeStatus{Phase: corev1.VolumeReleased},
		}
		if mod != nil {
			mod(pv)
		}
		return pv
	}
	for _, tc := range []struct {
		name string
		pv   *corev1.PersistentVolume
		want string
	}{
		{"released, Delete, ours", mk(nil), "/data/storage/pvc-1_ns_c"},
		{"still bound", mk(func(pv *corev1.PersistentVolume) { pv.Status.Phase = corev1.VolumeBound }), ""},
		{"Retain", mk(func(pv *corev1.PersistentVolume) {
			pv.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimRetain
		}), ""},
		{"another node's", mk(func(pv *corev1.PersistentVolume) { pv.Annotations[persistentvolume.AnnLocalPathNode] = "n2" }), ""},
		{"not local-path", mk(func(pv *corev1.PersistentVolume) { delete(pv.Annotations, persistentvolume.AnnProvisionedBy) }), ""},
		{"outside the storage dir", mk(func(pv *corev1.PersistentVolume) { pv.Spec.HostPath.Path = "/etc" }), ""},
		{"the storage dir itself", mk(func(pv *corev1.PersistentVolume) { pv.Spec.HostPath.Path = "/data/storage" }), ""},
		{"climbing out", mk(func(pv *corev1.PersistentVolume) { pv.Spec.HostPath.Path = "/data/storage/pvc-1/../../x" }), ""},
		{"not a claim directory", mk(func(pv *corev1.PersistentVolume) { pv.Spec.HostPath.Path = "/data/storage/other" }), ""},
	} {
		if got := LocalPathDirToRemove(tc.pv, "n1", "/data/storage"); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
