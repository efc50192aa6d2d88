package apiserver

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// validPod is a defaulted pod that passes validation; tests change one
// thing in it.
func validPod() *corev1.Pod {
	pod := &corev1.Pod{Spec: corev1.PodSpec{
		OS:      &corev1.PodOS{Name: corev1.Linux},
		Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
		Containers: []corev1.Container{{Name: "c", Image: "busybox",
			VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}}},
	}}
	pod.Name, pod.Namespace = "p", "default"
	DefaultPod(pod)
	return pod
}

func rl(kv ...string) corev1.ResourceList {
	l := corev1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		l[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return l
}

// errorsText is every error of a list, one per line.
func errorsText(errs field.ErrorList) string {
	var b strings.Builder
	for _, e := range errs {
		b.WriteString(e.Error() + "\n")
	}
	return b.String()
}

func TestValidatePodNodeFeatures(t *testing.T) {
	yes := true
	prop := func(m corev1.MountPropagationMode) *corev1.MountPropagationMode { return &m }
	sig := func(s corev1.Signal) *corev1.Lifecycle { return &corev1.Lifecycle{StopSignal: &s} }
	for _, tc := range []struct {
		name   string
		mutate func(*corev1.Pod)
		want   []string // substrings of the error text; none means valid
	}{
		{"subPathExpr", func(p *corev1.Pod) { p.Spec.Containers[0].VolumeMounts[0].SubPathExpr = "$(POD_NAME)/logs" }, nil},
		{"subPathExpr absolute", func(p *corev1.Pod) { p.Spec.Containers[0].VolumeMounts[0].SubPathExpr = "/$(POD_NAME)" },
			[]string{`spec.containers[0].volumeMounts.subPathExpr: Invalid value: "/$(POD_NAME)": must be a relative path`}},
		{"subPathExpr backstep", func(p *corev1.Pod) { p.Spec.Containers[0].VolumeMounts[0].SubPathExpr = "a/../$(X)" },
			[]string{`spec.containers[0].volumeMounts.subPathExpr: Invalid value: "a/../$(X)": must not contain '..'`}},
		{"subPath backstep", func(p *corev1.Pod) { p.Spec.Containers[0].VolumeMounts[0].SubPath = "../x" },
			[]string{`volumeMounts.subPath: Invalid value: "../x": must not contain '..'`}},
		{"backticks are only characters", func(p *corev1.Pod) { p.Spec.Containers[0].VolumeMounts[0].SubPathExpr = "`$(X)`" }, nil},
		{"subPath and subPathExpr", func(p *corev1.Pod) {
			p.Spec.Containers[0].VolumeMounts[0].SubPath = "a"
			p.Spec.Containers[0].VolumeMounts[0].SubPathExpr = "$(X)"
		}, []string{`spec.containers[0].volumeMounts[0].subPathExpr: Invalid value: "$(X)": subPathExpr and subPath are mutually exclusive`}},
		{"HostToContainer", func(p *corev1.Pod) {
			p.Spec.Containers[0].VolumeMounts[0].MountPropagation = prop(corev1.MountPropagationHostToContainer)
		}, nil},
		{"Bidirectional unprivileged", func(p *corev1.Pod) {
			p.Spec.Containers[0].VolumeMounts[0].MountPropagation = prop(corev1.MountPropagationBidirectional)
		}, []string{`spec.containers[0].volumeMounts.mountPropagation: Forbidden: Bidirectional mount propagation is available only to privileged containers`}},
		{"Bidirectional privileged", func(p *corev1.Pod) {
			p.Spec.Containers[0].VolumeMounts[0].MountPropagation = prop(corev1.MountPropagationBidirectional)
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: &yes}
		}, nil},
		{"unknown propagation", func(p *corev1.Pod) {
			p.Spec.Containers[0].VolumeMounts[0].MountPropagation = prop("Sideways")
		}, []string{`mountPropagation: Unsupported value: "Sideways": supported values: "Bidirectional", "HostToContainer", "None"`}},
		{"stopSignal", func(p *corev1.Pod) { p.Spec.Containers[0].Lifecycle = sig("SIGUSR1") }, nil},
		{"stopSignal realtime", func(p *corev1.Pod) { p.Spec.Containers[0].Lifecycle = sig("SIGRTMIN+3") }, nil},
		{"stopSignal without os", func(p *corev1.Pod) { p.Spec.OS = nil; p.Spec.Containers[0].Lifecycle = sig("SIGUSR1") },
			[]string{"spec.containers[0].lifecycle.stopSignal: Forbidden: may not be set for containers with empty `spec.os.name`"}},
		{"stopSignal unknown", func(p *corev1.Pod) { p.Spec.Containers[0].Lifecycle = sig("SIGFOO") },
			[]string{`spec.containers[0].lifecycle.stopSignal: Unsupported value: "SIGFOO": supported values:`, `"SIGUSR1"`}},
		{"resizePolicy", func(p *corev1.Pod) {
			p.Spec.Containers[0].ResizePolicy = []corev1.ContainerResizePolicy{{ResourceName: "cpu", RestartPolicy: corev1.NotRequired}, {ResourceName: "memory", RestartPolicy: corev1.RestartContainer}}
		}, nil},
		{"resizePolicy duplicate and unknown", func(p *corev1.Pod) {
			p.Spec.Containers[0].ResizePolicy = []corev1.ContainerResizePolicy{{ResourceName: "cpu", RestartPolicy: corev1.NotRequired},
				{ResourceName: "cpu", RestartPolicy: "Sometimes"}, {ResourceName: "gpu", RestartPolicy: corev1.NotRequired}}
		}, []string{`spec.containers[0].resizePolicy[1]: Duplicate value: "cpu"`,
			`spec.containers[0].resizePolicy: Unsupported value: "Sometimes": supported values: "NotRequired", "RestartContainer"`,
			`spec.containers[0].resizePolicy: Unsupported value: "gpu": supported values: "cpu", "memory"`}},
		{"resizePolicy restart in a Never pod", func(p *corev1.Pod) {
			p.Spec.RestartPolicy = corev1.RestartPolicyNever
			p.Spec.Containers[0].ResizePolicy = []corev1.ContainerResizePolicy{{ResourceName: "memory", RestartPolicy: corev1.RestartContainer}}
		}, []string{"must be 'NotRequired' when `restartPolicy` is 'Never'"}},
		{"resizePolicy on an init container", func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "i", Image: "busybox", ImagePullPolicy: corev1.PullAlways,
				TerminationMessagePolicy: corev1.TerminationMessageReadFile,
				ResizePolicy:             []corev1.ContainerResizePolicy{{ResourceName: "cpu", RestartPolicy: corev1.NotRequired}}}}
		}, []string{"spec.initContainers[0].resizePolicy: Invalid value:", "must not be set for init containers"}},
		{"pod resources", func(p *corev1.Pod) {
			p.Spec.Resources = &corev1.ResourceRequirements{Requests: rl("cpu", "500m", "memory", "64Mi"), Limits: rl("cpu", "1", "memory", "128Mi")}
		}, nil},
		{"pod resources unsupported name", func(p *corev1.Pod) {
			p.Spec.Resources = &corev1.ResourceRequirements{Limits: rl("ephemeral-storage", "1Gi")}
		}, []string{`spec.resources.limits[ephemeral-storage]: Unsupported value: "ephemeral-storage": supported values: "cpu", "hugepages-", "memory"`}},
		{"pod request above limit", func(p *corev1.Pod) {
			p.Spec.Resources = &corev1.ResourceRequirements{Requests: rl("cpu", "2"), Limits: rl("cpu", "1")}
		}, []string{`spec.resources.requests[cpu]: Invalid value: "2": must be less than or equal to cpu limit of 1`}},
		{"pod requests below the containers'", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Requests = rl("cpu", "600m")
			p.Spec.Resources = &corev1.ResourceRequirements{Requests: rl("cpu", "500m")}
		}, []string{`spec.resources.requests[cpu]: Invalid value: "500m": must be greater than or equal to aggregate container requests of 600m`}},
		{"container limit above the pod's", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources = corev1.ResourceRequirements{Requests: rl("memory", "64Mi"), Limits: rl("memory", "256Mi")}
			p.Spec.Resources = &corev1.ResourceRequirements{Requests: rl("memory", "64Mi"), Limits: rl("memory", "128Mi")}
		}, []string{`spec.resources.containers[0][memory].limits: Invalid value: "256Mi": must be less than or equal to pod limits of 128Mi`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := validPod()
			tc.mutate(pod)
			got := errorsText(ValidatePodCreate(pod))
			if len(tc.want) == 0 && got != "" {
				t.Fatalf("want valid, got:\n%s", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("want %q in:\n%s", w, got)
				}
			}
		})
	}
}

