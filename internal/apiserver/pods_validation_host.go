package apiserver

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// validateHostNamespaces applies Kubernetes' rules for pods that share the
// node's namespaces: a hostNetwork pod's hostPorts are its containerPorts;
// a pod with its own user namespace (hostUsers: false) shares no other
// namespace with the node; shareProcessNamespace and hostPID exclude each
// other; and no sysctl may change the node's network or IPC namespace
// through a pod on it. Pure.
func validateHostNamespaces(s *corev1.PodSpec) field.ErrorList {
	spec := field.NewPath("spec")
	var errs field.ErrorList
	if s.HostNetwork {
		ports := func(p *field.Path, cs []corev1.Container) {
			for i, c := range cs {
				for j, port := range c.Ports {
					if port.HostPort != port.ContainerPort {
						errs = append(errs, field.Invalid(p.Index(i).Child("ports").Index(j).Child("hostPort"), port.HostPort,
							"must match `containerPort` when `hostNetwork` is true"))
					}
				}
			}
		}
		ports(spec.Child("initContainers"), s.InitContainers)
		ports(spec.Child("containers"), s.Containers)
	}
	if s.HostUsers != nil && !*s.HostUsers {
		for _, f := range []struct {
			set  bool
			name string
		}{{s.HostNetwork, "hostNetwork"}, {s.HostPID, "hostPID"}, {s.HostIPC, "hostIPC"}} {
			if f.set {
				errs = append(errs, field.Forbidden(spec.Child(f.name), "when `hostUsers` is false"))
			}
		}
	}
	if s.HostPID && s.ShareProcessNamespace != nil && *s.ShareProcessNamespace {
		errs = append(errs, field.Invalid(spec.Child("shareProcessNamespace"), true, "ShareProcessNamespace and HostPID cannot both be enabled"))
	}
	if s.SecurityContext != nil {
		for i, sc := range s.SecurityContext.Sysctls {
			p := spec.Child("securityContext", "sysctls").Index(i).Child("name")
			name := strings.ReplaceAll(sc.Name, "/", ".")
			if s.HostNetwork && strings.HasPrefix(name, "net.") {
				errs = append(errs, field.Invalid(p, sc.Name, "may not be specified when 'hostNetwork' is true"))
			}
			if s.HostIPC && (strings.HasPrefix(name, "kernel.shm") || strings.HasPrefix(name, "kernel.msg") ||
				name == "kernel.sem" || strings.HasPrefix(name, "fs.mqueue.")) {
				errs = append(errs, field.Invalid(p, sc.Name, "may not be specified when 'hostIPC' is true"))
			}
		}
	}
	return errs
}
