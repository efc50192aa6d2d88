package job

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	v1 "k8s.io/api/core/v1"
)

// Kubernetes' pod-failure back-off: the delay before a replacement pod
// doubles from DefaultBackoff per consecutive failure, up to MaxBackoff.
const (
	DefaultBackoff = 10 * time.Second
	MaxBackoff     = 6 * time.Minute
)

// Condition reasons and messages of the Job controller.
const (
	msgBackoffLimit       = "Job has reached the specified backoff limit"
	msgDeadline           = "Job was active longer than specified deadline"
	msgCompletions        = "Reached expected number of succeeded pods"
	unknownIndex    int32 = -1
)

// trackingFinalizer keeps a finished pod until the Job has counted it.
const trackingFinalizer = batchv1.JobTrackingFinalizer

func indexed(j *batchv1.Job) bool {
	return j.Spec.CompletionMode != nil && *j.Spec.CompletionMode == batchv1.IndexedCompletion
}

func suspended(j *batchv1.Job) bool { return j.Spec.Suspend != nil && *j.Spec.Suspend }

// onlyReplaceFailed reports podReplacementPolicy Failed: a terminating
// pod is not yet a failure and still occupies its slot.
func onlyReplaceFailed(j *batchv1.Job) bool {
	return j.Spec.PodReplacementPolicy != nil && *j.Spec.PodReplacementPolicy == batchv1.Failed
}

func hasFinalizer(p *v1.Pod) bool { return slices.Contains(p.Finalizers, trackingFinalizer) }

// isPodFailed reports whether p counts as a failure: phase Failed, or
// (unless podReplacementPolicy is Failed) being deleted before it
// succeeded, so an orphan that never reaches Failed still counts.
func isPodFailed(p *v1.Pod, j *batchv1.Job) bool {
	if p.Status.Phase == v1.PodFailed {
		return true
	}
	if onlyReplaceFailed(j) {
		return false
	}
	return p.DeletionTimestamp != nil && p.Status.Phase != v1.PodSucceeded
}

// isActive reports whether p is running or about to: not finished and
// not being deleted.
func isActive(p *v1.Pod) bool {
	return p.Status.Phase != v1.PodSucceeded && p.Status.Phase != v1.PodFailed && p.DeletionTimestamp == nil
}

// isTerminating reports a pod being deleted that has not finished.
func isTerminating(p *v1.Pod) bool {
	return p.DeletionTimestamp != nil && p.Status.Phase != v1.PodSucceeded && p.Status.Phase != v1.PodFailed
}

// podIndex returns the completion index of an Indexed Job's pod from its
// annotation (or label), or unknownIndex.
func podIndex(p *v1.Pod) int32 {
	v, ok := p.Annotations[batchv1.JobCompletionIndexAnnotation]
	if !ok {
		v, ok = p.Labels[batchv1.JobCompletionIndexAnnotation]
	}
	if !ok {
		return unknownIndex
	}
	i, err := strconv.ParseInt(v, 10, 32)
	if err != nil || i < 0 {
		return unknownIndex
	}
	return int32(i)
}

// policyAction is what a podFailurePolicy says about one failed pod.
type policyAction struct {
	// failJob is the FailJob rule's message, when one matched.
	failJob *string
	// count is false when an Ignore rule matched: the failure counts
	// nowhere.
	count bool
}

