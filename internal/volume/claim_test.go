package volume

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// TestSetupClaim resolves persistentVolumeClaim volumes through their
// bound volume: a local-path hostPath (DirectoryOrCreate) directory is
// made on first use and kept with its data; unbound or mis-bound claims
// fail naming the volume's field.
func TestSetupClaim(t *testing.T) {
	base := t.TempDir()
	dirType := corev1.HostPathDirectoryOrCreate
	data := filepath.Join(base, "storage", "pvc-1_ns1_data")
	local := filepath.Join(base, "local")
	if err := os.Mkdir(local, 0o755); err != nil {
		t.Fatal(err)
	}
	bound := func(name, uid, volume string) *corev1.PersistentVolumeClaim {
		return &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns1", UID: types.UID("uid-c" + uid)},
			Spec: corev1.PersistentVolumeClaimSpec{VolumeName: volume}, Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound}}
	}
	ref := func(uid string) *corev1.ObjectReference {
		return &corev1.ObjectReference{Namespace: "ns1", UID: types.UID("uid-c" + uid)}
	}
	src := newSources()
	src.claims = map[string]*corev1.PersistentVolumeClaim{
		"ns1/data":     bound("data", "1", "pvc-1"),
		"ns1/local":    bound("local", "2", "lv"),
		"ns1/pending":  {ObjectMeta: metav1.ObjectMeta{Name: "pending", Namespace: "ns1"}, Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimPending}},
		"ns1/misbound": bound("misbound", "3", "lv"),
	}
	src.volumes = map[string]*corev1.PersistentVolume{
		"pvc-1": {ObjectMeta: metav1.ObjectMeta{Name: "pvc-1", Annotations: map[string]string{annProvisionedBy: localPathProvisioner}}, Spec: corev1.PersistentVolumeSpec{ClaimRef: ref("1"),
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: data, Type: &dirType}}}},
		"lv": {ObjectMeta: metav1.ObjectMeta{Name: "lv"}, Spec: corev1.PersistentVolumeSpec{ClaimRef: ref("2"),
			PersistentVolumeSource: corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: local}}}},
	}
	m := NewManager(nil, WithSources(src))
	pod := func(claim string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns1"}, Spec: corev1.PodSpec{Volumes: []corev1.Volume{
			{Name: "v", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}}}}}
	}
	ctx := context.Background()
	dir := t.TempDir()
	prep, err := m.Setup(ctx, dir, pod("data"))
	if err != nil {
		t.Fatal(err)
	}
	if prep.Paths["v"] != data {
		t.Fatalf("path %q, want %q", prep.Paths["v"], data)
	}
	if st, err := os.Stat(data); err != nil || !st.IsDir() || st.Mode().Perm() != 0o777 {
		t.Fatalf("local-path directory not made 0777: %v %v", st, err)
	}
	if err := os.WriteFile(filepath.Join(data, "keep"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := m.Teardown(ctx, dir, pod("data")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(data, "keep")); err != nil {
		t.Fatalf("teardown touched the claim's data: %v", err)
	}
	if prep, err := m.Setup(ctx, t.TempDir(), pod("local")); err != nil || prep.Paths["v"] != local {
		t.Fatalf("local volume: %v %v", prep, err)
	}
	for claim, want := range map[string]string{
		"pending":  `spec.volumes[0].persistentVolumeClaim: claim "pending" is not bound`,
		"misbound": `volume "lv" is not bound to claim "misbound"`,
		"missing":  `spec.volumes[0].persistentVolumeClaim: get claim "missing"`,
	} {
		_, err := m.Setup(ctx, t.TempDir(), pod(claim))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("claim %s: %v, want %q", claim, err, want)
		}
	}
}
