package apiserver

import (
	"fmt"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func batch(resource string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: resource}
}

// batchResources registers batch/v1 Jobs and CronJobs with their status
// subresources, defaulted, validated and with the generated selector of
// kube-apiserver's job strategy. Their controllers live in
// internal/controller/job and internal/controller/cronjob.
func batchResources() []*Resource {
	all := []string{"all"}
	return []*Resource{
		{
			GVR: batch("jobs"), Kind: "Job", Singular: "job", Namespaced: true,
			Categories: all, Status: true, Table: jobTable,
			New:     func() runtime.Object { return &batchv1.Job{} },
			NewList: func() runtime.Object { return &batchv1.JobList{} },
			Strategy: Strategy{
				PrepareForCreate: func(obj runtime.Object) {
					j := obj.(*batchv1.Job)
					j.Status = batchv1.JobStatus{}
					if j.Spec.ManualSelector == nil || !*j.Spec.ManualSelector {
						generateJobSelector(j)
					}
					DefaultJob(j)
				},
				PrepareForUpdate: func(obj, _ runtime.Object) { DefaultJob(obj.(*batchv1.Job)) },
				Validate:         func(obj runtime.Object) field.ErrorList { return ValidateJob(obj.(*batchv1.Job)) },
				ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
					return ValidateJobUpdate(obj.(*batchv1.Job), old.(*batchv1.Job))
				},
			},
			Fields: func(obj runtime.Object) fields.Set {
				return fields.Set{"status.successful": fmt.Sprint(obj.(*batchv1.Job).Status.Succeeded)}
			},
		},
		{
			GVR: batch("cronjobs"), Kind: "CronJob", Singular: "cronjob", Namespaced: true,
			ShortNames: []string{"cj"}, Categories: all, Status: true, Table: cronJobTable,
			New:     func() runtime.Object { return &batchv1.CronJob{} },
			NewList: func() runtime.Object { return &batchv1.CronJobList{} },
			Strategy: Strategy{
				PrepareForCreate: func(obj runtime.Object) {
					cj := obj.(*batchv1.CronJob)
					cj.Status = batchv1.CronJobStatus{}
					DefaultCronJob(cj)
				},
				PrepareForUpdate: func(obj, _ runtime.Object) { DefaultCronJob(obj.(*batchv1.CronJob)) },
				Validate:         func(obj runtime.Object) field.ErrorList { return ValidateCronJob(obj.(*batchv1.CronJob)) },
			},
		},
	}
}

// generateJobSelector labels the template with the Job's name and UID
// (legacy and batch.kubernetes.io/ keys) and selects the UID, as
// kube-apiserver's job strategy does; a label the user set is kept, and
// validation refuses it if it does not match. Needs metadata.uid.
func generateJobSelector(j *batchv1.Job) {
	t := &j.Spec.Template
	if t.Labels == nil {
		t.Labels = map[string]string{}
	}
	for _, k := range []string{legacyJobNameLabel, batchv1.JobNameLabel} {
		if _, ok := t.Labels[k]; !ok {
			t.Labels[k] = j.Name
		}
	}
	for _, k := range []string{legacyControllerUIDLabel, batchv1.ControllerUidLabel} {
		if _, ok := t.Labels[k]; !ok {
			t.Labels[k] = string(j.UID)
		}
	}
	if j.Spec.Selector == nil {
		j.Spec.Selector = &metav1.LabelSelector{}
	}
	if j.Spec.Selector.MatchLabels == nil {
		j.Spec.Selector.MatchLabels = map[string]string{}
	}
	if _, ok := j.Spec.Selector.MatchLabels[batchv1.ControllerUidLabel]; !ok {
		j.Spec.Selector.MatchLabels[batchv1.ControllerUidLabel] = string(j.UID)
	}
}

// DefaultJob applies batch/v1 defaults (SetDefaults_Job): completions and
// parallelism 1 when neither is set, else parallelism 1; backoffLimit 6
// (MaxInt32 with backoffLimitPerIndex); completionMode NonIndexed; suspend
// false; podReplacementPolicy Failed with a podFailurePolicy, else
// TerminatingOrFailed; onPodConditions status True; the Job's labels from
// the template's when it has none; the template's pod defaults. Pure and
// idempotent.
func DefaultJob(j *batchv1.Job) {
	defaultJobSpec(&j.Spec)
	if len(j.Labels) == 0 && len(j.Spec.Template.Labels) > 0 {
		j.Labels = copyLabels(j.Spec.Template.Labels)
	}
}

func defaultJobSpec(s *batchv1.JobSpec) {
	if s.Completions == nil && s.Parallelism == nil {
		s.Completions, s.Parallelism = int32p(1), int32p(1)
	}
	if s.Parallelism == nil {
		s.Parallelism = int32p(1)
	}
	if s.BackoffLimit == nil {
		if s.BackoffLimitPerIndex != nil {
			s.BackoffLimit = int32p(1<<31 - 1)
		} else {
			s.BackoffLimit = int32p(6)
		}
	}
	if s.CompletionMode == nil {
		m := batchv1.NonIndexedCompletion
		s.CompletionMode = &m
	}
	if s.Suspend == nil {
		f := false
		s.Suspend = &f
	}
	if p := s.PodFailurePolicy; p != nil {
		for i := range p.Rules {
			for k := range p.Rules[i].OnPodConditions {
				if p.Rules[i].OnPodConditions[k].Status == "" {
					p.Rules[i].OnPodConditions[k].Status = "True"
				}
			}
		}
	}
	if s.PodReplacementPolicy == nil {
		r := batchv1.TerminatingOrFailed
		if s.PodFailurePolicy != nil {
			r = batchv1.Failed
		}
		s.PodReplacementPolicy = &r
	}
	DefaultPodTemplate(&s.Template)
}

// DefaultCronJob applies batch/v1 defaults (SetDefaults_CronJob):
// concurrencyPolicy Allow, suspend false, history limits 3 successful and
// 1 failed, and the job template's pod defaults. Pure and idempotent.
func DefaultCronJob(cj *batchv1.CronJob) {
	s := &cj.Spec
	if s.ConcurrencyPolicy == "" {
		s.ConcurrencyPolicy = batchv1.AllowConcurrent
	}
	if s.Suspend == nil {
		f := false
		s.Suspend = &f
	}
	if s.SuccessfulJobsHistoryLimit == nil {
		s.SuccessfulJobsHistoryLimit = int32p(3)
	}
	if s.FailedJobsHistoryLimit == nil {
		s.FailedJobsHistoryLimit = int32p(1)
	}
	DefaultPodTemplate(&s.JobTemplate.Spec.Template)
}

// The labels Jobs put on their pods before the batch.kubernetes.io/ ones,
// which kube-apiserver still generates (k8s.io/api has no constants for
// them).
const (
	legacyJobNameLabel       = "job-name"
	legacyControllerUIDLabel = "controller-uid"
)
