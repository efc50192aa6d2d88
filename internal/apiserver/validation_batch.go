package apiserver

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Limits kube-apiserver puts on Jobs and CronJobs.
const (
	maxIndexedJobCompletions = 100000
	maxPodFailurePolicyRules = 20
	maxExitCodeValues        = 255
	maxSuccessPolicyRules    = 20
	// cronJobNameMax leaves room for the 11-character suffix the CronJob
	// controller appends to its Jobs' names.
	cronJobNameMax = 52
)

var validTimeZoneCharacters = regexp.MustCompile(`^[A-Za-z\.\-_0-9+]{1,14}$`)

// ValidateJob returns every failure of a defaulted Job: the generated
// selector, the spec (ValidateJobSpec) and its template as a pod. Pure.
func ValidateJob(j *batchv1.Job) field.ErrorList {
	errs := validateGeneratedSelector(j)
	errs = append(errs, validateJobSpec(&j.Spec, specPath, true)...)
	if j.Spec.CompletionMode != nil && *j.Spec.CompletionMode == batchv1.IndexedCompletion {
		// Indexed pods are named and hostnamed <job>-<index>.
		for _, msg := range validation.IsDNS1123Label(j.Name + "-0") {
			errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), j.Name, "for an Indexed Job the name must make valid pod hostnames: "+msg))
		}
	}
	return errs
}

// validateGeneratedSelector checks that a Job without manualSelector
// carries the labels kube-apiserver generated (ValidateGeneratedSelector).
func validateGeneratedSelector(j *batchv1.Job) field.ErrorList {
	if (j.Spec.ManualSelector != nil && *j.Spec.ManualSelector) || j.Spec.Selector == nil {
		return nil
	}
	var errs field.ErrorList
	tp := specPath.Child("template", "metadata", "labels")
	want := map[string]string{
		legacyControllerUIDLabel: string(j.UID), legacyJobNameLabel: j.Name,
		batchv1.ControllerUidLabel: string(j.UID), batchv1.JobNameLabel: j.Name,
	}
	for _, k := range []string{legacyControllerUIDLabel, legacyJobNameLabel, batchv1.ControllerUidLabel, batchv1.JobNameLabel} {
		if v, ok := j.Spec.Template.Labels[k]; !ok {
			errs = append(errs, field.Required(tp.Key(k), fmt.Sprintf("must be '%s'", want[k])))
		} else if v != want[k] {
			errs = append(errs, field.Invalid(tp.Key(k), v, fmt.Sprintf("must be '%s'", want[k])))
		}
	}
	if sel, err := metav1.LabelSelectorAsSelector(j.Spec.Selector); err == nil && !sel.Matches(labels.Set(want)) {
		errs = append(errs, field.Invalid(specPath.Child("selector"), j.Spec.Selector, "`selector` not auto-generated"))
	}
	return errs
}