// matchPodFailurePolicy applies j's podFailurePolicy to a failed pod: the
// first rule matching a non-zero exit code of a terminated container (of
// the rule's container, if named) or a pod condition decides. Without a
// policy or a matching rule the failure counts. Pure.
func matchPodFailurePolicy(j *batchv1.Job, p *v1.Pod) policyAction {
	pfp := j.Spec.PodFailurePolicy
	if pfp == nil {
		return policyAction{count: true}
	}
	for i, r := range pfp.Rules {
		var msg string
		switch {
		case r.OnExitCodes != nil:
			cs := matchExitCodes(&p.Status, r.OnExitCodes)
			if cs == nil {
				continue
			}
			msg = fmt.Sprintf("Container %s for pod %s/%s failed with exit code %v matching %v rule at index %d",
				cs.Name, p.Namespace, p.Name, cs.State.Terminated.ExitCode, r.Action, i)
		case len(r.OnPodConditions) > 0:
			c := matchPodConditions(&p.Status, r.OnPodConditions)
			if c == nil {
				continue
			}
			msg = fmt.Sprintf("Pod %s/%s has condition %v matching %v rule at index %d", p.Namespace, p.Name, c.Type, r.Action, i)
		default:
			continue
		}
		switch r.Action {
		case batchv1.PodFailurePolicyActionIgnore:
			return policyAction{}
		case batchv1.PodFailurePolicyActionCount:
			return policyAction{count: true}
		case batchv1.PodFailurePolicyActionFailJob:
			return policyAction{failJob: &msg, count: true}
		}
	}
	return policyAction{count: true}
}

func matchExitCodes(st *v1.PodStatus, req *batchv1.PodFailurePolicyOnExitCodesRequirement) *v1.ContainerStatus {
	for _, list := range [][]v1.ContainerStatus{st.InitContainerStatuses, st.ContainerStatuses} {
		for i := range list {
			cs := &list[i]
			if req.ContainerName != nil && *req.ContainerName != cs.Name {
				continue
			}
			t := cs.State.Terminated
			if t == nil || t.ExitCode == 0 {
				continue
			}
			in := slices.Contains(req.Values, t.ExitCode)
			if (req.Operator == batchv1.PodFailurePolicyOnExitCodesOpIn) == in {
				return cs
			}
		}
	}
	return nil
}

func matchPodConditions(st *v1.PodStatus, reqs []batchv1.PodFailurePolicyOnPodConditionsPattern) *v1.PodCondition {
	for _, r := range reqs {
		for i := range st.Conditions {
			if c := &st.Conditions[i]; c.Type == r.Type && c.Status == r.Status {
				return c
			}
		}
	}
	return nil
}

// failJobMessage returns the message of the first failed pod a FailJob
// rule matches, or nil.
func failJobMessage(j *batchv1.Job, pods []*v1.Pod) *string {
	if j.Spec.PodFailurePolicy == nil {
		return nil
	}
	for _, p := range pods {
		if p.Status.Phase != v1.PodFailed {
			continue
		}
		if a := matchPodFailurePolicy(j, p); a.failJob != nil {
			return a.failJob
		}
	}
	return nil
}

// pastBackoffLimitOnFailure reports, for restartPolicy OnFailure (where
// the node restarts containers instead of the pod failing), whether the
// active pods' container restarts reached backoffLimit. Pure.
func pastBackoffLimitOnFailure(j *batchv1.Job, pods []*v1.Pod) bool {
	if j.Spec.Template.Spec.RestartPolicy != v1.RestartPolicyOnFailure {
		return false
	}
	var n int32
	for _, p := range pods {
		if p.Status.Phase != v1.PodRunning && p.Status.Phase != v1.PodPending {
			continue
		}
		for _, cs := range p.Status.InitContainerStatuses {
			n += cs.RestartCount
		}
		for _, cs := range p.Status.ContainerStatuses {
			n += cs.RestartCount
		}
	}
	limit := valueOr(j.Spec.BackoffLimit, 6)
	if limit == 0 {
		return n > 0
	}
	return n >= limit
}

// pastActiveDeadline reports whether a running (not suspended) Job has
// been active for activeDeadlineSeconds, and else how long it has left
// (0 without a deadline).
func pastActiveDeadline(j *batchv1.Job, now time.Time) (bool, time.Duration) {
	if j.Spec.ActiveDeadlineSeconds == nil || j.Status.StartTime == nil || suspended(j) {
		return false, 0
	}
	left := time.Duration(*j.Spec.ActiveDeadlineSeconds)*time.Second - now.Sub(j.Status.StartTime.Time)
	if left <= 0 {
		return true, 0
	}
	return false, left
}

