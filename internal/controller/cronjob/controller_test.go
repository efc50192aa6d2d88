package cronjob

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/peapod/peapod/internal/controller/controllertest"
	"github.com/peapod/peapod/internal/controller/ctrlutil"
)

const ns = "default"

var t0 = time.Date(2026, 3, 1, 10, 0, 30, 0, time.UTC)

func newCronJob(policy batchv1.ConcurrencyPolicy, mods ...func(*batchv1.CronJob)) *batchv1.CronJob {
	three, one := int32(3), int32(1)
	cj := &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: "tick", Namespace: ns, UID: "cj-uid", CreationTimestamp: metav1.NewTime(t0.Add(-30 * time.Second))},
		Spec: batchv1.CronJobSpec{
			Schedule: "* * * * *", ConcurrencyPolicy: policy,
			SuccessfulJobsHistoryLimit: &three, FailedJobsHistoryLimit: &one,
			JobTemplate: batchv1.JobTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "tick"}},
				Spec: batchv1.JobSpec{Template: v1.PodTemplateSpec{Spec: v1.PodSpec{
					RestartPolicy: v1.RestartPolicyNever, Containers: []v1.Container{{Name: "c", Image: "busybox"}}}}},
			},
		},
	}
	for _, m := range mods {
		m(cj)
	}
	return cj
}

type fixture struct {
	client *fake.Clientset
	clock  *testingclock.FakeClock
	events chan string
}

func start(t *testing.T, objs ...runtime.Object) *fixture {
	t.Helper()
	f := &fixture{client: controllertest.NewClientset(objs...), clock: testingclock.NewFakeClock(t0), events: make(chan string, 100)}
	controllertest.Start(t, f.client, func(fac informers.SharedInformerFactory) (controllertest.Runner, error) {
		return New(f.client, fac, Options{Logger: slog.New(slog.DiscardHandler), Clock: f.clock, Recorder: &record.FakeRecorder{Events: f.events}})
	})
	return f
}

// waitEvent waits for an event whose text contains want.
func (f *fixture) waitEvent(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case e := <-f.events:
			if strings.Contains(e, want) {
				return
			}
		case <-deadline:
			t.Fatalf("no %q event", want)
		}
	}
}

