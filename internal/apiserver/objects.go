package apiserver

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/peapod/peapod/internal/storage"
)

// toStorage encodes obj as protobuf without its resourceVersion (the
// revision is etcd's business, never stored).
func (a *api) toStorage(obj runtime.Object) ([]byte, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	rv := m.GetResourceVersion()
	m.SetResourceVersion("")
	defer m.SetResourceVersion(rv)
	data, err := a.encode(a.storeCode, obj)
	if err != nil {
		return nil, fmt.Errorf("encode for storage: %w", err)
	}
	return data, nil
}

// fromStorage decodes a stored value and sets its resourceVersion to rev.
func (a *api) fromStorage(data []byte, rev int64) (runtime.Object, error) {
	obj, _, err := a.codecs.UniversalDeserializer().Decode(data, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("decode stored object: %w", err)
	}
	setRV(obj, rev)
	return obj, nil
}

// fromStorageAs decodes a stored value as res's type.
func (a *api) fromStorageAs(res *Resource, data []byte, rev int64) (runtime.Object, error) {
	obj, err := a.fromStorage(data, rev)
	if err != nil || res.Decode == nil {
		return obj, err
	}
	return res.Decode(obj), nil
}

// toStorageAs encodes obj of res's type in its stored form.
func (a *api) toStorageAs(res *Resource, obj runtime.Object) ([]byte, error) {
	if res.Encode != nil {
		obj = res.Encode(obj)
	}
	return a.toStorage(obj)
}

func setRV(obj runtime.Object, rev int64) {
	if m, err := meta.Accessor(obj); err == nil {
		m.SetResourceVersion(strconv.FormatInt(rev, 10))
	}
}

// storageError maps storage sentinels to API errors.
func storageError(err error, res *Resource, name string) error {
	gr := res.GVR.GroupResource()
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return apierrors.NewNotFound(gr, name)
	case errors.Is(err, storage.ErrExists):
		return apierrors.NewAlreadyExists(gr, name)
	case errors.Is(err, storage.ErrConflict):
		return apierrors.NewConflict(gr, name, fmt.Errorf("the object has been modified; please apply your changes to the latest version and try again"))
	case errors.Is(err, storage.ErrCompacted):
		return apierrors.NewResourceExpired("The resourceVersion for the provided list is too old.")
	case errors.Is(err, storage.ErrUnavailable):
		// etcd out of reach or without quorum: a prompt 503 the client
		// may retry, not a request that hangs through the outage.
		return apierrors.NewServiceUnavailable(fmt.Sprintf("the state store did not answer: %v", err))
	case errors.Is(err, storage.ErrTooLarge):
		// The client's object, not the server, is at fault: 413 as for a
		// body over the request limit, never 500.
		return apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("the %s %q is too large to store (limit %d bytes)", res.Kind, name, storage.MaxRequestBytes))
	}
	return apierrors.NewInternalError(err)
}

// getObject reads one object.
func (a *api) getObject(ctx context.Context, res *Resource, ns, name string) (runtime.Object, int64, error) {
	obj, rev, _, err := a.getStored(ctx, res, ns, name)
	return obj, rev, err
}

// getStored reads one object and says whether its stored value is stale:
// sealed by an encryption key other than the one that writes now (or
// stored before encryption), so that an update rewrites it even when the
// object did not change, as kube-apiserver does.
func (a *api) getStored(ctx context.Context, res *Resource, ns, name string) (runtime.Object, int64, bool, error) {
	kv, err := a.store.Get(ctx, res.key(ns, name))
	if err != nil {
		return nil, 0, false, storageError(err, res, name)
	}
	obj, err := a.fromStorageAs(res, kv.Value, kv.Revision)
	if err != nil {
		return nil, 0, false, apierrors.NewInternalError(err)
	}
	return obj, kv.Revision, kv.Stale, nil
}

// selector is a parsed label and field selector.
type selector struct {
	labels labels.Selector
	fields fields.Selector
}

func (s selector) empty() bool { return s.labels.Empty() && s.fields.Empty() }

// parseSelector reads labelSelector and fieldSelector, rejecting field
// labels the resource does not support.
func parseSelector(res *Resource, labelSel, fieldSel string) (selector, error) {
	ls, err := labels.Parse(labelSel)
	if err != nil {
		return selector{}, apierrors.NewBadRequest(fmt.Sprintf("unable to parse requirement: %v", err))
	}
	fs, err := fields.ParseSelector(fieldSel)
	if err != nil {
		return selector{}, apierrors.NewBadRequest(fmt.Sprintf("invalid field selector: %v", err))
	}
	supported := fieldsOf(res, res.New())
	for _, req := range fs.Requirements() {
		if _, ok := supported[req.Field]; !ok {
			return selector{}, apierrors.NewBadRequest(fmt.Sprintf("field label not supported: %s", req.Field))
		}
	}
	return selector{labels: ls, fields: fs}, nil
}

// fieldsOf returns the field-selector attributes of obj.
func fieldsOf(res *Resource, obj runtime.Object) fields.Set {
	set := fields.Set{}
	if m, err := meta.Accessor(obj); err == nil {
		set["metadata.name"] = m.GetName()
		if res.Namespaced {
			set["metadata.namespace"] = m.GetNamespace()
		}
	}
	if res.Fields != nil {
		for k, v := range res.Fields(obj) {
			set[k] = v
		}
	}
	return set
}

func (s selector) matches(res *Resource, obj runtime.Object) bool {
	if s.empty() {
		return true
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return false
	}
	return s.labels.Matches(labels.Set(m.GetLabels())) && s.fields.Matches(fieldsOf(res, obj))
}

// metaOf returns obj's metadata; every registered kind has it.
func metaOf(obj runtime.Object) metav1.Object {
	m, err := meta.Accessor(obj)
	if err != nil {
		panic(fmt.Sprintf("object %T without metadata: %v", obj, err))
	}
	return m
}
