package runtime

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
)

// validatePod refuses what a node cannot run whatever the API server
// allowed: a container name used twice, or two containers claiming one
// host port. It is the node's last line, not a replacement for API
// validation.
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
	if pod.Spec.HostNetwork {
		return fmt.Errorf("%w: spec.hostNetwork: not supported", ErrInvalid)
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
