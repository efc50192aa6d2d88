package runtime

import (
	"context"
	"fmt"

	"github.com/opencontainers/cgroups"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	resourcehelper "k8s.io/component-helpers/resource"

	"github.com/peapod/peapod/internal/runtime/spec"
)

// podCgroupConfig is what a pod's cgroup gets, the kubelet's
// ResourceConfigForPod: cpu shares from the pod's requests; a CFS quota
// from its cpu limits and a memory limit from its memory limits, each
// only when every container and init container has one (or the pod-level
// resources set it). Zero leaves a value unlimited.
type podCgroupConfig struct {
	Shares uint64 `json:"shares"`
	Quota  int64  `json:"quota,omitempty"`
	Period uint64 `json:"period,omitempty"`
	Memory int64  `json:"memory,omitempty"`
}

// podCgroupFor computes the pod cgroup's config from the pod's spec (its
// allocated resources). Pure.
func podCgroupFor(pod *corev1.Pod) podCgroupConfig {
	reqs := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
	limits := resourcehelper.PodLimits(pod, resourcehelper.PodResourcesOptions{})
	cpuDeclared, memDeclared := true, true
	for _, c := range append(append([]corev1.Container(nil), pod.Spec.InitContainers...), pod.Spec.Containers...) {
		cpuDeclared = cpuDeclared && !c.Resources.Limits.Cpu().IsZero()
		memDeclared = memDeclared && !c.Resources.Limits.Memory().IsZero()
	}
	if r := pod.Spec.Resources; r != nil {
		cpuDeclared = cpuDeclared || !r.Limits.Cpu().IsZero()
		memDeclared = memDeclared || !r.Limits.Memory().IsZero()
	}
	cfg := podCgroupConfig{Shares: spec.MilliCPUToShares(reqs.Cpu().MilliValue())}
	if cpuDeclared {
		cfg.Quota = spec.MilliCPUToQuota(limits.Cpu().MilliValue(), spec.CPUPeriod)
		cfg.Period = spec.CPUPeriod
	}
	if memDeclared {
		cfg.Memory = limits.Memory().Value()
	}
	return cfg
}

// grownTo returns, per resource, the larger of c and o (unlimited being
// the largest): what a pod cgroup must allow while its containers move
// from one to the other.
func (c podCgroupConfig) grownTo(o podCgroupConfig) podCgroupConfig {
	out := c
	out.Shares = max(c.Shares, o.Shares)
	if c.Quota == 0 || o.Quota == 0 {
		out.Quota, out.Period = 0, 0
	} else {
		out.Quota = max(c.Quota, o.Quota)
	}
	if c.Memory == 0 || o.Memory == 0 {
		out.Memory = 0
	} else {
		out.Memory = max(c.Memory, o.Memory)
	}
	return out
}

// setPodCgroup writes cfg to the sandbox's pod cgroup, lifting a limit
// the previous config had and cfg has not; a memory limit below what the
// pod uses now is refused, as the kubelet refuses it.
func (r *Runtime) setPodCgroup(sb *sandboxRecord, cfg podCgroupConfig) error {
	prev := podCgroupConfig{}
	if sb.PodCgroup != nil {
		prev = *sb.PodCgroup
	}
	if sb.PodCgroup != nil && prev == cfg {
		return nil
	}
	m, err := cgroupManager(sb.Cgroup)
	if err != nil {
		return err
	}
	if cfg.Memory > 0 && (prev.Memory == 0 || cfg.Memory < prev.Memory) {
		if usage := memoryUsage(m); usage >= uint64(cfg.Memory) {
			return fmt.Errorf("aborting attempt to set pod memory limit less than current memory usage for pod %s/%s (limit %d, usage %d)",
				sb.Pod.Namespace, sb.Pod.Name, cfg.Memory, usage)
		}
	}
	res := &cgroups.Resources{SkipDevices: true, CpuShares: cfg.Shares, CpuQuota: cfg.Quota, CpuPeriod: cfg.Period, Memory: cfg.Memory}
	if cfg.Quota == 0 && prev.Quota != 0 {
		res.CpuQuota = -1
	}
	if cfg.Memory == 0 && prev.Memory != 0 {
		res.Memory = -1
	}
	if err := m.Set(res); err != nil {
		return fmt.Errorf("set resources of pod cgroup %s: %w", sb.Cgroup, err)
	}
	sb.PodCgroup = &cfg
	return r.saveSandbox(sb)
}

// applyPodCgroup gives the pod cgroup the resources of the sandbox's pod,
// if it does not have them yet; the caller holds the sandbox's lock.
func (r *Runtime) applyPodCgroup(_ context.Context, sb *sandboxRecord) error {
	return r.setPodCgroup(sb, podCgroupFor(sb.Pod))
}

// memoryUsage is the memory a cgroup uses now, 0 when unknown.
func memoryUsage(m cgroups.Manager) uint64 {
	st, err := m.GetStats()
	if err != nil {
		return 0
	}
	return st.MemoryStats.Usage.Usage
}

