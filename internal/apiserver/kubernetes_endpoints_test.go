package apiserver

import (
	"context"
	"slices"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/peapod/peapod/internal/storage"
)

func TestLiveAPIServers(t *testing.T) {
	now := time.Now()
	lease := func(addr string, renewed time.Duration) *coordinationv1.Lease {
		d := int32(15)
		r := metav1.NewMicroTime(now.Add(-renewed))
		return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{apiserverAddressAnnotation: addr}},
			Spec: coordinationv1.LeaseSpec{LeaseDurationSeconds: &d, RenewTime: &r}}
	}
	got := liveAPIServers([]*coordinationv1.Lease{
		lease("10.0.0.3:6443", 5*time.Second),
		lease("10.0.0.9:6443", 20*time.Second), // expired
		lease("10.0.0.1:6443", time.Minute),    // this server's own, stale: still live
		{},                                     // no address
	}, "10.0.0.1:6443", now)
	if want := []string{"10.0.0.1:6443", "10.0.0.3:6443"}; !slices.Equal(got, want) {
		t.Fatalf("live %v, want %v", got, want)
	}
	if apiserverLeaseName("172.31.0.2:6443") != "apiserver-172-31-0-2-6443" {
		t.Fatal(apiserverLeaseName("172.31.0.2:6443"))
	}
	slice := kubernetesEndpointSlice(got)
	if len(slice.Endpoints) != 2 || slice.Endpoints[1].Addresses[0] != "10.0.0.3" || *slice.Ports[0].Port != 6443 {
		t.Fatalf("slice %+v", slice)
	}
}

// TestKubernetesEndpointsOfTwoServers: two servers on one store both
// appear in the kubernetes EndpointSlice, neither overwrites the other,
// and one that leaves is taken out.
func TestKubernetesEndpointsOfTwoServers(t *testing.T) {
	ctx := context.Background()
	mem := storage.NewMemory()
	defer mem.Close()
	one := newAPI(apiOptions{Store: mem, ServerAddress: "10.0.0.1:6443"})
	two := newAPI(apiOptions{Store: mem, ServerAddress: "10.0.0.2:6443"})
	for _, a := range []*api{one, two} {
		if err := a.bootstrap(ctx); err != nil {
			t.Fatal(err)
		}
	}
	addresses := func() []string {
		t.Helper()
		obj, _, err := one.getObject(ctx, one.resourceFor("discovery.k8s.io", "v1", "endpointslices"), "default", "kubernetes")
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range obj.(*discoveryv1.EndpointSlice).Endpoints {
			out = append(out, e.Addresses...)
		}
		return out
	}
	if got := addresses(); !slices.Equal(got, []string{"10.0.0.1", "10.0.0.2"}) {
		t.Fatalf("after both started: %v", got)
	}
	if err := one.reconcileKubernetesEndpoints(ctx, false); err != nil {
		t.Fatal(err)
	}
	if got := addresses(); !slices.Equal(got, []string{"10.0.0.1", "10.0.0.2"}) {
		t.Fatalf("a renewal dropped the other server: %v", got)
	}
	if err := two.reconcileKubernetesEndpoints(ctx, true); err != nil {
		t.Fatal(err)
	}
	if got := addresses(); !slices.Equal(got, []string{"10.0.0.1"}) {
		t.Fatalf("after server two left: %v", got)
	}
	// A server that died without leaving drops out once its Lease expires.
	if err := two.reconcileKubernetesEndpoints(ctx, false); err != nil {
		t.Fatal(err)
	}
	one.now = func() time.Time { return time.Now().Add(endpointLeaseDuration + time.Second) }
	if err := one.reconcileKubernetesEndpoints(ctx, false); err != nil {
		t.Fatal(err)
	}
	if got := addresses(); !slices.Equal(got, []string{"10.0.0.1"}) {
		t.Fatalf("after server two's Lease expired: %v", got)
	}
}
