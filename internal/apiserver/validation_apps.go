package apiserver

import (
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var specPath = field.NewPath("spec")

// ValidateDeployment returns every failure of a defaulted Deployment's
// spec: replicas, selector and template (validated as a pod, field paths
// under spec.template), strategy and the history/deadline limits. Pure.
func ValidateDeployment(d *appsv1.Deployment) field.ErrorList {
	s := &d.Spec
	errs := nonNegative(specPath.Child("replicas"), s.Replicas)
	errs = append(errs, validateSelectorTemplate(s.Selector, &s.Template)...)
	errs = append(errs, nonNegative(specPath.Child("revisionHistoryLimit"), s.RevisionHistoryLimit)...)
	errs = append(errs, nonNegative(specPath.Child("minReadySeconds"), &s.MinReadySeconds)...)
	if s.ProgressDeadlineSeconds != nil && *s.ProgressDeadlineSeconds <= s.MinReadySeconds {
		errs = append(errs, field.Invalid(specPath.Child("progressDeadlineSeconds"), *s.ProgressDeadlineSeconds, "must be greater than minReadySeconds"))
	}
	sp := specPath.Child("strategy")
	switch s.Strategy.Type {
	case appsv1.RecreateDeploymentStrategyType:
		if s.Strategy.RollingUpdate != nil {
			errs = append(errs, field.Forbidden(sp.Child("rollingUpdate"), "may not be specified when strategy `type` is 'Recreate'"))
		}
	case appsv1.RollingUpdateDeploymentStrategyType:
		if ru := s.Strategy.RollingUpdate; ru != nil {
			p := sp.Child("rollingUpdate")
			errs = append(errs, intOrPercent(p.Child("maxUnavailable"), ru.MaxUnavailable)...)
			errs = append(errs, intOrPercent(p.Child("maxSurge"), ru.MaxSurge)...)
			if isZero(ru.MaxUnavailable) && isZero(ru.MaxSurge) {
				errs = append(errs, field.Invalid(p.Child("maxUnavailable"), ru.MaxUnavailable.String(), "may not be 0 when `maxSurge` is 0"))
			}
		}
	default:
		errs = append(errs, field.NotSupported(sp.Child("type"), s.Strategy.Type,
			[]string{string(appsv1.RecreateDeploymentStrategyType), string(appsv1.RollingUpdateDeploymentStrategyType)}))
	}
	if s.Paused && s.Strategy.Type == "" {
		errs = append(errs, field.Required(sp.Child("type"), ""))
	}
	return errs
}

// ValidateReplicaSet returns every failure of a defaulted ReplicaSet. Pure.
func ValidateReplicaSet(rs *appsv1.ReplicaSet) field.ErrorList {
	errs := nonNegative(specPath.Child("replicas"), rs.Spec.Replicas)
	errs = append(errs, nonNegative(specPath.Child("minReadySeconds"), &rs.Spec.MinReadySeconds)...)
	return append(errs, validateSelectorTemplate(rs.Spec.Selector, &rs.Spec.Template)...)
}

// ValidateReplicationController returns every failure of a defaulted
// ReplicationController: its map selector must be non-empty and match the
// template's labels. Pure.
func ValidateReplicationController(rc *corev1.ReplicationController) field.ErrorList {
	errs := nonNegative(specPath.Child("replicas"), rc.Spec.Replicas)
	if len(rc.Spec.Selector) == 0 {
		errs = append(errs, field.Required(specPath.Child("selector"), ""))
	}
	errs = append(errs, validateLabels(specPath.Child("selector"), rc.Spec.Selector)...)
	if rc.Spec.Template == nil {
		return append(errs, field.Required(specPath.Child("template"), ""))
	}
	if len(rc.Spec.Selector) > 0 && !labels.SelectorFromSet(rc.Spec.Selector).Matches(labels.Set(rc.Spec.Template.Labels)) {
		errs = append(errs, field.Invalid(specPath.Child("template", "metadata", "labels"), rc.Spec.Template.Labels, "`selector` does not match template `labels`"))
	}
	return append(errs, validateTemplate(rc.Spec.Template)...)
}

// ValidateStatefulSet returns every failure of a defaulted StatefulSet.
// The pod template is validated as the controller will create its pods,
// with a persistentVolumeClaim volume per volumeClaimTemplate, so mounts
// of a template's claim are valid. Pure.
func ValidateStatefulSet(s *appsv1.StatefulSet) field.ErrorList {
	sp := &s.Spec
	errs := nonNegative(specPath.Child("replicas"), sp.Replicas)
	errs = append(errs, nonNegative(specPath.Child("revisionHistoryLimit"), sp.RevisionHistoryLimit)...)
	errs = append(errs, nonNegative(specPath.Child("minReadySeconds"), &sp.MinReadySeconds)...)
	errs = append(errs, validateSelectorTemplate(sp.Selector, StatefulSetPodTemplate(s))...)
	if sp.ServiceName != "" {
		errs = append(errs, dns1123Label(specPath.Child("serviceName"), sp.ServiceName)...)
	}
	switch sp.PodManagementPolicy {
	case appsv1.OrderedReadyPodManagement, appsv1.ParallelPodManagement:
	default:
		errs = append(errs, field.NotSupported(specPath.Child("podManagementPolicy"), sp.PodManagementPolicy,
			[]string{string(appsv1.OrderedReadyPodManagement), string(appsv1.ParallelPodManagement)}))
	}
	up := specPath.Child("updateStrategy")
	switch sp.UpdateStrategy.Type {
	case appsv1.OnDeleteStatefulSetStrategyType:
		if sp.UpdateStrategy.RollingUpdate != nil {
			errs = append(errs, field.Invalid(up.Child("rollingUpdate"), sp.UpdateStrategy.RollingUpdate, "only allowed for updateStrategy 'RollingUpdate'"))
		}
	case appsv1.RollingUpdateStatefulSetStrategyType:
		if ru := sp.UpdateStrategy.RollingUpdate; ru != nil {
			errs = append(errs, nonNegative(up.Child("rollingUpdate", "partition"), ru.Partition)...)
		}
	default:
		errs = append(errs, field.NotSupported(up.Child("type"), sp.UpdateStrategy.Type,
			[]string{string(appsv1.RollingUpdateStatefulSetStrategyType), string(appsv1.OnDeleteStatefulSetStrategyType)}))
	}
	for i := range sp.VolumeClaimTemplates {
		t := &sp.VolumeClaimTemplates[i]
		tp := specPath.Child("volumeClaimTemplates").Index(i)
		if t.Name == "" {
			errs = append(errs, field.Required(tp.Child("metadata", "name"), "name or generateName is required"))
		} else {
			errs = append(errs, dns1123Label(tp.Child("metadata", "name"), t.Name)...)
		}
		errs = append(errs, ValidatePersistentVolumeClaimSpec(&t.Spec, tp.Child("spec"))...)
	}
	if rp := sp.PersistentVolumeClaimRetentionPolicy; rp != nil {
		pp := specPath.Child("persistentVolumeClaimRetentionPolicy")
		supported := []string{string(appsv1.RetainPersistentVolumeClaimRetentionPolicyType), string(appsv1.DeletePersistentVolumeClaimRetentionPolicyType)}
		for _, f := range []struct {
			name string
			v    appsv1.PersistentVolumeClaimRetentionPolicyType
		}{{"whenDeleted", rp.WhenDeleted}, {"whenScaled", rp.WhenScaled}} {
			if f.v != appsv1.RetainPersistentVolumeClaimRetentionPolicyType && f.v != appsv1.DeletePersistentVolumeClaimRetentionPolicyType {
				errs = append(errs, field.NotSupported(pp.Child(f.name), f.v, supported))
			}
		}
	}
	if sp.Ordinals != nil && sp.Ordinals.Start < 0 {
		errs = append(errs, field.Invalid(specPath.Child("ordinals", "start"), sp.Ordinals.Start, "must be greater than or equal to 0"))
	}
	return errs
}

// StatefulSetPodTemplate returns s's pod template with a
// persistentVolumeClaim volume for each volumeClaimTemplate, replacing a
// template volume of the same name, as Kubernetes' StatefulSet controller
// builds pods (claim "<template>-<set>-<ordinal>"; here the ordinal's
// place holds "0", which validates the same). Pure.
func StatefulSetPodTemplate(s *appsv1.StatefulSet) *corev1.PodTemplateSpec {
	if len(s.Spec.VolumeClaimTemplates) == 0 {
		return &s.Spec.Template
	}
	t := s.Spec.Template.DeepCopy()
	for _, ct := range s.Spec.VolumeClaimTemplates {
		v := corev1.Volume{Name: ct.Name, VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{
			ClaimName: ct.Name + "-" + s.Name + "-0"}}}
		replaced := false
		for i := range t.Spec.Volumes {
			if t.Spec.Volumes[i].Name == ct.Name {
				t.Spec.Volumes[i], replaced = v, true
			}
		}
		if !replaced {
			t.Spec.Volumes = append(t.Spec.Volumes, v)
		}
	}
	return t
}

