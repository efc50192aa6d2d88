package apiserver

import (
	"context"
	"path"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/peapod/peapod/internal/storage"
)

// Resource is one entry of the registration table that drives the generic
// REST handler: everything the handler needs to serve a kind.
type Resource struct {
	GVR        schema.GroupVersionResource
	Kind       string
	Singular   string
	Namespaced bool
	ShortNames []string
	Categories []string
	// New and NewList return empty typed objects.
	New     func() runtime.Object
	NewList func() runtime.Object
	// Strategy customises create/update; nil funcs are no-ops.
	Strategy Strategy
	// Table converts objects to server-side table columns and rows; nil
	// gives NAME AGE.
	Table TableConvertor
	// Fields returns the field-selector attributes beyond metadata.name and
	// metadata.namespace (which are always supported).
	Fields func(obj runtime.Object) fields.Set
	// Status enables the /status subresource: the main resource then
	// ignores status changes and /status ignores everything else.
	Status bool
	// GracefulDelete, when set, returns the grace period a delete without
	// an explicit one gets (pods: spec.terminationGracePeriodSeconds, 0
	// when unscheduled). The object is kept with deletionTimestamp until a
	// delete with grace 0.
	GracefulDelete func(obj runtime.Object) int64
	// AfterCreate runs after a successful create (namespaces seed their
	// default ServiceAccount and root CA ConfigMap). Errors are logged.
	AfterCreate func(ctx context.Context, a *api, obj runtime.Object) error
	// Subresources handled by custom code (e.g. pods/binding), by name.
	Subresources map[string]SubresourceHandler
	// Views are subresources that read and write the whole object but may
	// change only part of it (pods/ephemeralcontainers, pods/resize), by
	// name; see View.
	Views map[string]*View
	// Scale enables the /scale subresource (autoscaling/v1 Scale).
	Scale *ScaleAccess
	// Decode and Encode convert between this resource's type and the type
	// stored under its keys when they differ (events.k8s.io/v1 Events are
	// stored as core/v1 Events). Both nil means the same type.
	Decode, Encode func(obj runtime.Object) runtime.Object
	// Allocate runs after validation and before the write of a create
	// (old nil) or an update, and may do I/O (Service ClusterIPs and
	// NodePorts). undo runs if the write fails; commit runs after it
	// succeeded (releasing what old held and obj no longer does). Not
	// called for dry runs.
	Allocate func(ctx context.Context, a *api, obj, old runtime.Object) (commit, undo func(), err error)
	// Release runs after an object has been removed from storage.
	Release func(ctx context.Context, a *api, obj runtime.Object)
	// Terminate is called on an object a delete is about to remove (and on
	// updates of an object being deleted); it may mutate obj and returns
	// true when the kind's own finalization must keep it (namespaces stay
	// Terminating until spec.finalizers is empty).
	Terminate func(obj runtime.Object) bool
	// AfterTerminate runs after a delete kept an object because Terminate
	// said so (namespaces start deleting their content).
	AfterTerminate func(a *api, obj runtime.Object)
	// Expires makes the store delete an object the event TTL after its
	// last write (Events, as kube-apiserver's --event-ttl does): without
	// it, Events would pile up in etcd for ever.
	Expires bool
}

// writeOptions are the storage options of every write of an object of
// res: its expiry, if its kind expires.
func (a *api) writeOptions(res *Resource) []storage.WriteOption {
	if !res.Expires || a.eventTTL <= 0 {
		return nil
	}
	return []storage.WriteOption{storage.WithTTL(a.eventTTL)}
}

// View is a subresource serving the whole object on GET, PUT and PATCH,
// as kube-apiserver serves pods/ephemeralcontainers and pods/resize: a
// write takes from the object it is given only what Merge copies, then
// the kind's PrepareForUpdate runs and ValidateUpdate replaces the kind's
// own update validation.
type View struct {
	// Merge returns old (a copy the caller owns) with what the view may
	// change taken from obj, the object the client sent or the patch made.
	Merge func(obj, old runtime.Object) runtime.Object
	// ValidateUpdate returns every failure of the merged object.
	ValidateUpdate func(obj, old runtime.Object) field.ErrorList
}

// ScaleAccess reads and writes the replica count behind /scale.
type ScaleAccess struct {
	// Get returns spec.replicas, status.replicas and the label selector
	// (serialised) of obj.
	Get func(obj runtime.Object) (spec, status int32, selector string)
	// Set sets spec.replicas of obj.
	Set func(obj runtime.Object, replicas int32)
}

// SubresourceHandler serves a POST to a custom subresource such as
// pods/binding; it returns the object to answer with and its status code.
type SubresourceHandler func(ctx context.Context, a *api, res *Resource, namespace, name string, body []byte, contentType string) (runtime.Object, int, error)

// Strategy customises how objects of one kind are created and updated.
// Each function mutates or inspects typed objects and must be pure.
type Strategy struct {
	// PrepareForCreate resets fields a client may not set (e.g. status)
	// and applies defaults.
	PrepareForCreate func(obj runtime.Object)
	// PrepareForUpdate carries over fields a client may not change.
	PrepareForUpdate func(obj, old runtime.Object)
	// Validate returns every failure of a new object.
	Validate func(obj runtime.Object) field.ErrorList
	// ValidateUpdate returns every failure of an update (immutability).
	ValidateUpdate func(obj, old runtime.Object) field.ErrorList
	// ValidateName checks metadata.name; nil means DNS-1123 subdomain.
	ValidateName func(name string, prefix bool) []string
}

// TableConvertor renders objects as server-side table rows.
type TableConvertor interface {
	Columns() []metav1.TableColumnDefinition
	Cells(obj runtime.Object, now time.Time) []interface{}
}

// GroupVersionKind returns the resource's kind.
func (r *Resource) GroupVersionKind() schema.GroupVersionKind {
	return r.GVR.GroupVersion().WithKind(r.Kind)
}

// key returns the etcd key of one object.
func (r *Resource) key(namespace, name string) string {
	if r.Namespaced {
		return path.Join("/registry", r.GVR.Resource, namespace, name)
	}
	return path.Join("/registry", r.GVR.Resource, name)
}

// prefix returns the etcd prefix of a list, ending in "/".
func (r *Resource) prefix(namespace string) string {
	if r.Namespaced && namespace != "" {
		return path.Join("/registry", r.GVR.Resource, namespace) + "/"
	}
	return path.Join("/registry", r.GVR.Resource) + "/"
}

func (r *Resource) String() string { return r.GVR.GroupResource().String() }
