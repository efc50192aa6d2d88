// Package network attaches pods to the node's pod network with CNI: libcni
// drives the plugin binaries (Debian's containernetworking-plugins in
// /usr/lib/cni: bridge, host-local, portmap, loopback) against a pod's
// pinned network namespace (see package netns).
//
// Usage, as internal/runtime does it for one sandbox:
//
//  1. Once per node, New(Config{...}) with directories derived from the data
//     dir. It validates the config (PodCIDR, ClusterCIDR, MTU, bridge name),
//     and picks the network config: the first *.conflist/*.conf/*.json in
//     ConfDir in lexical order, or, when ConfDir holds none but peapod's own,
//     the default conflist it (re)writes there as DefaultConfFile: bridge
//     (BridgeName, gateway, ipMasq, hairpin) with host-local IPAM over
//     PodCIDR, then portmap for host ports.
//  2. Create the pod's netns with netns.New.
//  3. Setup(ctx, sandboxID, netnsPath, PodInfo) from the host network
//     namespace: lo up (in-process, with netlink inside the netns), then
//     CNI ADD of the conflist with the pod's port mappings and K8S_POD_*
//     CNI_ARGS. With peapod's default conflist and no port mappings, portmap
//     is left out of the ADD. It returns the pod's interface, IPs, gateway,
//     host veth and MAC, to be saved with the sandbox. A failed Setup has
//     already cleaned up.
//  4. Check(ctx, ...) at any time runs CNI CHECK against the cached result.
//  5. Teardown(ctx, ...) runs CNI DEL before the netns is removed. It is
//     idempotent and also works after the netns is gone: IPs, veth, cache
//     entries and the pod's iptables rules are released in every case.
//     CHECK and DEL use the conflist and port mappings the ADD used, as
//     libcni cached them.
//
// Cost: a Setup with the default conflist execs only bridge (which execs
// host-local); a Teardown execs the same two (plus an iptables listing for
// lists with ipMasq). BenchmarkSetupTeardown measures both.
//  6. Remove the netns with netns.Remove.
//
// Masquerading: by default the bridge plugin masquerades pod traffic that
// leaves PodCIDR, and pod-to-pod traffic keeps its source IP. With
// Config.ClusterCIDR set (a multi-node pod network), the bridge's ipMasq is
// off and the first Setup of each Manager installs a node-level nat chain,
// PEAPOD-POSTROUTING, that exempts the whole ClusterCIDR and masquerades
// the rest.
//
// Every Manager method acts in the calling thread's network namespace
// (plugins are child processes and inherit it). Tests run them inside
// netns.Do on a throwaway "host" namespace so the real host is untouched.
package network