func TestEphemeralContainerValidation(t *testing.T) {
	debug := func(mutate func(*corev1.EphemeralContainer)) *corev1.Pod {
		pod := validPod()
		ec := corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "dbg", Image: "busybox", Stdin: true, TTY: true},
			TargetContainerName: "c"}
		mutate(&ec)
		pod.Spec.EphemeralContainers = []corev1.EphemeralContainer{ec}
		DefaultPod(pod)
		return pod
	}
	t.Run("not on create", func(t *testing.T) {
		got := errorsText(ValidatePodCreate(debug(func(*corev1.EphemeralContainer) {})))
		if !strings.Contains(got, "spec.ephemeralContainers: Forbidden: cannot be set on create") {
			t.Fatal(got)
		}
	})
	old := validPod()
	for _, tc := range []struct {
		name   string
		mutate func(*corev1.EphemeralContainer)
		want   []string
	}{
		{"valid", func(*corev1.EphemeralContainer) {}, nil},
		{"defaults applied", func(ec *corev1.EphemeralContainer) { ec.TargetContainerName = "" }, nil},
		{"unknown target", func(ec *corev1.EphemeralContainer) { ec.TargetContainerName = "nope" },
			[]string{`spec.ephemeralContainers[0].targetContainerName: Not found: "nope"`}},
		{"name taken", func(ec *corev1.EphemeralContainer) { ec.Name = "c" },
			[]string{`spec.ephemeralContainers[0].name: Duplicate value: "c"`}},
		{"ports, probes, resources, lifecycle", func(ec *corev1.EphemeralContainer) {
			ec.Ports = []corev1.ContainerPort{{ContainerPort: 80, Protocol: corev1.ProtocolTCP}}
			ec.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}}
			ec.Resources.Limits = rl("cpu", "1")
			ec.Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}}
		}, []string{
			"spec.ephemeralContainers[0].ports: Forbidden: cannot be set for an Ephemeral Container",
			"spec.ephemeralContainers[0].readinessProbe: Forbidden: cannot be set for an Ephemeral Container",
			"spec.ephemeralContainers[0].resources: Forbidden: cannot be set for an Ephemeral Container",
			"spec.ephemeralContainers[0].lifecycle: Forbidden: cannot be set for an Ephemeral Container",
		}},
		{"subPath", func(ec *corev1.EphemeralContainer) {
			ec.VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/d", SubPath: "x"}}
		}, []string{"spec.ephemeralContainers[0].volumeMounts[0].subPath: Forbidden: cannot be set for an Ephemeral Container"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := debug(tc.mutate)
			if tc.name == "defaults applied" && (pod.Spec.EphemeralContainers[0].ImagePullPolicy != corev1.PullAlways ||
				pod.Spec.EphemeralContainers[0].TerminationMessagePolicy != corev1.TerminationMessageReadFile) {
				t.Fatalf("ephemeral container not defaulted: %+v", pod.Spec.EphemeralContainers[0])
			}
			got := errorsText(ValidatePodEphemeralContainersUpdate(pod, old))
			if len(tc.want) == 0 && got != "" {
				t.Fatalf("want valid, got:\n%s", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("want %q in:\n%s", w, got)
				}
			}
		})
	}
	t.Run("existing ones stay as they were", func(t *testing.T) {
		was := debug(func(*corev1.EphemeralContainer) {})
		removed := validPod()
		if got := errorsText(ValidatePodEphemeralContainersUpdate(removed, was)); !strings.Contains(got, `existing ephemeral containers "dbg" may not be removed`) {
			t.Errorf("removal: %s", got)
		}
		changed := debug(func(ec *corev1.EphemeralContainer) { ec.Image = "busybox:other" })
		if got := errorsText(ValidatePodEphemeralContainersUpdate(changed, was)); !strings.Contains(got, `existing ephemeral containers "dbg" may not be changed`) {
			t.Errorf("change: %s", got)
		}
	})
	t.Run("main update cannot add them", func(t *testing.T) {
		if got := errorsText(ValidatePodUpdate(debug(func(*corev1.EphemeralContainer) {}), old)); !strings.Contains(got, "pod updates may not change fields") {
			t.Errorf("update: %s", got)
		}
	})
	t.Run("merge takes only ephemeral containers", func(t *testing.T) {
		req := debug(func(*corev1.EphemeralContainer) {})
		req.Labels = map[string]string{"sneaky": "yes"}
		req.Spec.Containers[0].Image = "other"
		got := podViews()["ephemeralcontainers"].Merge(req, old.DeepCopy()).(*corev1.Pod)
		if len(got.Spec.EphemeralContainers) != 1 || got.Labels["sneaky"] != "" || got.Spec.Containers[0].Image != "busybox" {
			t.Errorf("merged: %+v", got)
		}
	})
}

