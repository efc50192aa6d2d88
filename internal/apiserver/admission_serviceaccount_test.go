package apiserver

import (
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestAdmitServiceAccount(t *testing.T) {
	fixed := func() string { return "abcde" }
	mount := corev1.VolumeMount{Name: "kube-api-access-abcde", ReadOnly: true, MountPath: ServiceAccountMountPath}
	own := corev1.VolumeMount{Name: "mine", MountPath: ServiceAccountMountPath}
	f := false
	cases := []struct {
		name       string
		pod        corev1.Pod
		wantVolume bool
		wantMounts [][]corev1.VolumeMount // init containers then containers
	}{
		{name: "default", pod: corev1.Pod{Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "i"}}, Containers: []corev1.Container{{Name: "a"}, {Name: "b"}}}},
			wantVolume: true, wantMounts: [][]corev1.VolumeMount{{mount}, {mount}, {mount}}},
		{name: "opted out", pod: corev1.Pod{Spec: corev1.PodSpec{AutomountServiceAccountToken: &f, Containers: []corev1.Container{{Name: "a"}}}},
			wantMounts: [][]corev1.VolumeMount{nil}},
		{name: "mirror pod", pod: corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{mirrorPodAnnotation: "x"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "a"}}}},
			wantMounts: [][]corev1.VolumeMount{nil}},
		{name: "own mount at the path", pod: corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "a", VolumeMounts: []corev1.VolumeMount{own}}, {Name: "b"}}}},
			wantVolume: true, wantMounts: [][]corev1.VolumeMount{{own}, {mount}}},
		{name: "every container has its own", pod: corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "a", VolumeMounts: []corev1.VolumeMount{own}}}}},
			wantMounts: [][]corev1.VolumeMount{{own}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := tc.pod.DeepCopy()
			admitServiceAccount(pod, fixed)
			hasVolume := false
			for _, v := range pod.Spec.Volumes {
				if v.Name == "kube-api-access-abcde" {
					hasVolume = true
					if !reflect.DeepEqual(v, serviceAccountVolume(v.Name)) {
						t.Errorf("volume %+v", v)
					}
				}
			}
			if hasVolume != tc.wantVolume {
				t.Fatalf("volume added = %v, want %v", hasVolume, tc.wantVolume)
			}
			var got [][]corev1.VolumeMount
			for _, c := range append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
				got = append(got, c.VolumeMounts)
			}
			if !reflect.DeepEqual(got, tc.wantMounts) {
				t.Fatalf("mounts %+v, want %+v", got, tc.wantMounts)
			}
			// Idempotent.
			again := pod.DeepCopy()
			admitServiceAccount(again, func() string { return "zzzzz" })
			if !reflect.DeepEqual(again, pod) {
				t.Fatalf("second admission changed the pod:\n%+v\n%+v", again.Spec, pod.Spec)
			}
		})
	}

	v := serviceAccountVolume("kube-api-access-x")
	src := v.Projected.Sources
	if *v.Projected.DefaultMode != 0o644 || *src[0].ServiceAccountToken.ExpirationSeconds != 3607 || src[0].ServiceAccountToken.Path != "token" ||
		src[1].ConfigMap.Name != "kube-root-ca.crt" || src[1].ConfigMap.Items[0] != (corev1.KeyToPath{Key: "ca.crt", Path: "ca.crt"}) ||
		src[2].DownwardAPI.Items[0].Path != "namespace" || src[2].DownwardAPI.Items[0].FieldRef.FieldPath != "metadata.namespace" {
		t.Fatalf("volume %+v", v)
	}

	// A user's projected token source gets expirationSeconds defaulted.
	pod := &corev1.Pod{Spec: corev1.PodSpec{Volumes: []corev1.Volume{{Name: "t", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "t", Audience: "vault"}}}}}}}}}
	admitServiceAccount(pod, fixed)
	if e := pod.Spec.Volumes[0].Projected.Sources[0].ServiceAccountToken.ExpirationSeconds; e == nil || *e != 3600 {
		t.Fatalf("expirationSeconds %v", e)
	}
}

// TestServiceAccountAdmissionThroughAPI creates pods through the API with
// the admission on: the added volume passes validation and is stored.
func TestServiceAccountAdmissionThroughAPI(t *testing.T) {
	srv, _ := newTokenTestAPI(t, true)
	r := do(t, srv, "POST", "/api/v1/namespaces/default/pods", "application/json", podJSON)
	if r.code != 201 {
		t.Fatalf("create: %d %s", r.code, r.body)
	}
	r = do(t, srv, "GET", "/api/v1/namespaces/default/pods/p1", "", "")
	vols, _ := jfield(r.obj, "spec", "volumes").([]any)
	if len(vols) != 1 {
		t.Fatalf("volumes %s", r.body)
	}
	name, _ := vols[0].(map[string]any)["name"].(string)
	if !strings.HasPrefix(name, "kube-api-access-") || len(name) != len("kube-api-access-")+5 {
		t.Fatalf("volume name %q", name)
	}
	mounts, _ := jfield(r.obj, "spec", "containers").([]any)[0].(map[string]any)["volumeMounts"].([]any)
	if len(mounts) != 1 || mounts[0].(map[string]any)["mountPath"] != ServiceAccountMountPath || mounts[0].(map[string]any)["readOnly"] != true {
		t.Fatalf("mounts %v", mounts)
	}
	// Updating the pod keeps it valid and unchanged.
	r = do(t, srv, "PATCH", "/api/v1/namespaces/default/pods/p1", "application/merge-patch+json", `{"metadata":{"labels":{"x":"y"}}}`)
	if r.code != 200 || len(jfield(r.obj, "spec", "volumes").([]any)) != 1 {
		t.Fatalf("patch: %d %s", r.code, r.body)
	}
	// Opting out.
	r = do(t, srv, "POST", "/api/v1/namespaces/default/pods", "application/json",
		`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p2"},"spec":{"automountServiceAccountToken":false,"containers":[{"name":"c","image":"busybox:1.36"}]}}`)
	if r.code != 201 || jfield(r.obj, "spec", "volumes") != nil {
		t.Fatalf("opted out: %d %s", r.code, r.body)
	}
}
