package scheduler

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func TestPodRequests(t *testing.T) {
	always := v1.ContainerRestartPolicyAlways
	ctr := func(name, cpu string, sidecar bool) v1.Container {
		c := v1.Container{Name: name, Resources: v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse(cpu)}}}
		if sidecar {
			c.RestartPolicy = &always
		}
		return c
	}
	tests := []struct {
		name        string
		pod         func(*v1.Pod)
		wantCPU     int64
		wantNonZero int64
	}{
		{"no requests", func(p *v1.Pod) {}, 0, 100},
		{"sum of containers", func(p *v1.Pod) {
			p.Spec.Containers = []v1.Container{ctr("a", "100m", false), ctr("b", "250m", false)}
		}, 350, 350},
		{"largest init container", func(p *v1.Pod) {
			p.Spec.Containers = []v1.Container{ctr("a", "100m", false)}
			p.Spec.InitContainers = []v1.Container{ctr("i1", "300m", false), ctr("i2", "200m", false)}
		}, 300, 300},
		{"sidecars add to app and later init containers", func(p *v1.Pod) {
			p.Spec.Containers = []v1.Container{ctr("a", "100m", false)}
			p.Spec.InitContainers = []v1.Container{ctr("s", "50m", true), ctr("i", "300m", false)}
		}, 350, 350},
		{"overhead", func(p *v1.Pod) {
			p.Spec.Containers = []v1.Container{ctr("a", "100m", false)}
			p.Spec.Overhead = v1.ResourceList{v1.ResourceCPU: resource.MustParse("10m")}
		}, 110, 110},
		{"pod-level resources", func(p *v1.Pod) {
			p.Spec.Containers = []v1.Container{ctr("a", "100m", false)}
			p.Spec.Resources = &v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("1")}}
		}, 1000, 1000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := mkPod("p", tc.pod)
			if got := PodRequests(p).MilliCPU; got != tc.wantCPU {
				t.Errorf("PodRequests cpu = %d, want %d", got, tc.wantCPU)
			}
			if got := podRequests(p, true).MilliCPU; got != tc.wantNonZero {
				t.Errorf("non-zero cpu = %d, want %d", got, tc.wantNonZero)
			}
		})
	}
}

func TestExtendedResources(t *testing.T) {
	n := mkNode("n1", "4", "4Gi", func(n *v1.Node) { n.Status.Allocatable["example.com/gpu"] = resource.MustParse("1") })
	gpu := func(k string) podOpt {
		return func(p *v1.Pod) {
			p.Spec.Containers[0].Resources.Requests = v1.ResourceList{"example.com/gpu": resource.MustParse(k)}
		}
	}
	snap := NewSnapshot([]*v1.Node{n}, []*v1.Pod{mkPod("a", gpu("1"), on("n1"))})
	_, err := Schedule(mkPod("p", gpu("1")), snap)
	if want := "0/1 nodes are available: 1 Insufficient example.com/gpu." + noVictims; err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
	if !isScalar("hugepages-2Mi") || isScalar("kubernetes.io/foo") || isScalar(v1.ResourceCPU) {
		t.Fatal("isScalar misclassifies")
	}
}

// TestPodRequestsDuringResize: a pending or unfinished resize makes a
// container count the largest of its desired, allocated and actual
// requests, and an infeasible one only what the node allocated.
func TestPodRequestsDuringResize(t *testing.T) {
	cpu := func(q string) v1.ResourceList { return v1.ResourceList{v1.ResourceCPU: resource.MustParse(q)} }
	pod := func(spec, allocated, actual string, infeasible bool) *v1.Pod {
		return mkPod("p", func(p *v1.Pod) {
			p.Spec.Containers = []v1.Container{{Name: "c", Resources: v1.ResourceRequirements{Requests: cpu(spec)}}}
			p.Status.ContainerStatuses = []v1.ContainerStatus{{Name: "c", AllocatedResources: cpu(allocated),
				Resources: &v1.ResourceRequirements{Requests: cpu(actual)}}}
			if infeasible {
				p.Status.Conditions = []v1.PodCondition{{Type: v1.PodResizePending, Status: v1.ConditionTrue, Reason: v1.PodReasonInfeasible}}
			}
		})
	}
	for _, tc := range []struct {
		name string
		pod  *v1.Pod
		want int64
	}{
		{"grow pending: the desired", pod("800m", "200m", "200m", false), 800},
		{"shrink in progress: the actual", pod("100m", "100m", "500m", false), 500},
		{"infeasible: what the node has", pod("64", "200m", "200m", true), 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := PodRequests(tc.pod).MilliCPU; got != tc.want {
				t.Errorf("cpu = %d, want %d", got, tc.want)
			}
		})
	}
}
