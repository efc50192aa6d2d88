package apiserver

import "context"

// extendedResources lists the kinds registered beyond the first slice
// (workloads, services, endpoints and endpoint slices, events.k8s.io events), in
// discovery order. builtinResources appends them.
func extendedResources() []*Resource {
	rs := append(append(workloadResources(), batchResources()...), serviceResource(), endpointsResource(), endpointSliceResource(), eventsV1Resource())
	rs = append(rs, daemonSetResources()...)
	return append(rs, storageResources()...)
}

// bootstrapExtended runs at every start after the system namespaces
// exist: it repairs the service allocation bitmaps, ensures the
// kubernetes Service and lists this server in its endpoints, and resumes the cleanup of terminating namespaces.
// Idempotent.
func (a *api) bootstrapExtended(ctx context.Context) error {
	repairs, err := a.repairServiceAllocations(ctx)
	if err != nil {
		return err
	}
	a.repairs = repairs
	if err := a.ensureKubernetesService(ctx); err != nil {
		return err
	}
	if err := a.reconcileKubernetesEndpoints(ctx, true); err != nil {
		return err
	}
	return a.resumeNamespaceCleanup(ctx)
}
