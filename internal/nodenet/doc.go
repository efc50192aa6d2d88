// Package nodenet is the node's share of the pod network between nodes:
// it makes every pod reachable from every node and every pod on other
// nodes, without NAT, by programming this node's kernel from the Node
// objects, as flannel's vxlan and host-gw backends do. Everything is
// netlink (vishvananda/netlink) in one network namespace, plus the
// iptables forward rules; nothing shells out to `ip`.
//
// Usage, as the agent does it once it knows its podCIDR and the cluster's
// network settings:
//
//  1. New(Config{Backend, NodeName, NodeIP, PodCIDR, ClusterCIDR,
//     StateDir, ...}, logger) validates the config (errors name the field)
//     and opens a netlink handle in Config.NetNS (default: the caller's
//     namespace). It changes nothing.
//  2. Setup(ctx) checks the node IP is this node's, creates or adopts the
//     VXLAN device (vxlan), enables forwarding and the forward rules, and
//     returns a Local: the annotations to publish on this node's Node
//     (network.peapod.io/backend-type, public-ip, vtep-mac) and the MTU
//     the pod bridge and veths must use. Idempotent: an agent restart
//     adopts what is there.
//  3. Run(ctx, client, n) publishes those annotations and keeps the peers
//     in step with the Nodes (a client-go informer): on every Node add,
//     relevant update and delete it computes PeersFromNodes and calls
//     Sync. Or call Sync(ctx, peers) yourself: it reconciles the kernel to
//     exactly those peers, touching only entries that differ.
//  4. Status(ctx) reads the kernel state for display; Render prints it.
//  5. Teardown(ctx) removes all of it but the VTEP MAC record (`peapod
//     reset`, cluster teardown); Load(stateDir, netns) reopens a network
//     from the record Setup left, for commands that do not know the
//     cluster's settings. Close releases the netlink handle.
//
// What it programs, per backend (the contract of issue 10):
//
//   - vxlan: device peapod.1 (VNI 1, UDP 8472, learning off, local = node
//     IP, on the link holding it, MTU = its MTU - 50) holding the
//     podCIDR's network address /32; per peer an FDB entry (VTEP MAC to
//     node IP, self permanent), a permanent neighbour (the peer podCIDR's
//     network address at the VTEP MAC) and a route (peer podCIDR via that
//     address, onlink). The MAC is recorded in the state dir and survives
//     restarts, re-creation and Teardown, so peers' entries stay valid.
//   - host-gw: per peer a route to its podCIDR via its node IP, on the link
//     the kernel reaches it by directly; a peer behind a gateway (not on
//     this node's L2 segment) is refused with the reason.
//   - none: nothing between nodes (the user's CNI does it).
//
// Every route carries RouteProtocol, so reconciliation after a restart
// finds exactly peapod's. The filter table's FORWARD chain jumps to
// PEAPOD-FORWARD, which accepts the cluster range, so pods are forwarded
// on hosts whose FORWARD policy is DROP. Nothing is NATed: pod-to-pod
// and node-to-pod traffic keeps its source address (masquerading traffic
// leaving the cluster range is internal/network's job).
package nodenet
