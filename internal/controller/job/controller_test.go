package job

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/clock"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/peapod/peapod/internal/controller/controllertest"
)

const ns = "default"

func start(t *testing.T, clk clock.WithTicker, objs ...runtime.Object) *fake.Clientset {
	t.Helper()
	client := controllertest.NewClientset(objs...)
	controllertest.Start(t, client, func(f informers.SharedInformerFactory) (controllertest.Runner, error) {
		return New(client, f, Options{Logger: slog.New(slog.DiscardHandler), Clock: clk, Backoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond})
	})
	return client
}

// newJob returns a Job "pi" as the API server would store it: defaulted,
// with the generated selector.
func newJob(completions, parallelism int32, mods ...func(*batchv1.Job)) *batchv1.Job {
	uid := types.UID("job-uid-" + fmt.Sprint(time.Now().UnixNano()))
	lbl := map[string]string{batchv1.ControllerUidLabel: string(uid), batchv1.JobNameLabel: "pi"}
	mode := batchv1.NonIndexedCompletion
	j := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "pi", Namespace: ns, UID: uid},
		Spec: batchv1.JobSpec{
			Completions: &completions, Parallelism: &parallelism, BackoffLimit: ptr(int32(6)), CompletionMode: &mode,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{batchv1.ControllerUidLabel: string(uid)}},
			Template: v1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: lbl},
				Spec:       v1.PodSpec{RestartPolicy: v1.RestartPolicyNever, Containers: []v1.Container{{Name: "c", Image: "busybox"}}},
			},
		},
	}
	for _, m := range mods {
		m(j)
	}
	return j
}

func ptr[T any](v T) *T { return &v }

func pods(t *testing.T, client *fake.Clientset) []v1.Pod {
	t.Helper()
	l, err := client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(l.Items, func(a, b v1.Pod) int { return a.CreationTimestamp.Compare(b.CreationTimestamp.Time) })
	return l.Items
}

