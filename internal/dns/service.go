//lint:file-ignore SA1019 kube-dns's core/v1 Endpoints are written beside its EndpointSlice for the clients that still read them, as Kubernetes' own controllers keep doing

package dns

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// The cluster DNS Service, named and labelled as kubeadm's, so tools and
// manifests that look for kube-dns find it.
const (
	ServiceNamespace = metav1.NamespaceSystem
	ServiceName      = "kube-dns"
	// ManagedBy is the endpointslice.kubernetes.io/managed-by of the
	// Service's EndpointSlice: written by the servers, not by the
	// EndpointSlice controller (the Service has no selector).
	ManagedBy = "peapod-dns"
)

// serviceLabels are kubeadm's labels of kube-dns.
func serviceLabels() map[string]string {
	return map[string]string{"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "KubeDNS"}
}

// ServiceFor returns the kube-dns Service: ClusterIP ip, ports dns (53/UDP)
// and dns-tcp (53/TCP) to the servers' DNS port, and no selector: its
// endpoints are the servers, written by PublishEndpoint.
func ServiceFor(ip netip.Addr, port int) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: ServiceName, Namespace: ServiceNamespace, Labels: serviceLabels()},
		Spec: corev1.ServiceSpec{
			Type:       corev1.ServiceTypeClusterIP,
			ClusterIP:  ip.String(),
			ClusterIPs: []string{ip.String()},
			Ports: []corev1.ServicePort{
				{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(int32(port))},
				{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(int32(port))},
			},
		},
	}
}

// EnsureService creates the kube-dns Service with ClusterIP s.ClusterDNS,
// or brings an existing one's ports, labels and selector back to ours. One
// with another ClusterIP (the server was started with another
// --cluster-dns) is replaced, since a ClusterIP cannot change; pods
// already running keep the old nameserver until they are recreated. An
// address another Service holds is an error naming that Service.
func EnsureService(ctx context.Context, client kubernetes.Interface, s Settings) error {
	want := ServiceFor(s.ClusterDNS, s.Port)
	svcs := client.CoreV1().Services(ServiceNamespace)
	for attempt := 0; attempt < 5; attempt++ {
		cur, err := svcs.Get(ctx, ServiceName, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			_, err = svcs.Create(ctx, want, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err) {
				continue
			}
			if apierrors.IsInvalid(err) {
				return ipTaken(ctx, client, s.ClusterDNS, err)
			}
			if err != nil {
				return fmt.Errorf("create Service %s/%s: %w", ServiceNamespace, ServiceName, err)
			}
			return nil
		case err != nil:
			return fmt.Errorf("read Service %s/%s: %w", ServiceNamespace, ServiceName, err)
		case cur.Spec.ClusterIP != want.Spec.ClusterIP:
			err := svcs.Delete(ctx, ServiceName, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &cur.UID}})
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				return fmt.Errorf("replace Service %s/%s (ClusterIP %s, now --cluster-dns %s): %w", ServiceNamespace, ServiceName, cur.Spec.ClusterIP, s.ClusterDNS, err)
			}
			continue
		}
		if slices.Equal(cur.Spec.Ports, want.Spec.Ports) && cur.Spec.Selector == nil && hasLabels(cur.Labels, want.Labels) {
			return nil
		}
		cur.Spec.Ports, cur.Spec.Selector = want.Spec.Ports, nil
		if cur.Labels == nil {
			cur.Labels = map[string]string{}
		}
		for k, v := range want.Labels {
			cur.Labels[k] = v
		}
		_, err = svcs.Update(ctx, cur, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("update Service %s/%s: %w", ServiceNamespace, ServiceName, err)
		}
		return nil
	}
	return fmt.Errorf("ensure Service %s/%s: it kept changing under us", ServiceNamespace, ServiceName)
}

// ipTaken explains a refused create: which Service holds the address.
func ipTaken(ctx context.Context, client kubernetes.Interface, ip netip.Addr, createErr error) error {
	list, err := client.CoreV1().Services(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err == nil {
		for _, svc := range list.Items {
			if slices.Contains(svc.Spec.ClusterIPs, ip.String()) || svc.Spec.ClusterIP == ip.String() {
				return fmt.Errorf("--cluster-dns %s: already the ClusterIP of Service %s/%s; delete that Service or start the server with another --cluster-dns",
					ip, svc.Namespace, svc.Name)
			}
		}
	}
	return fmt.Errorf("--cluster-dns %s: create Service %s/%s: %w", ip, ServiceNamespace, ServiceName, createErr)
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// EndpointsFor returns the kube-dns Endpoints and EndpointSlice listing
// addrs (the running servers' addresses, IPv4) at port, UDP and TCP, all
// ready. No addresses gives empty ones: the Service then has no endpoints
// and the service proxy rejects at once. The Endpoints carry skip-mirror,
// since the slice is written beside them. Pure.
func EndpointsFor(addrs []netip.Addr, port int) (*corev1.Endpoints, *discoveryv1.EndpointSlice) {
	meta := metav1.ObjectMeta{Name: ServiceName, Namespace: ServiceNamespace}
	eps := &corev1.Endpoints{ObjectMeta: *meta.DeepCopy()}
	eps.Labels = serviceLabels()
	eps.Labels[discoveryv1.LabelSkipMirror] = "true"
	slice := &discoveryv1.EndpointSlice{ObjectMeta: *meta.DeepCopy(), AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{}, Ports: []discoveryv1.EndpointPort{}}
	slice.Labels = serviceLabels()
	slice.Labels[discoveryv1.LabelServiceName] = ServiceName
	slice.Labels[discoveryv1.LabelManagedBy] = ManagedBy
	sorted := slices.Clone(addrs)
	slices.SortFunc(sorted, func(a, b netip.Addr) int { return a.Compare(b) })
	sorted = slices.Compact(sorted)
	if len(sorted) == 0 {
		return eps, slice
	}
	subset := corev1.EndpointSubset{Ports: []corev1.EndpointPort{
		{Name: "dns", Port: int32(port), Protocol: corev1.ProtocolUDP},
		{Name: "dns-tcp", Port: int32(port), Protocol: corev1.ProtocolTCP},
	}}
	slice.Ports = []discoveryv1.EndpointPort{
		{Name: ptr.To("dns"), Port: ptr.To(int32(port)), Protocol: ptr.To(corev1.ProtocolUDP)},
		{Name: ptr.To("dns-tcp"), Port: ptr.To(int32(port)), Protocol: ptr.To(corev1.ProtocolTCP)},
	}
	for _, a := range sorted {
		subset.Addresses = append(subset.Addresses, corev1.EndpointAddress{IP: a.String()})
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{Addresses: []string{a.String()},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)}})
	}
	eps.Subsets = []corev1.EndpointSubset{subset}
	return eps, slice
}

