package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/flowcontrol"

	"github.com/peapod/peapod/internal/agent/lifecycle"
	"github.com/peapod/peapod/internal/agent/probe"
	"github.com/peapod/peapod/internal/image"
	"github.com/peapod/peapod/internal/runtime"
)

// The kubelet's crash-loop back-off: 10 s doubling to 5 min, forgotten
// once a container ran for twice the maximum (10 min).
const (
	backoffInitial = 10 * time.Second
	backoffMax     = 5 * time.Minute
	// runsKept is how many runs of a container stay on disk: the current
	// one and the previous one (for lastState and `logs --previous`).
	runsKept = 2
	// pullErrorShown is how long ErrImagePull stands before the waiting
	// reason becomes ImagePullBackOff.
	pullErrorShown = 2 * time.Second
)

func newBackoff() *flowcontrol.Backoff { return flowcontrol.NewBackOff(backoffInitial, backoffMax) }

// runContainers starts what the pod's spec and restart policy say should
// run now: init containers one by one, sidecars, then every container.
// It returns when a back-off ends, if one holds a container back.
func (a *Agent) runContainers(ctx context.Context, w *podWorker, pod *corev1.Pod, sb *runtime.SandboxStatus) time.Duration {
	runs := groupRuns(sb)
	if !a.removeNeverStarted(ctx, pod, runs) {
		return time.Second
	}
	var requeue time.Duration
	wait := func(d time.Duration) {
		if d > 0 && (requeue == 0 || d < requeue) {
			requeue = d
		}
	}
	if a.killUnhealthy(ctx, pod, runs) {
		// runs is stale now; the killed containers' exits wake the worker
		// again, and their restart policies decide then.
		return time.Second
	}
	// Once any main container has run, the pod is initialized: regular
	// init containers never run again in this sandbox, and a sidecar that
	// exits is restarted without holding anything back.
	initialized := false
	for _, c := range pod.Spec.Containers {
		initialized = initialized || len(runs[c.Name]) > 0
	}
	for _, c := range pod.Spec.InitContainers {
		rs := runs[c.Name]
		last := lastRun(rs)
		if isSidecarContainer(c) {
			if last == nil || (last.State != runtime.ContainerRunning && last.State != runtime.ContainerCreated) {
				wait(a.startContainer(ctx, w, pod, sb, c, rs))
				if !initialized {
					return requeue // the next init step waits for the sidecar to start
				}
				continue
			}
			if !initialized && !a.sidecarStarted(c, last) {
				return requeue // its startupProbe has not passed yet; a flip wakes us
			}
			continue
		}
		if initialized {
			continue
		}
		switch {
		case last == nil:
			wait(a.startContainer(ctx, w, pod, sb, c, rs))
			return requeue
		case last.State == runtime.ContainerRunning || last.State == runtime.ContainerCreated:
			return requeue
		case last.ExitCode == 0:
			continue
		case pod.Spec.RestartPolicy == corev1.RestartPolicyNever:
			return requeue // the pod has failed
		default:
			wait(a.startContainer(ctx, w, pod, sb, c, rs))
			return requeue
		}
	}
	for _, c := range pod.Spec.Containers {
		rs := runs[c.Name]
		last := lastRun(rs)
		if last != nil && (last.State == runtime.ContainerRunning || last.State == runtime.ContainerCreated) {
			continue
		}
		if last == nil || a.shouldRestart(c, pod.Spec.RestartPolicy, last) {
			wait(a.startContainer(ctx, w, pod, sb, c, rs))
		}
	}
	return requeue
}

// removeNeverStarted removes the last run of a container when it was
// created but never started. launchContainer creates and starts in one
// step, so only an agent killed between the two leaves one, and nothing
// would ever start it: as the kubelet does (ShouldContainerBeRestarted
// restarts a created container), it is removed and the container runs
// again, as the same attempt. It reports false if a removal failed; the
// sync is then retried.
func (a *Agent) removeNeverStarted(ctx context.Context, pod *corev1.Pod, runs map[string][]*runtime.ContainerStatus) bool {
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range list {
			rs := runs[c.Name]
			last := lastRun(rs)
			if last == nil || last.State != runtime.ContainerCreated {
				continue
			}
			if err := a.rt.RemoveContainer(ctx, last.ID); err != nil {
				a.log.Warn("remove a container created but never started", "pod", pod.Namespace+"/"+pod.Name, "container", c.Name, "id", last.ID, "err", err)
				return false
			}
			a.log.Info("removed a container created but never started; running it again", "pod", pod.Namespace+"/"+pod.Name, "container", c.Name, "id", last.ID)
			if len(rs) == 1 {
				delete(runs, c.Name) // as for a container that never ran
			} else {
				runs[c.Name] = rs[:len(rs)-1]
			}
		}
	}
	return true
}

