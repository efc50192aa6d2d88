package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/peapod/peapod/internal/agent/probe"
	"github.com/peapod/peapod/internal/runtime"
)

// syncPod drives a live pod one step toward its spec and publishes its
// status. It returns when the pod should next be synced if nothing else
// wakes its worker (a back-off ending, say); 0 means "at resync".
func (a *Agent) syncPod(ctx context.Context, w *podWorker, pod *corev1.Pod) (time.Duration, error) {
	if pod.DeletionTimestamp != nil {
		return 0, a.syncTerminating(ctx, w, pod)
	}
	if isTerminal(pod.Status.Phase) {
		// A finished pod keeps its status and logs, not its sandbox.
		return 0, a.removeSandboxes(ctx, pod.UID, nil)
	}
	st := w.state()
	sb, err := a.ensureSandbox(ctx, w, pod)
	if err != nil {
		return 0, err
	}
	var requeue time.Duration
	if sb == nil {
		// The sandbox could not be made (a ConfigMap its volumes need may
		// not exist yet, say): try again soon, then backing off, as the
		// kubelet's volume reconciler retries a mount.
		requeue = w.sandboxRetryIn()
	} else {
		w.sandboxMade()
		a.watchExits(ctx, w, sb)
		if failed := a.checkDeadline(ctx, pod, sb); failed != nil {
			st.failed = failed
		} else {
			alloc := a.allocate(ctx, w, pod, sb)
			requeue = a.runContainers(ctx, w, pod, sb)
			for _, d := range []time.Duration{a.startEphemeralContainers(ctx, w, pod, sb), a.actuateResize(ctx, w, alloc, sb)} {
				if d > 0 && (requeue == 0 || d < requeue) {
					requeue = d
				}
			}
			if w.resize().pendingReason == corev1.PodReasonDeferred && (requeue == 0 || deferredResizeRetry < requeue) {
				requeue = deferredResizeRetry
			}
			if left, ok := deadlineLeft(pod, time.Now()); ok && (requeue == 0 || left < requeue) {
				requeue = max(left, time.Millisecond)
			}
			if d := a.refreshVolumes(ctx, w, pod, sb); d > 0 && (requeue == 0 || d < requeue) {
				requeue = d
			}
			// Re-read: containers may have started or stopped.
			if fresh, err := a.rt.SandboxStatus(ctx, sb.ID); err == nil {
				sb = fresh
			}
		}
	}
	conflict, err := a.publishStatus(ctx, w, pod, sb)
	if err != nil {
		return 0, err
	}
	if conflict {
		// Someone else wrote the pod meanwhile; sync again on the newer
		// pod the informer brings.
		return statusConflictRetry, nil
	}
	return requeue, nil
}

// volumeRefreshPeriod is how often ConfigMap, Secret, downward API and
// token volumes are brought up to date, the kubelet's sync frequency.
const volumeRefreshPeriod = time.Minute

// refreshVolumes updates the pod's API-backed volumes once per period, and
// at once when the pod's labels or annotations changed (the kubelet's
// volume manager remounts downward API volumes at the sync a pod update
// brings); it returns when it wants to run next (0 when the pod has none).
func (a *Agent) refreshVolumes(ctx context.Context, w *podWorker, pod *corev1.Pod, sb *runtime.SandboxStatus) time.Duration {
	if !hasAPIVolumes(pod) {
		return 0
	}
	meta := shownMetadataOf(pod)
	now := time.Now()
	w.mu.Lock()
	due := now.Sub(w.refreshed) >= volumeRefreshPeriod || !w.refreshedMeta.equal(meta)
	if due {
		w.refreshed, w.refreshedMeta = now, meta
	}
	next := w.refreshed.Add(volumeRefreshPeriod).Sub(now)
	w.mu.Unlock()
	if due {
		if err := a.rt.RefreshVolumes(ctx, sb.ID, pod); err != nil {
			a.log.Warn("refresh volumes", "pod", key(pod), "err", err)
		}
	}
	return max(next, time.Second)
}

// shownMetadata is what of a pod's metadata its downward API volumes
// show: its labels and annotations.
type shownMetadata struct{ labels, annotations map[string]string }

func shownMetadataOf(pod *corev1.Pod) shownMetadata {
	return shownMetadata{maps.Clone(pod.Labels), maps.Clone(pod.Annotations)}
}

func (m shownMetadata) equal(o shownMetadata) bool {
	return maps.Equal(m.labels, o.labels) && maps.Equal(m.annotations, o.annotations)
}

func hasAPIVolumes(pod *corev1.Pod) bool {
	for _, v := range pod.Spec.Volumes {
		if v.ConfigMap != nil || v.Secret != nil || v.DownwardAPI != nil || v.Projected != nil {
			return true
		}
	}
	return false
}