// PublishEndpoint adds addr (this server's) to the kube-dns endpoints,
// and WithdrawEndpoint takes it out again: each server lists itself while
// it serves, beside the other servers' addresses.
//
// A server that dies without withdrawing stays listed. kube-apiserver's
// lease reconciler has the same problem for the kubernetes Service and
// solves it with a lease per address; this is meant to be fed from that
// same list of live servers (the addresses are the same for both
// Services, only the port differs).
func PublishEndpoint(ctx context.Context, client kubernetes.Interface, addr netip.Addr, port int) error {
	if !addr.Is4() {
		return fmt.Errorf("kube-dns endpoint %s: not IPv4", addr)
	}
	return updateEndpoints(ctx, client, port, func(cur []netip.Addr) []netip.Addr { return append(cur, addr) })
}

// WithdrawEndpoint takes addr out of the kube-dns endpoints (see
// PublishEndpoint).
func WithdrawEndpoint(ctx context.Context, client kubernetes.Interface, addr netip.Addr, port int) error {
	return updateEndpoints(ctx, client, port, func(cur []netip.Addr) []netip.Addr {
		return slices.DeleteFunc(cur, func(a netip.Addr) bool { return a == addr })
	})
}

// updateEndpoints rewrites the kube-dns EndpointSlice with the addresses
// change makes of its current ones, retrying on conflicts, then the
// Endpoints (when the API serves them) to match.
func updateEndpoints(ctx context.Context, client kubernetes.Interface, port int, change func([]netip.Addr) []netip.Addr) error {
	esc := client.DiscoveryV1().EndpointSlices(ServiceNamespace)
	var eps *corev1.Endpoints
	for attempt := 0; ; attempt++ {
		cur, err := esc.Get(ctx, ServiceName, metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("kube-dns EndpointSlice: %w", err)
		}
		var addrs []netip.Addr
		if err == nil {
			for _, e := range cur.Endpoints {
				for _, s := range e.Addresses {
					if a, perr := netip.ParseAddr(s); perr == nil {
						addrs = append(addrs, a)
					}
				}
			}
		}
		var slice *discoveryv1.EndpointSlice
		eps, slice = EndpointsFor(change(addrs), port)
		if apierrors.IsNotFound(err) {
			_, err = esc.Create(ctx, slice, metav1.CreateOptions{})
		} else {
			cur.Labels, cur.AddressType, cur.Endpoints, cur.Ports = slice.Labels, slice.AddressType, slice.Endpoints, slice.Ports
			_, err = esc.Update(ctx, cur, metav1.UpdateOptions{})
		}
		if err == nil {
			break
		}
		if attempt >= 5 || !(apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) || apierrors.IsNotFound(err)) {
			return fmt.Errorf("kube-dns EndpointSlice: %w", err)
		}
	}
	if !servesEndpoints(client) {
		return nil
	}
	ec := client.CoreV1().Endpoints(ServiceNamespace)
	if err := upsert(ctx, eps,
		func(o *corev1.Endpoints) error {
			_, err := ec.Create(ctx, o, metav1.CreateOptions{})
			return err
		},
		func() (*corev1.Endpoints, error) { return ec.Get(ctx, ServiceName, metav1.GetOptions{}) },
		func(cur *corev1.Endpoints) error {
			cur.Labels, cur.Subsets = eps.Labels, eps.Subsets
			_, err := ec.Update(ctx, cur, metav1.UpdateOptions{})
			return err
		}); err != nil {
		return fmt.Errorf("kube-dns Endpoints: %w", err)
	}
	return nil
}

// servesEndpoints says whether the API serves core/v1 endpoints (peapod's
// API grew them with its Endpoints controller).
func servesEndpoints(client kubernetes.Interface) bool {
	list, err := client.Discovery().ServerResourcesForGroupVersion("v1")
	if err != nil {
		return false
	}
	for _, r := range list.APIResources {
		if r.Name == "endpoints" {
			return true
		}
	}
	return false
}

// upsert creates obj, or updates the existing object, retrying on
// conflicts.
func upsert[T any](ctx context.Context, obj T, create func(T) error, get func() (T, error), update func(T) error) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if err = create(obj); !apierrors.IsAlreadyExists(err) {
			return err
		}
		var cur T
		if cur, err = get(); apierrors.IsNotFound(err) {
			continue
		} else if err != nil {
			return err
		}
		if err = update(cur); !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return err
}