// UpdatePod records pod as the sandbox's pod: containers created from now
// on take their spec from it. The agent calls it when ephemeral containers
// were added, and with a pod carrying the resources it allocated when a
// resize was admitted; then, where the pod cgroup's limits grow, they
// grow now, so that containers resized next fit in (SyncPodCgroup shrinks
// them after). Containers already running keep their resources until
// UpdateContainerResources or a restart.
func (r *Runtime) UpdatePod(ctx context.Context, sandboxID string, pod *corev1.Pod) error {
	unlock := r.lockSandbox(sandboxID)
	defer unlock()
	sb, err := r.loadSandbox(sandboxID)
	if err != nil {
		return err
	}
	if sb.Pod == nil || sb.Pod.UID != pod.UID {
		return fmt.Errorf("%w: sandbox %s does not hold pod %s/%s", ErrInvalid, sandboxID, pod.Namespace, pod.Name)
	}
	if equality.Semantic.DeepEqual(sb.Pod, pod) {
		return nil
	}
	sb.Pod = pod.DeepCopy()
	if err := r.saveSandbox(sb); err != nil {
		return err
	}
	if sb.PodCgroup == nil {
		return nil // no container yet: the first one applies it
	}
	return r.setPodCgroup(sb, sb.PodCgroup.grownTo(podCgroupFor(sb.Pod)))
}

// SyncPodCgroup sets the pod cgroup to exactly the resources of the
// sandbox's pod, after its containers were resized: limits that shrank
// shrink now. A memory limit below the pod's usage is refused.
func (r *Runtime) SyncPodCgroup(ctx context.Context, sandboxID string) error {
	unlock := r.lockSandbox(sandboxID)
	defer unlock()
	sb, err := r.loadSandbox(sandboxID)
	if err != nil {
		return err
	}
	if sb.PodCgroup == nil {
		return nil
	}
	return r.applyPodCgroup(ctx, sb)
}

// UpdateContainerResources gives a running container new cpu and memory
// requests and limits in place (`runc update`, `crun update`), as the
// kubelet's in-place resize does through the CRI, and records them (its
// status reports them). A memory limit below what the container uses now
// is refused, as the kubelet refuses it; the container is left as it was.
func (r *Runtime) UpdateContainerResources(ctx context.Context, cid string, res corev1.ResourceRequirements) error {
	sandboxID, err := r.sandboxOf(cid)
	if err != nil {
		return err
	}
	unlock := r.lockSandbox(sandboxID)
	defer unlock()
	rec, err := r.loadContainer(sandboxID, cid)
	if err != nil {
		return err
	}
	if rec.Resources != nil && equality.Semantic.DeepEqual(*rec.Resources, res) {
		return nil
	}
	c := &corev1.Container{Name: rec.Name, Resources: res}
	lr, err := spec.LinuxResources(c)
	if err != nil {
		return fmt.Errorf("%w: resize container %q: %w", ErrInvalid, rec.Name, err)
	}
	if lr.Memory != nil && lr.Memory.Limit != nil {
		if m, err := cgroupManager(r.containerCgroup(sandboxID, cid)); err == nil {
			if usage := memoryUsage(m); usage >= uint64(*lr.Memory.Limit) {
				return fmt.Errorf("aborting attempt to set container %q memory limit (%d) less than current memory usage (%d)", rec.Name, *lr.Memory.Limit, usage)
			}
		}
	} else if rec.Resources != nil && !rec.Resources.Limits.Memory().IsZero() {
		unlimited := int64(-1)
		lr.Memory = &specs.LinuxMemory{Limit: &unlimited}
	}
	if lr.CPU != nil && lr.CPU.Quota == nil && rec.Resources != nil && !rec.Resources.Limits.Cpu().IsZero() {
		unlimited := int64(-1)
		lr.CPU.Quota = &unlimited
	}
	h, err := r.Handler(rec.Handler)
	if err != nil {
		return err
	}
	if err := h.Update(ctx, cid, lr); err != nil {
		return fmt.Errorf("resize container %q: %w", rec.Name, err)
	}
	rec.Resources = res.DeepCopy()
	return r.saveContainer(rec)
}

// SandboxPod returns the pod as the sandbox records it: the spec its
// containers are created from, with the resources the node allocated (see
// UpdatePod).
func (r *View) SandboxPod(sandboxID string) (*corev1.Pod, error) {
	sb, err := r.loadSandbox(sandboxID)
	if err != nil {
		return nil, err
	}
	if sb.Pod == nil {
		return nil, fmt.Errorf("sandbox %s: %w: no pod", sandboxID, ErrNotFound)
	}
	return sb.Pod, nil
}

// AllocatedPods returns the pods of this node's ready sandboxes as they
// record them, with the resources allocated to them: what the node has
// promised, for admitting a resize.
func (r *View) AllocatedPods() ([]*corev1.Pod, error) {
	ids, err := r.sandboxIDs()
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []*corev1.Pod
	for _, id := range ids {
		sb, err := r.loadSandbox(id)
		if err != nil || !sb.Ready || sb.Pod == nil || seen[string(sb.Pod.UID)] {
			continue
		}
		seen[string(sb.Pod.UID)] = true
		out = append(out, sb.Pod)
	}
	return out, nil
}