// validateJobSpec checks a defaulted JobSpec under p; withSelector says
// the selector must be present and match the template (a Job), where a
// CronJob's job template must leave it to be generated.
func validateJobSpec(s *batchv1.JobSpec, p *field.Path, withSelector bool) field.ErrorList {
	var errs field.ErrorList
	errs = append(errs, nonNegative(p.Child("parallelism"), s.Parallelism)...)
	errs = append(errs, nonNegative(p.Child("completions"), s.Completions)...)
	errs = append(errs, nonNegative(p.Child("backoffLimit"), s.BackoffLimit)...)
	errs = append(errs, nonNegative(p.Child("ttlSecondsAfterFinished"), s.TTLSecondsAfterFinished)...)
	if s.ActiveDeadlineSeconds != nil && *s.ActiveDeadlineSeconds <= 0 {
		errs = append(errs, field.Invalid(p.Child("activeDeadlineSeconds"), *s.ActiveDeadlineSeconds, "must be greater than 0"))
	}
	if s.BackoffLimitPerIndex != nil || s.MaxFailedIndexes != nil {
		errs = append(errs, field.Forbidden(p.Child("backoffLimitPerIndex"), unsupportedMsg))
	}
	if s.ManagedBy != nil && *s.ManagedBy != batchv1.JobControllerName {
		if msgs := validation.IsDomainPrefixedPath(p.Child("managedBy"), *s.ManagedBy); len(msgs) > 0 {
			errs = append(errs, msgs...)
		}
	}
	indexed := false
	if s.CompletionMode != nil {
		switch *s.CompletionMode {
		case batchv1.NonIndexedCompletion:
		case batchv1.IndexedCompletion:
			indexed = true
		default:
			errs = append(errs, field.NotSupported(p.Child("completionMode"), *s.CompletionMode,
				[]string{string(batchv1.NonIndexedCompletion), string(batchv1.IndexedCompletion)}))
		}
	}
	if indexed {
		if s.Completions == nil {
			errs = append(errs, field.Required(p.Child("completions"), fmt.Sprintf("when completion mode is %s", batchv1.IndexedCompletion)))
		} else if *s.Completions > maxIndexedJobCompletions {
			errs = append(errs, field.Invalid(p.Child("completions"), *s.Completions, fmt.Sprintf("must be less than or equal to %d when completion mode is %s", maxIndexedJobCompletions, batchv1.IndexedCompletion)))
		}
		if s.Parallelism != nil && *s.Parallelism > maxIndexedJobCompletions {
			errs = append(errs, field.Invalid(p.Child("parallelism"), *s.Parallelism, fmt.Sprintf("must be less than or equal to %d when completion mode is %s", maxIndexedJobCompletions, batchv1.IndexedCompletion)))
		}
	}
	if s.PodReplacementPolicy != nil {
		switch *s.PodReplacementPolicy {
		case batchv1.TerminatingOrFailed:
			if s.PodFailurePolicy != nil {
				errs = append(errs, field.NotSupported(p.Child("podReplacementPolicy"), *s.PodReplacementPolicy, []string{string(batchv1.Failed)}))
			}
		case batchv1.Failed:
		default:
			errs = append(errs, field.NotSupported(p.Child("podReplacementPolicy"), *s.PodReplacementPolicy,
				[]string{string(batchv1.TerminatingOrFailed), string(batchv1.Failed)}))
		}
	}
	errs = append(errs, validatePodFailurePolicy(s, p.Child("podFailurePolicy"))...)
	errs = append(errs, validateSuccessPolicy(s, indexed, p.Child("successPolicy"))...)
	errs = append(errs, validateJobTemplate(&s.Template, p.Child("template"))...)
	if !withSelector {
		if s.Selector != nil {
			errs = append(errs, field.Invalid(p.Child("selector"), s.Selector, "`selector` will be auto-generated"))
		}
		if s.ManualSelector != nil && *s.ManualSelector {
			errs = append(errs, field.NotSupported(p.Child("manualSelector"), s.ManualSelector, []string{"nil", "false"}))
		}
		return errs
	}
	if s.Selector == nil {
		return append(errs, field.Required(p.Child("selector"), ""))
	}
	sel, err := metav1.LabelSelectorAsSelector(s.Selector)
	if err != nil {
		return append(errs, field.Invalid(p.Child("selector"), s.Selector, err.Error()))
	}
	errs = append(errs, validateLabels(p.Child("selector", "matchLabels"), s.Selector.MatchLabels)...)
	if !sel.Matches(labels.Set(s.Template.Labels)) {
		errs = append(errs, field.Invalid(p.Child("template", "metadata", "labels"), s.Template.Labels, "`selector` does not match template `labels`"))
	}
	return errs
}

// validateJobTemplate validates a Job's pod template as a pod, with field
// paths under p, and allows only restartPolicy OnFailure or Never.
func validateJobTemplate(t *corev1.PodTemplateSpec, p *field.Path) field.ErrorList {
	errs := validateLabels(p.Child("metadata", "labels"), t.Labels)
	for _, e := range ValidatePod(&corev1.Pod{ObjectMeta: t.ObjectMeta, Spec: t.Spec}) {
		e.Field = p.String() + "." + e.Field
		errs = append(errs, e)
	}
	if len(t.Spec.EphemeralContainers) > 0 {
		errs = append(errs, field.Forbidden(p.Child("spec", "ephemeralContainers"), "ephemeral containers not allowed in pod template"))
	}
	if rp := t.Spec.RestartPolicy; rp != corev1.RestartPolicyOnFailure && rp != corev1.RestartPolicyNever {
		errs = append(errs, field.NotSupported(p.Child("spec", "restartPolicy"), rp,
			[]string{string(corev1.RestartPolicyOnFailure), string(corev1.RestartPolicyNever)}))
	}
	return errs
}

