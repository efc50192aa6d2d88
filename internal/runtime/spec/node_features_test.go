package spec

import (
	"syscall"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func TestExpandSubPathExpr(t *testing.T) {
	env := map[string]string{"POD_NAME": "web-0", "NS": "default", "EMPTY": ""}
	for _, tc := range []struct {
		expr, want, wantErr string
	}{
		{"$(POD_NAME)", "web-0", ""},
		{"logs/$(NS)/$(POD_NAME)", "logs/default/web-0", ""},
		{"$$(POD_NAME)", "$(POD_NAME)", ""},
		{"`$(POD_NAME)`", "`web-0`", ""},
		{"$(NOPE)/$(EMPTY)", "", "missing value for EMPTY, NOPE"},
	} {
		got, err := ExpandSubPathExpr(tc.expr, env)
		wantErr(t, err, tc.wantErr, ErrInvalid)
		if got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.expr, got, tc.want)
		}
	}
}

func TestKubeletEnvForSubPath(t *testing.T) {
	in := testInput()
	in.Container.Env = []corev1.EnvVar{fieldEnv("POD_NAME", "metadata.name"), {Name: "DIR", Value: "$(POD_NAME)-logs"}}
	env, err := KubeletEnv(in)
	if err != nil {
		t.Fatal(err)
	}
	if env["POD_NAME"] != "web" || env["DIR"] != "web-logs" || env["PATH"] != "" || env["IMG"] != "" {
		t.Fatalf("env %v: want the container's own vars, not the image's", env)
	}
}

func TestStopSignal(t *testing.T) {
	sig := func(s corev1.Signal) *corev1.Container {
		return &corev1.Container{Lifecycle: &corev1.Lifecycle{StopSignal: &s}}
	}
	for _, tc := range []struct {
		name     string
		c        *corev1.Container
		image    string
		wantName string
		want     syscall.Signal
		wantErr  string
	}{
		{"default", &corev1.Container{}, "", "SIGTERM", syscall.SIGTERM, ""},
		{"image name", &corev1.Container{}, "SIGQUIT", "SIGQUIT", syscall.SIGQUIT, ""},
		{"image short name", &corev1.Container{}, "quit", "SIGQUIT", syscall.SIGQUIT, ""},
		{"image number", &corev1.Container{}, "10", "SIGUSR1", syscall.SIGUSR1, ""},
		{"spec over image", sig("SIGUSR2"), "SIGQUIT", "SIGUSR2", syscall.SIGUSR2, ""},
		{"alias", sig("SIGIOT"), "", "SIGABRT", syscall.SIGABRT, ""},
		{"realtime", sig("SIGRTMIN+3"), "", "SIGRTMIN+3", syscall.Signal(37), ""},
		{"realtime from the top", sig("SIGRTMAX-1"), "", "SIGRTMAX-1", syscall.Signal(63), ""},
		{"bad image signal", &corev1.Container{}, "SIGNOPE", "", 0, `signal "SIGNOPE": unknown`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name, got, err := StopSignal(tc.c, tc.image)
			wantErr(t, err, tc.wantErr, ErrInvalid)
			if name != tc.wantName || got != tc.want {
				t.Errorf("got %s %d, want %s %d", name, got, tc.wantName, tc.want)
			}
		})
	}
}

func TestBuildEphemeralContainer(t *testing.T) {
	in := testInput()
	in.Pod.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
		Name: "dbg", Image: "busybox", TTY: true, Stdin: true, Env: []corev1.EnvVar{{Name: "X", Value: "1"}, {Name: "Y", ValueFrom: &corev1.EnvVarSource{
			FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.phase"}}}}}}}
	in.Container = (*corev1.Container)(&in.Pod.Spec.EphemeralContainers[0].EphemeralContainerCommon)
	_, err := Build(in)
	wantErr(t, err, "spec.ephemeralContainers[0].env[1]", ErrUnsupported)
	in.Container.Env = in.Container.Env[:1]
	s, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Process.Terminal || s.Annotations[AnnotationContainerName] != "dbg" {
		t.Fatalf("ephemeral container spec: terminal %v, annotations %v", s.Process.Terminal, s.Annotations)
	}
}

func TestPodLevelResources(t *testing.T) {
	in := testInput()
	in.Pod.Spec.Resources = &corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1500m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
	}
	in.Container.Env = []corev1.EnvVar{resEnv("CL", "", "limits.cpu", "1m"), resEnv("ML", "", "limits.memory", "1Mi")}
	in.NodeAllocatable = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("8"), corev1.ResourceMemory: resource.MustParse("16Gi")}
	env, err := KubeletEnv(in)
	if err != nil {
		t.Fatal(err)
	}
	// A container without limits reads the pod's, not the node's.
	if env["CL"] != "1500" || env["ML"] != "64" {
		t.Fatalf("resourceFieldRef with pod-level limits: %v", env)
	}
	if _, err := Build(in); err != nil {
		t.Fatalf("pod-level cpu/memory refused: %v", err)
	}
}
