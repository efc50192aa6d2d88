package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestJobs runs issue 13's Job acceptance through kubectl against one
// real `peapod server`: completions with parallelism, a failing Job
// stopping at its backoffLimit, an Indexed Job's pods seeing their index,
// `kubectl create job` and `kubectl logs job/…`, bad input refused, a
// server killed mid-Job neither losing nor double-counting a completion,
// podFailurePolicy, suspend, activeDeadlineSeconds and
// ttlSecondsAfterFinished, and CronJobs.
func TestJobs(t *testing.T) {
	c := startOwnNetworkCluster(t, "ppjob0", "10.233.0.0/16")
	t.Run("Completions", func(t *testing.T) { testJobCompletions(t, c.with(t)) })
	t.Run("BackoffLimit", func(t *testing.T) { testJobBackoffLimit(t, c.with(t)) })
	t.Run("Indexed", func(t *testing.T) { testJobIndexed(t, c.with(t)) })
	t.Run("CreateAndLogs", func(t *testing.T) { testJobCreateAndLogs(t, c.with(t)) })
	t.Run("BadInput", func(t *testing.T) { testJobBadInput(t, c.with(t)) })
	t.Run("Policies", func(t *testing.T) { testJobPolicies(t, c.with(t)) })
	t.Run("CronJobs", func(t *testing.T) { testCronJobs(t, c.with(t)) })
	// Last and not a subtest: a restart replaces the process the cluster
	// (and its cleanup) holds, which a subtest's copy would not update.
	testJobServerRestart(t, c)
}

func jobManifest(ns, name, extraSpec, command string) string {
	return fmt.Sprintf(`
apiVersion: batch/v1
kind: Job
metadata: {name: %[2]s, namespace: %[1]s}
spec:
%[3]s
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers:
      - name: work
        image: busybox
        command: [sh, -c, %[4]q]
`, ns, name, extraSpec, command)
}

func (c *cluster) job(ns, name string) *batchv1.Job {
	c.t.Helper()
	j, err := c.client.BatchV1().Jobs(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		c.t.Fatalf("get job %s/%s: %v", ns, name, err)
	}
	return j
}

// waitJobCondition waits for a true condition of the Job.
func (c *cluster) waitJobCondition(ns, name string, ct batchv1.JobConditionType, timeout time.Duration) *batchv1.Job {
	c.t.Helper()
	var j *batchv1.Job
	c.eventually(timeout, func() error {
		j = c.job(ns, name)
		for _, cond := range j.Status.Conditions {
			if cond.Type == ct && cond.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("job %s/%s: no %s condition: status %+v", ns, name, ct, j.Status)
	})
	return j
}

// jobPods lists the Job's pods through its selector, as kubectl does.
func (c *cluster) jobPods(ns string, j *batchv1.Job) []corev1.Pod {
	c.t.Helper()
	sel, err := metav1.LabelSelectorAsSelector(j.Spec.Selector)
	if err != nil {
		c.t.Fatal(err)
	}
	l, err := c.client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		c.t.Fatal(err)
	}
	return l.Items
}