func TestValidatePodResize(t *testing.T) {
	burstable := func() *corev1.Pod {
		pod := validPod()
		pod.Spec.Containers[0].Resources = corev1.ResourceRequirements{Requests: rl("cpu", "100m", "memory", "32Mi"), Limits: rl("cpu", "200m", "memory", "64Mi")}
		return pod
	}
	resize := func(old *corev1.Pod, mutate func(*corev1.Pod)) field.ErrorList {
		req := old.DeepCopy()
		mutate(req)
		merged := podViews()["resize"].Merge(req, old.DeepCopy()).(*corev1.Pod)
		DefaultPod(merged)
		return ValidatePodResize(merged, old)
	}
	for _, tc := range []struct {
		name   string
		old    func() *corev1.Pod
		mutate func(*corev1.Pod)
		want   []string
	}{
		{"cpu and memory", burstable, func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources = corev1.ResourceRequirements{Requests: rl("cpu", "300m", "memory", "16Mi"), Limits: rl("cpu", "400m", "memory", "48Mi")}
			p.Spec.Containers[0].ResizePolicy = []corev1.ContainerResizePolicy{{ResourceName: "memory", RestartPolicy: corev1.RestartContainer}}
		}, nil},
		{"request removed", func() *corev1.Pod {
			pod := burstable()
			delete(pod.Spec.Containers[0].Resources.Limits, "memory")
			return pod
		}, func(p *corev1.Pod) { delete(p.Spec.Containers[0].Resources.Requests, "memory") },
			[]string{"spec.containers[0].resources.requests[memory]: Forbidden: resource requests cannot be removed"}},
		{"limit removed", burstable, func(p *corev1.Pod) { delete(p.Spec.Containers[0].Resources.Limits, "cpu") },
			[]string{"spec.containers[0].resources.limits[cpu]: Forbidden: resource limits cannot be removed"}},
		{"QoS change", burstable, func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Requests = rl("cpu", "200m", "memory", "64Mi")
		}, []string{`spec: Invalid value: "Guaranteed": Pod QOS Class may not change as a result of resizing`}},
		{"other resource", burstable, func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Limits["ephemeral-storage"] = resource.MustParse("1Gi")
		},
			[]string{"spec: Forbidden: only cpu and memory resources are mutable"}},
		{"regular init container", func() *corev1.Pod {
			pod := burstable()
			pod.Spec.InitContainers = []corev1.Container{{Name: "i", Image: "busybox", Resources: corev1.ResourceRequirements{Requests: rl("cpu", "10m")}}}
			DefaultPod(pod)
			return pod
		}, func(p *corev1.Pod) { p.Spec.InitContainers[0].Resources.Requests = rl("cpu", "20m") },
			[]string{"spec: Forbidden: resources for non-sidecar init containers are immutable"}},
		{"pod-level resources", func() *corev1.Pod {
			pod := burstable()
			pod.Spec.Resources = &corev1.ResourceRequirements{Limits: rl("cpu", "1")}
			DefaultPod(pod)
			return pod
		}, func(p *corev1.Pod) { p.Spec.Containers[0].Resources.Requests["cpu"] = resource.MustParse("150m") },
			[]string{": Forbidden: pods with pod-level resources cannot be resized"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := errorsText(resize(tc.old(), tc.mutate))
			if len(tc.want) == 0 && got != "" {
				t.Fatalf("want valid, got:\n%s", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("want %q in:\n%s", w, got)
				}
			}
		})
	}
	t.Run("main update cannot resize", func(t *testing.T) {
		old := burstable()
		pod := old.DeepCopy()
		pod.Spec.Containers[0].Resources.Limits["cpu"] = resource.MustParse("300m")
		if got := errorsText(ValidatePodUpdate(pod, old)); !strings.Contains(got, "pod updates may not change fields") {
			t.Errorf("update: %s", got)
		}
	})
}

