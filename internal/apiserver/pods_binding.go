package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/peapod/peapod/internal/storage"
)

var bindingGR = schema.GroupResource{Resource: "pods/binding"}

// bindPod serves POST pods/<name>/binding as Kubernetes' BindingREST does:
// it sets spec.nodeName once, adds the Binding's annotations and sets
// PodScheduled=True, straight in storage. Like Kubernetes it bypasses the
// update strategy, so binding is not a spec update: the generation stays.
// The Binding's UID and resourceVersion, when set, must match the pod's.
func bindPod(ctx context.Context, a *api, res *Resource, ns, name string, body []byte, _ string) (runtime.Object, int, error) {
	var b corev1.Binding
	if _, _, err := a.codecs.UniversalDeserializer().Decode(body, nil, &b); err != nil {
		if jerr := json.Unmarshal(body, &b); jerr != nil {
			return nil, 0, apierrors.NewBadRequest(fmt.Sprintf("decode Binding: %v", err))
		}
	}
	if b.Target.Name == "" || (b.Target.Kind != "" && b.Target.Kind != "Node") {
		return nil, 0, apierrors.NewInvalid(schema.GroupKind{Kind: "Binding"}, name,
			field.ErrorList{field.Invalid(field.NewPath("target"), b.Target, "must name a Node")})
	}
	for attempt := 0; ; attempt++ {
		obj, rev, err := a.getObject(ctx, res, ns, name)
		if err != nil {
			return nil, 0, err
		}
		pod := obj.(*corev1.Pod)
		switch {
		case b.UID != "" && b.UID != pod.UID:
			//lint:ignore ST1005 Kubernetes' message
			return nil, 0, apierrors.NewConflict(res.GVR.GroupResource(), name, fmt.Errorf("Precondition failed: UID in precondition: %v, UID in object meta: %v", b.UID, pod.UID))
		case b.ResourceVersion != "" && b.ResourceVersion != pod.ResourceVersion:
			return nil, 0, storageError(storage.ErrConflict, res, name)
		case pod.DeletionTimestamp != nil:
			return nil, 0, apierrors.NewConflict(bindingGR, name, fmt.Errorf("pod %s is being deleted, cannot be assigned to a host", name))
		case pod.Spec.NodeName != "":
			return nil, 0, apierrors.NewConflict(bindingGR, name, fmt.Errorf("pod %s is already assigned to node %q", name, pod.Spec.NodeName))
		case len(pod.Spec.SchedulingGates) > 0:
			return nil, 0, apierrors.NewConflict(bindingGR, name, fmt.Errorf("pod %s has non-empty .spec.schedulingGates", name))
		}
		pod.Spec.NodeName = b.Target.Name
		for k, v := range b.Annotations {
			if pod.Annotations == nil {
				pod.Annotations = map[string]string{}
			}
			pod.Annotations[k] = v
		}
		setPodCondition(&pod.Status, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, ObservedGeneration: pod.Generation}, a.now())
		data, err := a.toStorageAs(res, pod)
		if err != nil {
			return nil, 0, apierrors.NewInternalError(err)
		}
		if _, err := a.store.Update(ctx, res.key(ns, name), data, rev); err != nil {
			if errors.Is(err, storage.ErrConflict) && b.ResourceVersion == "" && attempt < 10 {
				continue
			}
			return nil, 0, storageError(err, res, name)
		}
		return &metav1.Status{Status: metav1.StatusSuccess, Code: http.StatusCreated}, http.StatusCreated, nil
	}
}
