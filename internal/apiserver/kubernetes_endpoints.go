//lint:file-ignore SA1019 the kubernetes Service's core/v1 Endpoints are kept beside its EndpointSlice, as kube-apiserver's lease reconciler keeps them, for the clients that still read them
package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"

	"github.com/peapod/peapod/internal/nodeaddr"
	"github.com/peapod/peapod/internal/storage"
)

// The kubernetes Service's endpoints are kept as kube-apiserver's lease
// endpoint reconciler keeps them: every API server renews a lease of its
// advertised address under masterLeasesPrefix, and writes the Endpoints
// and EndpointSlice "kubernetes" in default listing every address whose
// lease is alive. A server that stops removes its own lease and address.
const (
	masterLeasesPrefix = "/registry/masterleases/"
	// masterLeaseTTL is how long an address stays listed without renewal
	// (kube-apiserver's --master-endpoint-reconcile-ttl is 15s).
	masterLeaseTTL = 15 * time.Second
	// endpointReconcileInterval is kube-apiserver's
	// EndpointReconcilerInterval.
	endpointReconcileInterval = 10 * time.Second
)

// kubernetesEndpoint is this server's address and port as pods reach it.
type kubernetesEndpoint struct {
	ip   string
	port int32
}

// runKubernetesEndpoints renews this server's lease and rewrites the
// kubernetes endpoints every endpointReconcileInterval until ctx ends.
// It does nothing when the server has no address pods can reach.
func (a *api) runKubernetesEndpoints(ctx context.Context) {
	if a.advertise.ip == "" {
		return
	}
	t := time.NewTicker(endpointReconcileInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := a.reconcileKubernetesEndpoints(ctx, true); err != nil && ctx.Err() == nil {
			a.log.Warn("kubernetes service endpoints", "err", err)
		}
	}
}

// reconcileKubernetesEndpoints renews (alive) or drops (!alive) this
// server's lease, then writes the addresses of every live lease into the
// kubernetes Endpoints and EndpointSlice.
func (a *api) reconcileKubernetesEndpoints(ctx context.Context, alive bool) error {
	self := a.advertise
	if self.ip == "" {
		return nil
	}
	key := masterLeasesPrefix + self.ip
	if alive {
		if err := a.renewMasterLease(ctx, key); err != nil {
			return err
		}
	} else if _, err := a.store.Delete(ctx, key, 0); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("remove lease %s: %w", key, err)
	}
	ips, err := a.liveMasterAddresses(ctx)
	if err != nil {
		return err
	}
	return a.writeKubernetesEndpoints(ctx, ips, self.port)
}

func (a *api) renewMasterLease(ctx context.Context, key string) error {
	now := metav1.NewMicroTime(a.now())
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: a.advertise.ip},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(a.advertise.ip), RenewTime: &now,
			LeaseDurationSeconds: ptr.To(int32(masterLeaseTTL / time.Second))}}
	lease.SetGroupVersionKind(coordinationv1.SchemeGroupVersion.WithKind("Lease"))
	data, err := a.toStorage(lease)
	if err != nil {
		return err
	}
	if _, err = a.store.Create(ctx, key, data); errors.Is(err, storage.ErrExists) {
		_, err = a.store.Update(ctx, key, data, 0)
	}
	if err != nil {
		return fmt.Errorf("renew lease %s: %w", key, err)
	}
	return nil
}

// liveMasterAddresses lists the addresses whose lease has not expired,
// sorted, and removes the expired leases.
func (a *api) liveMasterAddresses(ctx context.Context) ([]string, error) {
	res, err := a.store.List(ctx, masterLeasesPrefix, storage.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list API server leases: %w", err)
	}
	var ips []string
	for _, kv := range res.Items {
		obj, err := a.fromStorage(kv.Value, kv.Revision)
		lease, ok := obj.(*coordinationv1.Lease)
		if err != nil || !ok || lease.Spec.RenewTime == nil || lease.Spec.LeaseDurationSeconds == nil {
			continue
		}
		expiry := lease.Spec.RenewTime.Add(time.Duration(*lease.Spec.LeaseDurationSeconds) * time.Second)
		if a.now().After(expiry) {
			_, _ = a.store.Delete(ctx, kv.Key, kv.Revision)
			continue
		}
		ips = append(ips, strings.TrimPrefix(kv.Key, masterLeasesPrefix))
	}
	sort.Strings(ips)
	return ips, nil
}

