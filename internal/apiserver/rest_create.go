package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/validate/content"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/peapod/peapod/internal/storage"
)

func isDryRun(r *http.Request) bool { return len(r.URL.Query()["dryRun"]) > 0 }

func (a *api) handleCreate(ctx context.Context, w http.ResponseWriter, r *http.Request, info requestInfo) error {
	if info.subresource != "" || info.name != "" {
		return a.handleSubresourcePost(ctx, w, r, info)
	}
	obj, err := a.decodeBody(r, info.res)
	if err != nil {
		return err
	}
	out, err := a.create(ctx, info.res, info.namespace, obj, isDryRun(r))
	if err != nil {
		return err
	}
	a.writeObject(w, r, http.StatusCreated, out)
	return nil
}

func (a *api) handleSubresourcePost(ctx context.Context, w http.ResponseWriter, r *http.Request, info requestInfo) error {
	h := info.res.Subresources[info.subresource]
	if info.name == "" || info.subresource == "" {
		return apierrors.NewMethodNotSupported(info.res.GVR.GroupResource(), "create")
	}
	if h == nil {
		return subresourceError(info, "create")
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	out, code, err := h(ctx, a, info.res, info.namespace, info.name, body, r.Header.Get("Content-Type"))
	if err != nil {
		return err
	}
	a.writeObject(w, r, code, out)
	return nil
}

// create runs the create path shared by POST and internal callers:
// metadata, strategy, validation, namespace checks, store.
func (a *api) create(ctx context.Context, res *Resource, ns string, obj runtime.Object, dryRun bool) (runtime.Object, error) {
	m := metaOf(obj)
	if res.Namespaced {
		if m.GetNamespace() == "" {
			m.SetNamespace(ns)
		}
		if ns != "" && m.GetNamespace() != ns {
			return nil, apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
		}
		ns = m.GetNamespace()
	} else {
		m.SetNamespace("")
	}
	generated := false
	if m.GetName() == "" && m.GetGenerateName() != "" {
		m.SetName(m.GetGenerateName() + rand.String(5))
		generated = true
	}
	m.SetUID(uuid.NewUUID())
	m.SetCreationTimestamp(metav1.NewTime(a.now().Truncate(1e9)))
	m.SetResourceVersion("")
	m.SetDeletionTimestamp(nil)
	m.SetDeletionGracePeriodSeconds(nil)
	m.SetGeneration(1)
	m.SetSelfLink("")
	if !isApply(ctx) {
		m.SetManagedFields(nil)
	}
	if res.Strategy.PrepareForCreate != nil {
		res.Strategy.PrepareForCreate(obj)
	}
	errs := validateObjectMeta(res, m, generated)
	if res.Strategy.Validate != nil {
		errs = append(errs, res.Strategy.Validate(obj)...)
	}
	if len(errs) > 0 {
		return nil, apierrors.NewInvalid(res.GroupVersionKind().GroupKind(), m.GetName(), errs)
	}
	if res.Namespaced {
		if err := a.checkNamespace(ctx, ns); err != nil {
			return nil, err
		}
	}
	if dryRun {
		return obj, nil
	}
	var commit, undo func()
	if res.Allocate != nil {
		var err error
		if commit, undo, err = res.Allocate(ctx, a, obj, nil); err != nil {
			return nil, err
		}
	}
	data, err := a.toStorageAs(res, obj)
	if err != nil {
		runIf(undo)
		return nil, apierrors.NewInternalError(err)
	}
	rev, err := a.store.Create(ctx, res.key(ns, m.GetName()), data, a.writeOptions(res)...)
	if err != nil {
		runIf(undo)
		if generated && errors.Is(err, storage.ErrExists) {
			return nil, apierrors.NewServerTimeout(res.GVR.GroupResource(), "POST", 0)
		}
		return nil, storageError(err, res, m.GetName())
	}
	setRV(obj, rev)
	runIf(commit)
	if res.AfterCreate != nil {
		if err := res.AfterCreate(ctx, a, obj); err != nil {
			a.log.Warn("after-create hook failed", "resource", res.String(), "name", m.GetName(), "err", err)
		}
	}
	return obj, nil
}

// checkNamespace refuses creation in a missing or terminating namespace,
// as the NamespaceLifecycle admission plugin does.
func (a *api) checkNamespace(ctx context.Context, ns string) error {
	nsRes := a.resourceFor("", "v1", "namespaces")
	obj, _, err := a.getObject(ctx, nsRes, "", ns)
	if err != nil {
		if apierrors.IsNotFound(err) {
			return apierrors.NewNotFound(nsRes.GVR.GroupResource(), ns)
		}
		return err
	}
	if metaOf(obj).GetDeletionTimestamp() != nil {
		return apierrors.NewForbidden(nsRes.GVR.GroupResource(), ns,
			fmt.Errorf("unable to create new content in namespace %s because it is being terminated", ns))
	}
	return nil
}

// validateObjectMeta checks the name, namespace, labels and annotations.
func validateObjectMeta(res *Resource, m metav1.Object, generated bool) field.ErrorList {
	var errs field.ErrorList
	p := field.NewPath("metadata")
	name := m.GetName()
	if name == "" {
		errs = append(errs, field.Required(p.Child("name"), "name or generateName is required"))
	} else {
		for _, msg := range content.IsPathSegmentName(name) {
			errs = append(errs, field.Invalid(p.Child("name"), name, msg))
		}
		check := res.Strategy.ValidateName
		if check == nil {
			check = func(n string, _ bool) []string { return validation.IsDNS1123Subdomain(n) }
		}
		for _, msg := range check(name, false) {
			errs = append(errs, field.Invalid(p.Child("name"), name, msg))
		}
	}
	if res.Namespaced {
		for _, msg := range validation.IsDNS1123Label(m.GetNamespace()) {
			errs = append(errs, field.Invalid(p.Child("namespace"), m.GetNamespace(), msg))
		}
	}
	for k, v := range m.GetLabels() {
		for _, msg := range validation.IsQualifiedName(k) {
			errs = append(errs, field.Invalid(p.Child("labels"), k, msg))
		}
		for _, msg := range validation.IsValidLabelValue(v) {
			errs = append(errs, field.Invalid(p.Child("labels"), v, msg))
		}
	}
	total := 0
	for k, v := range m.GetAnnotations() {
		for _, msg := range validation.IsQualifiedName(k) {
			errs = append(errs, field.Invalid(p.Child("annotations"), k, msg))
		}
		total += len(k) + len(v)
	}
	if total > 256*1024 {
		errs = append(errs, field.TooLong(p.Child("annotations"), "", 256*1024))
	}
	for i, f := range m.GetFinalizers() {
		for _, msg := range validation.IsQualifiedName(f) {
			errs = append(errs, field.Invalid(p.Child("finalizers").Index(i), f, msg))
		}
	}
	return errs
}

// runIf calls f unless it is nil.
func runIf(f func()) {
	if f != nil {
		f()
	}
}
