package job

import (
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestIndexesRoundTrip(t *testing.T) {
	for _, s := range []string{"", "0", "0-2", "1,3-5,7", "0-1,4"} {
		if got := formatIndexes(parseIndexes(s, 100)); got != s {
			t.Errorf("%q → %q", s, got)
		}
	}
	if got := formatIndexes(parseIndexes("1-9", 5)); got != "1-4" {
		t.Errorf("out of range kept: %q", got)
	}
}

func failedAt(sec int64) *v1.Pod {
	return &v1.Pod{Status: v1.PodStatus{Phase: v1.PodFailed, ContainerStatuses: []v1.ContainerStatus{{State: v1.ContainerState{
		Terminated: &v1.ContainerStateTerminated{ExitCode: 1, FinishedAt: metav1.Unix(sec, 0)}}}}}}
}

func TestBackoffRemaining(t *testing.T) {
	j := &batchv1.Job{}
	now := time.Unix(1000, 0)
	succeeded := failedAt(995)
	succeeded.Status.Phase = v1.PodSucceeded
	for _, c := range []struct {
		name string
		pods []*v1.Pod
		want time.Duration
	}{
		{"no failures", nil, 0},
		{"one failure 4s ago: 10s back-off", []*v1.Pod{failedAt(996)}, 6 * time.Second},
		{"two failures: 20s from the last", []*v1.Pod{failedAt(990), failedAt(998)}, 18 * time.Second},
		{"a success resets the count", []*v1.Pod{failedAt(990), succeeded, failedAt(998)}, 8 * time.Second},
		{"long past", []*v1.Pod{failedAt(100)}, 0},
		{"capped at the maximum", []*v1.Pod{failedAt(999), failedAt(999), failedAt(999), failedAt(999), failedAt(999), failedAt(999), failedAt(999), failedAt(999)}, 6*time.Minute - time.Second},
	} {
		if got := backoffRemaining(j, c.pods, now, DefaultBackoff, MaxBackoff); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestWantActive(t *testing.T) {
	j := func(completions *int32, parallelism int32) *batchv1.Job {
		return &batchv1.Job{Spec: batchv1.JobSpec{Completions: completions, Parallelism: &parallelism}}
	}
	five := int32(5)
	for _, c := range []struct {
		name                      string
		job                       *batchv1.Job
		succeeded, active, expect int32
	}{
		{"parallelism bounds", j(&five, 2), 0, 0, 2},
		{"remaining completions bound", j(&five, 2), 4, 1, 1},
		{"all done", j(&five, 2), 5, 0, 0},
		{"work queue before a success", j(nil, 3), 0, 1, 3},
		{"work queue after a success keeps what runs", j(nil, 3), 1, 2, 2},
	} {
		if got := wantActive(c.job, c.succeeded, c.active); got != c.expect {
			t.Errorf("%s: %d, want %d", c.name, got, c.expect)
		}
	}
}

func TestPastBackoffLimitOnFailure(t *testing.T) {
	limit := int32(2)
	j := &batchv1.Job{Spec: batchv1.JobSpec{BackoffLimit: &limit, Template: v1.PodTemplateSpec{Spec: v1.PodSpec{RestartPolicy: v1.RestartPolicyOnFailure}}}}
	p := &v1.Pod{Status: v1.PodStatus{Phase: v1.PodRunning, ContainerStatuses: []v1.ContainerStatus{{RestartCount: 1}}}}
	if pastBackoffLimitOnFailure(j, []*v1.Pod{p}) {
		t.Error("1 restart is below 2")
	}
	p.Status.ContainerStatuses[0].RestartCount = 2
	if !pastBackoffLimitOnFailure(j, []*v1.Pod{p}) {
		t.Error("2 restarts reach 2")
	}
	j.Spec.Template.Spec.RestartPolicy = v1.RestartPolicyNever
	if pastBackoffLimitOnFailure(j, []*v1.Pod{p}) {
		t.Error("restartPolicy Never counts pod failures, not restarts")
	}
}

func TestSuccessPolicy(t *testing.T) {
	three := int32(3)
	mode := batchv1.IndexedCompletion
	ix := "0,2"
	j := &batchv1.Job{Spec: batchv1.JobSpec{Completions: &three, CompletionMode: &mode,
		SuccessPolicy: &batchv1.SuccessPolicy{Rules: []batchv1.SuccessPolicyRule{{SucceededIndexes: &ix}}}}}
	if _, ok := successPolicyMet(j, map[int32]bool{0: true, 1: true}); ok {
		t.Error("index 2 has not succeeded")
	}
	if msg, ok := successPolicyMet(j, map[int32]bool{0: true, 2: true}); !ok || msg != "Matched rules at index 0" {
		t.Errorf("%q %v", msg, ok)
	}
}

func TestMatchPodFailurePolicyConditions(t *testing.T) {
	j := &batchv1.Job{Spec: batchv1.JobSpec{PodFailurePolicy: &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{
		{Action: batchv1.PodFailurePolicyActionIgnore, OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{{Type: v1.DisruptionTarget, Status: v1.ConditionTrue}}},
	}}}}
	p := failedAt(1)
	if a := matchPodFailurePolicy(j, p); !a.count {
		t.Error("no matching condition: counts")
	}
	p.Status.Conditions = []v1.PodCondition{{Type: v1.DisruptionTarget, Status: v1.ConditionTrue}}
	if a := matchPodFailurePolicy(j, p); a.count || a.failJob != nil {
		t.Error("DisruptionTarget is ignored")
	}
}
