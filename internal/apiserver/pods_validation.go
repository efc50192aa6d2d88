package apiserver

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ValidatePod returns every failure of a (defaulted) pod's spec: names,
// images, volumes and mounts, ports, restart policy, resources, probes and
// fields peapod does not implement. Pure.
func ValidatePod(pod *corev1.Pod) field.ErrorList {
	spec := field.NewPath("spec")
	s := &pod.Spec
	errs := UnsupportedPodFields(pod)

	volumes := sets.New[string]()
	for i, v := range s.Volumes {
		p := spec.Child("volumes").Index(i)
		errs = append(errs, dns1123Label(p.Child("name"), v.Name)...)
		if volumes.Has(v.Name) {
			errs = append(errs, field.Duplicate(p.Child("name"), v.Name))
		}
		volumes.Insert(v.Name)
		if v.HostPath != nil && v.HostPath.Path == "" {
			errs = append(errs, field.Required(p.Child("hostPath", "path"), ""))
		}
		if v.ConfigMap != nil && v.ConfigMap.Name == "" {
			errs = append(errs, field.Required(p.Child("configMap", "name"), ""))
		}
		if v.Secret != nil && v.Secret.SecretName == "" {
			errs = append(errs, field.Required(p.Child("secret", "secretName"), ""))
		}
	}
	if len(s.Containers) == 0 {
		errs = append(errs, field.Required(spec.Child("containers"), ""))
	}
	names := sets.New[string]()
	portNames := sets.New[string]()
	check := func(p *field.Path, c *corev1.Container, init bool) {
		errs = append(errs, dns1123Label(p.Child("name"), c.Name)...)
		if names.Has(c.Name) {
			errs = append(errs, field.Duplicate(p.Child("name"), c.Name))
		}
		names.Insert(c.Name)
		if c.Image == "" {
			errs = append(errs, field.Required(p.Child("image"), ""))
		}
		switch c.ImagePullPolicy {
		case corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
		default:
			errs = append(errs, field.NotSupported(p.Child("imagePullPolicy"), c.ImagePullPolicy, []string{"Always", "IfNotPresent", "Never"}))
		}
		mounts := sets.New[string]()
		for j, m := range c.VolumeMounts {
			mp := p.Child("volumeMounts").Index(j)
			if m.Name == "" {
				errs = append(errs, field.Required(mp.Child("name"), ""))
			} else if !volumes.Has(m.Name) {
				errs = append(errs, field.NotFound(mp.Child("name"), m.Name))
			}
			if m.MountPath == "" {
				errs = append(errs, field.Required(mp.Child("mountPath"), ""))
			} else if mounts.Has(m.MountPath) {
				errs = append(errs, field.Invalid(mp.Child("mountPath"), m.MountPath, "must be unique"))
			}
			mounts.Insert(m.MountPath)
		}
		for j, port := range c.Ports {
			pp := p.Child("ports").Index(j)
			if port.ContainerPort < 1 || port.ContainerPort > 65535 {
				errs = append(errs, field.Invalid(pp.Child("containerPort"), port.ContainerPort, validation.InclusiveRangeError(1, 65535)))
			}
			if port.HostPort != 0 && (port.HostPort < 1 || port.HostPort > 65535) {
				errs = append(errs, field.Invalid(pp.Child("hostPort"), port.HostPort, validation.InclusiveRangeError(1, 65535)))
			}
			if port.Name != "" {
				for _, msg := range validation.IsValidPortName(port.Name) {
					errs = append(errs, field.Invalid(pp.Child("name"), port.Name, msg))
				}
				if portNames.Has(port.Name) {
					errs = append(errs, field.Duplicate(pp.Child("name"), port.Name))
				}
				portNames.Insert(port.Name)
			}
			switch port.Protocol {
			case corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP:
			default:
				errs = append(errs, field.NotSupported(pp.Child("protocol"), port.Protocol, []string{"TCP", "UDP", "SCTP"}))
			}
		}
		for j, e := range c.Env {
			if e.Name == "" {
				errs = append(errs, field.Required(p.Child("env").Index(j).Child("name"), ""))
			}
		}
		errs = append(errs, validateResources(p.Child("resources"), c.Resources)...)
		errs = append(errs, validateContainerExtras(p, c, s, init)...)
		probes := map[string]*corev1.Probe{"livenessProbe": c.LivenessProbe, "readinessProbe": c.ReadinessProbe, "startupProbe": c.StartupProbe}
		for _, name := range []string{"livenessProbe", "readinessProbe", "startupProbe"} {
			pr := probes[name]
			if pr == nil {
				continue
			}
			if init && !isSidecar(c) {
				errs = append(errs, field.Forbidden(p.Child(name), "may not be set for init containers"))
				continue
			}
			errs = append(errs, validateProbe(p.Child(name), pr, name != "readinessProbe")...)
		}
	}
	for i := range s.InitContainers {
		check(spec.Child("initContainers").Index(i), &s.InitContainers[i], true)
	}
	for i := range s.Containers {
		check(spec.Child("containers").Index(i), &s.Containers[i], false)
	}
	for i, c := range ephemeralAsContainers(s) {
		check(spec.Child("ephemeralContainers").Index(i), c, false)
	}
	errs = append(errs, validateEphemeralContainers(s, spec.Child("ephemeralContainers"))...)
	errs = append(errs, validatePodResources(s, spec.Child("resources"))...)
	switch s.RestartPolicy {
	case corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever:
	default:
		errs = append(errs, field.NotSupported(spec.Child("restartPolicy"), s.RestartPolicy, []string{"Always", "OnFailure", "Never"}))
	}
	switch s.DNSPolicy {
	case corev1.DNSClusterFirst, corev1.DNSDefault, corev1.DNSNone, corev1.DNSClusterFirstWithHostNet:
	default:
		errs = append(errs, field.NotSupported(spec.Child("dnsPolicy"), s.DNSPolicy, []string{"ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"}))
	}
	if g := s.TerminationGracePeriodSeconds; g != nil && *g < 0 {
		errs = append(errs, field.Invalid(spec.Child("terminationGracePeriodSeconds"), *g, "must be >= 0"))
	}
	if s.ActiveDeadlineSeconds != nil && *s.ActiveDeadlineSeconds <= 0 {
		errs = append(errs, field.Invalid(spec.Child("activeDeadlineSeconds"), *s.ActiveDeadlineSeconds, "must be > 0"))
	}
	if s.NodeName != "" {
		for _, msg := range validation.IsDNS1123Subdomain(s.NodeName) {
			errs = append(errs, field.Invalid(spec.Child("nodeName"), s.NodeName, msg))
		}
	}
	if s.Hostname != "" {
		errs = append(errs, dns1123Label(spec.Child("hostname"), s.Hostname)...)
	}
	errs = append(errs, validatePodScheduling(s, spec)...)
	errs = append(errs, validateHostNamespaces(s)...)
	return errs
}

