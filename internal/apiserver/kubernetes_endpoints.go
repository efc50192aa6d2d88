package apiserver

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
)

// The `kubernetes` Service's endpoints are every live API server, as
// kube-apiserver's lease endpoint reconciler keeps them
// (--endpoint-reconciler-type=lease): each server holds a Lease in
// kube-system naming its address and renews it every
// endpointLeaseInterval; each server, on each renewal, writes the
// EndpointSlice as the addresses of the Leases that have not expired, so
// every server writes the same list and a server that dies drops out
// within endpointLeaseDuration plus one interval. With one server writing
// only its own address, two servers would overwrite each other forever.
const (
	endpointLeaseInterval = 10 * time.Second
	endpointLeaseDuration = 15 * time.Second
	// apiserverLeaseLabel marks the Leases, as kube-apiserver marks its
	// identity Leases.
	apiserverLeaseLabel = "apiserver.kubernetes.io/identity"
	apiserverLeaseValue = "kube-apiserver"
	// apiserverAddressAnnotation carries the server's host:port.
	apiserverAddressAnnotation = "peapod.io/apiserver-address"
)

// apiserverLeaseName names the Lease of the server at address
// (host:port): "apiserver-172-31-0-2-6443".
func apiserverLeaseName(address string) string {
	r := strings.NewReplacer(".", "-", ":", "-", "[", "", "]", "")
	return "apiserver-" + r.Replace(address)
}

// liveAPIServers returns the host:port of every Lease that has not
// expired at now, sorted; self is always included. Pure.
func liveAPIServers(leases []*coordinationv1.Lease, self string, now time.Time) []string {
	live := []string{self}
	for _, l := range leases {
		addr := l.Annotations[apiserverAddressAnnotation]
		if addr == "" || addr == self || l.Spec.RenewTime == nil || l.Spec.LeaseDurationSeconds == nil {
			continue
		}
		if l.Spec.RenewTime.Add(time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second).After(now) {
			live = append(live, addr)
		}
	}
	slices.Sort(live)
	return slices.Compact(live)
}

// kubernetesEndpointSlice is the `kubernetes` Service's EndpointSlice for
// the servers at addrs (host:port; the port of the first is the slice's,
// as every server of a cluster listens on the same port). Pure.
func kubernetesEndpointSlice(addrs []string) *discoveryv1.EndpointSlice {
	ready := true
	port := int32(6443)
	var endpoints []discoveryv1.Endpoint
	for i, a := range addrs {
		host, p, err := net.SplitHostPort(a)
		if err != nil {
			continue
		}
		if i == 0 {
			if n, err := strconv.Atoi(p); err == nil {
				port = int32(n)
			}
		}
		endpoints = append(endpoints, discoveryv1.Endpoint{Addresses: []string{host}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
	}
	pname, proto := "https", corev1.ProtocolTCP
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: metav1.NamespaceDefault,
			Labels: map[string]string{discoveryv1.LabelServiceName: "kubernetes", discoveryv1.LabelManagedBy: "peapod-apiserver"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   endpoints,
		Ports:       []discoveryv1.EndpointPort{{Name: &pname, Protocol: &proto, Port: &port}},
	}
}

// reconcileKubernetesEndpoints renews this server's Lease (unless
// leaving, when it deletes it), removes Leases long expired, and writes
// the EndpointSlice from the live ones.
func (a *api) reconcileKubernetesEndpoints(ctx context.Context, leaving bool) error {
	self := a.serverAddress
	if _, _, err := net.SplitHostPort(self); err != nil {
		return nil // no address to announce (in-process tests)
	}
	leases := a.resourceFor("coordination.k8s.io", "v1", "leases")
	name := apiserverLeaseName(self)
	now := a.now()
	if leaving {
		if _, err := a.delete(ctx, leases, metav1.NamespaceSystem, name, &metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete lease %s: %w", name, err)
		}
	} else if err := a.renewAPIServerLease(ctx, name, self, now); err != nil {
		return err
	}
	sel := selector{labels: labels.SelectorFromSet(labels.Set{apiserverLeaseLabel: apiserverLeaseValue}), fields: fields.Everything()}
	lr, err := a.listObjects(ctx, leases, metav1.NamespaceSystem, sel, 0, "", "", "")
	if err != nil {
		return fmt.Errorf("list apiserver leases: %w", err)
	}
	var all []*coordinationv1.Lease
	for _, obj := range lr.items {
		l := obj.(*coordinationv1.Lease)
		all = append(all, l)
		// A Lease expired for ten durations belongs to a server that is
		// gone, not slow: remove it, unless it was renewed meanwhile.
		if l.Name != name && l.Spec.RenewTime != nil && now.Sub(l.Spec.RenewTime.Time) > 10*endpointLeaseDuration {
			rv := l.ResourceVersion
			if _, err := a.delete(ctx, leases, metav1.NamespaceSystem, l.Name, &metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &rv}}); err != nil &&
				!apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				a.log.Warn("delete expired apiserver lease", "lease", l.Name, "err", err)
			}
		}
	}
	live := liveAPIServers(all, self, now)
	if leaving {
		live = slices.DeleteFunc(live, func(s string) bool { return s == self })
	}
	want := kubernetesEndpointSlice(live)
	return a.ensure(ctx, a.resourceFor("discovery.k8s.io", "v1", "endpointslices"), want, func(cur runtime.Object) {
		c := cur.(*discoveryv1.EndpointSlice)
		c.Endpoints, c.Ports, c.Labels = want.Endpoints, want.Ports, want.Labels
	})
}

// renewAPIServerLease creates or renews this server's Lease.
func (a *api) renewAPIServerLease(ctx context.Context, name, self string, now time.Time) error {
	res := a.resourceFor("coordination.k8s.io", "v1", "leases")
	duration := int32(endpointLeaseDuration / time.Second)
	renew := metav1.NewMicroTime(now)
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: metav1.NamespaceSystem,
			Labels:      map[string]string{apiserverLeaseLabel: apiserverLeaseValue},
			Annotations: map[string]string{apiserverAddressAnnotation: self}},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &self, LeaseDurationSeconds: &duration, RenewTime: &renew},
	}
	if err := a.ensure(ctx, res, lease, func(cur runtime.Object) {
		c := cur.(*coordinationv1.Lease)
		c.Labels, c.Annotations, c.Spec = lease.Labels, lease.Annotations, lease.Spec
	}); err != nil {
		return fmt.Errorf("renew lease %s: %w", name, err)
	}
	return nil
}

// runKubernetesEndpoints reconciles every endpointLeaseInterval until ctx
// ends, then takes this server out of the endpoints (kube-apiserver does
// the same on shutdown).
func (a *api) runKubernetesEndpoints(ctx context.Context) {
	t := time.NewTicker(endpointLeaseInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := a.reconcileKubernetesEndpoints(lctx, true); err != nil {
				a.log.Debug("leave the kubernetes endpoints", "err", err)
			}
			return
		case <-t.C:
		}
		if err := a.reconcileKubernetesEndpoints(ctx, false); err != nil && ctx.Err() == nil {
			a.log.Warn("kubernetes service endpoints", "err", err)
		}
	}
}
