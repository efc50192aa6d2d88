// Package endpoints keeps the legacy core/v1 Endpoints of every Service
// with a selector, as kube-controller-manager's endpoints controller does
// (many clients still read Endpoints rather than EndpointSlices):
//
//  1. factory := informers.NewSharedInformerFactory(client, 0)
//  2. c := endpoints.New(client, factory, endpoints.Options{})
//  3. factory.Start(ctx.Done()); c.Run(ctx, workers) blocks until ctx ends.
//
// The Endpoints object is named as its Service. Pods selected by the
// Service with an IP, not finished and not terminating (terminating ones
// too with publishNotReadyAddresses) are addresses: ready pods (all pods
// with publishNotReadyAddresses) under addresses, the others under
// notReadyAddresses, each with nodeName, targetRef and, when the pod's
// subdomain is the Service, hostname; per Service port whose targetPort
// the pod resolves. Subsets are repacked into the canonical form (one
// subset per distinct set of ports, sorted), so an unchanged Service is
// never rewritten. At most MaxAddresses addresses are kept; beyond that
// the object is truncated and annotated endpoints.kubernetes.io/over-capacity:
// truncated. Labels are the Service's, plus service.kubernetes.io/headless
// for headless Services and endpointslice.kubernetes.io/skip-mirror:
// "true", so the mirroring controller leaves them to the EndpointSlice
// controller. The Endpoints of a deleted Service are deleted (and, at start,
// every Endpoints object without a Service); those of a Service without a
// selector are the user's and left alone.
package endpoints
