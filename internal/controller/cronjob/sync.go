package cronjob

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"

	"github.com/peapod/peapod/internal/controller/ctrlutil"
)

// ScheduledTimestampAnnotation records on a Job the schedule time it was
// created for.
const ScheduledTimestampAnnotation = "batch.kubernetes.io/cronjob-scheduled-timestamp"

// sync reconciles the CronJob under key; see the package documentation.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	cached, err := c.cronJobs.CronJobs(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	cj := cached.DeepCopy()
	all, err := c.jobs.Jobs(ns).List(labels.Everything())
	if err != nil {
		return err
	}
	var jobs []*batchv1.Job
	for _, j := range all {
		if ref := metav1.GetControllerOf(j); ref != nil && ref.UID == cj.UID {
			jobs = append(jobs, j)
		}
	}
	orig := cj.Status.DeepCopy()
	c.syncActive(ctx, cj, jobs)
	next, err := c.schedule(ctx, cj)
	var errs []error
	errs = append(errs, err)
	if !apiequality.Semantic.DeepEqual(orig, &cj.Status) {
		out, err := c.client.BatchV1().CronJobs(ns).UpdateStatus(ctx, cj, metav1.UpdateOptions{})
		if err != nil {
			return errors.Join(append(errs, fmt.Errorf("update status of cronjob %s: %w", key, err))...)
		}
		cj = out
	}
	errs = append(errs, c.cleanupHistory(ctx, cj, jobs))
	if next > 0 {
		c.queue.AddAfter(key, next)
	}
	return errors.Join(errs...)
}

// syncActive brings status.active and lastSuccessfulTime up to date with
// the CronJob's Jobs.
func (c *Controller) syncActive(ctx context.Context, cj *batchv1.CronJob, jobs []*batchv1.Job) {
	byUID := map[string]*batchv1.Job{}
	for _, j := range jobs {
		byUID[string(j.UID)] = j
		cond := finished(j)
		active := inActive(cj, j)
		switch {
		case !active && cond == "":
			c.recorder.Eventf(cj, v1.EventTypeWarning, "UnexpectedJob", "Saw a job that the controller did not create or forgot: %s", j.Name)
		case active && cond != "":
			removeActive(cj, string(j.UID))
			c.recorder.Eventf(cj, v1.EventTypeNormal, "SawCompletedJob", "Saw completed job: %s, condition: %v", j.Name, cond)
		}
		if cond == batchv1.JobComplete && j.Status.CompletionTime != nil &&
			(cj.Status.LastSuccessfulTime == nil || j.Status.CompletionTime.After(cj.Status.LastSuccessfulTime.Time)) {
			t := *j.Status.CompletionTime
			cj.Status.LastSuccessfulTime = &t
		}
	}
	for _, ref := range append([]v1.ObjectReference(nil), cj.Status.Active...) {
		if byUID[string(ref.UID)] != nil {
			continue
		}
		// Not in the cache: ask the API before forgetting it.
		j, err := c.client.BatchV1().Jobs(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || (err == nil && j.UID != ref.UID) {
			removeActive(cj, string(ref.UID))
			c.recorder.Eventf(cj, v1.EventTypeNormal, "MissingJob", "Active job went missing: %v", ref.Name)
		}
	}
}

// schedule creates the Job of the most recent schedule time not yet run,
// as the CronJob's policies allow, and returns when to look again (0:
// only on a change).
func (c *Controller) schedule(ctx context.Context, cj *batchv1.CronJob) (time.Duration, error) {
	if cj.DeletionTimestamp != nil || (cj.Spec.Suspend != nil && *cj.Spec.Suspend) {
		return 0, nil
	}
	sched, err := parseSchedule(cj)
	if err != nil {
		c.recorder.Eventf(cj, v1.EventTypeWarning, "UnparseableSchedule", "unparseable schedule: %q : %s", cj.Spec.Schedule, err)
		return 0, nil // the API refuses such schedules; an edit requeues
	}
	now := c.clock.Now()
	next := sched.Next(now).Sub(now) + nextScheduleDelta
	t, missed := mostRecentSchedule(cj, sched, now)
	if t == nil {
		return next, nil
	}
	if missed > tooManyMissed {
		c.recorder.Eventf(cj, v1.EventTypeWarning, "TooManyMissedTimes", "too many missed start times: %d. Set or decrease .spec.startingDeadlineSeconds or check clock skew", missed)
	}
	if d := cj.Spec.StartingDeadlineSeconds; d != nil && t.Add(time.Duration(*d)*time.Second).Before(now) {
		c.recorder.Eventf(cj, v1.EventTypeWarning, "MissSchedule", "Missed scheduled time to start a job: %s", t.UTC().Format(time.RFC1123Z))
		return next, nil
	}
	name := jobName(cj, *t)
	for _, ref := range cj.Status.Active {
		if ref.Name == name {
			return next, nil // this time already ran
		}
	}
	if cj.Status.LastScheduleTime != nil && cj.Status.LastScheduleTime.Time.Equal(*t) {
		return next, nil
	}
	switch cj.Spec.ConcurrencyPolicy {
	case batchv1.ForbidConcurrent:
		if len(cj.Status.Active) > 0 {
			c.recorder.Eventf(cj, v1.EventTypeNormal, "JobAlreadyActive", "Not starting job because prior execution is running and concurrency policy is Forbid")
			return next, nil
		}
	case batchv1.ReplaceConcurrent:
		for _, ref := range append([]v1.ObjectReference(nil), cj.Status.Active...) {
			bg := metav1.DeletePropagationBackground
			err := c.client.BatchV1().Jobs(ref.Namespace).Delete(ctx, ref.Name, metav1.DeleteOptions{PropagationPolicy: &bg})
			if err != nil && !apierrors.IsNotFound(err) {
				c.recorder.Eventf(cj, v1.EventTypeWarning, "FailedDelete", "Deleted job: %v", err)
				return 0, fmt.Errorf("replace job %s/%s: %w", ref.Namespace, ref.Name, err)
			}
			removeActive(cj, string(ref.UID))
			c.recorder.Eventf(cj, v1.EventTypeNormal, "SuccessfulDelete", "Deleted job %v", ref.Name)
		}
	}
	job, err := c.client.BatchV1().Jobs(cj.Namespace).Create(ctx, newJob(cj, name, *t), metav1.CreateOptions{})
	switch {
	case apierrors.IsAlreadyExists(err):
		// Created by an earlier sync whose status update was lost: adopt
		// it into the status if it is ours.
		existing, gerr := c.client.BatchV1().Jobs(cj.Namespace).Get(ctx, name, metav1.GetOptions{})
		if gerr != nil {
			return 0, gerr
		}
		if ref := metav1.GetControllerOf(existing); ref == nil || ref.UID != cj.UID {
			return next, nil
		}
		job = existing
	case err != nil:
		c.recorder.Eventf(cj, v1.EventTypeWarning, "FailedCreate", "Error creating job: %v", err)
		return 0, fmt.Errorf("create job %s/%s: %w", cj.Namespace, name, err)
	default:
		c.recorder.Eventf(cj, v1.EventTypeNormal, "SuccessfulCreate", "Created job %v", job.Name)
	}
	if finished(job) == "" && !inActive(cj, job) {
		cj.Status.Active = append(cj.Status.Active, v1.ObjectReference{
			Kind: "Job", APIVersion: "batch/v1", Namespace: job.Namespace, Name: job.Name, UID: job.UID, ResourceVersion: job.ResourceVersion,
		})
	}
	st := metav1.NewTime(*t)
	cj.Status.LastScheduleTime = &st
	return next, nil
}

// newJob builds the Job of one schedule time from the CronJob's template.
func newJob(cj *batchv1.CronJob, name string, t time.Time) *batchv1.Job {
	tmpl := cj.Spec.JobTemplate.DeepCopy()
	j := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: cj.Namespace,
			Labels: tmpl.Labels, Annotations: tmpl.Annotations,
			OwnerReferences: []metav1.OwnerReference{*ctrlutil.NewControllerRef(cj, kind)},
		},
		Spec: tmpl.Spec,
	}
	if j.Annotations == nil {
		j.Annotations = map[string]string{}
	}
	loc := time.Local
	if tz := cj.Spec.TimeZone; tz != nil {
		if l, err := time.LoadLocation(*tz); err == nil {
			loc = l
		}
	}
	j.Annotations[ScheduledTimestampAnnotation] = t.In(loc).Format(time.RFC3339)
	return j
}

