package endpointutil

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	discoveryclient "k8s.io/client-go/kubernetes/typed/discovery/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"

	"github.com/peapod/peapod/internal/controller/ctrlutil"
)

// StaleRetry is how soon a Service whose slices the informer has not yet
// caught up with is looked at again.
const StaleRetry = 50 * time.Millisecond

// ManagedSlice returns obj (a tombstone unwrapped) as an EndpointSlice
// that manager manages for a named Service, or false for anything else.
func ManagedSlice(obj any, manager string) (*discoveryv1.EndpointSlice, bool) {
	s, ok := ctrlutil.Unwrap(obj).(*discoveryv1.EndpointSlice)
	if !ok || s.Labels[discoveryv1.LabelManagedBy] != manager || s.Labels[discoveryv1.LabelServiceName] == "" {
		return nil, false
	}
	return s, true
}

// ServiceKey returns the "namespace/name" key of the Service s belongs to.
func ServiceKey(s *discoveryv1.EndpointSlice) string {
	return s.Namespace + "/" + s.Labels[discoveryv1.LabelServiceName]
}

// LiveSlices returns the slices manager keeps for Service svc in lister,
// less those being deleted. stale reports that the cache has not yet seen
// the writes tracker recorded (see StaleSlices): the caller should look
// again after StaleRetry instead of acting on the past.
func LiveSlices(lister discoverylisters.EndpointSliceLister, tracker *SliceTracker, svc types.NamespacedName, manager string) (live []*discoveryv1.EndpointSlice, stale bool, err error) {
	sel := labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: svc.Name, discoveryv1.LabelManagedBy: manager})
	cached, err := lister.EndpointSlices(svc.Namespace).List(sel)
	if err != nil {
		return nil, false, err
	}
	if tracker.StaleSlices(svc, cached) {
		return nil, true, nil
	}
	for _, s := range cached {
		if s.DeletionTimestamp == nil {
			live = append(live, s)
		}
	}
	return live, false, nil
}

// WriteSlices creates, then updates, then deletes slices through client,
// recording each write with tracker so that its echo from the informer
// does not requeue the Service. owner ("Service ns/name") names whose
// slices they are in errors. A create refused because the namespace is
// terminating ends the writes without error, as the namespace's deletion
// removes what is there; a delete (with the slice's UID as precondition)
// of a slice already gone counts as done.
func WriteSlices(ctx context.Context, client discoveryclient.EndpointSliceInterface, tracker *SliceTracker, owner string,
	create, update, remove []*discoveryv1.EndpointSlice) error {
	for _, s := range create {
		got, err := client.Create(ctx, s, metav1.CreateOptions{})
		if err != nil {
			if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
				return nil
			}
			return fmt.Errorf("create EndpointSlice for %s: %w", owner, err)
		}
		tracker.Update(got)
	}
	for _, s := range update {
		got, err := client.Update(ctx, s, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("update EndpointSlice %s of %s: %w", s.Name, owner, err)
		}
		tracker.Update(got)
	}
	for _, s := range remove {
		err := client.Delete(ctx, s.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &s.UID}})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("delete EndpointSlice %s of %s: %w", s.Name, owner, err)
		}
		tracker.ExpectDeletion(s)
	}
	return nil
}
