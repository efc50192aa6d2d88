// Package statefulset runs apps/v1 StatefulSets: pods with stable names
// "<set>-<ordinal>", created and deleted in order, as
// kube-controller-manager's statefulset controller does.
//
// Use:
//
//  1. factory := informers.NewSharedInformerFactory(client, 0)
//  2. sc, err := statefulset.New(client, factory, opts)
//  3. factory.Start(ctx.Done()); sc.Run(ctx, workers) blocks until ctx ends.
//
// Each pod gets the labels statefulset.kubernetes.io/pod-name,
// apps.kubernetes.io/pod-index and controller-revision-hash, hostname = its
// name and subdomain = spec.serviceName. With OrderedReady, ordinal i is
// created only when 0..i-1 are Running and Ready, and scale-down removes the
// highest ordinal first, one at a time, waiting for each to be gone;
// Parallel creates and deletes without waiting. RollingUpdate replaces pods
// whose revision is not the update revision, from the highest ordinal down
// to spec.updateStrategy.rollingUpdate.partition, one at a time; OnDelete
// leaves that to the user.
//
// Revisions are a hash of the pod template ("<set>-<hash>", the
// controller-revision-hash label and status.currentRevision/updateRevision),
// not ControllerRevision objects: `kubectl rollout status` works, `kubectl
// rollout history/undo` for StatefulSets does not. Templates of earlier
// revisions are remembered in memory only, so a pod below the partition
// that must be recreated after a controller restart gets the update
// revision.
//
// volumeClaimTemplates: before a pod is created its claims
// <template>-<set>-<ordinal> are (unless they exist: a recreated pod gets
// its old claims, so its data), and the pod mounts them.
// persistentVolumeClaimRetentionPolicy is honoured through owner
// references the garbage collector follows: whenDeleted Delete makes the
// set the claims' controller; whenScaled Delete makes a condemned pod
// their owner before it is deleted.
package statefulset
