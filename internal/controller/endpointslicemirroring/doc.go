// Package endpointslicemirroring mirrors user-written Endpoints into
// EndpointSlices, as kube-controller-manager's endpointslicemirroring
// controller does, so consumers of EndpointSlices (the service proxy,
// DNS) see the endpoints of Services without a selector:
//
//  1. factory := informers.NewSharedInformerFactory(client, 0)
//  2. c := endpointslicemirroring.New(client, factory, endpointslicemirroring.Options{})
//  3. factory.Start(ctx.Done()); c.Run(ctx, workers) blocks until ctx ends.
//
// An Endpoints object is mirrored when its Service exists and has no
// selector, and it is not labelled endpointslice.kubernetes.io/skip-mirror:
// "true" (the Endpoints controller labels its own so, and the API server
// its kubernetes Endpoints). Each distinct set of ports and address family
// becomes one slice of at most MaxEndpointsPerSubset endpoints: addresses
// ready, notReadyAddresses not ready, with their nodeName, hostname and
// targetRef. Slices carry the Endpoints' labels and annotations (but
// kubectl's last-applied configuration and the trigger time), the labels
// kubernetes.io/service-name and endpointslice.kubernetes.io/managed-by:
// endpointslicemirroring-controller.k8s.io, and an owner reference to the
// Endpoints object. Addresses that are not IPs are skipped. When the
// Endpoints go, their Service goes, gains a selector, or the skip label
// appears, the mirrored slices are deleted.
package endpointslicemirroring
