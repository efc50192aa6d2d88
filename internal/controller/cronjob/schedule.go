package cronjob

import (
	"fmt"
	"time"

	"github.com/robfig/cron/v3"
	batchv1 "k8s.io/api/batch/v1"
)

// nextScheduleDelta is added to a requeue so the sync lands just after
// the schedule time, not just before it (Kubernetes adds the same).
const nextScheduleDelta = 100 * time.Millisecond

// tooManyMissed is where Kubernetes starts warning about missed runs.
const tooManyMissed = 100

// parseSchedule parses the CronJob's schedule in its time zone (the
// server's own without one, as kube-controller-manager).
func parseSchedule(cj *batchv1.CronJob) (cron.Schedule, error) {
	spec := cj.Spec.Schedule
	if tz := cj.Spec.TimeZone; tz != nil {
		if _, err := time.LoadLocation(*tz); err != nil {
			return nil, fmt.Errorf("unknown time zone %q: %w", *tz, err)
		}
		spec = "CRON_TZ=" + *tz + " " + spec
	}
	return cron.ParseStandard(spec)
}

// mostRecentSchedule returns the latest schedule time in (earliest, now],
// where earliest is the last schedule time (else the creation time) or,
// if later, now minus startingDeadlineSeconds; nil when none. missed
// counts the schedule times passed over. Pure.
func mostRecentSchedule(cj *batchv1.CronJob, sched cron.Schedule, now time.Time) (t *time.Time, missed int) {
	earliest := cj.CreationTimestamp.Time
	if cj.Status.LastScheduleTime != nil {
		earliest = cj.Status.LastScheduleTime.Time
	}
	if d := cj.Spec.StartingDeadlineSeconds; d != nil {
		if deadline := now.Add(-time.Duration(*d) * time.Second); deadline.After(earliest) {
			earliest = deadline
		}
	}
	next := sched.Next(earliest)
	if next.IsZero() || next.After(now) {
		return nil, 0
	}
	last := next
	for n := sched.Next(last); !n.IsZero() && !n.After(now); n = sched.Next(n) {
		last = n
		missed++
		if missed > 1_000_000 { // a schedule decades behind: stop counting
			break
		}
	}
	return &last, missed
}

// jobName is the name of the Job for one schedule time: the CronJob's
// name and the minutes since the epoch, so one schedule time makes at
// most one Job.
func jobName(cj *batchv1.CronJob, t time.Time) string {
	return fmt.Sprintf("%s-%d", cj.Name, t.Unix()/60)
}
