package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/applyconfigurations"
	"sigs.k8s.io/yaml"
)

// Server-side apply uses structured-merge-diff through apimachinery's
// managedfields.FieldManager, with the schemas client-go carries for
// every built-in type. managedFields are stored; writes other than apply
// update them only for objects that already have some (objects that were
// ever server-side applied), so plain writes pay nothing for it.

// fieldManagers builds and caches one FieldManager per kind. Safe for
// concurrent use.
type fieldManagers struct {
	once sync.Once
	tc   managedfields.TypeConverter
	mu   sync.Mutex
	byGK map[schema.GroupVersionKind]*managedfields.FieldManager
}

// nopDefaulter: defaulting is the Strategy's job, after the merge.
type nopDefaulter struct{}

func (nopDefaulter) Default(runtime.Object) {}

func (a *api) fieldManager(res *Resource) (*managedfields.FieldManager, error) {
	f := &a.managers
	f.once.Do(func() {
		f.tc = applyconfigurations.NewTypeConverter(a.scheme)
		f.byGK = map[schema.GroupVersionKind]*managedfields.FieldManager{}
	})
	gvk := res.GroupVersionKind()
	f.mu.Lock()
	defer f.mu.Unlock()
	if m := f.byGK[gvk]; m != nil {
		return m, nil
	}
	m, err := managedfields.NewDefaultFieldManager(f.tc, a.scheme, nopDefaulter{}, a.scheme, gvk, gvk.GroupVersion(), "", nil)
	if err != nil {
		return nil, fmt.Errorf("field manager for %s: %w", gvk, err)
	}
	f.byGK[gvk] = m
	return m, nil
}

type ctxKey int

const (
	applyKey ctxKey = iota
	managerKey
)

func isApply(ctx context.Context) bool { b, _ := ctx.Value(applyKey).(bool); return b }

// withManager records the field manager of a write: the fieldManager
// parameter, else the user agent's first word as Kubernetes does.
func withManager(ctx context.Context, r *http.Request) context.Context {
	m := r.URL.Query().Get("fieldManager")
	if m == "" {
		m, _, _ = strings.Cut(r.UserAgent(), "/")
		if m == "" {
			m = "unknown"
		}
	}
	return context.WithValue(ctx, managerKey, m)
}

// trackManagedFields sets obj's managedFields after prepareUpdate: an
// apply keeps what the FieldManager computed (applied); another write
// updates old's entries when it has some.
func (a *api) trackManagedFields(ctx context.Context, res *Resource, obj, old runtime.Object, applied []metav1.ManagedFieldsEntry) {
	m := metaOf(obj)
	if isApply(ctx) {
		m.SetManagedFields(applied)
		return
	}
	prev := metaOf(old).GetManagedFields()
	if len(prev) == 0 {
		return
	}
	m.SetManagedFields(prev)
	fm, err := a.fieldManager(res)
	if err != nil {
		return
	}
	manager, _ := ctx.Value(managerKey).(string)
	withKind := func(o runtime.Object) runtime.Object {
		o = o.DeepCopyObject()
		o.GetObjectKind().SetGroupVersionKind(res.GroupVersionKind())
		return o
	}
	out, err := fm.Update(withKind(old), withKind(obj), manager)
	if err != nil {
		a.log.Debug("managed fields update", "resource", res.String(), "err", err)
		return
	}
	m.SetManagedFields(metaOf(out).GetManagedFields())
}

// handleApply serves PATCH with application/apply-patch+yaml: the applied
// configuration is merged into the live object (created when missing)
// with field ownership; conflicts with other managers are 409 unless
// force=true.
func (a *api) handleApply(ctx context.Context, w http.ResponseWriter, r *http.Request, info requestInfo, body []byte) error {
	res := info.res
	q := r.URL.Query()
	manager := q.Get("fieldManager")
	if manager == "" {
		return apierrors.NewInvalid(res.GroupVersionKind().GroupKind(), info.name, field.ErrorList{
			field.Required(field.NewPath("fieldManager"), "is required for apply patch")})
	}
	force := q.Get("force") == "true"
	applied := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(body, &applied.Object); err != nil {
		return apierrors.NewBadRequest(fmt.Sprintf("error decoding YAML: %v", err))
	}
	if applied.Object == nil {
		return apierrors.NewBadRequest("error decoding YAML: the apply patch is empty or null, not an object")
	}
	gvk := res.GroupVersionKind()
	if applied.GroupVersionKind() != gvk {
		return apierrors.NewBadRequest(fmt.Sprintf("the body of the request was of kind %s, expected %s", applied.GroupVersionKind(), gvk))
	}
	if applied.GetName() != info.name {
		return apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", applied.GetName(), info.name))
	}
	if ns := applied.GetNamespace(); ns != "" && ns != info.namespace {
		return apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
	}
	if len(applied.GetManagedFields()) > 0 {
		return apierrors.NewBadRequest("metadata.managedFields must be nil")
	}
	fm, err := a.fieldManager(res)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	apply := func(live runtime.Object) (runtime.Object, error) {
		live = live.DeepCopyObject()
		live.GetObjectKind().SetGroupVersionKind(gvk)
		out, err := fm.Apply(live, applied, manager, force)
		if err != nil {
			if apierrors.IsConflict(err) {
				return nil, err
			}
			if _, ok := asAPIStatus(err); ok {
				return nil, err
			}
			return nil, apierrors.NewBadRequest(err.Error())
		}
		if u, ok := out.(*unstructured.Unstructured); ok {
			typed := res.New()
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, typed); err != nil {
				return nil, apierrors.NewBadRequest(err.Error())
			}
			out = typed
		}
		if applied.GetResourceVersion() == "" {
			metaOf(out).SetResourceVersion("")
		}
		return out, nil
	}
	ctx = context.WithValue(ctx, applyKey, true)
	_, _, err = a.getObject(ctx, res, info.namespace, info.name)
	if apierrors.IsNotFound(err) {
		live := res.New()
		lm := metaOf(live)
		lm.SetName(info.name)
		lm.SetNamespace(info.namespace)
		obj, err := apply(live)
		if err != nil {
			return err
		}
		out, err := a.create(ctx, res, info.namespace, obj, isDryRun(r))
		if err != nil {
			return err
		}
		a.writeObject(w, r, http.StatusCreated, out)
		return nil
	}
	if err != nil {
		return err
	}
	out, err := a.update(ctx, res, info.namespace, info.name, false, isDryRun(r), apply)
	if err != nil {
		return err
	}
	a.writeObject(w, r, http.StatusOK, out)
	return nil
}
