package dns

import (
	"context"
	"errors"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// syncZone keeps zone equal to the cluster's Services, EndpointSlices and
// Namespaces with shared informers (a watch each, no resync: every change
// reaches the zone as it happens). It returns once the informers' first
// lists are in the zone; they run until ctx ends. apiServers, when not
// nil, is told the addresses of the kubernetes Service's EndpointSlice
// (the live API servers) whenever it changes.
func syncZone(ctx context.Context, client kubernetes.Interface, zone *Zone, apiServers func([]netip.Addr)) error {
	factory := informers.NewSharedInformerFactory(client, 0)
	svcs := factory.Core().V1().Services().Informer()
	slices := factory.Discovery().V1().EndpointSlices().Informer()
	nss := factory.Core().V1().Namespaces().Informer()
	handlers := []struct {
		inf cache.SharedIndexInformer
		h   cache.ResourceEventHandlerFuncs
	}{
		{svcs, cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { zone.SetService(obj.(*corev1.Service)) },
			UpdateFunc: func(_, obj any) { zone.SetService(obj.(*corev1.Service)) },
			DeleteFunc: func(obj any) { deleted(obj, zone.DeleteService) },
		}},
		{slices, cache.ResourceEventHandlerFuncs{
			AddFunc: func(obj any) {
				zone.SetEndpointSlice(obj.(*discoveryv1.EndpointSlice))
				tellAPIServers(obj.(*discoveryv1.EndpointSlice), apiServers)
			},
			UpdateFunc: func(_, obj any) {
				zone.SetEndpointSlice(obj.(*discoveryv1.EndpointSlice))
				tellAPIServers(obj.(*discoveryv1.EndpointSlice), apiServers)
			},
			DeleteFunc: func(obj any) { deleted(obj, zone.DeleteEndpointSlice) },
		}},
		{nss, cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { zone.SetNamespace(obj.(*corev1.Namespace).Name) },
			UpdateFunc: func(_, obj any) { zone.SetNamespace(obj.(*corev1.Namespace).Name) },
			DeleteFunc: func(obj any) { deleted(obj, func(_, name string) { zone.DeleteNamespace(name) }) },
		}},
	}
	for _, x := range handlers {
		if _, err := x.inf.AddEventHandler(x.h); err != nil {
			return err
		}
	}
	factory.Start(ctx.Done())
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return errors.New("cluster DNS: informer for " + typ.String() + " did not sync")
		}
	}
	return nil
}

// tellAPIServers passes the addresses of slice to apiServers when slice is
// the kubernetes Service's, the one the API servers' leases keep.
func tellAPIServers(slice *discoveryv1.EndpointSlice, apiServers func([]netip.Addr)) {
	if apiServers == nil || slice.Namespace != metav1.NamespaceDefault || slice.Name != "kubernetes" {
		return
	}
	var addrs []netip.Addr
	for _, e := range slice.Endpoints {
		for _, s := range e.Addresses {
			if a, err := netip.ParseAddr(s); err == nil {
				addrs = append(addrs, a)
			}
		}
	}
	apiServers(addrs)
}

// deleted calls del with the namespace and name of a deleted object,
// which may come as a tombstone when the watch missed the deletion.
func deleted(obj any, del func(namespace, name string)) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		return
	}
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return
	}
	del(ns, name)
}
