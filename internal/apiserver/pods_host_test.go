package apiserver

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestDefaultPodHostNetworkPorts: a hostNetwork pod's containerPorts are
// host ports, as Kubernetes' defaulting makes them, so the scheduler's
// NodePorts filter counts them.
func TestDefaultPodHostNetworkPorts(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{HostNetwork: true,
		InitContainers: []corev1.Container{{Name: "i", Image: "busybox", Ports: []corev1.ContainerPort{{ContainerPort: 9000}}}},
		Containers: []corev1.Container{{Name: "a", Image: "busybox", Ports: []corev1.ContainerPort{
			{ContainerPort: 8080}, {ContainerPort: 53, HostPort: 53, Protocol: corev1.ProtocolUDP}}}},
	}}
	DefaultPod(pod)
	if p := pod.Spec.Containers[0].Ports; p[0].HostPort != 8080 || p[1].HostPort != 53 {
		t.Errorf("ports %+v", p)
	}
	if p := pod.Spec.InitContainers[0].Ports; p[0].HostPort != 9000 {
		t.Errorf("init ports %+v", p)
	}
	if errs := ValidatePod(pod); len(errs) != 0 {
		t.Errorf("valid hostNetwork pod refused: %v", errs)
	}
	plain := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "a", Image: "busybox", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}}}
	DefaultPod(plain)
	if plain.Spec.Containers[0].Ports[0].HostPort != 0 {
		t.Errorf("a pod off the host network got a hostPort: %+v", plain.Spec.Containers[0].Ports)
	}
}

func TestValidatePodHostNamespaces(t *testing.T) {
	f := false
	tr := true
	for _, tc := range []struct {
		name   string
		mutate func(*corev1.PodSpec)
		want   []string
	}{
		{name: "hostNetwork, hostIPC, hostPID", mutate: func(s *corev1.PodSpec) { s.HostNetwork, s.HostIPC, s.HostPID = true, true, true }},
		{name: "hostUsers false alone", mutate: func(s *corev1.PodSpec) { s.HostUsers = &f }},
		{name: "hostPort differs from containerPort on the host network", mutate: func(s *corev1.PodSpec) {
			s.HostNetwork = true
			s.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, HostPort: 8080, Protocol: corev1.ProtocolTCP}}
		}, want: []string{"spec.containers[0].ports[0].hostPort: Invalid value: 8080: must match `containerPort` when `hostNetwork` is true"}},
		{name: "hostUsers false with host namespaces", mutate: func(s *corev1.PodSpec) {
			s.HostUsers = &f
			s.HostNetwork, s.HostIPC, s.HostPID = true, true, true
		}, want: []string{
			"spec.hostNetwork: Forbidden: when `hostUsers` is false",
			"spec.hostPID: Forbidden: when `hostUsers` is false",
			"spec.hostIPC: Forbidden: when `hostUsers` is false",
		}},
		{name: "shareProcessNamespace with hostPID", mutate: func(s *corev1.PodSpec) { s.HostPID, s.ShareProcessNamespace = true, &tr },
			want: []string{"spec.shareProcessNamespace: Invalid value: true: ShareProcessNamespace and HostPID cannot both be enabled"}},
		{name: "namespaced sysctls on host namespaces", mutate: func(s *corev1.PodSpec) {
			s.HostNetwork, s.HostIPC = true, true
			s.SecurityContext = &corev1.PodSecurityContext{Sysctls: []corev1.Sysctl{
				{Name: "net.ipv4.ip_forward", Value: "1"}, {Name: "kernel/shmmax", Value: "1"}, {Name: "kernel.hostname", Value: "x"}}}
		}, want: []string{
			`spec.securityContext.sysctls[0].name: Invalid value: "net.ipv4.ip_forward": may not be specified when 'hostNetwork' is true`,
			`spec.securityContext.sysctls[1].name: Invalid value: "kernel/shmmax": may not be specified when 'hostIPC' is true`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "a", Image: "busybox"}}}}
			tc.mutate(&pod.Spec)
			DefaultPod(pod)
			var got []string
			for _, e := range ValidatePod(pod) {
				got = append(got, e.Error())
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}
