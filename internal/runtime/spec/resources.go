package spec

import (
	"fmt"
	"sort"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	corev1 "k8s.io/api/core/v1"
)

// CPU constants of the kubelet (pkg/kubelet/cm).
const (
	// CPUPeriod is the CFS period every container gets, in microseconds.
	CPUPeriod = 100000
	// minQuota is the smallest CFS quota the kubelet sets (1ms).
	minQuota = 1000
	// Share bounds and scale of MilliCPUToShares.
	minShares    = 2
	maxShares    = 262144
	sharesPerCPU = 1024
)

// MilliCPUToShares converts a cpu request in millicores to cgroup v1
// cpu.shares, as the kubelet does: 0 → 2, else 1024 per cpu, clamped to
// [2, 262144].
func MilliCPUToShares(milliCPU int64) uint64 {
	if milliCPU <= 0 {
		return minShares
	}
	shares := milliCPU * sharesPerCPU / 1000
	switch {
	case shares < minShares:
		return minShares
	case shares > maxShares:
		return maxShares
	}
	return uint64(shares)
}

// MilliCPUToQuota converts a cpu limit in millicores to a CFS quota over
// period, as the kubelet does: 0 for no limit, else at least 1ms.
func MilliCPUToQuota(milliCPU, period int64) int64 {
	if milliCPU <= 0 {
		return 0
	}
	q := milliCPU * period / 1000
	if q < minQuota {
		q = minQuota
	}
	return q
}

// resources returns the container's cgroup resources: cpu.shares from the
// cpu request (or the limit when only that is set), the CFS period always and
// a quota with a cpu limit, and the memory limit. Requests and limits of
// ephemeral-storage are accepted and not enforced; any other resource
// (hugepages, extended resources) is ErrUnsupported. Devices are filled in by
// Build.
func resources(c *corev1.Container, path string) (*specs.LinuxResources, error) {
	rr := c.Resources
	for _, l := range []struct {
		name string
		list corev1.ResourceList
	}{{"limits", rr.Limits}, {"requests", rr.Requests}} {
		names := make([]string, 0, len(l.list))
		for n := range l.list {
			names = append(names, string(n))
		}
		sort.Strings(names)
		for _, n := range names {
			switch corev1.ResourceName(n) {
			case corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage:
			default:
				return nil, fmt.Errorf("%s.resources.%s[%s]: %w", path, l.name, n, ErrUnsupported)
			}
		}
	}
	if len(rr.Claims) > 0 {
		return nil, fmt.Errorf("%s.resources.claims: %w", path, ErrUnsupported)
	}

	var milliReq, milliLim int64
	if q, ok := rr.Requests[corev1.ResourceCPU]; ok {
		milliReq = q.MilliValue()
	}
	if q, ok := rr.Limits[corev1.ResourceCPU]; ok {
		milliLim = q.MilliValue()
	}
	if milliReq == 0 && milliLim != 0 {
		milliReq = milliLim // API defaulting, repeated by the kubelet
	}
	shares := MilliCPUToShares(milliReq)
	period := uint64(CPUPeriod)
	res := &specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: &shares, Period: &period}}
	if q := MilliCPUToQuota(milliLim, CPUPeriod); q != 0 {
		res.CPU.Quota = &q
	}
	if q, ok := rr.Limits[corev1.ResourceMemory]; ok && q.Value() > 0 {
		limit := q.Value()
		res.Memory = &specs.LinuxMemory{Limit: &limit}
	}
	return res, nil
}

// LinuxResources returns the cgroup resources Build gives container c (the
// same shares, CFS quota and period, and memory limit), for changing a
// running container's in place. Devices are left out.
func LinuxResources(c *corev1.Container) (*specs.LinuxResources, error) {
	return resources(c, "container "+c.Name)
}

// checkPodResources refuses pod-level resources a node cannot apply:
// hugepages and claims (cpu and memory go to the pod's cgroup).
func checkPodResources(r *corev1.ResourceRequirements) error {
	if r == nil {
		return nil
	}
	for _, l := range []struct {
		name string
		list corev1.ResourceList
	}{{"limits", r.Limits}, {"requests", r.Requests}} {
		for n := range l.list {
			if n != corev1.ResourceCPU && n != corev1.ResourceMemory {
				return fmt.Errorf("spec.resources.%s[%s]: %w", l.name, n, ErrUnsupported)
			}
		}
	}
	if len(r.Claims) > 0 {
		return fmt.Errorf("spec.resources.claims: %w", ErrUnsupported)
	}
	return nil
}