func testJobCompletions(t *testing.T, c *cluster) {
	ns := c.namespace("job-completions")
	c.apply(jobManifest(ns, "five", "  completions: 5\n  parallelism: 2", "sleep 1"))
	// Never more than parallelism pods run at once.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	maxActive := make(chan int32, 1)
	go func() {
		var most int32
		defer func() { maxActive <- most }()
		w, err := c.client.BatchV1().Jobs(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=five"})
		if err != nil {
			return
		}
		defer w.Stop()
		for ev := range w.ResultChan() {
			if j, ok := ev.Object.(*batchv1.Job); ok {
				most = max(most, j.Status.Active)
			}
		}
	}()
	j := c.waitJobCondition(ns, "five", batchv1.JobComplete, 3*time.Minute)
	cancel()
	if most := <-maxActive; most > 2 || most == 0 {
		t.Errorf("at most %d pods active, want 2", most)
	}
	if j.Status.Succeeded != 5 || j.Status.Failed != 0 || j.Status.CompletionTime == nil {
		t.Errorf("status %+v", j.Status)
	}
	pods := c.jobPods(ns, j)
	if len(pods) != 5 {
		t.Errorf("%d pods, want 5", len(pods))
	}
	for _, p := range pods {
		if p.Status.Phase != corev1.PodSucceeded || slices.Contains(p.Finalizers, batchv1.JobTrackingFinalizer) {
			t.Errorf("pod %s: phase %s finalizers %v", p.Name, p.Status.Phase, p.Finalizers)
		}
	}
	out := c.must("get", "jobs", "-n", ns)
	if f := strings.Fields(strings.Split(out, "\n")[0]); strings.Join(f, " ") != "NAME STATUS COMPLETIONS DURATION AGE" {
		t.Errorf("columns: %q", out)
	}
	if !strings.Contains(out, "Complete") || !strings.Contains(out, "5/5") {
		t.Errorf("kubectl get jobs:\n%s", out)
	}
}

func testJobBackoffLimit(t *testing.T, c *cluster) {
	ns := c.namespace("job-backoff")
	c.apply(jobManifest(ns, "fails", "  backoffLimit: 1", "exit 3"))
	j := c.waitJobCondition(ns, "fails", batchv1.JobFailed, 3*time.Minute)
	var reason string
	for _, cond := range j.Status.Conditions {
		if cond.Type == batchv1.JobFailed {
			reason = cond.Reason
		}
	}
	if reason != batchv1.JobReasonBackoffLimitExceeded || j.Status.Failed != 2 || j.Status.Succeeded != 0 {
		t.Errorf("reason %q, status %+v", reason, j.Status)
	}
	if pods := c.jobPods(ns, j); len(pods) != 2 {
		t.Errorf("%d pods, want 2 (backoffLimit 1: one retry)", len(pods))
	}
	if out := c.must("get", "job", "fails", "-n", ns); !strings.Contains(out, "Failed") {
		t.Errorf("kubectl get job:\n%s", out)
	}
	if out := c.must("get", "events", "-n", ns); !strings.Contains(out, "BackoffLimitExceeded") {
		t.Errorf("no BackoffLimitExceeded event:\n%s", out)
	}
}

func testJobIndexed(t *testing.T, c *cluster) {
	ns := c.namespace("job-indexed")
	c.apply(jobManifest(ns, "idx", "  completions: 3\n  parallelism: 3\n  completionMode: Indexed", "echo index=$JOB_COMPLETION_INDEX host=$(hostname)"))
	j := c.waitJobCondition(ns, "idx", batchv1.JobComplete, 3*time.Minute)
	if j.Status.CompletedIndexes != "0-2" || j.Status.Succeeded != 3 {
		t.Errorf("status %+v", j.Status)
	}
	var got []string
	for _, p := range c.jobPods(ns, j) {
		out, err := c.kubectlStdout("logs", "-n", ns, p.Name)
		if err != nil {
			t.Fatalf("logs %s: %v %s", p.Name, err, out)
		}
		ix := p.Annotations[batchv1.JobCompletionIndexAnnotation]
		if want := fmt.Sprintf("index=%s host=idx-%s", ix, ix); out != want {
			t.Errorf("pod %s says %q, want %q", p.Name, out, want)
		}
		got = append(got, ix)
	}
	sort.Strings(got)
	if strings.Join(got, ",") != "0,1,2" {
		t.Errorf("indexes %v", got)
	}
}

func testJobCreateAndLogs(t *testing.T, c *cluster) {
	ns := c.namespace("job-create")
	c.must("create", "job", "hello", "-n", ns, "--image=busybox", "--", "echo", "hello from a job")
	c.must("wait", "-n", ns, "--for=condition=complete", "job/hello", "--timeout=120s")
	out, err := c.kubectlStdout("logs", "-n", ns, "job/hello")
	if err != nil || out != "hello from a job" {
		t.Errorf("kubectl logs job/hello: %q %v", out, err)
	}
	j := c.job(ns, "hello")
	if j.Spec.Template.Labels["batch.kubernetes.io/job-name"] != "hello" || j.Spec.Selector.MatchLabels["batch.kubernetes.io/controller-uid"] != string(j.UID) {
		t.Errorf("generated labels %v selector %v", j.Spec.Template.Labels, j.Spec.Selector)
	}
	if out := c.must("describe", "job", "hello", "-n", ns); !strings.Contains(out, "1 Succeeded") {
		t.Errorf("kubectl describe job:\n%s", out)
	}
	// Deleting the Job deletes its pods (the garbage collector follows
	// the ownerReferences).
	c.must("delete", "job", "hello", "-n", ns, "--wait=true", "--cascade=foreground", "--timeout=60s")
	c.eventually(60*time.Second, func() error {
		l, err := c.client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil || len(l.Items) > 0 {
			return fmt.Errorf("pods left after the Job was deleted: %v %d", err, len(l.Items))
		}
		return nil
	})
}

func testJobBadInput(t *testing.T, c *cluster) {
	ns := c.namespace("job-bad")
	f := c.dir + "/bad-job.yaml"
	if err := os.WriteFile(f, []byte(jobManifest(ns, "neg", "  completions: -1", "true")), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := c.kubectl("apply", "-f", f)
	if err == nil || !strings.Contains(out, "spec.completions") || !strings.Contains(out, "must be greater than or equal to 0") {
		t.Errorf("completions -1: %v %s", err, out)
	}
	out, err = c.kubectl("create", "cronjob", "bad", "-n", ns, "--image=busybox", "--schedule=61 * * * *", "--", "true")
	if err == nil || !strings.Contains(out, "spec.schedule") {
		t.Errorf("bad schedule: %v %s", err, out)
	}
	if out := c.must("get", "jobs,cronjobs", "-n", ns, "-o", "name"); out != "" {
		t.Errorf("refused objects were stored: %s", out)
	}
}

// testJobServerRestart kills the server (API, controllers and node in one
// process) with SIGKILL while a Job's pods run, and checks after the
// restart that every completion was counted exactly once.
func testJobServerRestart(t *testing.T, c *cluster) {
	ns := c.namespace("job-restart")
	c.apply(jobManifest(ns, "survivor", "  completions: 4\n  parallelism: 2", "sleep 3"))
	c.eventually(90*time.Second, func() error {
		if j := c.job(ns, "survivor"); j.Status.Succeeded < 1 || j.Status.Active < 1 {
			return fmt.Errorf("status %+v", j.Status)
		}
		return nil
	})
	c.kill(syscall.SIGKILL)
	c.start()
	j := c.waitJobCondition(ns, "survivor", batchv1.JobComplete, 3*time.Minute)
	if j.Status.Succeeded != 4 || j.Status.Failed != 0 {
		t.Errorf("status after the restart %+v", j.Status)
	}
	pods := c.jobPods(ns, j)
	succeeded := 0
	for _, p := range pods {
		if p.Status.Phase == corev1.PodSucceeded {
			succeeded++
		}
		if slices.Contains(p.Finalizers, batchv1.JobTrackingFinalizer) {
			t.Errorf("pod %s keeps the tracking finalizer", p.Name)
		}
	}
	if succeeded != 4 || len(pods) != 4 {
		t.Errorf("%d pods, %d succeeded; want 4 and 4", len(pods), succeeded)
	}
}

// testJobPolicies checks the rest of a Job's spec on real pods: a
// podFailurePolicy FailJob rule, suspend and resume,
// activeDeadlineSeconds and ttlSecondsAfterFinished.
func testJobPolicies(t *testing.T, c *cluster) {
	ns := c.namespace("job-policies")
	c.apply(jobManifest(ns, "policy", `  backoffLimit: 6
  podFailurePolicy:
    rules:
    - action: FailJob
      onExitCodes: {operator: In, values: [42]}`, "exit 42"))
	c.apply(jobManifest(ns, "paused", "  suspend: true", "echo resumed"))
	c.apply(jobManifest(ns, "deadline", "  activeDeadlineSeconds: 2", "sleep 60"))
	c.apply(jobManifest(ns, "ephemeral", "  ttlSecondsAfterFinished: 0", "true"))

	reason := func(j *batchv1.Job, ct batchv1.JobConditionType) string {
		for _, cond := range j.Status.Conditions {
			if cond.Type == ct && cond.Status == corev1.ConditionTrue {
				return cond.Reason
			}
		}
		return ""
	}
	j := c.waitJobCondition(ns, "policy", batchv1.JobFailed, 2*time.Minute)
	if r := reason(j, batchv1.JobFailed); r != batchv1.JobReasonPodFailurePolicy || j.Status.Failed != 1 || len(c.jobPods(ns, j)) != 1 {
		t.Errorf("podFailurePolicy: reason %q, status %+v", r, j.Status)
	}

	j = c.waitJobCondition(ns, "paused", batchv1.JobSuspended, time.Minute)
	if pods := c.jobPods(ns, j); len(pods) != 0 || j.Status.StartTime != nil {
		t.Errorf("a suspended Job has %d pods, startTime %v", len(pods), j.Status.StartTime)
	}
	if out := c.must("get", "job", "paused", "-n", ns); !strings.Contains(out, "Suspended") {
		t.Errorf("kubectl get job:\n%s", out)
	}
	c.must("patch", "job", "paused", "-n", ns, "--type=merge", "-p", `{"spec":{"suspend":false}}`)
	c.waitJobCondition(ns, "paused", batchv1.JobComplete, 2*time.Minute)

	j = c.waitJobCondition(ns, "deadline", batchv1.JobFailed, 2*time.Minute)
	if r := reason(j, batchv1.JobFailed); r != batchv1.JobReasonDeadlineExceeded || reason(j, batchv1.JobFailureTarget) != batchv1.JobReasonDeadlineExceeded || j.Status.Active != 0 {
		t.Errorf("deadline: reason %q, status %+v", r, j.Status)
	}

	c.eventually(2*time.Minute, func() error {
		_, err := c.client.BatchV1().Jobs(ns).Get(context.Background(), "ephemeral", metav1.GetOptions{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("job ephemeral still there after its TTL: %v", err)
		}
		return nil
	})
}
