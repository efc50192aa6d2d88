// Package replicaset keeps spec.replicas pods running for apps/v1
// ReplicaSets and core/v1 ReplicationControllers with one core, as
// kube-controller-manager's replicaset controller does (its RC controller is
// the same code behind a conversion).
//
// Use:
//
//  1. factory := informers.NewSharedInformerFactory(client, 0)
//  2. rs := replicaset.New(client, factory, replicaset.KindReplicaSet, opts)
//     (and replicaset.KindReplicationController for RCs)
//  3. factory.Start(ctx.Done()); rs.Run(ctx, workers) blocks until ctx ends.
//
// A sync claims the pods matching the selector (adopting orphans, releasing
// pods whose labels stopped matching), ignores terminal and terminating
// pods, creates the missing ones from the template in slow-start batches
// (1, 2, 4, ...) named "<set>-<random>", deletes the surplus ranked by
// ctrlutil.DeletionLess, and writes status through the status subresource.
// Expectations keep a sync from acting again before the informer has seen
// the previous sync's creates and deletes.
package replicaset
