package runtime

import (
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestValidatePodHostNamespaces: the node's last line refuses what would
// change the node through a namespace the pod shares with it, or defeat a
// user namespace; the pod sharing namespaces alone runs. Pure.
func TestValidatePodHostNamespaces(t *testing.T) {
	f, tr := false, true
	for _, tc := range []struct {
		name   string
		mutate func(*corev1.PodSpec)
		want   string
	}{
		{name: "host namespaces", mutate: func(s *corev1.PodSpec) { s.HostNetwork, s.HostIPC, s.HostPID = true, true, true }},
		{name: "own user namespace", mutate: func(s *corev1.PodSpec) { s.HostUsers = &f }},
		{name: "user namespace on the host network", mutate: func(s *corev1.PodSpec) { s.HostUsers, s.HostNetwork = &f, true },
			want: "spec.hostNetwork: Forbidden: when `hostUsers` is false"},
		{name: "user namespace with hostIPC", mutate: func(s *corev1.PodSpec) { s.HostUsers, s.HostIPC = &f, true },
			want: "spec.hostIPC: Forbidden"},
		{name: "shared PID namespace and hostPID", mutate: func(s *corev1.PodSpec) { s.HostPID, s.ShareProcessNamespace = true, &tr },
			want: "spec.shareProcessNamespace: ShareProcessNamespace and HostPID cannot both be enabled"},
		{name: "net sysctl on the node's network", mutate: func(s *corev1.PodSpec) {
			s.HostNetwork = true
			s.SecurityContext = &corev1.PodSecurityContext{Sysctls: []corev1.Sysctl{{Name: "net.core.somaxconn", Value: "1024"}}}
		}, want: `spec.securityContext.sysctls[0].name: "net.core.somaxconn" may not be specified when 'hostNetwork' is true`},
		{name: "IPC sysctl on the node's IPC namespace", mutate: func(s *corev1.PodSpec) {
			s.HostIPC = true
			s.SecurityContext = &corev1.PodSecurityContext{Sysctls: []corev1.Sysctl{{Name: "kernel.msgmax", Value: "1"}}}
		}, want: "may not be specified when 'hostIPC' is true"},
		{name: "net sysctl in the pod's own network", mutate: func(s *corev1.PodSpec) {
			s.HostIPC = true
			s.SecurityContext = &corev1.PodSecurityContext{Sysctls: []corev1.Sysctl{{Name: "net.core.somaxconn", Value: "1024"}}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
			tc.mutate(&pod.Spec)
			err := validatePod(pod)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrInvalid with %q", err, tc.want)
			}
		})
	}
	for name, want := range map[string][2]bool{
		"net.ipv4.ip_forward": {true, false}, "net/core/somaxconn": {true, false},
		"kernel.shmmax": {false, true}, "kernel.sem": {false, true}, "fs.mqueue.msg_max": {false, true},
		"kernel.hostname": {false, false}, "kernel.semaphore": {false, false},
	} {
		if isNetSysctl(name) != want[0] || isIPCSysctl(name) != want[1] {
			t.Errorf("%s: net %v ipc %v, want %v", name, isNetSysctl(name), isIPCSysctl(name), want)
		}
	}
}
