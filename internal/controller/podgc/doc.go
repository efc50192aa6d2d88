// Package podgc removes the pods of nodes that no longer exist, as
// kube-controller-manager's pod garbage collector does (its orphaned-pod
// part): a pod bound to a node the Node informer does not know is
// checked again after a quarantine (40 s, so a node that re-registers or
// a lagging informer is not taken for gone), then with an uncached GET;
// if the Node is still NotFound, every pod bound to it is marked Failed
// with condition DisruptionTarget (reason DeletionByPodGC, "PodGC: node no
// longer exists") and deleted with grace period 0, since no agent is left
// to finish a graceful deletion. Controllers then replace what they own:
// a DaemonSet's pod goes with its node, a ReplicaSet's moves.
//
// Use:
//
//  1. factory := informers.NewSharedInformerFactory(client, 0)
//  2. gc, err := podgc.New(client, factory, opts)
//  3. factory.Start(ctx.Done()); gc.Run(ctx, workers) blocks until ctx ends.
package podgc