func getJob(t *testing.T, client *fake.Clientset) *batchv1.Job {
	t.Helper()
	j, err := client.BatchV1().Jobs(ns).Get(context.Background(), "pi", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// finishPod sets a pod's phase as the node would, with its container's
// exit code.
func finishPod(t *testing.T, client *fake.Clientset, p v1.Pod, phase v1.PodPhase, code int32) {
	t.Helper()
	p.Status.Phase = phase
	p.Status.ContainerStatuses = []v1.ContainerStatus{{Name: "c", State: v1.ContainerState{Terminated: &v1.ContainerStateTerminated{
		ExitCode: code, FinishedAt: metav1.Now()}}}}
	if _, err := client.CoreV1().Pods(ns).UpdateStatus(context.Background(), &p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func running(ps []v1.Pod) []v1.Pod {
	var out []v1.Pod
	for _, p := range ps {
		if p.Status.Phase == "" || p.Status.Phase == v1.PodPending || p.Status.Phase == v1.PodRunning {
			if p.DeletionTimestamp == nil {
				out = append(out, p)
			}
		}
	}
	return out
}

func condition(j *batchv1.Job, ct batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range j.Status.Conditions {
		if j.Status.Conditions[i].Type == ct && j.Status.Conditions[i].Status == v1.ConditionTrue {
			return &j.Status.Conditions[i]
		}
	}
	return nil
}

func waitJob(t *testing.T, client *fake.Clientset, what string, cond func(*batchv1.Job) error) *batchv1.Job {
	t.Helper()
	var j *batchv1.Job
	controllertest.Eventually(t, 10*time.Second, what, func() error {
		j = getJob(t, client)
		return cond(j)
	})
	return j
}

// TestCompletionsWithParallelism runs a Job of 5 completions two pods at
// a time to Complete, every pod counted once and let go.
func TestCompletionsWithParallelism(t *testing.T) {
	client := start(t, nil, newJob(5, 2))
	done := map[string]bool{}
	for len(done) < 5 {
		var act []v1.Pod
		controllertest.Eventually(t, 5*time.Second, "running pods", func() error {
			act = running(pods(t, client))
			want := min(2, 5-len(done))
			if len(act) != want {
				return fmt.Errorf("%d running, want %d", len(act), want)
			}
			return nil
		})
		for _, p := range act {
			if !slices.Contains(p.Finalizers, batchv1.JobTrackingFinalizer) || metav1.GetControllerOf(&p) == nil {
				t.Fatalf("pod %s: finalizers %v, owner %v", p.Name, p.Finalizers, p.OwnerReferences)
			}
		}
		finishPod(t, client, act[0], v1.PodSucceeded, 0)
		done[act[0].Name] = true
		waitJob(t, client, "the success counted", func(j *batchv1.Job) error {
			if int(j.Status.Succeeded) != len(done) {
				return fmt.Errorf("succeeded %d, want %d", j.Status.Succeeded, len(done))
			}
			return nil
		})
	}
	j := waitJob(t, client, "Complete", func(j *batchv1.Job) error {
		if condition(j, batchv1.JobComplete) == nil {
			return fmt.Errorf("conditions %v", j.Status.Conditions)
		}
		return nil
	})
	if condition(j, batchv1.JobSuccessCriteriaMet) == nil || j.Status.CompletionTime == nil || j.Status.StartTime == nil ||
		j.Status.Succeeded != 5 || j.Status.Active != 0 || j.Status.Failed != 0 {
		t.Errorf("final status %+v", j.Status)
	}
	for _, p := range pods(t, client) {
		if slices.Contains(p.Finalizers, batchv1.JobTrackingFinalizer) {
			t.Errorf("pod %s keeps the tracking finalizer", p.Name)
		}
	}
	if n := len(pods(t, client)); n != 5 {
		t.Errorf("%d pods, want 5", n)
	}
}

// TestBackoffLimit fails a Job whose pods keep failing once failures pass
// backoffLimit, with FailureTarget first and then Failed.
func TestBackoffLimit(t *testing.T) {
	client := start(t, nil, newJob(1, 1, func(j *batchv1.Job) { j.Spec.BackoffLimit = ptr(int32(2)) }))
	failedPods := map[string]bool{}
	for len(failedPods) < 3 {
		var act []v1.Pod
		controllertest.Eventually(t, 5*time.Second, "a replacement pod", func() error {
			act = running(pods(t, client))
			if len(act) != 1 {
				return fmt.Errorf("%d running", len(act))
			}
			return nil
		})
		finishPod(t, client, act[0], v1.PodFailed, 1)
		failedPods[act[0].Name] = true
	}
	j := waitJob(t, client, "Failed", func(j *batchv1.Job) error {
		if condition(j, batchv1.JobFailed) == nil {
			return fmt.Errorf("conditions %v, failed %d", j.Status.Conditions, j.Status.Failed)
		}
		return nil
	})
	f := condition(j, batchv1.JobFailed)
	if f.Reason != batchv1.JobReasonBackoffLimitExceeded || condition(j, batchv1.JobFailureTarget) == nil || j.Status.Failed != 3 || j.Status.CompletionTime != nil {
		t.Errorf("status %+v", j.Status)
	}
	if n := len(pods(t, client)); n != 3 {
		t.Errorf("%d pods, want 3 (no more after the limit)", n)
	}
}

// TestIndexedPodsCarryTheirIndex checks an Indexed Job's pods: index
// annotation and label, hostname, JOB_COMPLETION_INDEX, and
// completedIndexes as they succeed.
func TestIndexedPodsCarryTheirIndex(t *testing.T) {
	client := start(t, nil, newJob(3, 3, func(j *batchv1.Job) {
		m := batchv1.IndexedCompletion
		j.Spec.CompletionMode = &m
	}))
	var ps []v1.Pod
	controllertest.Eventually(t, 5*time.Second, "three pods", func() error {
		if ps = running(pods(t, client)); len(ps) != 3 {
			return fmt.Errorf("%d pods", len(ps))
		}
		return nil
	})
	seen := map[string]v1.Pod{}
	for _, p := range ps {
		ix := p.Annotations[batchv1.JobCompletionIndexAnnotation]
		seen[ix] = p
		if p.Labels[batchv1.JobCompletionIndexAnnotation] != ix || p.Spec.Hostname != "pi-"+ix {
			t.Errorf("pod %s: labels %v hostname %q", p.Name, p.Labels, p.Spec.Hostname)
		}
		env := p.Spec.Containers[0].Env
		if len(env) != 1 || env[0].Name != "JOB_COMPLETION_INDEX" || env[0].ValueFrom.FieldRef.FieldPath != "metadata.annotations['batch.kubernetes.io/job-completion-index']" {
			t.Errorf("pod %s env %+v", p.Name, env)
		}
	}
	if len(seen) != 3 || seen["0"].Name == "" || seen["2"].Name == "" {
		t.Fatalf("indexes %v", seen)
	}
	finishPod(t, client, seen["1"], v1.PodSucceeded, 0)
	finishPod(t, client, seen["2"], v1.PodSucceeded, 0)
	waitJob(t, client, "completedIndexes", func(j *batchv1.Job) error {
		if j.Status.CompletedIndexes != "1-2" || j.Status.Succeeded != 2 {
			return fmt.Errorf("completedIndexes %q succeeded %d", j.Status.CompletedIndexes, j.Status.Succeeded)
		}
		return nil
	})
	// A failed index is replaced by a pod of the same index.
	finishPod(t, client, seen["0"], v1.PodFailed, 1)
	controllertest.Eventually(t, 5*time.Second, "index 0 again", func() error {
		act := running(pods(t, client))
		if len(act) != 1 || act[0].Annotations[batchv1.JobCompletionIndexAnnotation] != "0" {
			return fmt.Errorf("running %d", len(act))
		}
		finishPod(t, client, act[0], v1.PodSucceeded, 0)
		return nil
	})
	waitJob(t, client, "Complete", func(j *batchv1.Job) error {
		if condition(j, batchv1.JobComplete) == nil || j.Status.CompletedIndexes != "0-2" || j.Status.Failed != 1 {
			return fmt.Errorf("status %+v", j.Status)
		}
		return nil
	})
}

// TestRestartCountsOnce starts a controller on the state a crash can
// leave between the tracking steps: a success recorded as uncounted
// whose finalizer is still there, one whose finalizer is gone, and one
// counted long ago. Each counts exactly once.
func TestRestartCountsOnce(t *testing.T) {
	j := newJob(4, 0)
	j.Status.Succeeded = 1
	j.Status.UncountedTerminatedPods = &batchv1.UncountedTerminatedPods{Succeeded: []types.UID{"p-rec", "p-gone"}}
	mk := func(name string, finalizer bool) *v1.Pod {
		p := newPod(j, unknownIndex)
		p.Name, p.UID = name, types.UID(name)
		if !finalizer {
			p.Finalizers = nil
		}
		p.Status.Phase = v1.PodSucceeded
		return p
	}
	client := start(t, nil, j, mk("p-rec", true), mk("p-gone", false), mk("p-old", false))
	got := waitJob(t, client, "counted", func(j *batchv1.Job) error {
		if j.Status.Succeeded != 3 || (j.Status.UncountedTerminatedPods != nil && len(j.Status.UncountedTerminatedPods.Succeeded) > 0) {
			return fmt.Errorf("succeeded %d uncounted %+v", j.Status.Succeeded, j.Status.UncountedTerminatedPods)
		}
		return nil
	})
	for _, p := range pods(t, client) {
		if slices.Contains(p.Finalizers, batchv1.JobTrackingFinalizer) {
			t.Errorf("pod %s keeps the finalizer", p.Name)
		}
	}
	if got.Status.Failed != 0 {
		t.Errorf("failed %d", got.Status.Failed)
	}
}

// TestPodFailurePolicyFailJob fails the Job at the first exit code a
// FailJob rule names, without waiting for backoffLimit.
func TestPodFailurePolicyFailJob(t *testing.T) {
	client := start(t, nil, newJob(2, 1, func(j *batchv1.Job) {
		r := batchv1.Failed
		j.Spec.PodReplacementPolicy = &r
		j.Spec.PodFailurePolicy = &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{
			{Action: batchv1.PodFailurePolicyActionIgnore, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{Operator: batchv1.PodFailurePolicyOnExitCodesOpIn, Values: []int32{3}}},
			{Action: batchv1.PodFailurePolicyActionFailJob, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{Operator: batchv1.PodFailurePolicyOnExitCodesOpIn, Values: []int32{42}}},
		}}
	}))
	var act []v1.Pod
	next := func() {
		controllertest.Eventually(t, 5*time.Second, "a pod", func() error {
			if act = running(pods(t, client)); len(act) != 1 {
				return fmt.Errorf("%d running", len(act))
			}
			return nil
		})
	}
	next()
	finishPod(t, client, act[0], v1.PodFailed, 3) // ignored: not a failure
	next()
	finishPod(t, client, act[0], v1.PodFailed, 42)
	j := waitJob(t, client, "Failed", func(j *batchv1.Job) error {
		if condition(j, batchv1.JobFailed) == nil {
			return fmt.Errorf("conditions %v", j.Status.Conditions)
		}
		return nil
	})
	f := condition(j, batchv1.JobFailed)
	if f.Reason != batchv1.JobReasonPodFailurePolicy || j.Status.Failed != 1 {
		t.Errorf("reason %q message %q failed %d", f.Reason, f.Message, j.Status.Failed)
	}
}

// TestSuspendedJobHasNoPods checks a suspended Job creates nothing and
// says so, and starts once resumed.
func TestSuspendedJobHasNoPods(t *testing.T) {
	client := start(t, nil, newJob(1, 1, func(j *batchv1.Job) { j.Spec.Suspend = ptr(true) }))
	j := waitJob(t, client, "Suspended", func(j *batchv1.Job) error {
		if c := condition(j, batchv1.JobSuspended); c == nil || c.Reason != "JobSuspended" {
			return fmt.Errorf("conditions %v", j.Status.Conditions)
		}
		return nil
	})
	if n := len(pods(t, client)); n != 0 || j.Status.StartTime != nil {
		t.Fatalf("%d pods, startTime %v", n, j.Status.StartTime)
	}
	j.Spec.Suspend = ptr(false)
	if _, err := client.BatchV1().Jobs(ns).Update(context.Background(), j, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	controllertest.Eventually(t, 5*time.Second, "a pod after resume", func() error {
		if n := len(running(pods(t, client))); n != 1 {
			return fmt.Errorf("%d pods", n)
		}
		return nil
	})
	waitJob(t, client, "resumed", func(j *batchv1.Job) error {
		for _, c := range j.Status.Conditions {
			if c.Type == batchv1.JobSuspended && c.Status == v1.ConditionFalse && c.Reason == "JobResumed" && j.Status.StartTime != nil {
				return nil
			}
		}
		return fmt.Errorf("conditions %v", j.Status.Conditions)
	})
}

// TestActiveDeadline fails a Job active longer than
// activeDeadlineSeconds: FailureTarget, its pods deleted and counted as
// failed, then Failed once they are gone.
func TestActiveDeadline(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Now())
	client := start(t, clk, newJob(2, 2, func(j *batchv1.Job) { j.Spec.ActiveDeadlineSeconds = ptr(int64(30)) }))
	controllertest.Eventually(t, 5*time.Second, "two pods", func() error {
		if n := len(running(pods(t, client))); n != 2 {
			return fmt.Errorf("%d pods", n)
		}
		return nil
	})
	waitJob(t, client, "startTime", func(j *batchv1.Job) error {
		if j.Status.StartTime == nil || !clk.HasWaiters() {
			return fmt.Errorf("startTime %v, deadline timer set %v", j.Status.StartTime, clk.HasWaiters())
		}
		return nil
	})
	clk.Step(31 * time.Second)
	// From here on the clock keeps moving, so requeues after a conflict
	// (rate-limited on the fake clock) fire too.
	waitJob(t, client, "FailureTarget", func(j *batchv1.Job) error {
		clk.Step(100 * time.Millisecond)
		if c := condition(j, batchv1.JobFailureTarget); c == nil || c.Reason != batchv1.JobReasonDeadlineExceeded {
			return fmt.Errorf("conditions %v", j.Status.Conditions)
		}
		return nil
	})
	// The node and the API server finish the deletions the controller
	// asked for, once the controller let go of the pods.
	controllertest.Eventually(t, 5*time.Second, "pods deleted and let go", func() error {
		clk.Step(100 * time.Millisecond)
		for _, p := range pods(t, client) {
			if p.DeletionTimestamp == nil || slices.Contains(p.Finalizers, batchv1.JobTrackingFinalizer) {
				return fmt.Errorf("pod %s: deleting %v, finalizers %v", p.Name, p.DeletionTimestamp != nil, p.Finalizers)
			}
		}
		return nil
	})
	for _, p := range pods(t, client) {
		if err := client.CoreV1().Pods(ns).Delete(context.Background(), p.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	j := waitJob(t, client, "Failed", func(j *batchv1.Job) error {
		clk.Step(100 * time.Millisecond)
		if c := condition(j, batchv1.JobFailed); c == nil || c.Reason != batchv1.JobReasonDeadlineExceeded {
			return fmt.Errorf("conditions %v", j.Status.Conditions)
		}
		return nil
	})
	if j.Status.Failed != 2 || j.Status.Active != 0 {
		t.Errorf("status %+v", j.Status)
	}
}

// TestTTLAfterFinished deletes a finished Job, in the foreground, once
// ttlSecondsAfterFinished has passed, and not before.
func TestTTLAfterFinished(t *testing.T) {
	now := time.Now()
	clk := testingclock.NewFakeClock(now)
	j := newJob(1, 1, func(j *batchv1.Job) { j.Spec.TTLSecondsAfterFinished = ptr(int32(60)) })
	done := metav1.NewTime(now.Add(-10 * time.Second))
	j.Status.CompletionTime = &done
	j.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: v1.ConditionTrue, LastTransitionTime: done}}
	client := start(t, clk, j)
	controllertest.Eventually(t, 5*time.Second, "the TTL timer", func() error {
		if !clk.HasWaiters() {
			return fmt.Errorf("no timer")
		}
		return nil
	})
	if getJob(t, client).DeletionTimestamp != nil {
		t.Fatal("deleted before its TTL")
	}
	clk.Step(51 * time.Second)
	waitJob(t, client, "deleted in the foreground", func(j *batchv1.Job) error {
		if j.DeletionTimestamp == nil || !slices.Contains(j.Finalizers, metav1.FinalizerDeleteDependents) {
			return fmt.Errorf("deletionTimestamp %v finalizers %v", j.DeletionTimestamp, j.Finalizers)
		}
		return nil
	})
}
