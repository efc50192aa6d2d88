package apiserver

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// unsupportedMsg ends every refusal of a field peapod does not implement.
const unsupportedMsg = "not supported by peapod"

// UnsupportedPodFields lists, as Forbidden errors naming each field, the
// pod fields peapod does not implement; they are refused rather than
// silently ignored. This is the one place that list is kept. Pure.
func UnsupportedPodFields(pod *corev1.Pod) field.ErrorList {
	spec := field.NewPath("spec")
	s := &pod.Spec
	var errs field.ErrorList
	forbid := func(set bool, p *field.Path) {
		if set {
			errs = append(errs, field.Forbidden(p, unsupportedMsg))
		}
	}
	forbid(len(s.ResourceClaims) > 0, spec.Child("resourceClaims"))
	forbid(s.Overhead != nil, spec.Child("overhead"))
	forbid(s.OS != nil && s.OS.Name != corev1.Linux, spec.Child("os", "name"))
	for i, v := range s.Volumes {
		p := spec.Child("volumes").Index(i)
		vs := v.VolumeSource
		supported := vs.EmptyDir != nil || vs.HostPath != nil || vs.ConfigMap != nil || vs.Secret != nil ||
			vs.DownwardAPI != nil || vs.Projected != nil || vs.PersistentVolumeClaim != nil
		if !supported {
			errs = append(errs, field.Forbidden(p, "volume type "+volumeType(vs)+" is "+unsupportedMsg+" (supported: emptyDir, hostPath, configMap, secret, downwardAPI, projected, persistentVolumeClaim)"))
		}
	}
	containers := func(p *field.Path, cs []corev1.Container) {
		for i, c := range cs {
			cp := p.Index(i)
			forbid(len(c.VolumeDevices) > 0, cp.Child("volumeDevices"))
			if sc := c.SecurityContext; sc != nil {
				forbid(sc.WindowsOptions != nil, cp.Child("securityContext", "windowsOptions"))
				forbid(sc.AppArmorProfile != nil && sc.AppArmorProfile.Type == corev1.AppArmorProfileTypeLocalhost, cp.Child("securityContext", "appArmorProfile"))
			}
		}
	}
	containers(spec.Child("initContainers"), s.InitContainers)
	containers(spec.Child("containers"), s.Containers)
	ephemeral := make([]corev1.Container, len(s.EphemeralContainers))
	for i, c := range ephemeralAsContainers(s) {
		ephemeral[i] = *c
	}
	containers(spec.Child("ephemeralContainers"), ephemeral)
	if sc := s.SecurityContext; sc != nil {
		forbid(sc.WindowsOptions != nil, spec.Child("securityContext", "windowsOptions"))
	}
	return errs
}

func volumeType(vs corev1.VolumeSource) string {
	switch {
	case vs.PersistentVolumeClaim != nil:
		return "persistentVolumeClaim"
	case vs.NFS != nil:
		return "nfs"
	case vs.Ephemeral != nil:
		return "ephemeral"
	case vs.CSI != nil:
		return "csi"
	case vs.Image != nil:
		return "image"
	case vs.ISCSI != nil:
		return "iscsi"
	}
	return "(other)"
}
