package garbagecollector

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// sync processes one object: an owner being deleted with the orphan or
// foregroundDeletion finalizer, and/or a dependent whose owners may be gone.
func (gc *Collector) sync(ctx context.Context, key string) error {
	i, ns, name, ok := parseItem(key)
	if !ok || i >= len(gc.resources) {
		return nil
	}
	r := gc.resources[i]
	storeKey := name
	if ns != "" {
		storeKey = ns + "/" + name
	}
	obj, exists, err := r.informer.GetIndexer().GetByKey(storeKey)
	if err != nil || !exists {
		return err
	}
	m := obj.(metav1.Object)
	if m.GetDeletionTimestamp() != nil {
		fin := m.GetFinalizers()
		switch {
		case slices.Contains(fin, metav1.FinalizerOrphanDependents):
			return gc.orphanDependents(ctx, r, m)
		case slices.Contains(fin, metav1.FinalizerDeleteDependents):
			return gc.deleteDependents(ctx, r, m)
		}
		return nil // being deleted already
	}
	if len(m.GetOwnerReferences()) == 0 {
		return nil
	}
	return gc.attemptToDelete(ctx, r, m)
}

// dependents returns the cached objects (with their resource) that list
// uid among their owners.
func (gc *Collector) dependents(uid types.UID) []dependent {
	var out []dependent
	for _, r := range gc.resources {
		objs, _ := r.informer.GetIndexer().ByIndex(ownerIndex, string(uid))
		for _, o := range objs {
			out = append(out, dependent{r, o.(metav1.Object)})
		}
	}
	return out
}

type dependent struct {
	r *resource
	m metav1.Object
}

func refTo(m metav1.Object, uid types.UID) *metav1.OwnerReference {
	for _, ref := range m.GetOwnerReferences() {
		if ref.UID == uid {
			return &ref
		}
	}
	return nil
}

// orphanDependents removes owner from every dependent's ownerReferences,
// then the orphan finalizer from owner.
func (gc *Collector) orphanDependents(ctx context.Context, r *resource, owner metav1.Object) error {
	for _, d := range gc.dependents(owner.GetUID()) {
		patch := refsPatch(d.m.GetUID(), deleteRefs(owner.GetUID()))
		if err := d.r.patch(ctx, d.m.GetNamespace(), d.m.GetName(), types.StrategicMergePatchType, patch); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("orphan %s %s/%s: %w", d.r.gvk.Kind, d.m.GetNamespace(), d.m.GetName(), err)
		}
	}
	return gc.removeFinalizer(ctx, r, owner, metav1.FinalizerOrphanDependents)
}

// deleteDependents (foreground) deletes owner's dependents and removes the
// foregroundDeletion finalizer once none blocks the owner any more.
func (gc *Collector) deleteDependents(ctx context.Context, r *resource, owner metav1.Object) error {
	blocking := 0
	for _, d := range gc.dependents(owner.GetUID()) {
		if ref := refTo(d.m, owner.GetUID()); ref != nil && ref.BlockOwnerDeletion != nil && *ref.BlockOwnerDeletion {
			blocking++
		}
		if d.m.GetDeletionTimestamp() == nil {
			gc.queue.Add(itemKey(gc.indexOf(d.r), d.m))
		}
	}
	if blocking > 0 {
		return nil // their deletions requeue owner
	}
	return gc.removeFinalizer(ctx, r, owner, metav1.FinalizerDeleteDependents)
}

// hasForegroundDependent reports whether a dependent of uid is itself
// being deleted in foreground.
func (gc *Collector) hasForegroundDependent(uid types.UID) bool {
	for _, d := range gc.dependents(uid) {
		if d.m.GetDeletionTimestamp() != nil && slices.Contains(d.m.GetFinalizers(), metav1.FinalizerDeleteDependents) {
			return true
		}
	}
	return false
}

func (gc *Collector) indexOf(r *resource) int {
	return slices.Index(gc.resources, r)
}

type ownerState int

const (
	solid    ownerState = iota // exists and is not deleting its dependents
	dangling                   // gone (or replaced by a namesake)
	waiting                    // deleting in foreground: waits for its dependents
)

// lookupOwner classifies ref as seen from a dependent in namespace ns,
// confirming a cache miss with a live GET.
func (gc *Collector) lookupOwner(ctx context.Context, ns string, ref metav1.OwnerReference) (ownerState, error) {
	i := gc.resourceFor(ref)
	if i < 0 {
		return solid, nil // a kind we do not watch: never collect against it
	}
	r := gc.resources[i]
	key := ref.Name
	if !r.namespaced {
		ns = ""
	} else {
		key = ns + "/" + ref.Name
	}
	var owner metav1.Object
	if obj, ok, _ := r.informer.GetIndexer().GetByKey(key); ok && obj.(metav1.Object).GetUID() == ref.UID {
		owner = obj.(metav1.Object)
	} else {
		live, err := r.get(ctx, ns, ref.Name)
		if apierrors.IsNotFound(err) {
			return dangling, nil
		}
		if err != nil {
			return solid, fmt.Errorf("get owner %s %s: %w", ref.Kind, ref.Name, err)
		}
		if live.GetUID() != ref.UID {
			return dangling, nil
		}
		owner = live
	}
	if owner.GetDeletionTimestamp() != nil && slices.Contains(owner.GetFinalizers(), metav1.FinalizerDeleteDependents) {
		return waiting, nil
	}
	return solid, nil
}