func (f *fixture) jobs(t *testing.T) []batchv1.Job {
	t.Helper()
	l, err := f.client.BatchV1().Jobs(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

func (f *fixture) cronJob(t *testing.T) *batchv1.CronJob {
	t.Helper()
	cj, err := f.client.BatchV1().CronJobs(ns).Get(context.Background(), "tick", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cj
}

// step moves the fake clock to the given minute after 10:00 (plus the
// requeue delta), firing the controller's delayed requeue.
func (f *fixture) stepTo(t *testing.T, minute int) {
	t.Helper()
	controllertest.Eventually(t, 5*time.Second, "the controller waiting for the next minute", func() error {
		if !f.clock.HasWaiters() {
			return fmt.Errorf("no timer set")
		}
		return nil
	})
	f.clock.SetTime(time.Date(2026, 3, 1, 10, minute, 0, int(nextScheduleDelta)+1, time.UTC))
}

func jobNameAt(minute int) string {
	return fmt.Sprintf("tick-%d", time.Date(2026, 3, 1, 10, minute, 0, 0, time.UTC).Unix()/60)
}

func complete(t *testing.T, f *fixture, name string) {
	t.Helper()
	j, err := f.client.BatchV1().Jobs(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := metav1.NewTime(f.clock.Now())
	j.Status.StartTime = &now
	j.Status.CompletionTime = &now
	j.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: v1.ConditionTrue}}
	if _, err := f.client.BatchV1().Jobs(ns).UpdateStatus(context.Background(), j, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestEveryMinute creates one Job per minute, named by the minute, owned
// by the CronJob and annotated with its schedule time, and records it.
func TestEveryMinute(t *testing.T) {
	f := start(t, newCronJob(batchv1.AllowConcurrent))
	f.stepTo(t, 1)
	f.waitEvent(t, "SuccessfulCreate")
	js := f.jobs(t)
	if len(js) != 1 || js[0].Name != jobNameAt(1) {
		t.Fatalf("jobs %v", js)
	}
	j := js[0]
	if ref := metav1.GetControllerOf(&j); ref == nil || ref.UID != "cj-uid" || j.Labels["app"] != "tick" ||
		j.Annotations[ScheduledTimestampAnnotation] != "2026-03-01T10:01:00Z" {
		t.Errorf("job meta %+v", j.ObjectMeta)
	}
	controllertest.Eventually(t, 5*time.Second, "status", func() error {
		cj := f.cronJob(t)
		if len(cj.Status.Active) != 1 || cj.Status.LastScheduleTime == nil || !cj.Status.LastScheduleTime.Time.Equal(time.Date(2026, 3, 1, 10, 1, 0, 0, time.UTC)) {
			return fmt.Errorf("status %+v", cj.Status)
		}
		return nil
	})
	// Allow: the next minute runs beside the first.
	f.stepTo(t, 2)
	f.waitEvent(t, "SuccessfulCreate")
	if n := len(f.jobs(t)); n != 2 {
		t.Errorf("%d jobs, want 2", n)
	}
}

// TestForbidSkipsWhileActive skips a run while the previous Job is
// active, and runs again once it finished.
func TestForbidSkipsWhileActive(t *testing.T) {
	f := start(t, newCronJob(batchv1.ForbidConcurrent))
	f.stepTo(t, 1)
	f.waitEvent(t, "SuccessfulCreate")
	controllertest.Eventually(t, 5*time.Second, "active", func() error {
		if n := len(f.cronJob(t).Status.Active); n != 1 {
			return fmt.Errorf("%d active", n)
		}
		return nil
	})
	f.stepTo(t, 2)
	f.waitEvent(t, "JobAlreadyActive")
	if n := len(f.jobs(t)); n != 1 {
		t.Fatalf("%d jobs while one is active under Forbid", n)
	}
	// Once the first finishes, the skipped 10:02 run starts late (no
	// startingDeadlineSeconds forbids it).
	complete(t, f, jobNameAt(1))
	f.waitEvent(t, "SawCompletedJob")
	f.waitEvent(t, "SuccessfulCreate")
	if js := f.jobs(t); len(js) != 2 || js[1].Name != jobNameAt(2) {
		t.Errorf("jobs %v, want the 10:01 and 10:02 ones", js)
	}
}

// TestReplaceDeletesTheActiveJob replaces a running Job with the next.
func TestReplaceDeletesTheActiveJob(t *testing.T) {
	f := start(t, newCronJob(batchv1.ReplaceConcurrent))
	f.stepTo(t, 1)
	f.waitEvent(t, "SuccessfulCreate")
	controllertest.Eventually(t, 5*time.Second, "active", func() error {
		if n := len(f.cronJob(t).Status.Active); n != 1 {
			return fmt.Errorf("%d active", n)
		}
		return nil
	})
	f.stepTo(t, 2)
	f.waitEvent(t, "SuccessfulDelete")
	f.waitEvent(t, "SuccessfulCreate")
	js := f.jobs(t)
	if len(js) != 1 || js[0].Name != jobNameAt(2) {
		t.Errorf("jobs %v", js)
	}
}

// TestHistoryLimits deletes the oldest finished Jobs beyond the limits.
func TestHistoryLimits(t *testing.T) {
	suspend, keep := true, int32(1)
	cj := newCronJob(batchv1.AllowConcurrent, func(cj *batchv1.CronJob) {
		cj.Spec.Suspend, cj.Spec.SuccessfulJobsHistoryLimit = &suspend, &keep
	})
	objs := []runtime.Object{cj}
	for i, cond := range []batchv1.JobConditionType{batchv1.JobComplete, batchv1.JobComplete, batchv1.JobComplete, batchv1.JobFailed, batchv1.JobFailed} {
		start := metav1.NewTime(t0.Add(time.Duration(i) * time.Minute))
		objs = append(objs, &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("old-%d", i), Namespace: ns, OwnerReferences: []metav1.OwnerReference{*ctrlutil.NewControllerRef(cj, kind)}},
			Status:     batchv1.JobStatus{StartTime: &start, Conditions: []batchv1.JobCondition{{Type: cond, Status: v1.ConditionTrue}}},
		})
	}
	f := start(t, objs...)
	controllertest.Eventually(t, 5*time.Second, "history trimmed", func() error {
		var names []string
		for _, j := range f.jobs(t) {
			names = append(names, j.Name)
		}
		if strings.Join(names, ",") != "old-2,old-4" {
			return fmt.Errorf("jobs %v, want the newest complete and the newest failed", names)
		}
		return nil
	})
}
