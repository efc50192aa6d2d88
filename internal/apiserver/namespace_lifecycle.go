package apiserver

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
)

// Namespace deletion works as on Kubernetes:
//
//  1. Namespaces carry spec.finalizers ["kubernetes"] from creation.
//  2. DELETE sets deletionTimestamp and status.phase Terminating; the
//     namespace stays while spec.finalizers is not empty, and create
//     requests into it get 403 Forbidden (checkNamespace).
//  3. A cleanup loop (one goroutine per terminating namespace, resumed at
//     start) deletes every namespaced object in it, waiting for graceful
//     deletions and finalizers, then removes the "kubernetes" finalizer,
//     which removes the namespace.

// ensureNamespaceFinalizer adds the "kubernetes" spec finalizer. Pure.
func ensureNamespaceFinalizer(ns *corev1.Namespace) {
	for _, f := range ns.Spec.Finalizers {
		if f == corev1.FinalizerKubernetes {
			return
		}
	}
	ns.Spec.Finalizers = append(ns.Spec.Finalizers, corev1.FinalizerKubernetes)
}

// terminateNamespace is the namespaces' Resource.Terminate: a namespace
// being deleted turns Terminating and stays while spec.finalizers is not
// empty. A first delete of a namespace created without the finalizer
// adds it, so its content is still cleaned up.
func terminateNamespace(obj runtime.Object) bool {
	ns := obj.(*corev1.Namespace)
	ns.Status.Phase = corev1.NamespaceTerminating
	if ns.DeletionTimestamp == nil {
		ensureNamespaceFinalizer(ns)
	}
	return len(ns.Spec.Finalizers) > 0
}

// startNamespaceCleanup is the namespaces' Resource.AfterTerminate: it
// starts the cleanup loop of a terminating namespace unless one runs. The
// loop retries with back-off and gives up after 30 minutes (the next
// delete or start resumes it).
func startNamespaceCleanup(a *api, obj runtime.Object) {
	name := metaOf(obj).GetName()
	if _, running := a.terminating.LoadOrStore(name, true); running {
		return
	}
	go func() {
		defer a.terminating.Delete(name)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		defer cancel()
		backoff := 20 * time.Millisecond
		for {
			done, err := a.cleanupNamespace(ctx, name)
			if done {
				return
			}
			if err != nil {
				a.log.Warn("namespace cleanup", "namespace", name, "err", err)
			}
			select {
			case <-ctx.Done():
				a.log.Warn("namespace cleanup gave up", "namespace", name)
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 2*time.Second)
		}
	}()
}

// cleanupNamespace runs one round: it deletes what is left in namespace
// ns and, when nothing is, removes the "kubernetes" finalizer. done is
// true once the namespace is gone (or no longer terminating).
func (a *api) cleanupNamespace(ctx context.Context, ns string) (done bool, err error) {
	nsRes := a.resourceFor("", "v1", "namespaces")
	obj, _, err := a.getObject(ctx, nsRes, "", ns)
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if metaOf(obj).GetDeletionTimestamp() == nil {
		return true, nil
	}
	left := 0
	everything := selector{labels: labels.Everything(), fields: fields.Everything()}
	for _, res := range a.resources {
		if !res.Namespaced || res.Decode != nil { // aliases share another resource's storage
			continue
		}
		lr, err := a.listObjects(ctx, res, ns, everything, 0, "", "", "")
		if err != nil {
			return false, fmt.Errorf("list %s in %s: %w", res, ns, err)
		}
		for _, item := range lr.items {
			left++
			m := metaOf(item)
			if m.GetDeletionTimestamp() != nil && len(m.GetFinalizers()) > 0 {
				continue // waiting for its finalizers
			}
			if _, err := a.delete(ctx, res, ns, m.GetName(), &metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return false, fmt.Errorf("delete %s %s/%s: %w", res, ns, m.GetName(), err)
			}
		}
	}
	if left > 0 {
		return false, nil
	}
	_, err = a.update(ctx, nsRes, "", ns, false, false, func(cur runtime.Object) (runtime.Object, error) {
		n := cur.(*corev1.Namespace)
		var keep []corev1.FinalizerName
		for _, f := range n.Spec.Finalizers {
			if f != corev1.FinalizerKubernetes {
				keep = append(keep, f)
			}
		}
		n.Spec.Finalizers = keep
		n.ResourceVersion = ""
		return n, nil
	})
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("finalize namespace %s: %w", ns, err)
	}
	return true, nil // finalizers of others, if any, are theirs to remove
}

// resumeNamespaceCleanup restarts the cleanup of namespaces that were
// terminating when the server stopped.
func (a *api) resumeNamespaceCleanup(ctx context.Context) error {
	res := a.resourceFor("", "v1", "namespaces")
	lr, err := a.listObjects(ctx, res, "", selector{labels: labels.Everything(), fields: fields.Everything()}, 0, "", "", "")
	if err != nil {
		return fmt.Errorf("list namespaces: %w", err)
	}
	for _, obj := range lr.items {
		if metaOf(obj).GetDeletionTimestamp() != nil {
			startNamespaceCleanup(a, obj)
		}
	}
	return nil
}