// sidecarStarted reports whether a running sidecar counts as started: it
// has no startupProbe, or its startupProbe succeeded.
func (a *Agent) sidecarStarted(c corev1.Container, run *runtime.ContainerStatus) bool {
	return run.State == runtime.ContainerRunning && (c.StartupProbe == nil || a.probes.Result(run.ID, probe.Startup) == probe.Success)
}

func lastRun(rs []*runtime.ContainerStatus) *runtime.ContainerStatus {
	if len(rs) == 0 {
		return nil
	}
	return rs[len(rs)-1]
}

// shouldRestart applies a restart policy to a container that has exited.
func (a *Agent) shouldRestart(c corev1.Container, policy corev1.RestartPolicy, last *runtime.ContainerStatus) bool {
	if c.RestartPolicy != nil {
		policy = corev1.RestartPolicy(*c.RestartPolicy)
	}
	switch policy {
	case corev1.RestartPolicyAlways:
		return true
	case corev1.RestartPolicyOnFailure:
		return last.ExitCode != 0
	default:
		return false
	}
}

// startContainer runs the next attempt of a container, honouring the
// crash-loop and image-pull back-offs. It returns how long a back-off
// still holds it, or 0.
func (a *Agent) startContainer(ctx context.Context, w *podWorker, pod *corev1.Pod, sb *runtime.SandboxStatus, c corev1.Container, runs []*runtime.ContainerStatus) time.Duration {
	backoffKey := string(pod.UID) + "/" + c.Name
	if last := lastRun(runs); last != nil {
		if a.backoff.IsInBackOffSince(backoffKey, last.FinishedAt) {
			left := time.Until(last.FinishedAt.Add(a.backoff.Get(backoffKey)))
			msg := fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)", a.backoff.Get(backoffKey), c.Name, pod.Name, pod.Namespace, pod.UID)
			w.setWaiting(c.Name, waitReason{Reason: "CrashLoopBackOff", Message: msg})
			a.events.Event(pod, corev1.EventTypeWarning, "BackOff", "Back-off restarting failed container "+c.Name+" in pod "+pod.Name+"_"+pod.Namespace+"("+string(pod.UID)+")")
			return max(left, time.Second)
		}
		a.backoff.Next(backoffKey, last.FinishedAt)
	}
	return a.launchContainer(ctx, w, pod, sb, c, runs)
}

// launchContainer pulls c's image as its policy says, creates and starts
// its next run and runs its postStart hook, without the crash-loop
// back-off: for startContainer, and for what the kubelet starts at once
// (a container its resize policy restarts, an ephemeral container). It
// returns how long an image pull back-off still holds it, or 0.
func (a *Agent) launchContainer(ctx context.Context, w *podWorker, pod *corev1.Pod, sb *runtime.SandboxStatus, c corev1.Container, runs []*runtime.ContainerStatus) time.Duration {
	backoffKey := string(pod.UID) + "/" + c.Name
	if d := a.pullImage(ctx, w, pod, c); d != 0 {
		return d
	}
	attempt := w.nextAttempt(c.Name, runs)
	cid, err := a.rt.CreateContainer(ctx, sb.ID, c.Name, runtime.ContainerOptions{Attempt: attempt})
	if err != nil {
		reason := "CreateContainerError"
		if errors.Is(err, runtime.ErrInvalid) {
			reason = "CreateContainerConfigError"
		}
		w.setWaiting(c.Name, waitReason{Reason: reason, Message: err.Error()})
		a.events.Event(pod, corev1.EventTypeWarning, "Failed", "Error: "+err.Error())
		return backoffInitial
	}
	a.events.Event(pod, corev1.EventTypeNormal, "Created", "Created container: "+c.Name)
	if err := a.rt.StartContainer(ctx, cid); err != nil {
		_ = a.rt.RemoveContainer(ctx, cid)
		w.setWaiting(c.Name, waitReason{Reason: "RunContainerError", Message: err.Error()})
		a.events.Event(pod, corev1.EventTypeWarning, "Failed", "Error: "+err.Error())
		a.backoff.Next(backoffKey, time.Now())
		return backoffInitial
	}
	w.clearWaiting(c.Name)
	a.events.Event(pod, corev1.EventTypeNormal, "Started", "Started container "+c.Name)
	a.pruneRuns(ctx, runs)

	target := a.probeTarget(sb, cid)
	if c.Lifecycle != nil && c.Lifecycle.PostStart != nil {
		if err := lifecycle.Run(ctx, c.Lifecycle.PostStart, &c, target); err != nil {
			a.events.Event(pod, corev1.EventTypeWarning, "FailedPostStartHook", err.Error())
			if st, err := a.rt.ContainerStatus(ctx, cid); err == nil {
				a.killContainer(ctx, pod, st, "FailedPostStartHook")
			}
			return 0
		}
	}
	a.probes.AddContainer(pod.UID, &c, cid, time.Now(), target)
	w.poke() // watch its exit and publish Running
	return 0
}