// ensureSandbox returns the pod's live sandbox, creating it, or replacing
// one whose pause process died (SandboxChanged), as needed. nil with no
// error means the sandbox could not be made yet; the reason is in an event
// and in the containers' waiting state.
func (a *Agent) ensureSandbox(ctx context.Context, w *podWorker, pod *corev1.Pod) (*runtime.SandboxStatus, error) {
	sandboxes, err := a.sandboxesOf(ctx, pod.UID)
	if err != nil {
		return nil, err
	}
	var live *runtime.SandboxStatus
	var stale []string
	for i, sb := range sandboxes {
		if i == len(sandboxes)-1 && sb.Ready && sb.Alive {
			live = sb
			continue
		}
		stale = append(stale, sb.ID)
	}
	if len(stale) > 0 {
		if live == nil && len(sandboxes) > 0 {
			a.events.Event(pod, corev1.EventTypeNormal, "SandboxChanged", "Pod sandbox changed, it will be killed and re-created.")
			w.carryRestarts(pod, sandboxes[len(sandboxes)-1])
		}
		for _, id := range stale {
			if err := a.rt.RemovePodSandbox(ctx, id, 0); err != nil {
				return nil, fmt.Errorf("remove dead sandbox %s: %w", id, err)
			}
		}
	}
	if live != nil {
		return live, nil
	}
	handler, err := a.handlerFor(pod)
	if err == nil {
		var id string
		if id, err = a.rt.RunPodSandbox(ctx, pod, handler); err == nil {
			// The sandbox's volumes were just filled: the first refresh is
			// a period away, not on the way to the pod's first status.
			w.mu.Lock()
			w.refreshed, w.refreshedMeta = time.Now(), shownMetadataOf(pod)
			w.mu.Unlock()
			w.clearWaitingAll()
			return a.rt.SandboxStatus(ctx, id)
		}
	}
	reason := "FailedCreatePodSandBox"
	if strings.Contains(err.Error(), "set up volumes") {
		reason = "FailedMount"
	}
	msg := "Failed to create pod sandbox: " + err.Error()
	a.events.Event(pod, corev1.EventTypeWarning, reason, msg)
	w.setWaitingAll(pod, waitReason{Reason: defaultWaitingReason(pod), Message: msg})
	return nil, nil
}

// handlerFor resolves the pod's RuntimeClass to an OCI runtime handler.
func (a *Agent) handlerFor(pod *corev1.Pod) (string, error) {
	if pod.Spec.RuntimeClassName == nil || *pod.Spec.RuntimeClassName == "" {
		return "", nil
	}
	rc, err := a.classes.Get(*pod.Spec.RuntimeClassName)
	if apierrors.IsNotFound(err) {
		return "", fmt.Errorf("RuntimeClass %q not found", *pod.Spec.RuntimeClassName)
	}
	if err != nil {
		return "", fmt.Errorf("RuntimeClass %q: %w", *pod.Spec.RuntimeClassName, err)
	}
	if _, err := a.rt.Handler(rc.Handler); err != nil {
		return "", fmt.Errorf("RuntimeClass %q: %w", rc.Name, err)
	}
	return rc.Handler, nil
}

// sandboxesOf lists the pod's sandboxes on this node, oldest first.
func (a *Agent) sandboxesOf(ctx context.Context, uid types.UID) ([]*runtime.SandboxStatus, error) {
	return a.rt.PodSandboxes(ctx, string(uid))
}

// removeSandboxes removes every sandbox of the pod; pod (when known) also
// loses its logs.
func (a *Agent) removeSandboxes(ctx context.Context, uid types.UID, pod *corev1.Pod) error {
	sandboxes, err := a.sandboxesOf(ctx, uid)
	if err != nil {
		return err
	}
	var errs []error
	for _, sb := range sandboxes {
		if err := a.rt.RemovePodSandbox(ctx, sb.ID, 0); err != nil {
			errs = append(errs, err)
		}
	}
	if pod != nil {
		errs = append(errs, a.rt.RemovePodLogs(pod))
	}
	a.probes.RemovePod(uid)
	if len(sandboxes) > 0 {
		// The pod's resources are free: a resize waiting for room may fit.
		a.retryDeferredResizes()
	}
	return errors.Join(errs...)
}

// watchExits makes every running container's exit, and the death of the
// sandbox's pause process, wake the pod's worker.
func (a *Agent) watchExits(ctx context.Context, w *podWorker, sb *runtime.SandboxStatus) {
	if w.watch("sandbox/" + sb.ID) {
		go func() {
			if err := a.rt.WaitSandbox(ctx, sb.ID); err == nil {
				w.poke()
			}
		}()
	}
	for _, c := range sb.Containers {
		if c.State != runtime.ContainerRunning || !w.watch(c.ID) {
			continue
		}
		go func() {
			if _, err := a.rt.WaitContainer(ctx, c.ID); err == nil {
				w.poke()
			}
		}()
	}
}

