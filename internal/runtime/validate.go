package runtime

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// validatePod refuses what a node cannot run whatever the API server
// allowed: a container name used twice, two containers claiming one host
// port, or host namespaces combined with what would change the node
// itself through them (a net sysctl on the node's network, an IPC sysctl
// on its IPC namespace) or defeat a user namespace. It is the node's last
// line, not a replacement for API validation.
func validatePod(pod *corev1.Pod) error {
	if pod == nil {
		return fmt.Errorf("%w: no pod", ErrInvalid)
	}
	if pod.Name == "" {
		return fmt.Errorf("%w: metadata.name: required", ErrInvalid)
	}
	if len(pod.Spec.Containers) == 0 {
		return fmt.Errorf("%w: spec.containers: at least one container is required", ErrInvalid)
	}
	if err := validateHostNamespaces(&pod.Spec); err != nil {
		return err
	}
	names := map[string]string{}
	type hostPort struct {
		ip    string
		port  int32
		proto corev1.Protocol
	}
	ports := map[hostPort]string{}
	check := func(field string, cs []corev1.Container) error {
		for i, c := range cs {
			path := fmt.Sprintf("spec.%s[%d]", field, i)
			if c.Name == "" {
				return fmt.Errorf("%w: %s.name: required", ErrInvalid, path)
			}
			if prev, dup := names[c.Name]; dup {
				return fmt.Errorf("%w: %s.name: duplicate container name %q (also %s)", ErrInvalid, path, c.Name, prev)
			}
			names[c.Name] = path
			if c.Image == "" {
				return fmt.Errorf("%w: %s.image: required", ErrInvalid, path)
			}
			for j, p := range c.Ports {
				if p.HostPort == 0 {
					continue
				}
				proto := p.Protocol
				if proto == "" {
					proto = corev1.ProtocolTCP
				}
				key := hostPort{p.HostIP, p.HostPort, proto}
				ppath := fmt.Sprintf("%s.ports[%d].hostPort", path, j)
				if prev, dup := ports[key]; dup {
					return fmt.Errorf("%w: %s: host port %d/%s is already claimed by %s", ErrInvalid, ppath, p.HostPort, proto, prev)
				}
				ports[key] = ppath
			}
		}
		return nil
	}
	if err := check("initContainers", pod.Spec.InitContainers); err != nil {
		return err
	}
	return check("containers", pod.Spec.Containers)
}

// validateHostNamespaces applies Kubernetes' rules for pods sharing the
// node's namespaces.
func validateHostNamespaces(s *corev1.PodSpec) error {
	if s.HostUsers != nil && !*s.HostUsers {
		for _, f := range []struct {
			set  bool
			name string
		}{{s.HostNetwork, "hostNetwork"}, {s.HostPID, "hostPID"}, {s.HostIPC, "hostIPC"}} {
			if f.set {
				return fmt.Errorf("%w: spec.%s: Forbidden: when `hostUsers` is false", ErrInvalid, f.name)
			}
		}
	}
	if s.HostPID && s.ShareProcessNamespace != nil && *s.ShareProcessNamespace {
		return fmt.Errorf("%w: spec.shareProcessNamespace: ShareProcessNamespace and HostPID cannot both be enabled", ErrInvalid)
	}
	if s.SecurityContext == nil {
		return nil
	}
	for i, sc := range s.SecurityContext.Sysctls {
		if s.HostNetwork && isNetSysctl(sc.Name) {
			return fmt.Errorf("%w: spec.securityContext.sysctls[%d].name: %q may not be specified when 'hostNetwork' is true", ErrInvalid, i, sc.Name)
		}
		if s.HostIPC && isIPCSysctl(sc.Name) {
			return fmt.Errorf("%w: spec.securityContext.sysctls[%d].name: %q may not be specified when 'hostIPC' is true", ErrInvalid, i, sc.Name)
		}
	}
	return nil
}

// isNetSysctl reports whether a sysctl belongs to the network namespace
// (Kubernetes' namespaced net.* sysctls).
func isNetSysctl(name string) bool {
	return strings.HasPrefix(strings.ReplaceAll(name, "/", "."), "net.")
}

// isIPCSysctl reports whether a sysctl belongs to the IPC namespace
// (kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*).
func isIPCSysctl(name string) bool {
	n := strings.ReplaceAll(name, "/", ".")
	return strings.HasPrefix(n, "kernel.shm") || strings.HasPrefix(n, "kernel.msg") ||
		n == "kernel.sem" || strings.HasPrefix(n, "fs.mqueue.")
}