// cleanupHistory deletes the oldest finished Jobs beyond the history
// limits.
func (c *Controller) cleanupHistory(ctx context.Context, cj *batchv1.CronJob, jobs []*batchv1.Job) error {
	var succeeded, failed []*batchv1.Job
	for _, j := range jobs {
		switch finished(j) {
		case batchv1.JobComplete:
			succeeded = append(succeeded, j)
		case batchv1.JobFailed:
			failed = append(failed, j)
		}
	}
	var errs []error
	for _, set := range []struct {
		jobs  []*batchv1.Job
		limit *int32
	}{{succeeded, cj.Spec.SuccessfulJobsHistoryLimit}, {failed, cj.Spec.FailedJobsHistoryLimit}} {
		if set.limit == nil || len(set.jobs) <= int(*set.limit) {
			continue
		}
		sort.Slice(set.jobs, func(a, b int) bool { return olderJob(set.jobs[a], set.jobs[b]) })
		for _, j := range set.jobs[:len(set.jobs)-int(*set.limit)] {
			bg := metav1.DeletePropagationBackground
			err := c.client.BatchV1().Jobs(j.Namespace).Delete(ctx, j.Name, metav1.DeleteOptions{PropagationPolicy: &bg})
			if err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("delete old job %s/%s: %w", j.Namespace, j.Name, err))
				continue
			}
			c.recorder.Eventf(cj, v1.EventTypeNormal, "SuccessfulDelete", "Deleted job %v", j.Name)
		}
	}
	return errors.Join(errs...)
}

// olderJob orders Jobs by start time (unstarted last), then name.
func olderJob(a, b *batchv1.Job) bool {
	sa, sb := a.Status.StartTime, b.Status.StartTime
	switch {
	case sa == nil && sb != nil:
		return false
	case sa != nil && sb == nil:
		return true
	case sa != nil && sb != nil && !sa.Equal(sb):
		return sa.Before(sb)
	}
	return a.Name < b.Name
}

// finished returns the Job's true Complete or Failed condition type, or "".
func finished(j *batchv1.Job) batchv1.JobConditionType {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == v1.ConditionTrue {
			return c.Type
		}
	}
	return ""
}

func inActive(cj *batchv1.CronJob, j *batchv1.Job) bool {
	for _, ref := range cj.Status.Active {
		if ref.UID == j.UID {
			return true
		}
	}
	return false
}

func removeActive(cj *batchv1.CronJob, uid string) {
	out := cj.Status.Active[:0:0]
	for _, ref := range cj.Status.Active {
		if string(ref.UID) != uid {
			out = append(out, ref)
		}
	}
	cj.Status.Active = out
}
