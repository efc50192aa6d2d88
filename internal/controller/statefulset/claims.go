package statefulset

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// ClaimName is the claim of template for set's pod with ordinal, as
// Kubernetes names it: <template>-<set>-<ordinal>. Pure.
func ClaimName(template, set string, ordinal int) string {
	return template + "-" + set + "-" + strconv.Itoa(ordinal)
}

// newClaims returns the claims set's pod with ordinal uses, one per
// volumeClaimTemplate, labelled with the template's labels and the set's
// selector's matchLabels, and owned as the retention policy says (see
// claimOwnerRefs). Pure.
func newClaims(set *appsv1.StatefulSet, ordinal int) []*v1.PersistentVolumeClaim {
	var out []*v1.PersistentVolumeClaim
	for _, t := range set.Spec.VolumeClaimTemplates {
		c := &v1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{
				Name: ClaimName(t.Name, set.Name, ordinal), Namespace: set.Namespace,
				Labels: map[string]string{}, Annotations: t.Annotations,
			},
			Spec: *t.Spec.DeepCopy(),
		}
		for k, v := range t.Labels {
			c.Labels[k] = v
		}
		if set.Spec.Selector != nil {
			for k, v := range set.Spec.Selector.MatchLabels {
				c.Labels[k] = v
			}
		}
		c.OwnerReferences = claimOwnerRefs(set, nil, c.OwnerReferences, false)
		out = append(out, c)
	}
	return out
}

// withClaimVolumes returns the pod with a persistentVolumeClaim volume for
// each of set's templates (replacing a template volume of the same name),
// as Kubernetes' updateStorage. Pure; pod is changed in place.
func withClaimVolumes(set *appsv1.StatefulSet, pod *v1.Pod, ordinal int) *v1.Pod {
	for _, t := range set.Spec.VolumeClaimTemplates {
		v := v1.Volume{Name: t.Name, VolumeSource: v1.VolumeSource{PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{
			ClaimName: ClaimName(t.Name, set.Name, ordinal)}}}
		replaced := false
		for i := range pod.Spec.Volumes {
			if pod.Spec.Volumes[i].Name == t.Name {
				pod.Spec.Volumes[i], replaced = v, true
			}
		}
		if !replaced {
			pod.Spec.Volumes = append(pod.Spec.Volumes, v)
		}
	}
	return pod
}

// claimOwnerRefs returns refs changed to what the retention policy wants,
// as Kubernetes' StatefulSetAutoDeletePVC: whenDeleted Delete makes the
// set the claim's controller (the garbage collector removes the claim with
// the set); whenScaled Delete makes the pod of a condemned ordinal an
// owner (the claim goes with the pod the scale-down deletes). Refs the
// policy does not want are removed, others kept. Pure.
func claimOwnerRefs(set *appsv1.StatefulSet, pod *v1.Pod, refs []metav1.OwnerReference, condemned bool) []metav1.OwnerReference {
	policy := set.Spec.PersistentVolumeClaimRetentionPolicy
	wantSet := policy != nil && policy.WhenDeleted == appsv1.DeletePersistentVolumeClaimRetentionPolicyType
	wantPod := pod != nil && condemned && policy != nil && policy.WhenScaled == appsv1.DeletePersistentVolumeClaimRetentionPolicyType
	var out []metav1.OwnerReference
	for _, r := range refs {
		switch {
		case r.UID == set.UID && !wantSet:
		case pod != nil && r.UID == pod.UID && !wantPod:
		default:
			out = append(out, r)
		}
	}
	has := func(uid types.UID) bool {
		for _, r := range out {
			if r.UID == uid {
				return true
			}
		}
		return false
	}
	if wantSet && !has(set.UID) {
		out = append(out, *metav1.NewControllerRef(set, kind))
	}
	if wantPod && !has(pod.UID) {
		out = append(out, metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID})
	}
	return out
}

// createClaims creates the claims of ordinal that do not exist yet. A
// claim being deleted is an error: the pod waits until it is gone and can
// be made anew (Kubernetes does the same).
func (c *Controller) createClaims(ctx context.Context, set *appsv1.StatefulSet, ordinal int) error {
	for _, want := range newClaims(set, ordinal) {
		have, err := c.claims.PersistentVolumeClaims(want.Namespace).Get(want.Name)
		if err == nil {
			if have.DeletionTimestamp != nil {
				return fmt.Errorf("pvc %s is being deleted", have.Name)
			}
			continue
		}
		if !apierrors.IsNotFound(err) {
			return err
		}
		_, err = c.client.CoreV1().PersistentVolumeClaims(want.Namespace).Create(ctx, want, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			continue
		}
		if err != nil {
			c.recorder.Eventf(set, v1.EventTypeWarning, "FailedCreate", "create Claim %s for Pod %s in StatefulSet %s failed error: %v",
				want.Name, PodName(set.Name, ordinal), set.Name, err)
			return fmt.Errorf("create claim %s/%s: %w", want.Namespace, want.Name, err)
		}
		c.recorder.Eventf(set, v1.EventTypeNormal, "SuccessfulCreate", "create Claim %s Pod %s in StatefulSet %s success",
			want.Name, PodName(set.Name, ordinal), set.Name)
	}
	return nil
}

// updateClaimOwners brings the owner references of pod's claims in line
// with the retention policy (see claimOwnerRefs).
func (c *Controller) updateClaimOwners(ctx context.Context, set *appsv1.StatefulSet, pod *v1.Pod, ordinal int, condemned bool) error {
	for _, t := range set.Spec.VolumeClaimTemplates {
		have, err := c.claims.PersistentVolumeClaims(set.Namespace).Get(ClaimName(t.Name, set.Name, ordinal))
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return err
		}
		refs := claimOwnerRefs(set, pod, have.OwnerReferences, condemned)
		if ownerRefsEqual(refs, have.OwnerReferences) {
			continue
		}
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
			"ownerReferences": refs, "uid": have.UID, "resourceVersion": have.ResourceVersion}})
		if _, err := c.client.CoreV1().PersistentVolumeClaims(have.Namespace).Patch(ctx, have.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("update owners of claim %s/%s: %w", have.Namespace, have.Name, err)
		}
	}
	return nil
}

func ownerRefsEqual(a, b []metav1.OwnerReference) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].UID != b[i].UID {
			return false
		}
	}
	return true
}