// ValidateStatefulSetUpdate refuses changes to the immutable parts of a
// StatefulSet's spec, with Kubernetes' message. Pure.
func ValidateStatefulSetUpdate(s, old *appsv1.StatefulSet) field.ErrorList {
	a, b := s.Spec.DeepCopy(), old.Spec.DeepCopy()
	for _, sp := range []*appsv1.StatefulSetSpec{a, b} {
		sp.Replicas, sp.Ordinals, sp.Template, sp.UpdateStrategy = nil, nil, corev1.PodTemplateSpec{}, appsv1.StatefulSetUpdateStrategy{}
		sp.RevisionHistoryLimit, sp.PersistentVolumeClaimRetentionPolicy, sp.MinReadySeconds = nil, nil, 0
		// A claim template's type and status are not spec: protobuf
		// clients do not even send the type back.
		for i := range sp.VolumeClaimTemplates {
			sp.VolumeClaimTemplates[i].TypeMeta = metav1.TypeMeta{}
			sp.VolumeClaimTemplates[i].Status = corev1.PersistentVolumeClaimStatus{}
		}
	}
	if !apiequality.Semantic.DeepEqual(a, b) {
		return field.ErrorList{field.Forbidden(specPath, "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden")}
	}
	return nil
}

// immutableSelector refuses a changed apps/v1 selector.
func immutableSelector(sel, old *metav1.LabelSelector) field.ErrorList {
	if !apiequality.Semantic.DeepEqual(sel, old) {
		return field.ErrorList{field.Invalid(specPath.Child("selector"), sel, "field is immutable")}
	}
	return nil
}