func TestPodLevelResourceDefaultsAndQOS(t *testing.T) {
	for _, tc := range []struct {
		name       string
		pod        corev1.PodSpec
		wantReq    corev1.ResourceList
		wantLimits corev1.ResourceList
		qos        corev1.PodQOSClass
	}{
		{"limits only: requests default to them", corev1.PodSpec{
			Resources:  &corev1.ResourceRequirements{Limits: rl("cpu", "1", "memory", "128Mi")},
			Containers: []corev1.Container{{Name: "a", Image: "x"}},
		}, rl("cpu", "1", "memory", "128Mi"), rl("cpu", "1", "memory", "128Mi"), corev1.PodQOSGuaranteed},
		{"containers' requests become the pod's", corev1.PodSpec{
			Resources: &corev1.ResourceRequirements{Limits: rl("cpu", "1", "memory", "128Mi")},
			Containers: []corev1.Container{{Name: "a", Image: "x", Resources: corev1.ResourceRequirements{Requests: rl("cpu", "100m")}},
				{Name: "b", Image: "x", Resources: corev1.ResourceRequirements{Requests: rl("cpu", "200m")}}},
		}, rl("cpu", "300m", "memory", "128Mi"), rl("cpu", "1", "memory", "128Mi"), corev1.PodQOSBurstable},
		{"requests only: limits every container sets add up", corev1.PodSpec{
			Resources: &corev1.ResourceRequirements{Requests: rl("cpu", "500m")},
			Containers: []corev1.Container{{Name: "a", Image: "x", Resources: corev1.ResourceRequirements{Limits: rl("memory", "64Mi")}},
				{Name: "b", Image: "x", Resources: corev1.ResourceRequirements{Limits: rl("memory", "32Mi")}}},
		}, rl("cpu", "500m", "memory", "96Mi"), rl("memory", "96Mi"), corev1.PodQOSBurstable},
		{"pod level decides QoS", corev1.PodSpec{
			Resources:  &corev1.ResourceRequirements{Requests: rl("cpu", "1")},
			Containers: []corev1.Container{{Name: "a", Image: "x", Resources: corev1.ResourceRequirements{Requests: rl("cpu", "1", "memory", "1Gi")}}},
		}, rl("cpu", "1"), nil, corev1.PodQOSBurstable},
		{"pod limits above a container request: Burstable", corev1.PodSpec{
			Resources:  &corev1.ResourceRequirements{Limits: rl("cpu", "1", "memory", "1Gi")},
			Containers: []corev1.Container{{Name: "a", Image: "x", Resources: corev1.ResourceRequirements{Requests: rl("cpu", "100m")}}},
		}, rl("cpu", "100m", "memory", "1Gi"), rl("cpu", "1", "memory", "1Gi"), corev1.PodQOSBurstable},
		{"container limits only: Guaranteed", corev1.PodSpec{
			Containers: []corev1.Container{{Name: "a", Image: "x", Resources: corev1.ResourceRequirements{Limits: rl("cpu", "1", "memory", "1Gi")}}},
		}, nil, nil, corev1.PodQOSGuaranteed},
		{"nothing: BestEffort", corev1.PodSpec{Containers: []corev1.Container{{Name: "a", Image: "x"}}}, nil, nil, corev1.PodQOSBestEffort},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := &corev1.Pod{Spec: tc.pod}
			if got := podQOS(pod); got != tc.qos {
				t.Errorf("QoS %s, want %s", got, tc.qos)
			}
			DefaultPod(pod)
			DefaultPod(pod) // idempotent
			var req, lim corev1.ResourceList
			if r := pod.Spec.Resources; r != nil {
				req, lim = r.Requests, r.Limits
			}
			if !equalLists(req, tc.wantReq) || !equalLists(lim, tc.wantLimits) {
				t.Errorf("pod resources: requests %v limits %v, want %v %v", req, lim, tc.wantReq, tc.wantLimits)
			}
			if errs := ValidatePodCreate(pod); len(errs) > 0 {
				t.Errorf("defaulted pod invalid:\n%s", errorsText(errs))
			}
		})
	}
}

func equalLists(a, b corev1.ResourceList) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || v.Cmp(w) != 0 {
			return false
		}
	}
	return true
}
