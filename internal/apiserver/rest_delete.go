package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/peapod/peapod/internal/storage"
)

// deleteOptions reads DeleteOptions from the body (if any) and the query.
func (a *api) deleteOptions(r *http.Request) (*metav1.DeleteOptions, error) {
	opts := &metav1.DeleteOptions{}
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	if len(body) > 0 {
		if _, _, err := a.jsonInfo.Serializer.Decode(body, nil, opts); err != nil {
			// Protobuf or YAML bodies go through the universal decoder.
			if _, _, err2 := a.codecs.UniversalDecoder().Decode(body, nil, opts); err2 != nil {
				return nil, apierrors.NewBadRequest(fmt.Sprintf("decode DeleteOptions: %v", err))
			}
		}
	}
	q := r.URL.Query()
	if g := q.Get("gracePeriodSeconds"); g != "" {
		n, err := strconv.ParseInt(g, 10, 64)
		if err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid gracePeriodSeconds %q", g))
		}
		opts.GracePeriodSeconds = &n
	}
	if p := q.Get("propagationPolicy"); p != "" {
		pp := metav1.DeletionPropagation(p)
		opts.PropagationPolicy = &pp
	}
	if len(q["dryRun"]) > 0 {
		opts.DryRun = q["dryRun"]
	}
	return opts, nil
}

func (a *api) handleDelete(ctx context.Context, w http.ResponseWriter, r *http.Request, info requestInfo) error {
	if info.subresource != "" {
		return apierrors.NewMethodNotSupported(info.res.GVR.GroupResource(), "delete")
	}
	opts, err := a.deleteOptions(r)
	if err != nil {
		return err
	}
	out, err := a.delete(ctx, info.res, info.namespace, info.name, opts)
	if err != nil {
		return err
	}
	a.writeObject(w, r, http.StatusOK, out)
	return nil
}

// delete deletes one object: graceful kinds (pods) get deletionTimestamp
// and deletionGracePeriodSeconds and stay until a delete with grace 0;
// objects with finalizers get deletionTimestamp and stay until their
// finalizers are removed; anything else goes at once. It returns the
// object as it is after the call.
func (a *api) delete(ctx context.Context, res *Resource, ns, name string, opts *metav1.DeleteOptions) (runtime.Object, error) {
	for attempt := 0; ; attempt++ {
		obj, rev, err := a.getObject(ctx, res, ns, name)
		if err != nil {
			return nil, err
		}
		m := metaOf(obj)
		if pre := opts.Preconditions; pre != nil {
			// Kubernetes' own wording, capital and all: clients match on it.
			if pre.UID != nil && *pre.UID != m.GetUID() {
				//lint:ignore ST1005 Kubernetes' message
				return nil, apierrors.NewConflict(res.GVR.GroupResource(), name, fmt.Errorf("Precondition failed: UID in precondition: %v, UID in object meta: %v", *pre.UID, m.GetUID()))
			}
			if pre.ResourceVersion != nil && *pre.ResourceVersion != m.GetResourceVersion() {
				//lint:ignore ST1005 Kubernetes' message
				return nil, apierrors.NewConflict(res.GVR.GroupResource(), name, fmt.Errorf("Precondition failed: ResourceVersion in precondition: %v, ResourceVersion in object meta: %v", *pre.ResourceVersion, m.GetResourceVersion()))
			}
		}
		var grace int64
		if res.GracefulDelete != nil {
			grace = res.GracefulDelete(obj)
			if opts.GracePeriodSeconds != nil && grace > 0 {
				grace = *opts.GracePeriodSeconds
			}
			if grace < 0 {
				grace = 0
			}
		}
		if cur := m.GetDeletionGracePeriodSeconds(); cur != nil && *cur < grace {
			grace = *cur // a pending deletion can only be shortened
		}
		terminating := res.Terminate != nil && res.Terminate(obj)
		finalizersChanged := false
		if res.Terminate == nil { // namespaces finalize themselves
			var fins []string
			if fins, finalizersChanged = gcFinalizers(m.GetFinalizers(), opts); finalizersChanged {
				m.SetFinalizers(fins)
			}
		}
		keep := grace > 0 || len(m.GetFinalizers()) > 0 || terminating
		if len(opts.DryRun) > 0 {
			return obj, nil
		}
		if keep {
			cur := m.GetDeletionGracePeriodSeconds()
			if m.GetDeletionTimestamp() != nil && cur != nil && *cur == grace && !finalizersChanged {
				if terminating && res.AfterTerminate != nil {
					res.AfterTerminate(a, obj)
				}
				return obj, nil // nothing changes
			}
			now := a.now()
			// The first graceful deletion or finalization changes what the
			// object's controllers must do: as Kubernetes, bump a tracked
			// generation.
			if m.GetDeletionTimestamp() == nil && m.GetGeneration() > 0 {
				m.SetGeneration(m.GetGeneration() + 1)
			}
			if m.GetDeletionTimestamp() == nil || grace < valueOr(cur, 0) {
				ts := metav1.NewTime(now.Add(time.Duration(grace) * time.Second).Truncate(time.Second))
				m.SetDeletionTimestamp(&ts)
			}
			m.SetDeletionGracePeriodSeconds(&grace)
			data, err := a.toStorageAs(res, obj)
			if err != nil {
				return nil, apierrors.NewInternalError(err)
			}
			newRev, err := a.store.Update(ctx, res.key(ns, name), data, rev, a.writeOptions(res)...)
			if errors.Is(err, storage.ErrConflict) && attempt < 10 {
				continue
			}
			if err != nil {
				return nil, storageError(err, res, name)
			}
			setRV(obj, newRev)
			if terminating && res.AfterTerminate != nil {
				res.AfterTerminate(a, obj)
			}
			return obj, nil
		}
		kv, err := a.store.Delete(ctx, res.key(ns, name), rev)
		if errors.Is(err, storage.ErrConflict) && attempt < 10 {
			continue
		}
		if err != nil {
			return nil, storageError(err, res, name)
		}
		setRV(obj, kv.Revision)
		if res.Release != nil {
			res.Release(ctx, a, obj)
		}
		return obj, nil
	}
}

