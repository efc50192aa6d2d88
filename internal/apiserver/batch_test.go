package apiserver

import (
	"fmt"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const jobJSON = `{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"pi"},
"spec":{"template":{"spec":{"restartPolicy":"Never","containers":[{"name":"c","image":"busybox"}]}}}}`

// TestJobDefaultsAndGeneratedSelector checks a Job gets batch/v1's
// defaults and kube-apiserver's generated selector and labels, and that
// its status is written only through /status.
func TestJobDefaultsAndGeneratedSelector(t *testing.T) {
	srv, _ := newTestAPI(t)
	const base = "/apis/batch/v1/namespaces/default/jobs"
	r := do(t, srv, "POST", base, "application/json", jobJSON)
	if r.code != 201 {
		t.Fatalf("create: %d %s", r.code, r.body)
	}
	uid := jfield(r.obj, "metadata", "uid")
	for _, c := range []struct {
		path []string
		want interface{}
	}{
		{[]string{"spec", "completions"}, float64(1)},
		{[]string{"spec", "parallelism"}, float64(1)},
		{[]string{"spec", "backoffLimit"}, float64(6)},
		{[]string{"spec", "completionMode"}, "NonIndexed"},
		{[]string{"spec", "suspend"}, false},
		{[]string{"spec", "podReplacementPolicy"}, "TerminatingOrFailed"},
		{[]string{"spec", "selector", "matchLabels", "batch.kubernetes.io/controller-uid"}, uid},
		{[]string{"spec", "template", "metadata", "labels", "controller-uid"}, uid},
		{[]string{"spec", "template", "metadata", "labels", "batch.kubernetes.io/job-name"}, "pi"},
		{[]string{"spec", "template", "metadata", "labels", "job-name"}, "pi"},
		{[]string{"metadata", "labels", "job-name"}, "pi"},
	} {
		if got := jfield(r.obj, c.path...); got != c.want {
			t.Errorf("%v = %v, want %v", c.path, got, c.want)
		}
	}
	r = do(t, srv, "PATCH", base+"/pi", "application/merge-patch+json", `{"status":{"succeeded":1}}`)
	if r.code != 200 || jfield(r.obj, "status", "succeeded") != nil {
		t.Errorf("status through the main resource: %d %v", r.code, jfield(r.obj, "status", "succeeded"))
	}
	r = do(t, srv, "PATCH", base+"/pi/status", "application/merge-patch+json", `{"status":{"succeeded":1}}`)
	if r.code != 200 || jfield(r.obj, "status", "succeeded") != float64(1) {
		t.Errorf("status through /status: %d %s", r.code, r.body)
	}
	r = do(t, srv, "PATCH", base+"/pi", "application/merge-patch+json", `{"spec":{"completions":3}}`)
	if r.code != 422 || !strings.Contains(r.body, "spec.completions") || !strings.Contains(r.body, "field is immutable") {
		t.Errorf("changing completions: %d %s", r.code, r.body)
	}
	r = do(t, srv, "GET", "/apis/batch/v1", "", "")
	if r.code != 200 || !strings.Contains(r.body, `"jobs/status"`) || !strings.Contains(r.body, `"cronjobs"`) {
		t.Errorf("discovery: %d %s", r.code, r.body)
	}
}

// TestBatchValidation checks bad Jobs and CronJobs are refused with 422
// naming the field, and nothing is stored.
func TestBatchValidation(t *testing.T) {
	srv, _ := newTestAPI(t)
	tmpl := `"template":{"spec":{"restartPolicy":"Never","containers":[{"name":"c","image":"busybox"}]}}`
	for _, c := range []struct {
		name, path, body, field string
	}{
		{"negative completions", "jobs", `{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"a"},"spec":{"completions":-1,` + tmpl + `}}`, "spec.completions"},
		{"restartPolicy Always", "jobs", `{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"b"},"spec":{"template":{"spec":{"containers":[{"name":"c","image":"busybox"}]}}}}`, "spec.template.spec.restartPolicy"},
		{"indexed without completions", "jobs", `{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"c"},"spec":{"parallelism":2,"completionMode":"Indexed",` + tmpl + `}}`, "spec.completions"},
		{"bad exit code operator", "jobs", `{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"d"},"spec":{"podFailurePolicy":{"rules":[{"action":"FailJob","onExitCodes":{"operator":"Is","values":[1]}}]},` + tmpl + `}}`, "spec.podFailurePolicy.rules[0].onExitCodes.operator"},
		{"bad schedule", "cronjobs", `{"apiVersion":"batch/v1","kind":"CronJob","metadata":{"name":"e"},"spec":{"schedule":"every minute","jobTemplate":{"spec":{` + tmpl + `}}}}`, "spec.schedule"},
		{"bad time zone", "cronjobs", `{"apiVersion":"batch/v1","kind":"CronJob","metadata":{"name":"f"},"spec":{"schedule":"* * * * *","timeZone":"Mars/Olympus","jobTemplate":{"spec":{` + tmpl + `}}}}`, "spec.timeZone"},
		{"bad concurrency policy", "cronjobs", `{"apiVersion":"batch/v1","kind":"CronJob","metadata":{"name":"g"},"spec":{"schedule":"* * * * *","concurrencyPolicy":"Sometimes","jobTemplate":{"spec":{` + tmpl + `}}}}`, "spec.concurrencyPolicy"},
	} {
		t.Run(c.name, func(t *testing.T) {
			base := "/apis/batch/v1/namespaces/default/" + c.path
			r := do(t, srv, "POST", base, "application/json", c.body)
			if r.code != 422 || !strings.Contains(r.body, c.field) {
				t.Fatalf("got %d %s, want 422 naming %s", r.code, r.body, c.field)
			}
			if r := do(t, srv, "GET", base, "", ""); strings.Contains(r.body, `"name":"`) && strings.Contains(r.body, `"uid"`) {
				t.Errorf("a refused object was stored: %s", r.body)
			}
		})
	}
}

// TestCronJobDefaults checks batch/v1's CronJob defaults.
func TestCronJobDefaults(t *testing.T) {
	srv, _ := newTestAPI(t)
	r := do(t, srv, "POST", "/apis/batch/v1/namespaces/default/cronjobs", "application/json",
		`{"apiVersion":"batch/v1","kind":"CronJob","metadata":{"name":"tick"},"spec":{"schedule":"*/5 * * * *","timeZone":"Europe/Berlin",
"jobTemplate":{"spec":{"template":{"spec":{"restartPolicy":"OnFailure","containers":[{"name":"c","image":"busybox"}]}}}}}}`)
	if r.code != 201 {
		t.Fatalf("create: %d %s", r.code, r.body)
	}
	for _, c := range []struct {
		path []string
		want interface{}
	}{
		{[]string{"spec", "concurrencyPolicy"}, "Allow"},
		{[]string{"spec", "suspend"}, false},
		{[]string{"spec", "successfulJobsHistoryLimit"}, float64(3)},
		{[]string{"spec", "failedJobsHistoryLimit"}, float64(1)},
		{[]string{"spec", "jobTemplate", "spec", "template", "spec", "dnsPolicy"}, "ClusterFirst"},
	} {
		if got := jfield(r.obj, c.path...); got != c.want {
			t.Errorf("%v = %v, want %v", c.path, got, c.want)
		}
	}
}

func TestParseIndexes(t *testing.T) {
	got, err := ParseIndexes("0,2-4,7", 8)
	if err != nil || len(got) != 5 || got[0] != 0 || got[1] != 2 || got[3] != 4 || got[4] != 7 {
		t.Errorf("ParseIndexes = %v, %v", got, err)
	}
	for _, bad := range []string{"3,1", "1-1", "x", "9", "2-9"} {
		if _, err := ParseIndexes(bad, 8); err == nil {
			t.Errorf("ParseIndexes(%q) accepted", bad)
		}
	}
}

// TestBatchTables checks kubectl's cells for Jobs and CronJobs.
func TestBatchTables(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	start, done := metav1.NewTime(now.Add(-90*time.Second)), metav1.NewTime(now.Add(-30*time.Second))
	five, two := int32(5), int32(2)
	j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "pi", CreationTimestamp: start},
		Spec:   batchv1.JobSpec{Completions: &five, Parallelism: &two},
		Status: batchv1.JobStatus{Succeeded: 5, StartTime: &start, CompletionTime: &done, Conditions: []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: "True"}}}}
	if got := fmt.Sprint(jobTable.Cells(j, now)[:5]); got != "[pi Complete 5/5 60s 90s]" {
		t.Errorf("job cells %s", got)
	}
	j.Spec.Completions, j.Status.Conditions, j.Status.CompletionTime = nil, []batchv1.JobCondition{{Type: batchv1.JobFailureTarget, Status: "True"}}, nil
	if got := fmt.Sprint(jobTable.Cells(j, now)[:5]); got != "[pi FailureTarget 5/1 of 2 90s 90s]" {
		t.Errorf("job cells %s", got)
	}
	tz, f := "Europe/Berlin", false
	cj := &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "tick", CreationTimestamp: start},
		Spec:   batchv1.CronJobSpec{Schedule: "*/5 * * * *", TimeZone: &tz, Suspend: &f},
		Status: batchv1.CronJobStatus{Active: make([]corev1.ObjectReference, 1), LastScheduleTime: &done}}
	if got := fmt.Sprint(cronJobTable.Cells(cj, now)[:7]); got != "[tick */5 * * * * Europe/Berlin False 1 30s 90s]" {
		t.Errorf("cronjob cells %s", got)
	}
}