// finishTime is when a finished pod finished: its last container's end,
// else its deletion, else its creation. Pure.
func finishTime(p *v1.Pod) time.Time {
	var t time.Time
	for _, list := range [][]v1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for _, cs := range list {
			if cs.State.Terminated != nil && cs.State.Terminated.FinishedAt.After(t) {
				t = cs.State.Terminated.FinishedAt.Time
			}
		}
	}
	if t.IsZero() && p.DeletionTimestamp != nil {
		t = p.DeletionTimestamp.Time
	}
	if t.IsZero() {
		t = p.CreationTimestamp.Time
	}
	return t
}

// backoffRemaining is how long to wait before creating a replacement pod:
// base doubled per failure after the last success (counted failures
// only), from the last failure's finish time, capped at max. Derived from
// the pods alone, so a restarted controller waits just as long. Pure.
func backoffRemaining(j *batchv1.Job, pods []*v1.Pod, now time.Time, base, maxDelay time.Duration) time.Duration {
	var lastSuccess, lastFailure time.Time
	type fail struct{ at time.Time }
	var fails []fail
	for _, p := range pods {
		switch {
		case p.Status.Phase == v1.PodSucceeded:
			if t := finishTime(p); t.After(lastSuccess) {
				lastSuccess = t
			}
		case isPodFailed(p, j) && !isTerminating(p) && matchPodFailurePolicy(j, p).count:
			fails = append(fails, fail{finishTime(p)})
		}
	}
	n := 0
	for _, f := range fails {
		if f.at.After(lastSuccess) {
			n++
			if f.at.After(lastFailure) {
				lastFailure = f.at
			}
		}
	}
	if n == 0 {
		return 0
	}
	delay := time.Duration(float64(base) * math.Pow(2, float64(n-1)))
	if delay > maxDelay || delay <= 0 {
		delay = maxDelay
	}
	return max(0, lastFailure.Add(delay).Sub(now))
}

// successPolicyMet returns the message of the first successPolicy rule
// an Indexed Job's succeeded indexes satisfy. Pure.
func successPolicyMet(j *batchv1.Job, succeeded map[int32]bool) (string, bool) {
	sp := j.Spec.SuccessPolicy
	if sp == nil || !indexed(j) {
		return "", false
	}
	completions := valueOr(j.Spec.Completions, 0)
	for i, r := range sp.Rules {
		var have, want int32
		if r.SucceededIndexes != nil {
			set := parseIndexes(*r.SucceededIndexes, completions)
			for ix := range set {
				if succeeded[ix] {
					have++
				}
			}
			want = int32(len(set))
		} else {
			have = int32(len(succeeded))
		}
		if r.SucceededCount != nil {
			want = *r.SucceededCount
		}
		if want > 0 && have >= want {
			return fmt.Sprintf("Matched rules at index %d", i), true
		}
	}
	return "", false
}

// wantActive is how many pods should run: parallelism, but no more than
// the completions left; a Job without completions keeps what runs once
// one pod succeeded. Pure.
func wantActive(j *batchv1.Job, succeeded, active int32) int32 {
	parallelism := valueOr(j.Spec.Parallelism, 1)
	if j.Spec.Completions == nil {
		if succeeded > 0 {
			return active
		}
		return parallelism
	}
	return max(0, min(parallelism, *j.Spec.Completions-succeeded))
}

// pendingIndexes returns up to n indexes below completions that neither
// succeeded nor have a pod in busy, lowest first. Pure.
func pendingIndexes(completions int32, succeeded, busy map[int32]bool, n int) []int32 {
	var out []int32
	for i := int32(0); i < completions && len(out) < n; i++ {
		if !succeeded[i] && !busy[i] {
			out = append(out, i)
		}
	}
	return out
}

func valueOr(p *int32, d int32) int32 {
	if p == nil {
		return d
	}
	return *p
}

func timeSeconds(s int32) time.Duration { return time.Duration(s) * time.Second }
