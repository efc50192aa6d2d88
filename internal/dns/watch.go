package dns

import (
	"context"
	"errors"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// syncZone keeps zone equal to the cluster's Services, EndpointSlices and
// Namespaces with shared informers (a watch each, no resync: every change
// reaches the zone as it happens). It returns once the informers' first
// lists are in the zone; they run until ctx ends.
func syncZone(ctx context.Context, client kubernetes.Interface, zone *Zone) error {
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
			AddFunc:    func(obj any) { zone.SetEndpointSlice(obj.(*discoveryv1.EndpointSlice)) },
			UpdateFunc: func(_, obj any) { zone.SetEndpointSlice(obj.(*discoveryv1.EndpointSlice)) },
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