// writeKubernetesEndpoints makes the kubernetes Endpoints and
// EndpointSlice list ips at port (no-ops when they already do). The
// Endpoints carry skip-mirror: the slice is this server's to write.
func (a *api) writeKubernetesEndpoints(ctx context.Context, ips []string, port int32) error {
	meta := metav1.ObjectMeta{Name: "kubernetes", Namespace: metav1.NamespaceDefault}
	eps := &corev1.Endpoints{ObjectMeta: meta}
	eps.Labels = map[string]string{discoveryv1.LabelSkipMirror: "true"}
	slice := &discoveryv1.EndpointSlice{ObjectMeta: meta, AddressType: discoveryv1.AddressTypeIPv4}
	slice.Labels = map[string]string{discoveryv1.LabelServiceName: "kubernetes"}
	if len(ips) > 0 {
		subset := corev1.EndpointSubset{Ports: []corev1.EndpointPort{{Name: "https", Port: port, Protocol: corev1.ProtocolTCP}}}
		for _, ip := range ips {
			subset.Addresses = append(subset.Addresses, corev1.EndpointAddress{IP: ip})
			slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{Addresses: []string{ip},
				Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}})
		}
		eps.Subsets = []corev1.EndpointSubset{subset}
		slice.Ports = []discoveryv1.EndpointPort{{Name: ptr.To("https"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(port)}}
	}
	if err := a.ensure(ctx, a.resourceFor("", "v1", "endpoints"), eps, func(cur runtime.Object) {
		c := cur.(*corev1.Endpoints)
		c.Subsets, c.Labels = eps.Subsets, eps.Labels
	}); err != nil {
		return fmt.Errorf("kubernetes endpoints: %w", err)
	}
	if err := a.ensure(ctx, a.resourceFor("discovery.k8s.io", "v1", "endpointslices"), slice, func(cur runtime.Object) {
		c := cur.(*discoveryv1.EndpointSlice)
		c.Endpoints, c.Ports, c.Labels = slice.Endpoints, slice.Ports, slice.Labels
	}); err != nil {
		return fmt.Errorf("kubernetes endpointslice: %w", err)
	}
	return nil
}

// advertisedEndpoint picks the address pods reach this server at, as
// kube-apiserver picks --advertise-address: the one given, else the
// listen address when it is a specific routable one, else the address of
// the interface holding the default route. ip is empty when nothing
// usable exists (the kubernetes Service then has no endpoints).
func advertisedEndpoint(advertise, listen string) (kubernetesEndpoint, error) {
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return kubernetesEndpoint{}, fmt.Errorf("--listen %q: not a listen address host:port: %w", listen, err)
	}
	port, _ := strconv.Atoi(portStr)
	if advertise != "" {
		ip := net.ParseIP(advertise)
		if ip == nil || ip.To4() == nil || !usableEndpointIP(ip) {
			return kubernetesEndpoint{}, fmt.Errorf("--advertise-address %q: want an IPv4 address pods can reach (not loopback, link-local or unspecified)", advertise)
		}
		return kubernetesEndpoint{ip: ip.String(), port: int32(port)}, nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.To4() != nil && usableEndpointIP(ip) {
		return kubernetesEndpoint{ip: ip.String(), port: int32(port)}, nil
	}
	if ip := defaultRouteIPv4(); ip != nil {
		return kubernetesEndpoint{ip: ip.String(), port: int32(port)}, nil
	}
	return kubernetesEndpoint{port: int32(port)}, nil
}

// AdvertisedAddress is the address pods reach the API server at, as the
// kubernetes Service's endpoints list it (advertisedEndpoint): the one
// place that choice is made, so that what else a server serves there
// (the cluster DNS) is where its API is. ok is false when nothing usable
// exists.
func AdvertisedAddress(advertise, listen string) (addr netip.Addr, ok bool, err error) {
	ep, err := advertisedEndpoint(advertise, listen)
	if err != nil || ep.ip == "" {
		return netip.Addr{}, false, err
	}
	addr, err = netip.ParseAddr(ep.ip)
	return addr, err == nil, err
}

func usableEndpointIP(ip net.IP) bool {
	return len(validateEndpointIP(nil, ip.String())) == 0
}

// defaultRouteIPv4 returns the address of the interface holding the
// IPv4 default route; nil when there is none.
func defaultRouteIPv4() net.IP {
	if a, ok, _ := nodeaddr.DefaultRoute(); ok {
		return a.IP.AsSlice()
	}
	return nil
}