func dns1123Label(p *field.Path, v string) field.ErrorList {
	if v == "" {
		return field.ErrorList{field.Required(p, "")}
	}
	var errs field.ErrorList
	for _, msg := range validation.IsDNS1123Label(v) {
		errs = append(errs, field.Invalid(p, v, msg))
	}
	return errs
}

func validateResources(p *field.Path, r corev1.ResourceRequirements) field.ErrorList {
	var errs field.ErrorList
	for name, q := range r.Limits {
		if q.Sign() < 0 {
			errs = append(errs, field.Invalid(p.Child("limits").Key(string(name)), q.String(), "must be greater than or equal to 0"))
		}
	}
	for name, q := range r.Requests {
		if q.Sign() < 0 {
			errs = append(errs, field.Invalid(p.Child("requests").Key(string(name)), q.String(), "must be greater than or equal to 0"))
		}
		if l, ok := r.Limits[name]; ok && q.Cmp(l) > 0 {
			errs = append(errs, field.Invalid(p.Child("requests").Key(string(name)), q.String(), fmt.Sprintf("must be less than or equal to %s limit of %s", name, l.String())))
		}
	}
	return errs
}

func validateProbe(p *field.Path, pr *corev1.Probe, successMustBeOne bool) field.ErrorList {
	var errs field.ErrorList
	handlers := 0
	if pr.Exec != nil {
		handlers++
		if len(pr.Exec.Command) == 0 {
			errs = append(errs, field.Required(p.Child("exec", "command"), ""))
		}
	}
	if pr.HTTPGet != nil {
		handlers++
		errs = append(errs, validatePort(p.Child("httpGet", "port"), pr.HTTPGet.Port.IntValue(), pr.HTTPGet.Port.StrVal)...)
	}
	if pr.TCPSocket != nil {
		handlers++
		errs = append(errs, validatePort(p.Child("tcpSocket", "port"), pr.TCPSocket.Port.IntValue(), pr.TCPSocket.Port.StrVal)...)
	}
	if pr.GRPC != nil {
		handlers++
		errs = append(errs, validatePort(p.Child("grpc", "port"), int(pr.GRPC.Port), "")...)
	}
	switch {
	case handlers == 0:
		errs = append(errs, field.Required(p, "must specify a handler type"))
	case handlers > 1:
		errs = append(errs, field.Forbidden(p, "may not specify more than 1 handler type"))
	}
	for name, v := range map[string]int32{"initialDelaySeconds": pr.InitialDelaySeconds, "timeoutSeconds": pr.TimeoutSeconds,
		"periodSeconds": pr.PeriodSeconds, "successThreshold": pr.SuccessThreshold, "failureThreshold": pr.FailureThreshold} {
		if v < 0 {
			errs = append(errs, field.Invalid(p.Child(name), v, "must be greater than or equal to 0"))
		}
	}
	if successMustBeOne && pr.SuccessThreshold != 1 {
		errs = append(errs, field.Invalid(p.Child("successThreshold"), pr.SuccessThreshold, "must be 1"))
	}
	return errs
}

