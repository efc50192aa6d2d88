// Package nodelifecycle watches node heartbeats and evicts pods from lost
// nodes, like kube-controller-manager's node lifecycle controller with its
// taint-based eviction:
//
//  1. A node's heartbeat is its Lease in kube-node-lease (renewTime) or its
//     Ready condition's lastHeartbeatTime; the controller times heartbeats
//     by its own clock when it observes a change (no clock-skew trust).
//  2. Without a heartbeat for NodeMonitorGracePeriod (40 s), the node's
//     Ready and pressure conditions become Unknown (reason
//     NodeStatusUnknown, "Kubelet stopped posting node status.") and its
//     pods are marked Ready=False.
//  3. Ready=Unknown taints the node node.kubernetes.io/unreachable
//     (NoSchedule and NoExecute), Ready=False node.kubernetes.io/not-ready;
//     Ready=True removes both. NoExecute taints record timeAdded.
//  4. A pod on a node with NoExecute taints is deleted once its toleration
//     runs out: at once without a matching toleration, after the smallest
//     tolerationSeconds of the matching ones, never when one has none. A
//     pod without a toleration for not-ready/unreachable gets
//     DefaultTolerationSeconds (300 s), as Kubernetes' DefaultTolerationSeconds
//     admission plugin would have given it.
//
// Nothing polls: every deadline is a delayed work-queue item on the
// injectable clock, so tests step a fake clock.
package nodelifecycle
