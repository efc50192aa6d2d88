// Package scheduler is peapod's scheduler: it binds pending pods to nodes
// through the API, as Kubernetes' default scheduler does, and tells the user
// why when a pod fits nowhere.
//
// It has two layers.
//
// The pure core decides one pod at a time. Schedule(pod, snapshot) runs
// kube-scheduler's filters in their default order, with their reason
// strings, stopping at a node's first failure:
//
//   - NodeUnschedulable: cordoned nodes, unless the pod tolerates
//     node.kubernetes.io/unschedulable;
//   - TaintToleration: NoSchedule and NoExecute taints; a node whose Ready
//     condition is not True counts as tainted not-ready (False or missing)
//     or unreachable (Unknown) until the node lifecycle controller taints it;
//   - NodeAffinity: nodeSelector and required node affinity, matched by
//     Kubernetes' own k8s.io/component-helpers nodeaffinity;
//   - NodePorts: host port conflicts;
//   - NodeResourcesFit: effective requests (init containers' maximum,
//     sidecars, pod overhead, pod-level resources) against allocatable minus
//     the requests of bound, non-terminated pods, and the pod count;
//   - PodTopologySpread: each DoNotSchedule constraint's skew (pods its
//     selector matches in the node's domain, plus the pod itself, minus the
//     least populated eligible domain, or 0 below minDomains) must not
//     exceed maxSkew; eligible domains come from nodes carrying every
//     constraint's key that pass nodeAffinityPolicy (default Honor) and
//     nodeTaintsPolicy (default Ignore); terminating pods and other
//     namespaces do not count;
//   - InterPodAffinity: required pod affinity and anti-affinity by topology
//     key (the first pod of a group with affinity to itself may go anywhere
//     with the key), and the required anti-affinity of pods already placed.
//
// Feasible nodes are then scored by kube-scheduler's default plugins and
// weights: TaintToleration 3 (fewer untolerated PreferNoSchedule taints),
// NodeAffinity 2 (preferred terms' weights), PodTopologySpread 2
// (ScheduleAnyway constraints, or for a pod without constraints the system
// defaults, hostname skew 3 and zone skew 5, against the pods selected by
// the Services, ReplicationController, ReplicaSet or StatefulSet selecting
// it), InterPodAffinity 2 (preferred terms of the pod and of placed pods,
// and placed pods' required affinity with weight 1) and NodeResourcesFit's
// LeastAllocated 1. The best wins, ties going to a per-pod hash so equal
// nodes share the load. When nothing fits, the error is a *FitError whose
// Error() is Kubernetes' FailedScheduling message, preemption part
// included (peapod does not preempt).
//
// The loop drives the core from informers:
//
//  1. New(client, Options{}) builds a Scheduler; Run(ctx) starts informers
//     on nodes, namespaces, services, ReplicationControllers, ReplicaSets,
//     StatefulSets, pending pods (spec.nodeName="") and assigned,
//     non-terminated pods, and closes Ready() once they have synced.
//  2. Pending pods of this scheduler's schedulerName (or none, for the
//     default one) enter a rate-limited work queue, unless they still have
//     scheduling gates: those wait outside the queue, untried, until their
//     last gate is removed.
//  3. One goroutine pops a pod, runs Schedule against the cache and assumes
//     the pod on the chosen node at once, so a burst cannot overcommit a node
//     before the informers catch up; binds then run concurrently through the
//     pods/binding subresource and end with a Scheduled event. A failed bind
//     is undone and retried with backoff.
//  4. A pod that fits nowhere gets PodScheduled=False (reason Unschedulable,
//     the message above) and a FailedScheduling event, and is parked. Parked
//     pods go back to the queue only when the cluster changes in a way that
//     could help: a node added, removed or changed (allocatable, labels,
//     taints, cordon, readiness), a bound pod deleted or finished, or, for pods
//     whose required pod affinity, anti-affinity or DoNotSchedule spread
//     constraints count placed pods, a pod bound or relabelled or a
//     namespace relabelled. Nothing polls.
//
// Run returns when ctx is cancelled, after binds in flight finish.
package scheduler
