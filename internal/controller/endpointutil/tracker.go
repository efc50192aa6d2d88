package endpointutil

import (
	"sync"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
)

// SliceTracker remembers, per Service, the generation of each EndpointSlice
// the controller last wrote and the slices it deleted, as Kubernetes'
// EndpointSliceTracker does. The zero value is not usable; use
// NewSliceTracker. Safe for concurrent use.
type SliceTracker struct {
	mu sync.Mutex
	// bySvc maps a Service to its slices' UIDs and the generation the
	// controller wrote; deletedGeneration marks a slice it deleted.
	bySvc map[types.NamespacedName]map[types.UID]int64
}

const deletedGeneration = -1

// NewSliceTracker returns an empty tracker.
func NewSliceTracker() *SliceTracker {
	return &SliceTracker{bySvc: map[types.NamespacedName]map[types.UID]int64{}}
}

func serviceOf(s *discoveryv1.EndpointSlice) types.NamespacedName {
	return types.NamespacedName{Namespace: s.Namespace, Name: s.Labels[discoveryv1.LabelServiceName]}
}

// Update records s as written by the controller (the object the API
// returned from a create or update).
func (t *SliceTracker) Update(s *discoveryv1.EndpointSlice) {
	t.mu.Lock()
	defer t.mu.Unlock()
	key := serviceOf(s)
	if t.bySvc[key] == nil {
		t.bySvc[key] = map[types.UID]int64{}
	}
	t.bySvc[key][s.UID] = s.Generation
}

// ExpectDeletion records that the controller deleted s.
func (t *SliceTracker) ExpectDeletion(s *discoveryv1.EndpointSlice) {
	t.mu.Lock()
	defer t.mu.Unlock()
	key := serviceOf(s)
	if t.bySvc[key] == nil {
		t.bySvc[key] = map[types.UID]int64{}
	}
	t.bySvc[key][s.UID] = deletedGeneration
}

// ShouldSync reports whether an informer event about s calls for a sync of
// its Service: true unless s is exactly what the controller last wrote.
func (t *SliceTracker) ShouldSync(s *discoveryv1.EndpointSlice) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	g, ok := t.bySvc[serviceOf(s)][s.UID]
	return !ok || g == deletedGeneration || s.Generation > g
}

// Deleted handles an informer delete of s: it reports whether the delete
// was someone else's (then the Service must be synced) and forgets s.
func (t *SliceTracker) Deleted(s *discoveryv1.EndpointSlice) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	key := serviceOf(s)
	g, ok := t.bySvc[key][s.UID]
	delete(t.bySvc[key], s.UID)
	if len(t.bySvc[key]) == 0 {
		delete(t.bySvc, key)
	}
	return !ok || g != deletedGeneration
}

// StaleSlices reports whether the informer's slices of svc lag behind the
// controller's writes: a slice older than its last write, one the
// controller deleted still listed, or one it wrote missing. A sync on
// such a cache would act on the past; wait for the informer instead.
func (t *SliceTracker) StaleSlices(svc types.NamespacedName, cached []*discoveryv1.EndpointSlice) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	want := t.bySvc[svc]
	seen := make(map[types.UID]bool, len(cached))
	for _, s := range cached {
		seen[s.UID] = true
		g, ok := want[s.UID]
		if !ok {
			continue
		}
		if g == deletedGeneration || s.Generation < g {
			return true
		}
	}
	for uid, g := range want {
		if g != deletedGeneration && !seen[uid] {
			return true
		}
	}
	return false
}

// DeleteService forgets every slice of svc (the Service is gone).
func (t *SliceTracker) DeleteService(svc types.NamespacedName) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.bySvc, svc)
}