// gcFinalizers returns the finalizers an object deleted with opts must
// carry for the garbage collector, and whether they differ from fins, as
// Kubernetes' registry does: the orphan finalizer for orphan propagation
// (propagationPolicy Orphan or orphanDependents true), foregroundDeletion
// for Foreground, neither for Background. Without a policy in opts, a GC
// finalizer already on the object stays (it records an earlier delete's
// policy); the default is background. Pure.
func gcFinalizers(fins []string, opts *metav1.DeleteOptions) ([]string, bool) {
	orphan := slices.Contains(fins, metav1.FinalizerOrphanDependents)
	foreground := slices.Contains(fins, metav1.FinalizerDeleteDependents) && !orphan
	//lint:ignore SA1019 old clients still send orphanDependents; Kubernetes honours it
	switch orphanDependents := opts.OrphanDependents; {
	case orphanDependents != nil:
		orphan, foreground = *orphanDependents, false
	case opts.PropagationPolicy != nil:
		p := *opts.PropagationPolicy
		orphan = p == metav1.DeletePropagationOrphan
		foreground = p == metav1.DeletePropagationForeground
	}
	out := make([]string, 0, len(fins)+1)
	for _, f := range fins {
		if f != metav1.FinalizerOrphanDependents && f != metav1.FinalizerDeleteDependents {
			out = append(out, f)
		}
	}
	if orphan {
		out = append(out, metav1.FinalizerOrphanDependents)
	}
	if foreground {
		out = append(out, metav1.FinalizerDeleteDependents)
	}
	old, cur := slices.Clone(fins), slices.Clone(out)
	slices.Sort(old)
	slices.Sort(cur)
	if slices.Equal(old, cur) {
		return fins, false
	}
	return out, true
}

func valueOr(p *int64, d int64) int64 {
	if p == nil {
		return d
	}
	return *p
}

func (a *api) handleDeleteCollection(ctx context.Context, w http.ResponseWriter, r *http.Request, info requestInfo) error {
	opts, err := a.deleteOptions(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	sel, err := parseSelector(info.res, q.Get("labelSelector"), q.Get("fieldSelector"))
	if err != nil {
		return err
	}
	lr, err := a.listObjects(ctx, info.res, info.namespace, sel, 0, "", "", "")
	if err != nil {
		return err
	}
	var items []runtime.Object
	for _, obj := range lr.items {
		m := metaOf(obj)
		out, err := a.delete(ctx, info.res, m.GetNamespace(), m.GetName(), opts)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return err
		}
		items = append(items, out)
	}
	// Kubernetes answers with the list of what it deleted, each item as it
	// is after its delete (graceful ones with deletionTimestamp).
	list := info.res.NewList()
	if err := meta.SetList(list, items); err != nil {
		return apierrors.NewInternalError(err)
	}
	lm, err := meta.ListAccessor(list)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	rev := lr.rev
	for _, it := range items {
		if n, _ := strconv.ParseInt(metaOf(it).GetResourceVersion(), 10, 64); n > rev {
			rev = n
		}
	}
	lm.SetResourceVersion(strconv.FormatInt(rev, 10))
	a.writeObject(w, r, http.StatusOK, list)
	return nil
}