// attemptToDelete deletes dependent m when none of its owners remains, or
// drops references to gone owners when some remain (Kubernetes'
// attemptToDeleteItem). Owners are classified first (cache, then live
// GET), then the dependent is re-read live and only references it still
// holds count: an owner deleted with orphan propagation removes its
// references before it disappears, so reading the dependent after seeing
// the owner gone cannot mistake an orphan for garbage.
func (gc *Collector) attemptToDelete(ctx context.Context, r *resource, m metav1.Object) error {
	states := map[types.UID]ownerState{}
	needed := false
	for _, ref := range m.GetOwnerReferences() {
		st, err := gc.lookupOwner(ctx, m.GetNamespace(), ref)
		if err != nil {
			return err
		}
		states[ref.UID] = st
		needed = needed || st != solid
	}
	if !needed {
		return nil
	}
	ns, name := m.GetNamespace(), m.GetName()
	live, err := r.get(ctx, ns, name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get %s %s/%s: %w", r.gvk.Kind, ns, name, err)
	}
	if live.GetUID() != m.GetUID() || live.GetDeletionTimestamp() != nil || len(live.GetOwnerReferences()) == 0 {
		return nil
	}
	var nSolid int
	var drop, unblock []types.UID
	for _, ref := range live.GetOwnerReferences() {
		st, ok := states[ref.UID]
		if !ok {
			if st, err = gc.lookupOwner(ctx, ns, ref); err != nil {
				return err
			}
		}
		switch st {
		case solid:
			nSolid++
		case dangling:
			drop = append(drop, ref.UID)
		case waiting:
			drop = append(drop, ref.UID)
			if ref.BlockOwnerDeletion != nil && *ref.BlockOwnerDeletion {
				unblock = append(unblock, ref.UID)
			}
		}
	}
	switch {
	case nSolid > 0:
		if len(drop) == 0 {
			return nil
		}
		if err := r.patch(ctx, ns, name, types.StrategicMergePatchType, refsPatch(live.GetUID(), deleteRefs(drop...))); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("drop gone owners of %s %s/%s: %w", r.gvk.Kind, ns, name, err)
		}
		return nil
	case len(unblock) > 0 && len(gc.dependents(live.GetUID())) > 0:
		// An owner waits in foreground and m has dependents of its own: m
		// goes in foreground too, so the owner waits for m's dependents.
		// Only when one of those dependents is itself deleting its
		// dependents (a possible cycle) are m's blocking references
		// cleared first, so the waits cannot deadlock, as Kubernetes does.
		if gc.hasForegroundDependent(live.GetUID()) {
			var refs []any
			for _, u := range unblock {
				refs = append(refs, map[string]any{"uid": u, "blockOwnerDeletion": false})
			}
			if err := r.patch(ctx, ns, name, types.StrategicMergePatchType, refsPatch(live.GetUID(), refs)); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("unblock owners of %s %s/%s: %w", r.gvk.Kind, ns, name, err)
			}
		}
		return gc.deleteObject(ctx, r, live, metav1.DeletePropagationForeground)
	}
	policy := metav1.DeletePropagationBackground
	switch fin := live.GetFinalizers(); {
	case slices.Contains(fin, metav1.FinalizerOrphanDependents):
		policy = metav1.DeletePropagationOrphan
	case slices.Contains(fin, metav1.FinalizerDeleteDependents):
		policy = metav1.DeletePropagationForeground
	}
	return gc.deleteObject(ctx, r, live, policy)
}

func (gc *Collector) deleteObject(ctx context.Context, r *resource, m metav1.Object, policy metav1.DeletionPropagation) error {
	uid := m.GetUID()
	err := r.delete(ctx, m.GetNamespace(), m.GetName(), metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &uid}, PropagationPolicy: &policy,
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("delete %s %s/%s: %w", r.gvk.Kind, m.GetNamespace(), m.GetName(), err)
	}
	gc.log.Debug("deleted dependent", "kind", r.gvk.Kind, "namespace", m.GetNamespace(), "name", m.GetName(), "propagation", policy)
	return nil
}

// removeFinalizer drops fin from the live owner (same UID), by update with
// optimistic concurrency (a conflict requeues).
func (gc *Collector) removeFinalizer(ctx context.Context, r *resource, owner metav1.Object, fin string) error {
	live, err := r.get(ctx, owner.GetNamespace(), owner.GetName())
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if live.GetUID() != owner.GetUID() || !slices.Contains(live.GetFinalizers(), fin) {
		return nil
	}
	live.SetFinalizers(slices.DeleteFunc(live.GetFinalizers(), func(f string) bool { return f == fin }))
	if err := r.update(ctx, live); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("remove finalizer %s from %s %s/%s: %w", fin, r.gvk.Kind, owner.GetNamespace(), owner.GetName(), err)
	}
	return nil
}

func deleteRefs(uids ...types.UID) []any {
	out := make([]any, len(uids))
	for i, u := range uids {
		out[i] = map[string]any{"$patch": "delete", "uid": u}
	}
	return out
}

// refsPatch is a strategic merge patch of ownerReferences (merged by uid)
// guarded by the object's uid.
func refsPatch(uid types.UID, refs []any) []byte {
	b, _ := json.Marshal(map[string]any{"metadata": map[string]any{"ownerReferences": refs, "uid": uid}})
	return b
}
