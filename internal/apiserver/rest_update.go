package apiserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/util/validation/field"
	kjson "sigs.k8s.io/json"

	"github.com/peapod/peapod/internal/storage"
)

func readBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("read body: %v", err))
	}
	if len(body) > maxBody {
		return nil, apierrors.NewRequestEntityTooLargeError("limit is 3MB")
	}
	return body, nil
}

// mutateFunc computes the desired object from the current one (a copy).
type mutateFunc func(old runtime.Object) (runtime.Object, error)

func (a *api) checkSubresource(info requestInfo) (statusOnly bool, err error) {
	switch {
	case info.subresource == "":
		return false, nil
	case info.subresource == "status" && info.res.Status:
		return true, nil
	}
	return false, subresourceError(info, "update")
}

func (a *api) handleUpdate(ctx context.Context, w http.ResponseWriter, r *http.Request, info requestInfo) error {
	if v := info.res.Views[info.subresource]; v != nil {
		return a.handleView(ctx, w, r, info, v)
	}
	if info.subresource == "scale" && info.res.Scale != nil {
		return a.handleScale(ctx, w, r, info)
	}
	statusOnly, err := a.checkSubresource(info)
	if err != nil {
		return err
	}
	obj, err := a.decodeBody(r, info.res)
	if err != nil {
		return err
	}
	ctx = withManager(ctx, r)
	m := metaOf(obj)
	if m.GetName() != info.name {
		return apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", m.GetName(), info.name))
	}
	if info.res.Namespaced && m.GetNamespace() != "" && m.GetNamespace() != info.namespace {
		return apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
	}
	out, err := a.update(ctx, info.res, info.namespace, info.name, statusOnly, isDryRun(r), func(runtime.Object) (runtime.Object, error) {
		return obj.DeepCopyObject(), nil
	})
	if err != nil {
		return err
	}
	a.writeObject(w, r, http.StatusOK, out)
	return nil
}

func (a *api) handlePatch(ctx context.Context, w http.ResponseWriter, r *http.Request, info requestInfo) error {
	if v := info.res.Views[info.subresource]; v != nil {
		return a.handleView(ctx, w, r, info, v)
	}
	if info.subresource == "scale" && info.res.Scale != nil {
		return a.handleScale(ctx, w, r, info)
	}
	statusOnly, err := a.checkSubresource(info)
	if err != nil {
		return err
	}
	if info.name == "" {
		return apierrors.NewMethodNotSupported(info.res.GVR.GroupResource(), "patch")
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	pt := types.PatchType(ct)
	ctx = withManager(ctx, r)
	switch pt {
	case types.JSONPatchType, types.MergePatchType, types.StrategicMergePatchType:
	case types.ApplyYAMLPatchType:
		if statusOnly {
			return apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "patch", info.res.GVR.GroupResource(), info.name,
				"server-side apply to the status subresource is not supported by peapod", 0, false)
		}
		return a.handleApply(ctx, w, r, info, body)
	default:
		return apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "patch", info.res.GVR.GroupResource(), info.name,
			fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: %s, %s, %s, %s",
				types.JSONPatchType, types.MergePatchType, types.StrategicMergePatchType, types.ApplyYAMLPatchType), 0, false)
	}
	out, err := a.update(ctx, info.res, info.namespace, info.name, statusOnly, isDryRun(r), func(old runtime.Object) (runtime.Object, error) {
		return a.applyPatch(info.res, old, pt, body, strictFields(r))
	})
	if err != nil {
		return err
	}
	a.writeObject(w, r, http.StatusOK, out)
	return nil
}

// applyPatch applies a JSON, merge or strategic-merge patch to old.
// Unknown or duplicate fields in the patched object are refused only with
// strict (fieldValidation=Strict), as for a create.
func (a *api) applyPatch(res *Resource, old runtime.Object, pt types.PatchType, patch []byte, strict bool) (runtime.Object, error) {
	orig, err := a.encode(a.jsonInfo.Serializer, old)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	patched, err := patchJSON(pt, orig, patch, res.New())
	if err != nil {
		return nil, err
	}
	gvk := res.GroupVersionKind()
	obj, _, err := a.jsonInfo.Serializer.Decode(patched, &gvk, res.New())
	if err != nil && !(runtime.IsStrictDecodingError(err) && !strict) {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("decode patched object: %v", err))
	}
	return obj, nil
}

