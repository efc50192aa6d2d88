package apiserver

import (
	"reflect"
	"unicode"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ephemeralContainerFields are the fields of EphemeralContainerCommon an
// ephemeral container may set, kube-apiserver's allow-list: a debugging
// container gets no ports, probes, lifecycle, resources or restart policy,
// since nothing of the pod's may come to rely on it.
var ephemeralContainerFields = map[string]bool{
	"Name": true, "Image": true, "Command": true, "Args": true, "WorkingDir": true,
	"EnvFrom": true, "Env": true, "VolumeMounts": true, "VolumeDevices": true,
	"TerminationMessagePath": true, "TerminationMessagePolicy": true, "ImagePullPolicy": true,
	"SecurityContext": true, "Stdin": true, "StdinOnce": true, "TTY": true,
}

// validateEphemeralContainers checks what is particular to ephemeral
// containers, after each went through the common container checks: a
// targetContainerName naming a container or init container of the pod,
// only the allowed fields, and no subPath or subPathExpr (their bind
// mounts would outlive the debugging session). Pure.
func validateEphemeralContainers(s *corev1.PodSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	targets := map[string]bool{}
	for _, c := range append(append([]corev1.Container(nil), s.InitContainers...), s.Containers...) {
		targets[c.Name] = true
	}
	for i, ec := range s.EphemeralContainers {
		ip := p.Index(i)
		if ec.TargetContainerName != "" && !targets[ec.TargetContainerName] {
			errs = append(errs, field.NotFound(ip.Child("targetContainerName"), ec.TargetContainerName))
		}
		errs = append(errs, allowedFieldsOnly(ec.EphemeralContainerCommon, ip)...)
		for j, m := range ec.VolumeMounts {
			if m.SubPath != "" {
				errs = append(errs, field.Forbidden(ip.Child("volumeMounts").Index(j).Child("subPath"), "cannot be set for an Ephemeral Container"))
			}
			if m.SubPathExpr != "" {
				errs = append(errs, field.Forbidden(ip.Child("volumeMounts").Index(j).Child("subPathExpr"), "cannot be set for an Ephemeral Container"))
			}
		}
	}
	return errs
}

// allowedFieldsOnly forbids every field of c that is set and not in
// ephemeralContainerFields, naming it by its JSON name.
func allowedFieldsOnly(c corev1.EphemeralContainerCommon, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	t, v := reflect.TypeOf(c), reflect.ValueOf(c)
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if ephemeralContainerFields[f.Name] || v.Field(i).IsZero() {
			continue
		}
		r, n := utf8.DecodeRuneInString(f.Name)
		errs = append(errs, field.Forbidden(p.Child(string(unicode.ToLower(r))+f.Name[n:]), "cannot be set for an Ephemeral Container"))
	}
	return errs
}

// ephemeralAsContainers returns the pod's ephemeral containers as the
// Containers they are field for field, for the checks and defaults all
// container kinds share.
func ephemeralAsContainers(s *corev1.PodSpec) []*corev1.Container {
	out := make([]*corev1.Container, len(s.EphemeralContainers))
	for i := range s.EphemeralContainers {
		out[i] = (*corev1.Container)(&s.EphemeralContainers[i].EphemeralContainerCommon)
	}
	return out
}

// ValidatePodCreate validates a new pod: ValidatePod, and no ephemeral
// containers, which only the pods/ephemeralcontainers subresource adds.
func ValidatePodCreate(pod *corev1.Pod) field.ErrorList {
	errs := ValidatePod(pod)
	if len(pod.Spec.EphemeralContainers) > 0 {
		errs = append(errs, field.Forbidden(field.NewPath("spec", "ephemeralContainers"), "cannot be set on create"))
	}
	return errs
}
