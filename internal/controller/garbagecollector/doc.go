// Package garbagecollector deletes objects whose owners are gone, following
// metadata.ownerReferences like kube-controller-manager's garbage collector:
//
//   - background: an object all of whose owners are gone is deleted (with
//     background propagation, so its own dependents follow);
//   - foreground: an owner with a deletionTimestamp and the
//     foregroundDeletion finalizer has its dependents deleted (themselves in
//     foreground when they have dependents); once no dependent with
//     blockOwnerDeletion remains, the finalizer is removed and the API
//     server completes the owner's deletion;
//   - orphan: an owner with the orphan finalizer has its ownerReference
//     removed from every dependent, then the finalizer removed.
//
// Use:
//
//  1. factory := informers.NewSharedInformerFactory(client, 0)
//  2. gc, err := garbagecollector.New(client, factory, opts)
//  3. factory.Start(ctx.Done()); gc.Run(ctx, workers) blocks until ctx ends.
//
// The kinds watched are the ones peapod serves: pods, replicasets,
// deployments, statefulsets, replicationcontrollers, nodes, leases and
// persistentvolumeclaims (a StatefulSet's, by its retention policy).
// Owners of other kinds are assumed to exist (never collected against).
// The graph is the informers' caches with an index from owner UID to
// dependents; before deleting, an owner missing from the cache is
// confirmed absent with a live GET.
package garbagecollector
