package dns

import (
	"context"
	"log/slog"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	fakediscovery "k8s.io/client-go/discovery/fake"
	"k8s.io/client-go/kubernetes/fake"
)

func TestEnsureService(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	s, err := Settings{}.Complete("10.96.0.0/12")
	if err != nil {
		t.Fatal(err)
	}
	get := func() *corev1.Service {
		t.Helper()
		svc, err := client.CoreV1().Services("kube-system").Get(ctx, "kube-dns", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return svc
	}
	if err := EnsureService(ctx, client, s); err != nil {
		t.Fatal(err)
	}
	svc := get()
	if svc.Spec.ClusterIP != "10.96.0.10" || svc.Labels["k8s-app"] != "kube-dns" || len(svc.Spec.Ports) != 2 ||
		svc.Spec.Ports[0].Protocol != corev1.ProtocolUDP || svc.Spec.Ports[1].Protocol != corev1.ProtocolTCP || svc.Spec.Selector != nil {
		t.Fatalf("kube-dns: %+v", svc)
	}

	// A user's edits to ports, labels and selector are put back.
	svc.Spec.Ports = svc.Spec.Ports[:1]
	svc.Spec.Selector = map[string]string{"app": "x"}
	svc.Labels = map[string]string{"mine": "yes"}
	if _, err := client.CoreV1().Services("kube-system").Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := EnsureService(ctx, client, s); err != nil {
		t.Fatal(err)
	}
	if svc := get(); len(svc.Spec.Ports) != 2 || svc.Spec.Selector != nil || svc.Labels["k8s-app"] != "kube-dns" || svc.Labels["mine"] != "yes" {
		t.Errorf("not repaired: %+v", svc)
	}

	// Another --cluster-dns (and port) replaces the Service.
	s.ClusterDNS, s.Port = netip.MustParseAddr("10.96.0.53"), 5353
	if err := EnsureService(ctx, client, s); err != nil {
		t.Fatal(err)
	}
	if svc := get(); svc.Spec.ClusterIP != "10.96.0.53" || svc.Spec.Ports[0].TargetPort.IntValue() != 5353 {
		t.Errorf("not replaced: clusterIP %s targetPort %s", svc.Spec.ClusterIP, svc.Spec.Ports[0].TargetPort.String())
	}
}

func TestPublishEndpoints(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	// The API serves core/v1 endpoints.
	client.Discovery().(*fakediscovery.FakeDiscovery).Resources = []*metav1.APIResourceList{
		{GroupVersion: "v1", APIResources: []metav1.APIResource{{Name: "endpoints", Namespaced: true, Kind: "Endpoints"}}}}
	addr := netip.MustParseAddr("192.0.2.2")
	for range 2 { // idempotent
		if err := PublishEndpoint(ctx, client, addr, 53); err != nil {
			t.Fatal(err)
		}
	}
	es, err := client.DiscoveryV1().EndpointSlices("kube-system").Get(ctx, "kube-dns", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if es.Labels[discoveryv1.LabelServiceName] != "kube-dns" || es.Labels[discoveryv1.LabelManagedBy] != ManagedBy ||
		len(es.Endpoints) != 1 || es.Endpoints[0].Addresses[0] != "192.0.2.2" || !*es.Endpoints[0].Conditions.Ready ||
		len(es.Ports) != 2 || *es.Ports[0].Port != 53 {
		t.Fatalf("EndpointSlice: %+v", es)
	}
	eps, err := client.CoreV1().Endpoints("kube-system").Get(ctx, "kube-dns", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if eps.Labels[discoveryv1.LabelSkipMirror] != "true" || len(eps.Subsets) != 1 || eps.Subsets[0].Addresses[0].IP != "192.0.2.2" {
		t.Fatalf("Endpoints: %+v", eps)
	}
	// A second server lists itself beside the first; the first, stopping,
	// leaves the second's.
	other := netip.MustParseAddr("192.0.2.3")
	if err := PublishEndpoint(ctx, client, other, 53); err != nil {
		t.Fatal(err)
	}
	if err := WithdrawEndpoint(ctx, client, addr, 53); err != nil {
		t.Fatal(err)
	}
	es, _ = client.DiscoveryV1().EndpointSlices("kube-system").Get(ctx, "kube-dns", metav1.GetOptions{})
	if len(es.Endpoints) != 1 || es.Endpoints[0].Addresses[0] != "192.0.2.3" {
		t.Fatalf("after the first server left: %+v", es.Endpoints)
	}
	// The last one out empties them; an update, not a second object.
	if err := WithdrawEndpoint(ctx, client, other, 53); err != nil {
		t.Fatal(err)
	}
	es, _ = client.DiscoveryV1().EndpointSlices("kube-system").Get(ctx, "kube-dns", metav1.GetOptions{})
	eps, _ = client.CoreV1().Endpoints("kube-system").Get(ctx, "kube-dns", metav1.GetOptions{})
	if len(es.Endpoints) != 0 || len(eps.Subsets) != 0 {
		t.Errorf("not emptied: %d endpoints, %d subsets", len(es.Endpoints), len(eps.Subsets))
	}
	if err := PublishEndpoint(ctx, client, netip.MustParseAddr("fd00::1"), 53); err == nil {
		t.Error("an IPv6 address was published in an IPv4 slice")
	}
}

// A server that dies without withdrawing leaves the kube-dns endpoints
// when it leaves the kubernetes Service's: the survivors follow the live
// API servers' list, with themselves always in it.
func TestFollowAPIServers(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := fake.NewClientset()
	a, b := netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.3")
	for _, addr := range []netip.Addr{a, b} {
		if err := PublishEndpoint(ctx, client, addr, 53); err != nil {
			t.Fatal(err)
		}
	}
	live := make(chan []netip.Addr)
	done := make(chan struct{})
	go func() { defer close(done); followAPIServers(ctx, client, a, 53, live, slog.Default()) }()

	kubernetes := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default"},
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"192.0.2.2"}}}}
	tellAPIServers(kubernetes, func(addrs []netip.Addr) { live <- addrs }) // b's lease expired
	other := kubernetes.DeepCopy()
	other.Name = "web"
	tellAPIServers(other, func([]netip.Addr) { t.Error("a Service other than kubernetes was taken for the API servers") })
	live <- []netip.Addr{} // an empty list: self stays
	cancel()
	<-done
	es, err := client.DiscoveryV1().EndpointSlices("kube-system").Get(context.Background(), "kube-dns", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(es.Endpoints) != 1 || es.Endpoints[0].Addresses[0] != "192.0.2.2" {
		t.Errorf("kube-dns endpoints %+v, want only the live server 192.0.2.2", es.Endpoints)
	}
}
