package scheduler

import (
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	resourcehelper "k8s.io/component-helpers/resource"
)

// Default requests the scheduler assumes, for scoring only, for a container
// that requests no CPU or memory (Kubernetes' DefaultMilliCPURequest and
// DefaultMemoryRequest), so that empty pods still spread.
const (
	defaultMilliCPURequest int64 = 100
	defaultMemoryRequest   int64 = 200 * 1024 * 1024
)

// Resources are the quantities the scheduler accounts for on a node: CPU in
// millicores, memory and ephemeral storage in bytes, and scalar resources
// (extended resources such as example.com/gpu, and hugepages) by name.
type Resources struct {
	MilliCPU         int64
	Memory           int64
	EphemeralStorage int64
	Scalar           map[v1.ResourceName]int64
}

// isScalar reports whether name is a resource the scheduler counts as a
// scalar: an extended resource (a domain-qualified name outside
// kubernetes.io) or hugepages.
func isScalar(name v1.ResourceName) bool {
	s := string(name)
	if strings.HasPrefix(s, v1.ResourceHugePagesPrefix) {
		return true
	}
	if !strings.Contains(s, "/") || strings.HasPrefix(s, "requests.") {
		return false
	}
	domain := s[:strings.Index(s, "/")]
	return domain != "kubernetes.io" && !strings.HasSuffix(domain, ".kubernetes.io")
}

// resourcesOf converts a resource list.
func resourcesOf(rl v1.ResourceList) Resources {
	var r Resources
	r.add(rl)
	return r
}

func (r *Resources) add(rl v1.ResourceList) {
	for name, q := range rl {
		switch name {
		case v1.ResourceCPU:
			r.MilliCPU += q.MilliValue()
		case v1.ResourceMemory:
			r.Memory += q.Value()
		case v1.ResourceEphemeralStorage:
			r.EphemeralStorage += q.Value()
		default:
			if isScalar(name) {
				if r.Scalar == nil {
					r.Scalar = map[v1.ResourceName]int64{}
				}
				r.Scalar[name] += q.Value()
			}
		}
	}
}

// Add adds o to r.
func (r *Resources) Add(o Resources) {
	r.MilliCPU += o.MilliCPU
	r.Memory += o.Memory
	r.EphemeralStorage += o.EphemeralStorage
	for k, v := range o.Scalar {
		if r.Scalar == nil {
			r.Scalar = map[v1.ResourceName]int64{}
		}
		r.Scalar[k] += v
	}
}

// Sub subtracts o from r.
func (r *Resources) Sub(o Resources) {
	r.MilliCPU -= o.MilliCPU
	r.Memory -= o.Memory
	r.EphemeralStorage -= o.EphemeralStorage
	for k, v := range o.Scalar {
		if r.Scalar == nil {
			r.Scalar = map[v1.ResourceName]int64{}
		}
		r.Scalar[k] -= v
		if r.Scalar[k] == 0 {
			delete(r.Scalar, k)
		}
	}
}

// PodRequests returns a pod's effective requests the way Kubernetes computes
// them for scheduling (component-helpers' PodRequests, as kube-scheduler
// calls it): the sum of its app containers and restartable (sidecar) init
// containers, raised to the largest regular init container (plus the
// sidecars started before it), plus spec.overhead; pod-level spec.resources
// requests, when set, replace the CPU and memory figures. While a resize
// is pending or in progress, each container counts the largest of its
// desired, allocated and actual requests, as reported in the pod's status
// (only the allocated and actual ones when the resize is infeasible).
func PodRequests(pod *v1.Pod) Resources {
	return podRequests(pod, false)
}

// nonZeroDefaults are the requests podRequests assumes, with nonZero, for
// a container that requests no CPU or memory.
var nonZeroDefaults = v1.ResourceList{
	v1.ResourceCPU:    *resource.NewMilliQuantity(defaultMilliCPURequest, resource.DecimalSI),
	v1.ResourceMemory: *resource.NewQuantity(defaultMemoryRequest, resource.BinarySI),
}

// podRequests implements PodRequests; with nonZero, a container without a
// CPU or memory request counts the scheduler's defaults instead (used for
// scoring only, as Kubernetes' NonZeroRequested).
func podRequests(pod *v1.Pod, nonZero bool) Resources {
	opts := resourcehelper.PodResourcesOptions{UseStatusResources: true}
	if nonZero {
		opts.NonMissingContainerRequests = nonZeroDefaults
	}
	return resourcesOf(resourcehelper.PodRequests(pod, opts))
}