// pullImage makes the container's image present as its pull policy says,
// with the kubelet's events and waiting reasons. It returns how long to
// wait before trying again, or 0 when the image is there.
func (a *Agent) pullImage(ctx context.Context, w *podWorker, pod *corev1.Pod, c corev1.Container) time.Duration {
	pullKey := "pull/" + string(pod.UID) + "/" + c.Name
	if _, ok := a.rt.PresentImage(c.Image, c.ImagePullPolicy); ok {
		a.events.Event(pod, corev1.EventTypeNormal, "Pulled", fmt.Sprintf("Container image %q already present on machine", c.Image))
		return 0
	}
	if c.ImagePullPolicy == corev1.PullNever {
		msg := fmt.Sprintf("Container image %q is not present with pull policy of Never", c.Image)
		w.setWaiting(c.Name, waitReason{Reason: "ErrImageNeverPull", Message: msg})
		a.events.Event(pod, corev1.EventTypeWarning, "ErrImageNeverPull", msg)
		return backoffInitial
	}
	if now := time.Now(); a.backoff.IsInBackOffSinceUpdate(pullKey, now) {
		w.setWaiting(c.Name, waitReason{Reason: "ImagePullBackOff", Message: fmt.Sprintf("Back-off pulling image %q", c.Image)})
		a.events.Event(pod, corev1.EventTypeNormal, "BackOff", fmt.Sprintf("Back-off pulling image %q", c.Image))
		return max(a.backoff.Get(pullKey)-now.Sub(w.pullFailedAt(c.Name)), 100*time.Millisecond)
	}
	a.events.Event(pod, corev1.EventTypeNormal, "Pulling", fmt.Sprintf("Pulling image %q", c.Image))
	start := time.Now()
	img, err := a.rt.EnsureImage(ctx, c.Image, corev1.PullAlways, nil)
	if err != nil {
		now := time.Now()
		a.backoff.Next(pullKey, now)
		w.setPullFailed(c.Name, now)
		msg := fmt.Sprintf("Failed to pull image %q: %v", c.Image, err)
		w.setWaiting(c.Name, waitReason{Reason: "ErrImagePull", Message: msg})
		a.events.Event(pod, corev1.EventTypeWarning, "Failed", msg)
		// As the kubelet: ErrImagePull until the next sync, which finds
		// the image in back-off (ImagePullBackOff) until it ends.
		return pullErrorShown
	}
	a.backoff.Reset(pullKey)
	a.events.Event(pod, corev1.EventTypeNormal, "Pulled", fmt.Sprintf("Successfully pulled image %q in %s. Image size: %d bytes.", c.Image, time.Since(start).Round(time.Millisecond), imageSize(img)))
	return 0
}

func imageSize(img *image.Image) int64 { return img.Size }

// pruneRuns removes runs older than the ones kept for status and logs.
func (a *Agent) pruneRuns(ctx context.Context, runs []*runtime.ContainerStatus) {
	for i := 0; i < len(runs)+1-runsKept; i++ {
		if err := a.rt.RemoveContainer(ctx, runs[i].ID); err != nil {
			a.log.Warn("remove old container run", "container", runs[i].ID, "err", err)
		}
	}
}