// validateSelectorTemplate checks an apps/v1 selector (required, valid,
// non-empty, matching the template's labels) and the template.
func validateSelectorTemplate(ls *metav1.LabelSelector, t *corev1.PodTemplateSpec) field.ErrorList {
	var errs field.ErrorList
	p := specPath.Child("selector")
	if ls == nil {
		errs = append(errs, field.Required(p, ""))
	} else {
		sel, err := metav1.LabelSelectorAsSelector(ls)
		switch {
		case err != nil:
			errs = append(errs, field.Invalid(p, ls, err.Error()))
		case sel.Empty():
			errs = append(errs, field.Invalid(p, ls, "empty selector is invalid for deployment"))
		case !sel.Matches(labels.Set(t.Labels)):
			errs = append(errs, field.Invalid(specPath.Child("template", "metadata", "labels"), t.Labels, "`selector` does not match template `labels`"))
		}
		errs = append(errs, validateLabels(p.Child("matchLabels"), ls.MatchLabels)...)
	}
	return append(errs, validateTemplate(t)...)
}

// validateTemplate validates a pod template as a pod, reporting field
// paths under spec.template, and requires restartPolicy Always.
func validateTemplate(t *corev1.PodTemplateSpec) field.ErrorList {
	tp := specPath.Child("template")
	errs := validateLabels(tp.Child("metadata", "labels"), t.Labels)
	for _, e := range ValidatePod(&corev1.Pod{ObjectMeta: t.ObjectMeta, Spec: t.Spec}) {
		e.Field = tp.String() + "." + e.Field
		errs = append(errs, e)
	}
	if len(t.Spec.EphemeralContainers) > 0 {
		errs = append(errs, field.Forbidden(tp.Child("spec", "ephemeralContainers"), "ephemeral containers not allowed in pod template"))
	}
	if t.Spec.RestartPolicy != corev1.RestartPolicyAlways {
		errs = append(errs, field.NotSupported(tp.Child("spec", "restartPolicy"), t.Spec.RestartPolicy, []string{string(corev1.RestartPolicyAlways)}))
	}
	if t.Spec.ActiveDeadlineSeconds != nil {
		errs = append(errs, field.Invalid(tp.Child("spec", "activeDeadlineSeconds"), *t.Spec.ActiveDeadlineSeconds, "activeDeadlineSeconds in ReplicaSet is not Supported"))
	}
	return errs
}

func validateLabels(p *field.Path, m map[string]string) field.ErrorList {
	var errs field.ErrorList
	for k, v := range m {
		for _, msg := range validation.IsQualifiedName(k) {
			errs = append(errs, field.Invalid(p, k, msg))
		}
		for _, msg := range validation.IsValidLabelValue(v) {
			errs = append(errs, field.Invalid(p, v, msg))
		}
	}
	return errs
}

func nonNegative(p *field.Path, v *int32) field.ErrorList {
	if v != nil && *v < 0 {
		return field.ErrorList{field.Invalid(p, *v, "must be greater than or equal to 0")}
	}
	return nil
}

// intOrPercent checks a maxSurge/maxUnavailable value.
func intOrPercent(p *field.Path, v *intstr.IntOrString) field.ErrorList {
	if v == nil {
		return nil
	}
	if v.Type == intstr.Int {
		return nonNegative(p, &v.IntVal)
	}
	s := v.StrVal
	if !strings.HasSuffix(s, "%") {
		return field.ErrorList{field.Invalid(p, s, "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')")}
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(v, 100, false)
	if err != nil || n < 0 {
		return field.ErrorList{field.Invalid(p, s, "must be a valid percent")}
	}
	if n > 100 {
		return field.ErrorList{field.Invalid(p, s, "must not be greater than 100%")}
	}
	return nil
}

func isZero(v *intstr.IntOrString) bool {
	if v == nil {
		return false
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(v, 100, false)
	return err == nil && n == 0
}