// validatePodFailurePolicy checks the rules as kube-apiserver does.
func validatePodFailurePolicy(s *batchv1.JobSpec, p *field.Path) field.ErrorList {
	pfp := s.PodFailurePolicy
	if pfp == nil {
		return nil
	}
	var errs field.ErrorList
	if rp := s.Template.Spec.RestartPolicy; rp != corev1.RestartPolicyNever {
		errs = append(errs, field.NotSupported(specPath.Child("template", "spec", "restartPolicy"), rp, []string{string(corev1.RestartPolicyNever)}))
	}
	rulesPath := p.Child("rules")
	if len(pfp.Rules) > maxPodFailurePolicyRules {
		errs = append(errs, field.TooMany(rulesPath, len(pfp.Rules), maxPodFailurePolicyRules))
	}
	containers := sets.New[string]()
	for _, c := range s.Template.Spec.Containers {
		containers.Insert(c.Name)
	}
	for _, c := range s.Template.Spec.InitContainers {
		containers.Insert(c.Name)
	}
	actions := []string{string(batchv1.PodFailurePolicyActionFailJob), string(batchv1.PodFailurePolicyActionFailIndex),
		string(batchv1.PodFailurePolicyActionIgnore), string(batchv1.PodFailurePolicyActionCount)}
	for i, r := range pfp.Rules {
		rp := rulesPath.Index(i)
		switch r.Action {
		case batchv1.PodFailurePolicyActionFailJob, batchv1.PodFailurePolicyActionIgnore, batchv1.PodFailurePolicyActionCount:
		case batchv1.PodFailurePolicyActionFailIndex:
			errs = append(errs, field.Invalid(rp.Child("action"), r.Action, "requires the backoffLimitPerIndex to be set"))
		default:
			errs = append(errs, field.NotSupported(rp.Child("action"), r.Action, actions))
		}
		switch {
		case r.OnExitCodes != nil && len(r.OnPodConditions) > 0:
			errs = append(errs, field.Invalid(rp, field.OmitValueType{}, "specifying both OnExitCodes and OnPodConditions is not supported"))
		case r.OnExitCodes == nil && len(r.OnPodConditions) == 0:
			errs = append(errs, field.Invalid(rp, field.OmitValueType{}, "specifying one of OnExitCodes and OnPodConditions is required"))
		}
		if ec := r.OnExitCodes; ec != nil {
			ep := rp.Child("onExitCodes")
			if ec.ContainerName != nil && !containers.Has(*ec.ContainerName) {
				errs = append(errs, field.Invalid(ep.Child("containerName"), *ec.ContainerName, "must be one of the container or initContainer names in the pod template"))
			}
			if ec.Operator != batchv1.PodFailurePolicyOnExitCodesOpIn && ec.Operator != batchv1.PodFailurePolicyOnExitCodesOpNotIn {
				errs = append(errs, field.NotSupported(ep.Child("operator"), ec.Operator,
					[]string{string(batchv1.PodFailurePolicyOnExitCodesOpIn), string(batchv1.PodFailurePolicyOnExitCodesOpNotIn)}))
			}
			vp := ep.Child("values")
			switch {
			case len(ec.Values) == 0:
				errs = append(errs, field.Invalid(vp, ec.Values, "at least one value is required"))
			case len(ec.Values) > maxExitCodeValues:
				errs = append(errs, field.TooMany(vp, len(ec.Values), maxExitCodeValues))
			}
			for j, v := range ec.Values {
				if v == 0 && ec.Operator == batchv1.PodFailurePolicyOnExitCodesOpIn {
					errs = append(errs, field.Invalid(vp.Index(j), v, "must not be 0 for the In operator"))
				}
				if j > 0 && ec.Values[j-1] == v {
					errs = append(errs, field.Duplicate(vp.Index(j), v))
				} else if j > 0 && ec.Values[j-1] > v {
					errs = append(errs, field.Invalid(vp.Index(j), v, "must be ordered"))
				}
			}
		}
		for j, c := range r.OnPodConditions {
			cp := rp.Child("onPodConditions").Index(j)
			if c.Type == "" {
				errs = append(errs, field.Required(cp.Child("type"), ""))
			}
			for _, msg := range validation.IsQualifiedName(string(c.Type)) {
				if c.Type != "" {
					errs = append(errs, field.Invalid(cp.Child("type"), c.Type, msg))
				}
			}
			if !slices.Contains([]corev1.ConditionStatus{corev1.ConditionTrue, corev1.ConditionFalse, corev1.ConditionUnknown}, c.Status) {
				errs = append(errs, field.NotSupported(cp.Child("status"), c.Status, []string{"True", "False", "Unknown"}))
			}
		}
	}
	return errs
}

