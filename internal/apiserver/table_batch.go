package apiserver

import (
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
)

var jobSelectorColumn = metav1.TableColumnDefinition{Name: "Selector", Type: "string", Priority: 1, Description: "A label query over pods that should match the pod count."}

// jobTable: NAME STATUS COMPLETIONS DURATION AGE, wide adds CONTAINERS
// IMAGES SELECTOR (kubectl's printJob).
var jobTable = funcTable{
	cols: []metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Status", Type: "string", Description: "Status of the job."},
		{Name: "Completions", Type: "string", Description: "The desired number of successfully finished pods the job should be run with."},
		{Name: "Duration", Type: "string", Description: "Time required to complete the job."},
		ageColumn, containersColumn, imagesColumn, jobSelectorColumn,
	},
	cells: func(obj runtime.Object, now time.Time) []interface{} {
		j := obj.(*batchv1.Job)
		names, images := containerSummary(&j.Spec.Template.Spec)
		return []interface{}{j.Name, jobStatusWord(j), jobCompletions(j), jobDuration(j, now), age(j.CreationTimestamp, now),
			names, images, labelSelectorOrNone(j.Spec.Selector)}
	},
}

// cronJobTable: NAME SCHEDULE TIMEZONE SUSPEND ACTIVE LAST SCHEDULE AGE,
// wide adds CONTAINERS IMAGES SELECTOR (kubectl's printCronJob).
var cronJobTable = funcTable{
	cols: []metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Schedule", Type: "string", Description: "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."},
		{Name: "Timezone", Type: "string", Description: "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones."},
		{Name: "Suspend", Type: "boolean", Description: "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions.  Defaults to false."},
		{Name: "Active", Type: "integer", Description: "A list of pointers to currently running jobs."},
		{Name: "Last Schedule", Type: "string", Description: "Information when was the last time the job was successfully scheduled."},
		ageColumn, containersColumn, imagesColumn, jobSelectorColumn,
	},
	cells: func(obj runtime.Object, now time.Time) []interface{} {
		cj := obj.(*batchv1.CronJob)
		names, images := containerSummary(&cj.Spec.JobTemplate.Spec.Template.Spec)
		last := "<none>"
		if cj.Status.LastScheduleTime != nil {
			last = age(*cj.Status.LastScheduleTime, now)
		}
		tz := "<none>"
		if cj.Spec.TimeZone != nil {
			tz = *cj.Spec.TimeZone
		}
		suspend := "<unset>"
		if cj.Spec.Suspend != nil {
			suspend = "False"
			if *cj.Spec.Suspend {
				suspend = "True"
			}
		}
		return []interface{}{cj.Name, cj.Spec.Schedule, tz, suspend, int64(len(cj.Status.Active)), last, age(cj.CreationTimestamp, now),
			names, images, labelSelectorOrNone(cj.Spec.JobTemplate.Spec.Selector)}
	},
}

func labelSelectorOrNone(ls *metav1.LabelSelector) string {
	if ls == nil {
		return "<none>"
	}
	return metav1.FormatLabelSelector(ls)
}

func jobHasCondition(j *batchv1.Job, t batchv1.JobConditionType) bool {
	for _, c := range j.Status.Conditions {
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// jobStatusWord is kubectl's STATUS column of a Job.
func jobStatusWord(j *batchv1.Job) string {
	switch {
	case jobHasCondition(j, batchv1.JobComplete):
		return "Complete"
	case jobHasCondition(j, batchv1.JobFailed):
		return "Failed"
	case j.DeletionTimestamp != nil:
		return "Terminating"
	case jobHasCondition(j, batchv1.JobSuspended):
		return "Suspended"
	case jobHasCondition(j, batchv1.JobFailureTarget):
		return "FailureTarget"
	case jobHasCondition(j, batchv1.JobSuccessCriteriaMet):
		return "SuccessCriteriaMet"
	}
	return "Running"
}

func jobCompletions(j *batchv1.Job) string {
	if j.Spec.Completions != nil {
		return fmt.Sprintf("%d/%d", j.Status.Succeeded, *j.Spec.Completions)
	}
	if p := valueOr32(j.Spec.Parallelism, 0); p > 1 {
		return fmt.Sprintf("%d/1 of %d", j.Status.Succeeded, p)
	}
	return fmt.Sprintf("%d/1", j.Status.Succeeded)
}

func jobDuration(j *batchv1.Job, now time.Time) string {
	switch {
	case j.Status.StartTime == nil:
		return ""
	case j.Status.CompletionTime == nil:
		return duration.HumanDuration(now.Sub(j.Status.StartTime.Time))
	}
	return duration.HumanDuration(j.Status.CompletionTime.Sub(j.Status.StartTime.Time))
}
