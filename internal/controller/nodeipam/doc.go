// Package nodeipam gives every Node its pod range, as kube-controller-
// manager's node IPAM controller with its range allocator does:
//
//  1. The cluster range (`peapod server --cluster-cidr`) is cut into node
//     ranges of one prefix length (--node-cidr-mask-size); CIDRSet keeps
//     which are in use.
//  2. On start, once the Node informer has synced and before any range is
//     handed out, the ranges Nodes already hold are occupied, and the next
//     candidate moves past the highest of them.
//  3. A Node without spec.podCIDR gets the next free range, written once
//     as spec.podCIDR and spec.podCIDRs[0] with a strategic merge patch
//     (the API refuses any later change). A Node that registers again
//     keeps its range, since the agent never writes it.
//  4. A deleted Node's range is released; released ranges come round
//     again only after every range never used (the rotating candidate).
//  5. When the cluster range is full, the Node stays without a range and
//     gets a Warning event CIDRNotAvailable ("Node <name> status is now:
//     CIDRNotAvailable"); it is retried as soon as a range is released.
//
// The allocation state lives in memory only: the Nodes are its record, as
// in Kubernetes.
package nodeipam