func validatePort(p *field.Path, num int, name string) field.ErrorList {
	if name != "" {
		var errs field.ErrorList
		for _, msg := range validation.IsValidPortName(name) {
			errs = append(errs, field.Invalid(p, name, msg))
		}
		return errs
	}
	if num < 1 || num > 65535 {
		return field.ErrorList{field.Invalid(p, num, validation.InclusiveRangeError(1, 65535))}
	}
	return nil
}

// ValidatePodUpdate checks that only the mutable parts of a pod's spec
// change: container and init-container images, activeDeadlineSeconds,
// added tolerations and removed scheduling gates (and, while the pod is
// gated, added nodeSelector entries and node affinity requirements);
// nodeName may be set once. Pure.
func ValidatePodUpdate(pod, old *corev1.Pod) field.ErrorList {
	errs := ValidatePod(pod)
	schedErrs, restoreScheduling := validateSchedulingUpdate(pod, old)
	errs = append(errs, schedErrs...)
	a, b := pod.Spec.DeepCopy(), old.Spec.DeepCopy()
	restoreScheduling(a)
	for i := range a.Containers {
		if i < len(b.Containers) {
			a.Containers[i].Image = b.Containers[i].Image
		}
	}
	for i := range a.InitContainers {
		if i < len(b.InitContainers) {
			a.InitContainers[i].Image = b.InitContainers[i].Image
		}
	}
	a.ActiveDeadlineSeconds = b.ActiveDeadlineSeconds
	if b.NodeName == "" {
		a.NodeName = "" // set once, by pods/binding (or an update, more lenient than Kubernetes)
	}
	if len(a.Tolerations) >= len(b.Tolerations) {
		a.Tolerations = b.Tolerations
	}
	if !equality.Semantic.DeepEqual(a, b) {
		errs = append(errs, field.Forbidden(field.NewPath("spec"), "pod updates may not change fields other than `spec.containers[*].image`, `spec.initContainers[*].image`, `spec.activeDeadlineSeconds` or `spec.tolerations` (only additions to existing tolerations) or `spec.schedulingGates` (only deletions)"))
	}
	return errs
}
