package apiserver

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// eventsV1Resource registers events.k8s.io/v1 Events. They are the
// core/v1 Events under the same storage keys, converted on every read and
// write, so both APIs see the same objects (as on Kubernetes).
func eventsV1Resource() *Resource {
	return &Resource{
		GVR:  schema.GroupVersionResource{Group: "events.k8s.io", Version: "v1", Resource: "events"},
		Kind: "Event", Singular: "event", Namespaced: true, ShortNames: []string{"ev"}, Expires: true,
		New:     func() runtime.Object { return &eventsv1.Event{} },
		NewList: func() runtime.Object { return &eventsv1.EventList{} },
		Decode:  func(obj runtime.Object) runtime.Object { return EventToV1(obj.(*corev1.Event)) },
		Encode:  func(obj runtime.Object) runtime.Object { return EventFromV1(obj.(*eventsv1.Event)) },
		Table: funcTable{cols: eventTable.cols, cells: func(obj runtime.Object, now time.Time) []interface{} {
			return eventTable.cells(EventFromV1(obj.(*eventsv1.Event)), now)
		}},
		Strategy: Strategy{
			Validate: func(obj runtime.Object) field.ErrorList { return ValidateEventV1(obj.(*eventsv1.Event)) },
			// Updates may touch legacy events written through core/v1,
			// which lack the fields the strict create rules require.
			ValidateUpdate: func(obj, old runtime.Object) field.ErrorList { return nil },
		},
		Fields: func(obj runtime.Object) fields.Set {
			e := obj.(*eventsv1.Event)
			return fields.Set{
				"regarding.kind": e.Regarding.Kind, "regarding.namespace": e.Regarding.Namespace, "regarding.name": e.Regarding.Name,
				"regarding.uid": string(e.Regarding.UID), "regarding.apiVersion": e.Regarding.APIVersion,
				"regarding.resourceVersion": e.Regarding.ResourceVersion, "regarding.fieldPath": e.Regarding.FieldPath,
				"reason": e.Reason, "reportingController": e.ReportingController, "type": e.Type,
			}
		},
	}
}

// EventToV1 converts a core/v1 Event to events.k8s.io/v1 (lossless). Pure.
func EventToV1(c *corev1.Event) *eventsv1.Event {
	e := &eventsv1.Event{
		ObjectMeta: c.ObjectMeta, EventTime: c.EventTime, ReportingController: c.ReportingController,
		ReportingInstance: c.ReportingInstance, Action: c.Action, Reason: c.Reason, Regarding: c.InvolvedObject,
		Related: c.Related, Note: c.Message, Type: c.Type, DeprecatedSource: c.Source,
		DeprecatedFirstTimestamp: c.FirstTimestamp, DeprecatedLastTimestamp: c.LastTimestamp, DeprecatedCount: c.Count,
	}
	if c.Series != nil {
		e.Series = &eventsv1.EventSeries{Count: c.Series.Count, LastObservedTime: c.Series.LastObservedTime}
	}
	e.APIVersion, e.Kind = eventsv1.SchemeGroupVersion.String(), "Event"
	return e
}

// EventFromV1 converts an events.k8s.io/v1 Event to core/v1 (lossless).
// Pure.
func EventFromV1(e *eventsv1.Event) *corev1.Event {
	c := &corev1.Event{
		ObjectMeta: e.ObjectMeta, EventTime: e.EventTime, ReportingController: e.ReportingController,
		ReportingInstance: e.ReportingInstance, Action: e.Action, Reason: e.Reason, InvolvedObject: e.Regarding,
		Related: e.Related, Message: e.Note, Type: e.Type, Source: e.DeprecatedSource,
		FirstTimestamp: e.DeprecatedFirstTimestamp, LastTimestamp: e.DeprecatedLastTimestamp, Count: e.DeprecatedCount,
	}
	if e.Series != nil {
		c.Series = &corev1.EventSeries{Count: e.Series.Count, LastObservedTime: e.Series.LastObservedTime}
	}
	c.APIVersion, c.Kind = "v1", "Event"
	return c
}

// ValidateEventV1 applies the rules Kubernetes has for events written
// through events.k8s.io/v1: eventTime, reportingController,
// reportingInstance, action and reason are required, type is Normal or
// Warning and the note at most 1 kB. Pure.
func ValidateEventV1(e *eventsv1.Event) field.ErrorList {
	var errs field.ErrorList
	if e.EventTime.IsZero() {
		errs = append(errs, field.Required(field.NewPath("eventTime"), ""))
	}
	if e.ReportingController == "" {
		errs = append(errs, field.Required(field.NewPath("reportingController"), ""))
	} else {
		for _, msg := range validation.IsQualifiedName(e.ReportingController) {
			errs = append(errs, field.Invalid(field.NewPath("reportingController"), e.ReportingController, msg))
		}
	}
	if e.ReportingInstance == "" {
		errs = append(errs, field.Required(field.NewPath("reportingInstance"), ""))
	} else if len(e.ReportingInstance) > 128 {
		errs = append(errs, field.TooLong(field.NewPath("reportingInstance"), "", 128))
	}
	if e.Action == "" {
		errs = append(errs, field.Required(field.NewPath("action"), ""))
	} else if len(e.Action) > 128 {
		errs = append(errs, field.TooLong(field.NewPath("action"), "", 128))
	}
	if e.Reason == "" {
		errs = append(errs, field.Required(field.NewPath("reason"), ""))
	} else if len(e.Reason) > 128 {
		errs = append(errs, field.TooLong(field.NewPath("reason"), "", 128))
	}
	if e.Type != corev1.EventTypeNormal && e.Type != corev1.EventTypeWarning {
		errs = append(errs, field.NotSupported(field.NewPath("type"), e.Type, []string{corev1.EventTypeNormal, corev1.EventTypeWarning}))
	}
	if len(e.Note) > 1024 {
		errs = append(errs, field.TooLong(field.NewPath("note"), "", 1024))
	}
	return errs
}
