package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
)

func cronJobManifest(ns, name, policy, command string, keep int) string {
	return fmt.Sprintf(`
apiVersion: batch/v1
kind: CronJob
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  schedule: "* * * * *"
  timeZone: Etc/UTC
  concurrencyPolicy: %[3]s
  successfulJobsHistoryLimit: %[5]d
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          terminationGracePeriodSeconds: 1
          containers:
          - name: work
            image: busybox
            command: [sh, -c, %[4]q]
`, ns, name, policy, command, keep)
}

// cronJobJobs lists the Jobs a CronJob controls, by name.
func (c *cluster) cronJobJobs(ns, name string) []batchv1.Job {
	c.t.Helper()
	l, err := c.client.BatchV1().Jobs(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	var out []batchv1.Job
	for _, j := range l.Items {
		if ref := metav1.GetControllerOf(&j); ref != nil && ref.Kind == "CronJob" && ref.Name == name &&
			j.Annotations["cronjob.kubernetes.io/instantiate"] != "manual" {
			out = append(out, j)
		}
	}
	return out
}

// testCronJobs is the one end-to-end test that waits for real minutes
// (schedules are minutes; the controller's decisions are tested with a
// fake clock in internal/controller/cronjob): two CronJobs every minute,
// side by side for two runs. "forbid" runs a Job that never ends, so its
// second run is skipped while the first is active; "allow" runs a short
// Job each minute and keeps one successful Job. `kubectl create job
// --from=cronjob/…` runs a Job from a CronJob's template at once.
func testCronJobs(t *testing.T, c *cluster) {
	ns := c.namespace("cronjobs")
	c.apply(cronJobManifest(ns, "forbid", "Forbid", "sleep 3600", 3))
	c.apply(cronJobManifest(ns, "allow", "Allow", "echo tick", 1))

	out := c.must("get", "cronjobs", "-n", ns)
	if f := strings.Fields(strings.Split(out, "\n")[0]); strings.Join(f, " ") != "NAME SCHEDULE TIMEZONE SUSPEND ACTIVE LAST SCHEDULE AGE" {
		t.Errorf("columns: %q", out)
	}

	// The first run of each, at the next full minute.
	c.eventually(100*time.Second, func() error {
		if n, m := len(c.cronJobJobs(ns, "forbid")), len(c.cronJobJobs(ns, "allow")); n != 1 || m < 1 {
			return fmt.Errorf("jobs of forbid: %d, of allow: %d", n, m)
		}
		return nil
	})
	first := c.cronJobJobs(ns, "forbid")[0]
	if first.Annotations["batch.kubernetes.io/cronjob-scheduled-timestamp"] == "" {
		t.Errorf("job %s: annotations %v", first.Name, first.Annotations)
	}
	c.eventually(30*time.Second, func() error {
		cj, err := c.client.BatchV1().CronJobs(ns).Get(context.Background(), "forbid", metav1.GetOptions{})
		if err != nil || len(cj.Status.Active) != 1 || cj.Status.LastScheduleTime == nil {
			return fmt.Errorf("forbid status: %v %+v", err, cj.Status)
		}
		return nil
	})

	// A Job made by hand from the CronJob's template.
	c.must("create", "job", "by-hand", "-n", ns, "--from=cronjob/allow")
	c.must("wait", "-n", ns, "--for=condition=complete", "job/by-hand", "--timeout=120s")
	if logs, err := c.kubectlStdout("logs", "-n", ns, "job/by-hand"); err != nil || logs != "tick" {
		t.Errorf("logs job/by-hand: %q %v", logs, err)
	}

	// The second minute: forbid skips, allow runs again and keeps one.
	c.eventually(100*time.Second, func() error {
		evs, err := c.client.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{
			FieldSelector: fields.Set{"involvedObject.name": "forbid", "reason": "JobAlreadyActive"}.AsSelector().String()})
		if err != nil || len(evs.Items) == 0 {
			return fmt.Errorf("no JobAlreadyActive event for forbid: %v", err)
		}
		return nil
	})
	if jobs := c.cronJobJobs(ns, "forbid"); len(jobs) != 1 || jobs[0].Name != first.Name {
		t.Errorf("forbid ran again while its Job was active: %d jobs", len(jobs))
	}
	c.eventually(100*time.Second, func() error {
		cj, err := c.client.BatchV1().CronJobs(ns).Get(context.Background(), "allow", metav1.GetOptions{})
		if err != nil || cj.Status.LastSuccessfulTime == nil {
			return fmt.Errorf("allow: %v %+v", err, cj.Status)
		}
		jobs := c.cronJobJobs(ns, "allow")
		complete := 0
		for _, j := range jobs {
			for _, cond := range j.Status.Conditions {
				if cond.Type == batchv1.JobComplete && cond.Status == corev1.ConditionTrue {
					complete++
				}
			}
		}
		// Two runs happened (the schedule moved on), one complete Job kept.
		if cj.Status.LastScheduleTime == nil || !cj.Status.LastScheduleTime.After(first.CreationTimestamp.Time) || complete != 1 || len(jobs) > 2 {
			return fmt.Errorf("allow: last schedule %v, %d jobs, %d complete", cj.Status.LastScheduleTime, len(jobs), complete)
		}
		return nil
	})
	out = c.must("get", "cronjob", "forbid", "-n", ns)
	// NAME, the five schedule fields, TIMEZONE, SUSPEND, ACTIVE, ...
	if row := strings.Fields(strings.Split(out, "\n")[1]); len(row) < 9 || strings.Join(row[1:6], " ") != "* * * * *" ||
		row[6] != "Etc/UTC" || row[7] != "False" || row[8] != "1" {
		t.Errorf("kubectl get cronjob forbid:\n%s", out)
	}

	// Stop the schedules and their Jobs, so nothing starts pods while the
	// cluster is torn down.
	c.must("delete", "cronjobs", "--all", "-n", ns, "--wait=true", "--timeout=60s")
	c.must("delete", "jobs", "--all", "-n", ns, "--cascade=foreground", "--wait=true", "--timeout=90s")
	c.eventually(90*time.Second, func() error {
		l, err := c.client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil || len(l.Items) > 0 {
			return fmt.Errorf("pods left after the CronJobs' Jobs were deleted: %v %d", err, len(l.Items))
		}
		return nil
	})
}
