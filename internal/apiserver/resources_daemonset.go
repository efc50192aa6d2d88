package apiserver

import (
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// DaemonSetTemplateGenerationAnnotation is where apps/v1 carries a
// DaemonSet's template generation (the internal spec.templateGeneration):
// 1 at create, one more at every template change. The controller labels
// pods with it (pod-template-generation), as Kubernetes does.
const DaemonSetTemplateGenerationAnnotation = appsv1.DeprecatedTemplateGeneration

// daemonSetResources registers apps/v1 DaemonSets (with status) and the
// ControllerRevisions that hold their history, which `kubectl rollout
// history/undo ds/...` read and apply.
func daemonSetResources() []*Resource {
	return []*Resource{
		{
			GVR: apps("daemonsets"), Kind: "DaemonSet", Singular: "daemonset", Namespaced: true,
			ShortNames: []string{"ds"}, Categories: []string{"all"}, Status: true, Table: daemonSetTable,
			New:     func() runtime.Object { return &appsv1.DaemonSet{} },
			NewList: func() runtime.Object { return &appsv1.DaemonSetList{} },
			Strategy: Strategy{
				PrepareForCreate: func(obj runtime.Object) {
					ds := obj.(*appsv1.DaemonSet)
					ds.Status = appsv1.DaemonSetStatus{}
					DefaultDaemonSet(ds)
					setTemplateGeneration(ds, 1)
				},
				PrepareForUpdate: func(obj, old runtime.Object) {
					ds, o := obj.(*appsv1.DaemonSet), old.(*appsv1.DaemonSet)
					DefaultDaemonSet(ds)
					gen := templateGeneration(o)
					if !apiequality.Semantic.DeepEqual(ds.Spec.Template, o.Spec.Template) {
						gen++
					}
					setTemplateGeneration(ds, gen)
				},
				Validate: func(obj runtime.Object) field.ErrorList { return ValidateDaemonSet(obj.(*appsv1.DaemonSet)) },
				ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
					ds, o := obj.(*appsv1.DaemonSet), old.(*appsv1.DaemonSet)
					return append(ValidateDaemonSet(ds), immutableSelector(ds.Spec.Selector, o.Spec.Selector)...)
				},
			},
		},
		{
			GVR: apps("controllerrevisions"), Kind: "ControllerRevision", Singular: "controllerrevision", Namespaced: true,
			Table:   controllerRevisionTable,
			New:     func() runtime.Object { return &appsv1.ControllerRevision{} },
			NewList: func() runtime.Object { return &appsv1.ControllerRevisionList{} },
			Strategy: Strategy{
				Validate: func(obj runtime.Object) field.ErrorList {
					return ValidateControllerRevision(obj.(*appsv1.ControllerRevision))
				},
				ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
					cr, o := obj.(*appsv1.ControllerRevision), old.(*appsv1.ControllerRevision)
					errs := ValidateControllerRevision(cr)
					if !apiequality.Semantic.DeepEqual(cr.Data.Raw, o.Data.Raw) {
						errs = append(errs, field.Invalid(field.NewPath("data"), "", "field is immutable"))
					}
					return errs
				},
			},
		},
	}
}

// templateGeneration reads ds's template generation annotation; absent or
// unreadable counts as 0.
func templateGeneration(ds *appsv1.DaemonSet) int64 {
	g, err := strconv.ParseInt(ds.Annotations[DaemonSetTemplateGenerationAnnotation], 10, 64)
	if err != nil {
		return 0
	}
	return g
}

func setTemplateGeneration(ds *appsv1.DaemonSet, gen int64) {
	if ds.Annotations == nil {
		ds.Annotations = map[string]string{}
	}
	ds.Annotations[DaemonSetTemplateGenerationAnnotation] = strconv.FormatInt(gen, 10)
}

// DefaultDaemonSet applies apps/v1 defaults: updateStrategy RollingUpdate
// with maxUnavailable 1 and maxSurge 0, revisionHistoryLimit 10 and the
// template's pod defaults. Pure and idempotent.
func DefaultDaemonSet(ds *appsv1.DaemonSet) {
	s := &ds.Spec
	if s.UpdateStrategy.Type == "" {
		s.UpdateStrategy.Type = appsv1.RollingUpdateDaemonSetStrategyType
	}
	if s.UpdateStrategy.Type == appsv1.RollingUpdateDaemonSetStrategyType {
		if s.UpdateStrategy.RollingUpdate == nil {
			s.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateDaemonSet{}
		}
		if s.UpdateStrategy.RollingUpdate.MaxUnavailable == nil {
			one := intstr.FromInt32(1)
			s.UpdateStrategy.RollingUpdate.MaxUnavailable = &one
		}
		if s.UpdateStrategy.RollingUpdate.MaxSurge == nil {
			zero := intstr.FromInt32(0)
			s.UpdateStrategy.RollingUpdate.MaxSurge = &zero
		}
	}
	if s.RevisionHistoryLimit == nil {
		s.RevisionHistoryLimit = int32p(10)
	}
	DefaultPodTemplate(&s.Template)
}

