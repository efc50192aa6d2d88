package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var scaleGVK = autoscalingv1.SchemeGroupVersion.WithKind("Scale")

// handleScale serves GET, PUT and PATCH of <resource>/<name>/scale with
// autoscaling/v1 Scale objects, as `kubectl scale` and autoscalers use it.
// Writes change only spec.replicas of the parent (bumping its
// generation); a Scale carrying a resourceVersion is a precondition.
func (a *api) handleScale(ctx context.Context, w http.ResponseWriter, r *http.Request, info requestInfo) error {
	res := info.res
	if info.name == "" {
		return apierrors.NewMethodNotSupported(res.GVR.GroupResource(), r.Method)
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		obj, _, err := a.getObject(ctx, res, info.namespace, info.name)
		if err != nil {
			return err
		}
		a.writeObject(w, r, http.StatusOK, scaleOf(res, obj))
		return nil
	case http.MethodPut, http.MethodPatch:
	default:
		return apierrors.NewMethodNotSupported(schema.GroupResource{Group: res.GVR.Group, Resource: res.GVR.Resource + "/scale"}, r.Method)
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var pt types.PatchType
	var put *autoscalingv1.Scale
	if r.Method == http.MethodPut {
		put = &autoscalingv1.Scale{}
		if err := json.Unmarshal(body, put); err != nil {
			if _, _, err2 := a.codecs.UniversalDeserializer().Decode(body, &scaleGVK, put); err2 != nil {
				return apierrors.NewBadRequest(fmt.Sprintf("decode Scale: %v", err))
			}
		}
		if put.Name != "" && put.Name != info.name {
			return apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", put.Name, info.name))
		}
	} else {
		ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		pt = types.PatchType(ct)
		switch pt {
		case types.JSONPatchType, types.MergePatchType, types.StrategicMergePatchType:
		default:
			return apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "patch", res.GVR.GroupResource(), info.name,
				fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: %s, %s, %s",
					types.JSONPatchType, types.MergePatchType, types.StrategicMergePatchType), 0, false)
		}
	}
	out, err := a.update(ctx, res, info.namespace, info.name, false, isDryRun(r), func(old runtime.Object) (runtime.Object, error) {
		cur := scaleOf(res, old)
		want := put
		if want == nil {
			patched, err := a.patchScale(cur, pt, body)
			if err != nil {
				return nil, err
			}
			want = patched
			if want.ResourceVersion == cur.ResourceVersion {
				want.ResourceVersion = "" // not a precondition: the patch was applied to the current object
			}
		}
		if want.Spec.Replicas < 0 {
			return nil, apierrors.NewInvalid(scaleGVK.GroupKind(), info.name, field.ErrorList{
				field.Invalid(field.NewPath("spec", "replicas"), want.Spec.Replicas, "must be greater than or equal to 0")})
		}
		res.Scale.Set(old, want.Spec.Replicas)
		metaOf(old).SetResourceVersion(want.ResourceVersion)
		return old, nil
	})
	if err != nil {
		return err
	}
	a.writeObject(w, r, http.StatusOK, scaleOf(res, out))
	return nil
}

// patchScale applies a patch to a Scale.
func (a *api) patchScale(cur *autoscalingv1.Scale, pt types.PatchType, patch []byte) (*autoscalingv1.Scale, error) {
	orig, err := json.Marshal(cur)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	patched, err := patchJSON(pt, orig, patch, &autoscalingv1.Scale{})
	if err != nil {
		return nil, err
	}
	out := &autoscalingv1.Scale{}
	if err := json.Unmarshal(patched, out); err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("decode patched Scale: %v", err))
	}
	return out, nil
}

// scaleOf builds the Scale view of obj.
func scaleOf(res *Resource, obj runtime.Object) *autoscalingv1.Scale {
	m := metaOf(obj)
	spec, status, sel := res.Scale.Get(obj)
	s := &autoscalingv1.Scale{
		Spec:   autoscalingv1.ScaleSpec{Replicas: spec},
		Status: autoscalingv1.ScaleStatus{Replicas: status, Selector: sel},
	}
	s.APIVersion, s.Kind = scaleGVK.GroupVersion().String(), scaleGVK.Kind
	s.Name, s.Namespace, s.UID = m.GetName(), m.GetNamespace(), m.GetUID()
	s.ResourceVersion, s.CreationTimestamp = m.GetResourceVersion(), m.GetCreationTimestamp()
	return s
}
