package apiserver

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/rand"
)

// The ServiceAccount admission plugin's names.
const (
	// ServiceAccountVolumePrefix starts the name of the token volume,
	// kube-api-access-<5 random>.
	ServiceAccountVolumePrefix = "kube-api-access-"
	// ServiceAccountMountPath is where every container sees it.
	ServiceAccountMountPath = "/var/run/secrets/kubernetes.io/serviceaccount"
	// RootCAConfigMap is the per-namespace ConfigMap holding ca.crt.
	RootCAConfigMap = "kube-root-ca.crt"
	// serviceAccountTokenSeconds is the kubelet-rotated token's lifetime.
	serviceAccountTokenSeconds = 3607
	mirrorPodAnnotation        = "kubernetes.io/config.mirror"
)

// AdmitServiceAccount applies Kubernetes' ServiceAccount admission to a
// pod being created (after DefaultPod): unless it is a mirror pod or sets
// automountServiceAccountToken: false, it gets a kube-api-access-<random>
// projected volume (a serviceAccountToken valid 3607s at "token", ca.crt of
// the kube-root-ca.crt ConfigMap, and the namespace through the downward
// API) mounted read-only at /var/run/secrets/kubernetes.io/serviceaccount
// in every init and app container that has no mount there already. It also
// defaults projected serviceAccountToken sources (expirationSeconds 3600).
// Idempotent: a pod that already has a kube-api-access-* volume keeps it.
// The ServiceAccount object's own automountServiceAccountToken is not
// consulted (this runs without storage access).
func AdmitServiceAccount(pod *corev1.Pod) {
	admitServiceAccount(pod, func() string { return rand.String(5) })
}

// admitServiceAccount is AdmitServiceAccount with the random suffix
// injected, for tests. Pure apart from suffix.
func admitServiceAccount(pod *corev1.Pod, suffix func() string) {
	for i := range pod.Spec.Volumes {
		if p := pod.Spec.Volumes[i].Projected; p != nil {
			for j := range p.Sources {
				if t := p.Sources[j].ServiceAccountToken; t != nil && t.ExpirationSeconds == nil {
					s := int64(defaultTokenExpirationSeconds)
					t.ExpirationSeconds = &s
				}
			}
		}
	}
	if _, mirror := pod.Annotations[mirrorPodAnnotation]; mirror {
		return
	}
	if a := pod.Spec.AutomountServiceAccountToken; a != nil && !*a {
		return
	}
	name, hasVolume := "", false
	for _, v := range pod.Spec.Volumes {
		if strings.HasPrefix(v.Name, ServiceAccountVolumePrefix) {
			name, hasVolume = v.Name, true
			break
		}
	}
	if name == "" {
		name = ServiceAccountVolumePrefix + suffix()
	}
	mount := corev1.VolumeMount{Name: name, ReadOnly: true, MountPath: ServiceAccountMountPath}
	needed := false
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			c := &cs[i]
			has := false
			for _, m := range c.VolumeMounts {
				if m.MountPath == ServiceAccountMountPath {
					has = true
					break
				}
			}
			if !has {
				c.VolumeMounts = append(c.VolumeMounts, mount)
				needed = true
			}
		}
	}
	if needed && !hasVolume {
		pod.Spec.Volumes = append(pod.Spec.Volumes, serviceAccountVolume(name))
	}
}

// serviceAccountVolume is the projected volume the admission adds, already
// defaulted (defaultMode 0644, fieldRef apiVersion v1).
func serviceAccountVolume(name string) corev1.Volume {
	mode := int32(corev1.ProjectedVolumeSourceDefaultMode)
	secs := int64(serviceAccountTokenSeconds)
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		DefaultMode: &mode,
		Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{ExpirationSeconds: &secs, Path: "token"}},
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: RootCAConfigMap},
				Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
			{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "namespace",
				FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}}}},
		},
	}}}
}

// enableServiceAccountAdmission makes a's pod create path run
// AdmitServiceAccount after the pod's defaulting.
func enableServiceAccountAdmission(a *api) {
	res := a.resourceFor("", "v1", "pods")
	prev := res.Strategy.PrepareForCreate
	res.Strategy.PrepareForCreate = func(obj runtime.Object) {
		if prev != nil {
			prev(obj)
		}
		AdmitServiceAccount(obj.(*corev1.Pod))
	}
}
