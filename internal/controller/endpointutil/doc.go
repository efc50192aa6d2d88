// Package endpointutil holds what the endpoint controllers (endpointslice,
// endpoints, endpointslicemirroring) share, after Kubernetes'
// k8s.io/endpointslice/util and pkg/api/v1/pod:
//
//  1. ShouldPodBeInEndpoints, FindPort, ShouldSetHostname and
//     IsServiceIPSet decide which pods become endpoints of a Service, on
//     which port numbers and with which hostname (pure);
//  2. SliceTracker remembers the EndpointSlices a controller wrote, so its
//     own writes coming back through the informer do not requeue the
//     Service, while another writer's changes do, and a sync on a cache
//     that has not yet seen the controller's last write waits for it;
//  3. LiveSlices, WriteSlices, ManagedSlice and ServiceKey read and write a
//     controller's slices of one Service around that tracker;
//     PodServiceKeys finds the Services whose endpoints a pod change
//     concerns.
//
// Everything here is safe for concurrent use.
package endpointutil
