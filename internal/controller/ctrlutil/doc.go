// Package ctrlutil holds the machinery peapod's controllers share, written
// after kube-controller-manager's pkg/controller:
//
//  1. Expectations record the creates and deletes a controller has issued but
//     not yet seen in its informer, so a sync never acts twice on stale caches.
//  2. Pod helpers answer readiness and availability (with minReadySeconds) and
//     rank pods for deletion the way Kubernetes' ActivePods does.
//  3. Claim adopts orphans matching a selector and releases owned objects whose
//     labels stopped matching, through ownerReference patches.
//  4. PodFromTemplate and SlowStartBatch create pods in batches 1, 2, 4, ...
//  5. RunWorkers runs a rate-limited work queue with a sync function, and
//     RunWhenSynced first waits for the informers, as every Run does.
//     OnEvents, OnChange and EnqueueKey register the informer handlers that
//     feed the queue.
//
// Everything here is safe for concurrent use unless a comment says otherwise.
package ctrlutil
