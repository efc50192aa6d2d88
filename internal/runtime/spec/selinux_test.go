package spec

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestEffectiveSELinuxOptions(t *testing.T) {
	podOpts := &corev1.SELinuxOptions{Level: "s0:c1,c2", Type: "pod_t"}
	ctrOpts := &corev1.SELinuxOptions{User: "u"}
	in := testInput()
	if got := EffectiveSELinuxOptions(in.Pod, in.Container); got != nil {
		t.Fatalf("neither set: %+v", got)
	}
	in.Pod.Spec.SecurityContext = &corev1.PodSecurityContext{SELinuxOptions: podOpts}
	if got := EffectiveSELinuxOptions(in.Pod, in.Container); got != podOpts {
		t.Fatalf("pod's: %+v", got)
	}
	// The container's replace the pod's whole, as the kubelet merges them.
	in.Container.SecurityContext = &corev1.SecurityContext{SELinuxOptions: ctrOpts}
	if got := EffectiveSELinuxOptions(in.Pod, in.Container); got != ctrOpts {
		t.Fatalf("container's: %+v", got)
	}
}

func TestRenderSELinuxLabels(t *testing.T) {
	const (
		proc  = "system_u:system_r:container_t:s0:c100,c200"
		mount = "system_u:object_r:container_file_t:s0:c100,c200"
	)
	for _, tc := range []struct {
		name                   string
		opts                   *corev1.SELinuxOptions
		wantProcess, wantMount string
		wantErr                string
	}{
		{name: "defaults", wantProcess: proc, wantMount: mount},
		{name: "empty options", opts: &corev1.SELinuxOptions{}, wantProcess: proc, wantMount: mount},
		{name: "level goes to both", opts: &corev1.SELinuxOptions{Level: "s0:c123,c456"},
			wantProcess: "system_u:system_r:container_t:s0:c123,c456", wantMount: "system_u:object_r:container_file_t:s0:c123,c456"},
		{name: "type and role only to the process", opts: &corev1.SELinuxOptions{Type: "spc_t", Role: "object_r"},
			wantProcess: "system_u:object_r:spc_t:s0:c100,c200", wantMount: mount},
		{name: "user to both", opts: &corev1.SELinuxOptions{User: "staff_u"},
			wantProcess: "staff_u:system_r:container_t:s0:c100,c200", wantMount: "staff_u:object_r:container_file_t:s0:c100,c200"},
		{name: "colon in type", opts: &corev1.SELinuxOptions{Type: "a:b"}, wantErr: `seLinuxOptions.type "a:b": must not contain ':'`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := RenderSELinuxLabels(proc, mount, tc.opts)
			if tc.wantErr != "" {
				wantErr(t, err, tc.wantErr, ErrInvalid)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Process != tc.wantProcess || got.Mount != tc.wantMount {
				t.Fatalf("got %+v, want process %q mount %q", got, tc.wantProcess, tc.wantMount)
			}
		})
	}
	if _, err := RenderSELinuxLabels("container_t", mount, nil); err == nil {
		t.Fatal("a default context without four fields is accepted")
	}
	if got, err := WithSELinuxLevel("system_u:system_r:container_t:s0", "s0:c1,c2"); err != nil || got != "system_u:system_r:container_t:s0:c1,c2" {
		t.Fatalf("WithSELinuxLevel = %q, %v", got, err)
	}
}
