package endpointutil

import (
	"context"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/peapod/peapod/internal/controller/controllertest"
)

func indexer(t *testing.T, objs ...any) cache.Indexer {
	t.Helper()
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	for _, o := range objs {
		if err := idx.Add(o); err != nil {
			t.Fatal(err)
		}
	}
	return idx
}

func TestPodServiceKeys(t *testing.T) {
	svc := func(name string, sel map[string]string) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}, Spec: corev1.ServiceSpec{Selector: sel}}
	}
	lister := corelisters.NewServiceLister(indexer(t,
		svc("web", map[string]string{"app": "web"}),
		svc("db", map[string]string{"app": "db"}),
		svc("manual", nil), // no selector: no endpoints from pods
	))
	pod := func(app string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", Labels: map[string]string{"app": app}}}
	}
	for _, tc := range []struct {
		name     string
		old, cur *corev1.Pod
		want     []string
	}{
		{"added", nil, pod("web"), []string{"ns/web"}},
		{"same labels", pod("web"), pod("web"), []string{"ns/web"}},
		{"relabelled", pod("db"), pod("web"), []string{"ns/db", "ns/web"}},
		{"matches none", nil, pod("cache"), nil},
	} {
		got := PodServiceKeys(lister, tc.old, tc.cur)
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: keys %v, want %v", tc.name, got, tc.want)
		}
	}
}

func slice(name, uid string, gen int64) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID(uid), Generation: gen,
		Labels: map[string]string{discoveryv1.LabelServiceName: "web", discoveryv1.LabelManagedBy: "me"}}}
}

func TestWriteSlicesRecordsItsWrites(t *testing.T) {
	old, gone := slice("web-old", "u-old", 1), slice("web-gone", "u-gone", 1)
	kept := slice("web-kept", "u-kept", 1)
	client := controllertest.NewClientset(old, kept)
	tr := NewSliceTracker()
	kept.Endpoints = []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.2"}}}
	create := slice("web-new", "", 0)
	err := WriteSlices(context.Background(), client.DiscoveryV1().EndpointSlices("ns"), tr, "Service ns/web",
		[]*discoveryv1.EndpointSlice{create}, []*discoveryv1.EndpointSlice{kept}, []*discoveryv1.EndpointSlice{old, gone})
	if err != nil {
		t.Fatal(err)
	}
	l, err := client.DiscoveryV1().EndpointSlices("ns").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for i := range l.Items {
		s := &l.Items[i]
		names = append(names, s.Name)
		if tr.ShouldSync(s) {
			t.Errorf("the informer's echo of %s would requeue the Service", s.Name)
		}
	}
	slices.Sort(names)
	if want := []string{"web-kept", "web-new"}; !slices.Equal(names, want) {
		t.Errorf("slices %v, want %v", names, want)
	}
	if tr.Deleted(old) {
		t.Error("the controller's own delete of web-old would requeue the Service")
	}
}

func TestLiveSlices(t *testing.T) {
	deleting := slice("web-b", "u-b", 1)
	now := metav1.Now()
	deleting.DeletionTimestamp = &now
	other := slice("web-c", "u-c", 1)
	other.Labels[discoveryv1.LabelManagedBy] = "someone-else"
	lister := discoverylisters.NewEndpointSliceLister(indexer(t, slice("web-a", "u-a", 1), deleting, other))
	svc := types.NamespacedName{Namespace: "ns", Name: "web"}
	tr := NewSliceTracker()
	live, stale, err := LiveSlices(lister, tr, svc, "me")
	if err != nil || stale || len(live) != 1 || live[0].Name != "web-a" {
		t.Fatalf("LiveSlices = %v, stale %v, %v; want only web-a", live, stale, err)
	}
	// A slice this controller wrote that the cache has not seen yet.
	tr.Update(slice("web-d", "u-d", 1))
	if _, stale, _ := LiveSlices(lister, tr, svc, "me"); !stale {
		t.Error("cache missing the controller's last write not reported stale")
	}
}
