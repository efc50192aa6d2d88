package agent

import (
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/peapod/peapod/internal/agent/probe"
	"github.com/peapod/peapod/internal/runtime"
)

// What a worker remembers about its pod between syncs: why containers
// wait, and restart counts carried over from a lost sandbox. Everything
// else is read back from the runtime at every sync.

func (w *podWorker) state() *observed {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.obs == nil {
		w.obs = &observed{waiting: map[string]waitReason{}, restarts: map[string]int32{}, pullFailed: map[string]time.Time{}}
	}
	return w.obs
}

// observe combines the runtime's view of the sandbox with the worker's
// memory and the probe results.
func (w *podWorker) observe(sb *runtime.SandboxStatus, probes *probe.Manager) observed {
	st := w.state()
	w.mu.Lock()
	defer w.mu.Unlock()
	o := observed{
		sandbox:  sb,
		runs:     groupRuns(sb),
		waiting:  map[string]waitReason{},
		ready:    map[string]bool{},
		started:  map[string]bool{},
		restarts: map[string]int32{},
		failed:   st.failed,

		allocated: st.allocated,
		resize:    st.resize,
	}
	for k, v := range st.waiting {
		o.waiting[k] = v
	}
	for k, v := range st.restarts {
		o.restarts[k] = v
	}
	for name, runs := range o.runs {
		last := runs[len(runs)-1]
		if last.State != runtime.ContainerRunning {
			continue
		}
		o.ready[name] = probes.Result(last.ID, probe.Readiness) == probe.Success
		o.started[name] = probes.Result(last.ID, probe.Startup) == probe.Success
	}
	return o
}

// groupRuns groups a sandbox's containers by name, oldest run first.
func groupRuns(sb *runtime.SandboxStatus) map[string][]*runtime.ContainerStatus {
	runs := map[string][]*runtime.ContainerStatus{}
	if sb == nil {
		return runs
	}
	for _, c := range sb.Containers {
		runs[c.Name] = append(runs[c.Name], c)
	}
	for _, rs := range runs {
		sort.Slice(rs, func(i, j int) bool {
			if rs[i].Attempt != rs[j].Attempt {
				return rs[i].Attempt < rs[j].Attempt
			}
			return rs[i].CreatedAt.Before(rs[j].CreatedAt)
		})
	}
	return runs
}

func (w *podWorker) setWaiting(name string, r waitReason) {
	st := w.state()
	w.mu.Lock()
	st.waiting[name] = r
	w.mu.Unlock()
}

func (w *podWorker) clearWaiting(name string) {
	st := w.state()
	w.mu.Lock()
	delete(st.waiting, name)
	w.mu.Unlock()
}

func (w *podWorker) setWaitingAll(pod *corev1.Pod, r waitReason) {
	for _, c := range allContainers(pod) {
		w.setWaiting(c.Name, r)
	}
}

func (w *podWorker) clearWaitingAll() {
	st := w.state()
	w.mu.Lock()
	st.waiting = map[string]waitReason{}
	w.mu.Unlock()
}

// carryRestarts remembers restart counts across a lost sandbox: the new
// sandbox's containers count on from them, as the kubelet's do.
func (w *podWorker) carryRestarts(pod *corev1.Pod, lost *runtime.SandboxStatus) {
	st := w.state()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, cs := range append(append([]corev1.ContainerStatus(nil), pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...) {
		st.restarts[cs.Name] = max(st.restarts[cs.Name], cs.RestartCount+1)
	}
	for name, runs := range groupRuns(lost) {
		st.restarts[name] = max(st.restarts[name], int32(runs[len(runs)-1].Attempt)+1)
	}
}

// nextAttempt is the restart count of a container's next run.
func (w *podWorker) nextAttempt(name string, runs []*runtime.ContainerStatus) int {
	st := w.state()
	w.mu.Lock()
	defer w.mu.Unlock()
	n := int(st.restarts[name])
	if len(runs) > 0 {
		n = max(n, runs[len(runs)-1].Attempt+1)
	}
	return n
}

// setPullFailed records when a container's image pull last failed.
func (w *podWorker) setPullFailed(name string, at time.Time) {
	st := w.state()
	w.mu.Lock()
	st.pullFailed[name] = at
	w.mu.Unlock()
}

// pullFailedAt is when a container's image pull last failed.
func (w *podWorker) pullFailedAt(name string) time.Time {
	st := w.state()
	w.mu.Lock()
	defer w.mu.Unlock()
	return st.pullFailed[name]
}

// watch reports whether the container is newly watched.
func (w *podWorker) watch(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.watched[id] {
		return false
	}
	w.watched[id] = true
	return true
}

func allContainers(pod *corev1.Pod) []corev1.Container {
	return append(append([]corev1.Container(nil), pod.Spec.InitContainers...), pod.Spec.Containers...)
}

// Retries of a sandbox that could not be made start at sandboxRetryFirst
// and double up to sandboxRetryMax (the kubelet's volume operations back
// off from 500 ms to about 2 minutes).
const (
	sandboxRetryFirst = 500 * time.Millisecond
	sandboxRetryMax   = 2 * time.Minute
)

// sandboxRetryIn returns how long to wait before trying to make the
// sandbox again, and backs off for the time after.
func (w *podWorker) sandboxRetryIn() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sandboxRetry == 0 {
		w.sandboxRetry = sandboxRetryFirst
	} else {
		w.sandboxRetry = min(2*w.sandboxRetry, sandboxRetryMax)
	}
	return w.sandboxRetry
}

// sandboxMade resets the sandbox retry back-off.
func (w *podWorker) sandboxMade() {
	w.mu.Lock()
	w.sandboxRetry = 0
	w.mu.Unlock()
}

// setResize changes what the worker knows of its pod's resize.
func (w *podWorker) setResize(change func(*resizeState)) {
	st := w.state()
	w.mu.Lock()
	change(&st.resize)
	w.mu.Unlock()
}

// resize is what the worker knows of its pod's resize.
func (w *podWorker) resize() resizeState {
	st := w.state()
	w.mu.Lock()
	defer w.mu.Unlock()
	return st.resize
}

// setAllocated records the pod with the resources allocated to it.
func (w *podWorker) setAllocated(pod *corev1.Pod) {
	st := w.state()
	w.mu.Lock()
	st.allocated = pod
	w.mu.Unlock()
}
