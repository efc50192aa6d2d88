package ctrlutil

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// NewControllerRef returns an ownerReference naming owner (of kind gvk) as
// controller, with blockOwnerDeletion set, as Kubernetes' controllers do.
func NewControllerRef(owner metav1.Object, gvk schema.GroupVersionKind) *metav1.OwnerReference {
	t := true
	return &metav1.OwnerReference{
		APIVersion:         gvk.GroupVersion().String(),
		Kind:               gvk.Kind,
		Name:               owner.GetName(),
		UID:                owner.GetUID(),
		Controller:         &t,
		BlockOwnerDeletion: &t,
	}
}

// Claimer adopts and releases objects for one controller object, like
// Kubernetes' ControllerRefManager. Use a fresh Claimer per sync.
type Claimer struct {
	// Owner is the controller object; GVK its kind.
	Owner metav1.Object
	GVK   schema.GroupVersionKind
	// Selector picks the objects Owner should own.
	Selector labels.Selector
	// Patch applies a strategic merge patch to the object ns/name.
	Patch func(ctx context.Context, ns, name string, data []byte) error
	// CanAdopt, if set, is called once before the first adoption; an error
	// (typically: the owner is being deleted, read uncached) stops adoption.
	CanAdopt func(ctx context.Context) error

	once     sync.Once
	adoptErr error
}

// Claim returns the objects Owner controls after adopting matching orphans
// and releasing owned objects whose labels stopped matching. Objects
// controlled by others are never touched; objects that vanished meanwhile
// are dropped silently. Claim is not safe for concurrent use.
func Claim[T metav1.Object](ctx context.Context, c *Claimer, objs []T) ([]T, error) {
	var claimed []T
	var errs []error
	for _, o := range objs {
		ok, err := c.claimOne(ctx, o)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			claimed = append(claimed, o)
		}
	}
	if len(errs) > 0 {
		return claimed, fmt.Errorf("claim objects for %s %s/%s: %w", c.GVK.Kind, c.Owner.GetNamespace(), c.Owner.GetName(), errs[0])
	}
	return claimed, nil
}

func (c *Claimer) claimOne(ctx context.Context, o metav1.Object) (bool, error) {
	if ref := metav1.GetControllerOfNoCopy(o); ref != nil {
		if ref.UID != c.Owner.GetUID() {
			return false, nil
		}
		if c.Selector.Matches(labels.Set(o.GetLabels())) {
			return true, nil
		}
		if c.Owner.GetDeletionTimestamp() != nil {
			return false, nil
		}
		if err := c.Patch(ctx, o.GetNamespace(), o.GetName(), ReleasePatch(c.Owner.GetUID(), o.GetUID())); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsInvalid(err) {
			return false, fmt.Errorf("release %s: %w", o.GetName(), err)
		}
		return false, nil
	}
	if c.Owner.GetDeletionTimestamp() != nil || o.GetDeletionTimestamp() != nil || !c.Selector.Matches(labels.Set(o.GetLabels())) {
		return false, nil
	}
	c.once.Do(func() {
		if c.CanAdopt != nil {
			c.adoptErr = c.CanAdopt(ctx)
		}
	})
	if c.adoptErr != nil {
		return false, fmt.Errorf("adopt %s: %w", o.GetName(), c.adoptErr)
	}
	if err := c.Patch(ctx, o.GetNamespace(), o.GetName(), AdoptPatch(NewControllerRef(c.Owner, c.GVK), o.GetUID())); err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("adopt %s: %w", o.GetName(), err)
	}
	return true, nil
}

type patchMeta struct {
	Metadata struct {
		OwnerReferences []any     `json:"ownerReferences"`
		UID             types.UID `json:"uid"`
	} `json:"metadata"`
}

// AdoptPatch is the strategic merge patch adding ref to the object with
// uid (the uid guards against a recreated namesake).
func AdoptPatch(ref *metav1.OwnerReference, uid types.UID) []byte {
	var p patchMeta
	p.Metadata.OwnerReferences = []any{ref}
	p.Metadata.UID = uid
	b, _ := json.Marshal(p)
	return b
}

// ReleasePatch is the strategic merge patch removing the ownerReference to
// owner from the object with uid.
func ReleasePatch(owner, uid types.UID) []byte {
	var p patchMeta
	p.Metadata.OwnerReferences = []any{map[string]any{"$patch": "delete", "uid": owner}}
	p.Metadata.UID = uid
	b, _ := json.Marshal(p)
	return b
}