// validateSuccessPolicy checks successPolicy, which only Indexed Jobs may
// have.
func validateSuccessPolicy(s *batchv1.JobSpec, indexed bool, p *field.Path) field.ErrorList {
	sp := s.SuccessPolicy
	if sp == nil {
		return nil
	}
	if !indexed {
		return field.ErrorList{field.Invalid(p, field.OmitValueType{}, "requires indexed completion mode")}
	}
	var errs field.ErrorList
	rp := p.Child("rules")
	if len(sp.Rules) == 0 {
		errs = append(errs, field.Required(rp, "at least one rules must be specified when the successPolicy is specified"))
	}
	if len(sp.Rules) > maxSuccessPolicyRules {
		errs = append(errs, field.TooMany(rp, len(sp.Rules), maxSuccessPolicyRules))
	}
	completions := valueOr32(s.Completions, 0)
	for i, r := range sp.Rules {
		ip := rp.Index(i)
		if r.SucceededIndexes == nil && r.SucceededCount == nil {
			errs = append(errs, field.Required(ip, "at least one of succeededCount or succeededIndexes must be specified"))
		}
		n := completions
		if r.SucceededIndexes != nil {
			ix, err := ParseIndexes(*r.SucceededIndexes, completions)
			if err != nil {
				errs = append(errs, field.Invalid(ip.Child("succeededIndexes"), *r.SucceededIndexes, err.Error()))
			}
			n = int32(len(ix))
		}
		if r.SucceededCount != nil {
			switch {
			case *r.SucceededCount < 0:
				errs = append(errs, field.Invalid(ip.Child("succeededCount"), *r.SucceededCount, "must be greater than or equal to 0"))
			case *r.SucceededCount > n:
				errs = append(errs, field.Invalid(ip.Child("succeededCount"), *r.SucceededCount, fmt.Sprintf("must be less than or equal to %d (the number of indexes in the specified succeededIndexes field)", n)))
			}
		}
	}
	return errs
}

// ParseIndexes parses a set of completion indexes as the Job API writes
// them ("1,3-5,7"), each below completions, in increasing order. Pure.
func ParseIndexes(s string, completions int32) ([]int32, error) {
	var out []int32
	if s == "" {
		return nil, nil
	}
	last := int32(-1)
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		var a, b int32
		if _, err := fmt.Sscanf(lo, "%d", &a); err != nil || fmt.Sprint(a) != lo {
			return nil, fmt.Errorf("cannot convert string to integer for index: %q", lo)
		}
		b = a
		if isRange {
			if _, err := fmt.Sscanf(hi, "%d", &b); err != nil || fmt.Sprint(b) != hi {
				return nil, fmt.Errorf("cannot convert string to integer for index: %q", hi)
			}
			if b <= a {
				return nil, fmt.Errorf("non-increasing order, previous: %d, current: %d", a, b)
			}
		}
		if a <= last {
			return nil, fmt.Errorf("non-increasing order, previous: %d, current: %d", last, a)
		}
		if b >= completions {
			return nil, fmt.Errorf("too large: %d", b)
		}
		for i := a; i <= b; i++ {
			out = append(out, i)
		}
		last = b
	}
	return out, nil
}

// ValidateJobUpdate checks a Job update: the new Job is valid and the
// immutable fields are unchanged. The template may change only its
// scheduling directives (labels, annotations, node selector, affinity,
// tolerations, scheduling gates), and only while the Job is suspended and
// has never started, as kube-apiserver allows. Pure.
func ValidateJobUpdate(j, old *batchv1.Job) field.ErrorList {
	errs := validateJobSpec(&j.Spec, specPath, true)
	immutable := func(name string, a, b any) {
		if !apiequality.Semantic.DeepEqual(a, b) {
			errs = append(errs, field.Invalid(specPath.Child(name), a, "field is immutable"))
		}
	}
	immutable("selector", j.Spec.Selector, old.Spec.Selector)
	immutable("completionMode", j.Spec.CompletionMode, old.Spec.CompletionMode)
	immutable("podFailurePolicy", j.Spec.PodFailurePolicy, old.Spec.PodFailurePolicy)
	immutable("successPolicy", j.Spec.SuccessPolicy, old.Spec.SuccessPolicy)
	immutable("managedBy", j.Spec.ManagedBy, old.Spec.ManagedBy)
	// Elastic Indexed Jobs: completions may follow parallelism.
	indexed := j.Spec.CompletionMode != nil && *j.Spec.CompletionMode == batchv1.IndexedCompletion
	if !(indexed && apiequality.Semantic.DeepEqual(j.Spec.Completions, j.Spec.Parallelism)) {
		immutable("completions", j.Spec.Completions, old.Spec.Completions)
	}
	if !apiequality.Semantic.DeepEqual(j.Spec.Template, old.Spec.Template) {
		a, b := j.Spec.Template.DeepCopy(), old.Spec.Template.DeepCopy()
		mutable := old.Spec.Suspend != nil && *old.Spec.Suspend && old.Status.StartTime == nil
		if mutable {
			for _, t := range []*corev1.PodTemplateSpec{a, b} {
				t.Labels, t.Annotations, t.Spec.NodeSelector, t.Spec.Affinity = nil, nil, nil, nil
				t.Spec.Tolerations, t.Spec.SchedulingGates = nil, nil
			}
		}
		if !apiequality.Semantic.DeepEqual(a, b) {
			errs = append(errs, field.Invalid(specPath.Child("template"), field.OmitValueType{}, "field is immutable"))
		}
	}
	return errs
}

