// Package deployment rolls out apps/v1 Deployments through ReplicaSets, as
// kube-controller-manager's deployment controller does, so kubectl's
// rollout status/history/undo/restart, scale and set image work unchanged.
//
// Use:
//
//  1. factory := informers.NewSharedInformerFactory(client, 0)
//  2. dc, err := deployment.New(client, factory, opts)
//  3. factory.Start(ctx.Done()); dc.Run(ctx, workers) blocks until ctx ends.
//
// The pods themselves are created by the ReplicaSet controller; this one
// only creates, scales, annotates and deletes ReplicaSets:
//
//   - one ReplicaSet per pod template, named "<deployment>-<hash>" and
//     labelled pod-template-hash=<hash>, the hash computed as ComputeHash;
//   - revision (and revision-history) annotations: the ReplicaSet whose
//     template matches the Deployment's is new and gets max(old)+1, which is
//     how `kubectl rollout undo` (a client-side template patch) reuses an
//     old ReplicaSet;
//   - RollingUpdate within maxSurge/maxUnavailable (ResolveFenceposts),
//     Recreate (old pods gone before new ones start), proportional scaling
//     of a rollout in flight, paused Deployments, revisionHistoryLimit;
//   - status with the Progressing (NewReplicaSetCreated, FoundNewReplicaSet,
//     ReplicaSetUpdated, NewReplicaSetAvailable, ProgressDeadlineExceeded,
//     DeploymentPaused/Resumed) and Available (MinimumReplicasAvailable)
//     conditions, written through the status subresource.
package deployment
