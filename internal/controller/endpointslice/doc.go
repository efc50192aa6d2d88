// Package endpointslice keeps the EndpointSlices of every Service with a
// selector, as kube-controller-manager's endpointslice controller does:
//
//  1. factory := informers.NewSharedInformerFactory(client, 0)
//  2. c := endpointslice.New(client, factory, endpointslice.Options{})
//  3. factory.Start(ctx.Done()); c.Run(ctx, workers) blocks until ctx ends.
//
// For each Service (not ExternalName) with a selector, the pods it selects
// that have an IP and have not finished become endpoints, one per pod and
// address family of the Service: conditions ready (Ready and not
// terminating, or always with publishNotReadyAddresses), serving (Ready)
// and terminating (being deleted); nodeName, zone (the node's
// topology.kubernetes.io/zone), hostname (when the pod's subdomain is the
// Service) and a targetRef to the pod. Named targetPorts are resolved per
// pod; a pod that lacks a port serves the others, in a slice of its own
// port set, and a pod lacking all of them is an endpoint of no port.
//
// Slices hold at most MaxEndpointsPerSlice endpoints, are labelled
// kubernetes.io/service-name and endpointslice.kubernetes.io/managed-by:
// endpointslice-controller.k8s.io (plus the Service's own labels, and
// service.kubernetes.io/headless for headless Services), are owned by the
// Service (so the garbage collector removes them with it) and change as
// little as possible: endpoints stay in their slice, changed slices are
// filled before new ones are made, a slice to delete is reused for one to
// create, and a Service without endpoints keeps one empty placeholder
// slice. The controller's own writes are tracked so it never acts on an
// informer cache that has not seen them yet.
package endpointslice