// deadlineLeft is how long the pod may still run before its
// activeDeadlineSeconds, if it has one and has started.
func deadlineLeft(pod *corev1.Pod, now time.Time) (time.Duration, bool) {
	if pod.Spec.ActiveDeadlineSeconds == nil || pod.Status.StartTime == nil {
		return 0, false
	}
	return pod.Status.StartTime.Add(time.Duration(*pod.Spec.ActiveDeadlineSeconds) * time.Second).Sub(now), true
}

// checkDeadline fails a pod past its activeDeadlineSeconds, killing its containers.
func (a *Agent) checkDeadline(ctx context.Context, pod *corev1.Pod, sb *runtime.SandboxStatus) *waitReason {
	if left, ok := deadlineLeft(pod, time.Now()); !ok || left > 0 {
		return nil
	}
	msg := "Pod was active on the node longer than the specified deadline"
	a.events.Event(pod, corev1.EventTypeNormal, "DeadlineExceeded", msg)
	for _, c := range sb.Containers {
		if c.State == runtime.ContainerRunning {
			a.killContainer(ctx, pod, c, "Stopping container "+c.Name)
		}
	}
	return &waitReason{Reason: "DeadlineExceeded", Message: msg}
}

// statusConflictRetry is how soon a pod whose status write conflicted is
// synced again.
const statusConflictRetry = 200 * time.Millisecond

// publishStatus writes the pod's computed status if it changed. conflict
// reports a write that lost to a newer version of the pod.
func (a *Agent) publishStatus(ctx context.Context, w *podWorker, pod *corev1.Pod, sb *runtime.SandboxStatus) (conflict bool, err error) {
	fillTerminationMessages(pod, sb)
	o := w.observe(sb, a.probes)
	o.hostIP = a.nodeIP
	status := computeStatus(pod, o, time.Now())
	if apiequality.Semantic.DeepEqual(status, pod.Status) {
		return false, nil
	}
	updated := pod.DeepCopy()
	updated.Status = status
	_, err = a.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, updated, metav1.UpdateOptions{})
	switch {
	case apierrors.IsConflict(err):
		return true, nil
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("update status of %s: %w", key(pod), err)
	}
	return false, nil
}

// syncTerminating stops a pod being deleted as the kubelet does: preStop
// hooks and SIGTERM to every container at once, SIGKILL when the grace
// period ends, sidecars last; then it removes the sandbox and finishes the
// deletion in the API.
func (a *Agent) syncTerminating(ctx context.Context, w *podWorker, pod *corev1.Pod) error {
	grace := gracePeriod(pod)
	sandboxes, err := a.sandboxesOf(ctx, pod.UID)
	if err != nil {
		return err
	}
	// As the kubelet, publish the pod's status before stopping it, so it
	// observes the generation the deletion bumped. A failed write does not
	// hold the termination up.
	var current *runtime.SandboxStatus
	if len(sandboxes) > 0 {
		current = sandboxes[len(sandboxes)-1] // the newest
	}
	if _, err := a.publishStatus(ctx, w, pod, current); err != nil {
		a.log.Warn("publish status of a terminating pod", "pod", key(pod), "err", err)
	}
	deadline := time.Now().Add(grace)
	for _, sb := range sandboxes {
		var mains, sidecars []*runtime.ContainerStatus
		for _, c := range sb.Containers {
			if c.State != runtime.ContainerRunning {
				continue
			}
			if isSidecar(pod, c.Name) {
				sidecars = append(sidecars, c)
			} else {
				mains = append(mains, c)
			}
		}
		a.stopAll(ctx, pod, mains, deadline)
		sort.Slice(sidecars, func(i, j int) bool { return sidecars[i].CreatedAt.After(sidecars[j].CreatedAt) })
		for _, c := range sidecars {
			a.stopAll(ctx, pod, []*runtime.ContainerStatus{c}, deadline)
		}
	}
	if err := a.removeSandboxes(ctx, pod.UID, pod); err != nil {
		return err
	}
	zero := int64(0)
	err = a.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: &zero,
		Preconditions:      &metav1.Preconditions{UID: &pod.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("finish deleting %s: %w", key(pod), err)
	}
	return nil
}

// teardownGone removes what is left of a pod the API no longer has.
func (a *Agent) teardownGone(ctx context.Context, pod *corev1.Pod) error {
	if pod == nil {
		return nil
	}
	return a.removeSandboxes(ctx, pod.UID, pod)
}

func gracePeriod(pod *corev1.Pod) time.Duration {
	switch {
	case pod.DeletionGracePeriodSeconds != nil:
		return time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second
	case pod.Spec.TerminationGracePeriodSeconds != nil:
		return time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
	default:
		return 30 * time.Second
	}
}

var _ = probe.Liveness