// patchJSON applies a JSON, merge or strategic-merge patch to orig, the
// JSON of an object of schema's kind. Every failure is the client's 400.
// The patch libraries panic on some malformed patches (strategicpatch on
// an object where a list's merge key holds a scalar: "comparing
// uncomparable type"; json-patch v4 on a replace of the root path); that
// is the client's error too, so it is a 400 like any other, and the patch
// is then decoded into the kind to name the field at fault.
func patchJSON(pt types.PatchType, orig, patch []byte, schema runtime.Object) (out []byte, err error) {
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		out = nil
		if derr := kjson.UnmarshalCaseSensitivePreserveInts(patch, schema.DeepCopyObject()); derr != nil && pt != types.JSONPatchType {
			err = apierrors.NewBadRequest(fmt.Sprintf("apply %s: %v", pt, derr))
			return
		}
		err = apierrors.NewBadRequest(fmt.Sprintf("apply %s: malformed patch: %v", pt, p))
	}()
	switch pt {
	case types.JSONPatchType:
		p, perr := jsonpatch.DecodePatch(patch)
		if perr != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("decode json patch: %v", perr))
		}
		out, err = p.Apply(orig)
	case types.MergePatchType:
		out, err = jsonpatch.MergePatch(orig, patch)
	case types.StrategicMergePatchType:
		out, err = strategicpatch.StrategicMergePatch(orig, patch, schema)
	default:
		return nil, apierrors.NewBadRequest(fmt.Sprintf("unsupported patch type %s", pt))
	}
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("apply %s: %v", pt, err))
	}
	return out, nil
}

// update reads the current object, computes the new one with mutate,
// carries over what clients may not change, validates and writes it with
// the read revision as precondition. A conflict is retried when the
// caller did not pin a resourceVersion. An unchanged object is not
// written (its resourceVersion stays), unless its stored value is stale
// (encrypted with a key being rotated out): then it is rewritten.
func (a *api) update(ctx context.Context, res *Resource, ns, name string, statusOnly, dryRun bool, mutate mutateFunc) (runtime.Object, error) {
	return a.updateWith(ctx, res, ns, name, updateOptions{statusOnly: statusOnly, dryRun: dryRun}, mutate)
}

// updateOptions say how updateWith writes: to /status only, as a dry run,
// and with which validation instead of the kind's own ValidateUpdate (a
// View's).
type updateOptions struct {
	statusOnly, dryRun bool
	validate           func(obj, old runtime.Object) field.ErrorList
}