// ValidateCronJob returns every failure of a defaulted CronJob: name
// length, schedule (robfig/cron's standard parser, as kube-apiserver),
// time zone, concurrency policy, deadlines, history limits and the job
// template. Pure.
func ValidateCronJob(cj *batchv1.CronJob) field.ErrorList {
	var errs field.ErrorList
	if len(cj.Name) > cronJobNameMax {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), cj.Name, fmt.Sprintf("must be no more than %d characters", cronJobNameMax)))
	}
	s := &cj.Spec
	if s.Schedule == "" {
		errs = append(errs, field.Required(specPath.Child("schedule"), ""))
	} else {
		if _, err := cron.ParseStandard(s.Schedule); err != nil {
			errs = append(errs, field.Invalid(specPath.Child("schedule"), s.Schedule, err.Error()))
		}
		if strings.Contains(s.Schedule, "TZ") {
			errs = append(errs, field.Invalid(specPath.Child("schedule"), s.Schedule, "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"))
		}
	}
	errs = append(errs, validateTimeZone(s.TimeZone, specPath.Child("timeZone"))...)
	if s.StartingDeadlineSeconds != nil && *s.StartingDeadlineSeconds < 0 {
		errs = append(errs, field.Invalid(specPath.Child("startingDeadlineSeconds"), *s.StartingDeadlineSeconds, "must be greater than or equal to 0"))
	}
	switch s.ConcurrencyPolicy {
	case batchv1.AllowConcurrent, batchv1.ForbidConcurrent, batchv1.ReplaceConcurrent:
	case "":
		errs = append(errs, field.Required(specPath.Child("concurrencyPolicy"), ""))
	default:
		errs = append(errs, field.NotSupported(specPath.Child("concurrencyPolicy"), s.ConcurrencyPolicy,
			[]string{string(batchv1.AllowConcurrent), string(batchv1.ForbidConcurrent), string(batchv1.ReplaceConcurrent)}))
	}
	errs = append(errs, nonNegative(specPath.Child("successfulJobsHistoryLimit"), s.SuccessfulJobsHistoryLimit)...)
	errs = append(errs, nonNegative(specPath.Child("failedJobsHistoryLimit"), s.FailedJobsHistoryLimit)...)
	jt := specPath.Child("jobTemplate")
	errs = append(errs, validateLabels(jt.Child("metadata", "labels"), s.JobTemplate.Labels)...)
	return append(errs, validateJobSpec(&s.JobTemplate.Spec, jt.Child("spec"), false)...)
}

// validateTimeZone checks a CronJob's timeZone as kube-apiserver does: an
// explicit IANA name the server's time zone database knows.
func validateTimeZone(tz *string, p *field.Path) field.ErrorList {
	if tz == nil {
		return nil
	}
	if *tz == "" {
		return field.ErrorList{field.Invalid(p, *tz, "timeZone must be nil or non-empty string")}
	}
	for _, part := range strings.Split(*tz, "/") {
		if part == "." || part == ".." || strings.HasPrefix(part, "-") || !validTimeZoneCharacters.MatchString(part) {
			return field.ErrorList{field.Invalid(p, *tz, fmt.Sprintf("unknown time zone %s", *tz))}
		}
	}
	if strings.EqualFold(*tz, "Local") {
		return field.ErrorList{field.Invalid(p, *tz, "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones")}
	}
	if _, err := time.LoadLocation(*tz); err != nil {
		return field.ErrorList{field.Invalid(p, *tz, err.Error())}
	}
	return nil
}