// killUnhealthy stops running containers whose liveness or startup probe
// failed; their restart policy then decides. It reports whether it
// stopped any.
func (a *Agent) killUnhealthy(ctx context.Context, pod *corev1.Pod, runs map[string][]*runtime.ContainerStatus) (killed bool) {
	for name, rs := range runs {
		last := lastRun(rs)
		if last.State != runtime.ContainerRunning {
			continue
		}
		for _, kind := range []probe.Kind{probe.Liveness, probe.Startup} {
			if a.probes.Result(last.ID, kind) == probe.Failure {
				a.killContainer(ctx, pod, last, fmt.Sprintf("Container %s failed %s probe, will be restarted", name, kindWord(kind)))
				killed = true
				break
			}
		}
	}
	return killed
}

func kindWord(k probe.Kind) string {
	switch k {
	case probe.Liveness:
		return "liveness"
	case probe.Startup:
		return "startup"
	default:
		return "readiness"
	}
}

// killContainer runs the preStop hook, then stops the container within
// the pod's grace period.
func (a *Agent) killContainer(ctx context.Context, pod *corev1.Pod, c *runtime.ContainerStatus, message string) {
	a.stopAll(ctx, pod, []*runtime.ContainerStatus{c}, time.Now().Add(gracePeriod(pod)), message)
}

// stopAll stops containers in parallel, each running its preStop hook
// first, all bounded by one deadline.
func (a *Agent) stopAll(ctx context.Context, pod *corev1.Pod, cs []*runtime.ContainerStatus, deadline time.Time, message ...string) {
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := "Stopping container " + c.Name
			if len(message) > 0 {
				msg = message[0]
			}
			a.events.Event(pod, corev1.EventTypeNormal, "Killing", msg)
			spec := containerSpec(pod, c.Name)
			if spec != nil && spec.Lifecycle != nil && spec.Lifecycle.PreStop != nil {
				hctx, cancel := context.WithDeadline(ctx, deadline)
				if err := lifecycle.Run(hctx, spec.Lifecycle.PreStop, spec, a.probeTargetByIDs(pod, c)); err != nil {
					a.events.Event(pod, corev1.EventTypeWarning, "FailedPreStopHook", err.Error())
				}
				cancel()
			}
			a.probes.RemoveContainer(c.ID)
			grace := max(time.Until(deadline), 2*time.Second)
			if err := a.rt.StopContainer(ctx, c.ID, grace); err != nil {
				a.log.Error("stop container", "pod", key(pod), "container", c.Name, "err", err)
			}
		}()
	}
	wg.Wait()
}

func containerSpec(pod *corev1.Pod, name string) *corev1.Container {
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	for i := range pod.Spec.EphemeralContainers {
		if pod.Spec.EphemeralContainers[i].Name == name {
			return (*corev1.Container)(&pod.Spec.EphemeralContainers[i].EphemeralContainerCommon)
		}
	}
	return nil
}

// probeTarget is how probes and hooks reach a container: exec through the
// runtime, network through the pod IP.
func (a *Agent) probeTarget(sb *runtime.SandboxStatus, cid string) probe.Target {
	ip := ""
	if len(sb.IPs) > 0 {
		ip = sb.IPs[0]
	}
	return probe.Target{PodIP: ip, Exec: a.execFunc(cid)}
}

func (a *Agent) probeTargetByIDs(pod *corev1.Pod, c *runtime.ContainerStatus) probe.Target {
	ip := pod.Status.PodIP
	if sb, err := a.rt.SandboxStatus(context.Background(), c.SandboxID); err == nil && len(sb.IPs) > 0 {
		ip = sb.IPs[0]
	}
	return probe.Target{PodIP: ip, Exec: a.execFunc(c.ID)}
}

// onUnhealthy records a failed probe attempt as the kubelet's Unhealthy event.
func (a *Agent) onUnhealthy(u probe.Update) {
	a.mu.Lock()
	w := a.workers[u.PodUID]
	a.mu.Unlock()
	if w == nil {
		return
	}
	w.mu.Lock()
	pod := w.pod
	w.mu.Unlock()
	if pod != nil && a.events != nil {
		a.events.Event(pod, corev1.EventTypeWarning, "Unhealthy", fmt.Sprintf("%s probe failed: %s", u.Kind, u.Message))
	}
}

// onProbeChange wakes the pod whose probe result flipped.
func (a *Agent) onProbeChange(u probe.Update) { a.pokeUID(types.UID(u.PodUID)) }