// updateWith is update with its options spelled out.
func (a *api) updateWith(ctx context.Context, res *Resource, ns, name string, opts updateOptions, mutate mutateFunc) (runtime.Object, error) {
	statusOnly, dryRun := opts.statusOnly, opts.dryRun
	for attempt := 0; ; attempt++ {
		old, rev, stale, err := a.getStored(ctx, res, ns, name)
		if err != nil {
			return nil, err
		}
		obj, err := mutate(old.DeepCopyObject())
		if err != nil {
			return nil, err
		}
		m, om := metaOf(obj), metaOf(old)
		pinned := m.GetResourceVersion() != ""
		if pinned && m.GetResourceVersion() != om.GetResourceVersion() {
			return nil, storageError(storage.ErrConflict, res, name)
		}
		if m.GetName() != name {
			return nil, apierrors.NewBadRequest("metadata.name cannot be changed")
		}
		applied := m.GetManagedFields()
		obj, err = a.prepareUpdate(res, obj, old, statusOnly)
		if err != nil {
			return nil, err
		}
		a.trackManagedFields(ctx, res, obj, old, applied)
		m = metaOf(obj)
		errs := validateObjectMeta(res, m, false)
		if v := opts.validate; v != nil {
			errs = append(errs, v(obj, old)...)
		} else if v := res.Strategy.ValidateUpdate; v != nil {
			errs = append(errs, v(obj, old)...)
		} else if v := res.Strategy.Validate; v != nil {
			errs = append(errs, v(obj)...)
		}
		if len(errs) > 0 {
			return nil, apierrors.NewInvalid(res.GroupVersionKind().GroupKind(), name, errs)
		}
		var commit, undo func()
		if res.Allocate != nil && !dryRun {
			if commit, undo, err = res.Allocate(ctx, a, obj, old); err != nil {
				return nil, err
			}
		}
		newData, err := a.toStorageAs(res, obj)
		if err != nil {
			runIf(undo)
			return nil, apierrors.NewInternalError(err)
		}
		oldData, _ := a.toStorageAs(res, old)
		if (bytes.Equal(newData, oldData) && !stale) || dryRun {
			runIf(undo)
			return obj, nil
		}
		if m.GetDeletionTimestamp() != nil && len(m.GetFinalizers()) == 0 && (m.GetDeletionGracePeriodSeconds() == nil || *m.GetDeletionGracePeriodSeconds() == 0) &&
			(res.Terminate == nil || !res.Terminate(obj.DeepCopyObject())) {
			// The last finalizer is gone: the object goes now.
			runIf(undo)
			kv, err := a.store.Delete(ctx, res.key(ns, name), rev)
			if errors.Is(err, storage.ErrConflict) && !pinned && attempt < 10 {
				continue
			}
			if err != nil {
				return nil, storageError(err, res, name)
			}
			setRV(obj, kv.Revision)
			if res.Release != nil {
				res.Release(ctx, a, old)
			}
			return obj, nil
		}
		newRev, err := a.store.Update(ctx, res.key(ns, name), newData, rev, a.writeOptions(res)...)
		if err != nil {
			runIf(undo)
		}
		if errors.Is(err, storage.ErrConflict) && !pinned && attempt < 10 {
			continue
		}
		if err != nil {
			return nil, storageError(err, res, name)
		}
		runIf(commit)
		setRV(obj, newRev)
		return obj, nil
	}
}

// prepareUpdate keeps system metadata, splits spec and status between
// the main resource and /status, bumps generation on spec changes and
// runs the kind's PrepareForUpdate.
func (a *api) prepareUpdate(res *Resource, obj, old runtime.Object, statusOnly bool) (runtime.Object, error) {
	nu, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	ou, err := runtime.DefaultUnstructuredConverter.ToUnstructured(old)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if res.Status {
		if statusOnly {
			status := nu["status"]
			nu = runtime.DeepCopyJSON(ou)
			if status == nil {
				delete(nu, "status")
			} else {
				nu["status"] = status
			}
		} else if s, ok := ou["status"]; ok {
			nu["status"] = s
		} else {
			delete(nu, "status")
		}
	}
	out := res.New()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(nu, out); err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	m, om := metaOf(out), metaOf(old)
	m.SetNamespace(om.GetNamespace())
	m.SetUID(om.GetUID())
	m.SetCreationTimestamp(om.GetCreationTimestamp())
	m.SetDeletionTimestamp(om.GetDeletionTimestamp())
	m.SetDeletionGracePeriodSeconds(om.GetDeletionGracePeriodSeconds())
	m.SetManagedFields(nil)
	m.SetSelfLink("")
	m.SetResourceVersion(om.GetResourceVersion())
	gen := om.GetGeneration()
	if specChanged(nu, ou) {
		gen++
	}
	m.SetGeneration(gen)
	out.GetObjectKind().SetGroupVersionKind(old.GetObjectKind().GroupVersionKind())
	if res.Strategy.PrepareForUpdate != nil {
		res.Strategy.PrepareForUpdate(out, old)
	}
	return out, nil
}

// specChanged compares everything but metadata and status.
func specChanged(nu, ou map[string]interface{}) bool {
	strip := func(m map[string]interface{}) map[string]interface{} {
		c := make(map[string]interface{}, len(m))
		for k, v := range m {
			if k != "metadata" && k != "status" && k != "apiVersion" && k != "kind" {
				c[k] = v
			}
		}
		return c
	}
	return !reflect.DeepEqual(strip(nu), strip(ou))
}

var _ = metav1.Now