// ValidateDaemonSet returns every failure of a defaulted DaemonSet's spec,
// with Kubernetes' field paths and messages: selector and template (as a
// pod, restartPolicy Always), minReadySeconds, revisionHistoryLimit and
// the update strategy, where exactly one of maxUnavailable and maxSurge
// must be non-zero. Pure.
func ValidateDaemonSet(ds *appsv1.DaemonSet) field.ErrorList {
	s := &ds.Spec
	errs := validateSelectorTemplate(s.Selector, &s.Template)
	for _, e := range errs {
		if e.Field == "spec.selector" && strings.HasPrefix(e.Detail, "empty selector is invalid for") {
			e.Detail = "empty selector is invalid for daemonset" // Kubernetes' words for this kind
		}
	}
	errs = append(errs, nonNegative(specPath.Child("minReadySeconds"), &s.MinReadySeconds)...)
	errs = append(errs, nonNegative(specPath.Child("revisionHistoryLimit"), s.RevisionHistoryLimit)...)
	up := specPath.Child("updateStrategy")
	switch s.UpdateStrategy.Type {
	case appsv1.OnDeleteDaemonSetStrategyType:
	case appsv1.RollingUpdateDaemonSetStrategyType:
		ru := s.UpdateStrategy.RollingUpdate
		if ru == nil {
			errs = append(errs, field.Required(up.Child("rollingUpdate"), ""))
			break
		}
		p := up.Child("rollingUpdate")
		errs = append(errs, intOrPercent(p.Child("maxUnavailable"), ru.MaxUnavailable)...)
		errs = append(errs, intOrPercent(p.Child("maxSurge"), ru.MaxSurge)...)
		hasUnavailable, hasSurge := !isZeroOrNil(ru.MaxUnavailable), !isZeroOrNil(ru.MaxSurge)
		switch {
		case hasUnavailable && hasSurge:
			errs = append(errs, field.Invalid(p.Child("maxSurge"), ru.MaxSurge.String(), "may not be set when maxUnavailable is non-zero"))
		case !hasUnavailable && !hasSurge:
			errs = append(errs, field.Required(p.Child("maxUnavailable"), "cannot be 0 when maxSurge is 0"))
		}
	default:
		errs = append(errs, field.NotSupported(up.Child("type"), s.UpdateStrategy.Type,
			[]string{string(appsv1.OnDeleteDaemonSetStrategyType), string(appsv1.RollingUpdateDaemonSetStrategyType)}))
	}
	return errs
}

// isZeroOrNil: an unset or zero (0, "0%") int-or-percent.
func isZeroOrNil(v *intstr.IntOrString) bool {
	if v == nil {
		return true
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(v, 100, false)
	return err == nil && n == 0
}

// ValidateControllerRevision requires data and a non-negative revision, as
// Kubernetes does. Pure.
func ValidateControllerRevision(cr *appsv1.ControllerRevision) field.ErrorList {
	var errs field.ErrorList
	if len(cr.Data.Raw) == 0 && cr.Data.Object == nil {
		errs = append(errs, field.Required(field.NewPath("data"), "data is mandatory"))
	}
	if cr.Revision < 0 {
		errs = append(errs, field.Invalid(field.NewPath("revision"), cr.Revision, "must be greater than or equal to 0"))
	}
	return errs
}

// daemonSetTable: NAME DESIRED CURRENT READY UP-TO-DATE AVAILABLE NODE
// SELECTOR AGE, wide adds CONTAINERS IMAGES SELECTOR, as kubectl shows.
var daemonSetTable = funcTable{
	cols: []metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Desired", Type: "integer", Description: "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod)."},
		{Name: "Current", Type: "integer", Description: "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod."},
		{Name: "Ready", Type: "integer", Description: "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition."},
		{Name: "Up-to-date", Type: "integer", Description: "The total number of nodes that are running updated daemon pod"},
		{Name: "Available", Type: "integer", Description: "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)"},
		{Name: "Node Selector", Type: "string", Description: "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node."},
		ageColumn, containersColumn, imagesColumn,
		{Name: "Selector", Type: "string", Priority: 1, Description: "A label query over pods that are managed by the daemon set."},
	},
	cells: func(obj runtime.Object, now time.Time) []interface{} {
		ds := obj.(*appsv1.DaemonSet)
		st := ds.Status
		names, images := containerSummary(&ds.Spec.Template.Spec)
		return []interface{}{ds.Name, int64(st.DesiredNumberScheduled), int64(st.CurrentNumberScheduled), int64(st.NumberReady),
			int64(st.UpdatedNumberScheduled), int64(st.NumberAvailable), labels.FormatLabels(ds.Spec.Template.Spec.NodeSelector),
			age(ds.CreationTimestamp, now), names, images, selectorString(ds.Spec.Selector)}
	},
}

// controllerRevisionTable: NAME CONTROLLER REVISION AGE, the controller
// as "<kind>.<group>/<name>" (daemonset.apps/web).
var controllerRevisionTable = funcTable{
	cols: []metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Controller", Type: "string", Description: "Controller of the object"},
		{Name: "Revision", Type: "integer", Description: "Revision indicates the revision of the state represented by Data."},
		ageColumn,
	},
	cells: func(obj runtime.Object, now time.Time) []interface{} {
		cr := obj.(*appsv1.ControllerRevision)
		controller := "<none>"
		if ref := metav1.GetControllerOf(cr); ref != nil {
			if gv, err := schema.ParseGroupVersion(ref.APIVersion); err == nil {
				controller = strings.ToLower(gv.WithKind(ref.Kind).GroupKind().String()) + "/" + ref.Name
			}
		}
		return []interface{}{cr.Name, controller, cr.Revision, age(cr.CreationTimestamp, now)}
	},
}
