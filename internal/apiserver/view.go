package apiserver

import (
	"context"
	"fmt"
	"mime"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// handleView serves GET, PUT and PATCH of a View subresource such as
// pods/<name>/ephemeralcontainers: the whole object is read and written,
// a write keeps of the sent object only what the view's Merge takes, and
// the view's ValidateUpdate decides. A resourceVersion in a PUT is a
// precondition, as on the object itself.
func (a *api) handleView(ctx context.Context, w http.ResponseWriter, r *http.Request, info requestInfo, v *View) error {
	res := info.res
	sub := schema.GroupResource{Group: res.GVR.Group, Resource: res.GVR.Resource + "/" + info.subresource}
	if info.name == "" {
		return apierrors.NewMethodNotSupported(sub, r.Method)
	}
	var mutate mutateFunc
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		obj, _, err := a.getObject(ctx, res, info.namespace, info.name)
		if err != nil {
			return err
		}
		a.writeObject(w, r, http.StatusOK, obj)
		return nil
	case http.MethodPut:
		obj, err := a.decodeBody(r, res)
		if err != nil {
			return err
		}
		m := metaOf(obj)
		if m.GetName() != info.name {
			return apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", m.GetName(), info.name))
		}
		if res.Namespaced && m.GetNamespace() != "" && m.GetNamespace() != info.namespace {
			return apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
		}
		mutate = func(old runtime.Object) (runtime.Object, error) {
			out := v.Merge(obj.DeepCopyObject(), old)
			metaOf(out).SetResourceVersion(m.GetResourceVersion())
			return out, nil
		}
	case http.MethodPatch:
		body, err := readBody(r)
		if err != nil {
			return err
		}
		ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		pt := types.PatchType(ct)
		switch pt {
		case types.JSONPatchType, types.MergePatchType, types.StrategicMergePatchType:
		default:
			return apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "patch", sub, info.name,
				fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: %s, %s, %s",
					types.JSONPatchType, types.MergePatchType, types.StrategicMergePatchType), 0, false)
		}
		mutate = func(old runtime.Object) (runtime.Object, error) {
			patched, err := a.applyPatch(res, old, pt, body, strictFields(r))
			if err != nil {
				return nil, err
			}
			out := v.Merge(patched, old.DeepCopyObject())
			// The patch was applied to the current object: its
			// resourceVersion is a precondition only if the patch set one.
			metaOf(out).SetResourceVersion(metaOf(patched).GetResourceVersion())
			if metaOf(out).GetResourceVersion() == metaOf(old).GetResourceVersion() {
				metaOf(out).SetResourceVersion("")
			}
			return out, nil
		}
	default:
		return apierrors.NewMethodNotSupported(sub, r.Method)
	}
	ctx = withManager(ctx, r)
	out, err := a.updateWith(ctx, res, info.namespace, info.name, updateOptions{dryRun: isDryRun(r), validate: v.ValidateUpdate}, mutate)
	if err != nil {
		return err
	}
	a.writeObject(w, r, http.StatusOK, out)
	return nil
}
