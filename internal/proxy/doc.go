// Package proxy is the service proxy every node runs (kube-proxy's role,
// in its nftables mode): it programs one nftables table of its own,
// `table ip peapod`, from the cluster's Services and EndpointSlices, so
// that ClusterIPs, NodePorts and external IPs reach the Services'
// endpoints, on whichever node.
//
// Use:
//
//  1. nft, err := proxy.NewTable(""); p, err := proxy.New(cfg, factory, nft)
//  2. factory.Start(ctx.Done()); p.Run(ctx) blocks until ctx ends.
//  3. `peapod reset` calls proxy.Cleanup to remove the table and the
//     conntrack entries of connections the proxy translated.
//
// The table (shown by `nft list table ip peapod`):
//
//	nat-prerouting, nat-output (dstnat)   → services
//	services:  ip daddr . meta l4proto . th dport vmap @service-ips
//	           fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports
//	service-ips       ClusterIP/external IP . proto . port : goto <policy or external chain>
//	service-nodeports proto . nodePort : goto external-<port>
//	service-<port>    (Cluster policy) mark the connection ours, then
//	                  dnat ip to numgen random mod N map { 0 : ip . port, … }
//	local-<port>      (Local policy) the same over this node's endpoints
//	external-<port>   NodePort/external-IP traffic: masquerade (policy
//	                  Cluster), or keep the client's address (Local)
//	endpoint-<ep>     only for session affinity: record the client in the
//	                  endpoint's affinity set, dnat to ip:port; the policy
//	                  chain sends pinned clients there first
//	filter-input/forward/output (dstnat-10) → endpoints-check:
//	                  @no-endpoint-services / @no-endpoint-nodeports:
//	                  reject (no endpoint anywhere) or drop (Local policy,
//	                  none on this node)
//	filter-forward, filter-output-post-dnat → cluster-ips-check: a
//	                  ClusterIP on a port no Service has is rejected
//	nat-postrouting (srcnat) → masquerading: masquerade a pod that reached
//	                  itself (ip saddr . ip daddr in @hairpin) and marked
//	                  packets
//
// A chain per endpoint, as kube-proxy has, would make every nft
// transaction slower: nft reads the whole table before each one, and with
// 1,000 Services of 10 endpoints an endpoint chain each costs ~4× the CPU
// of the one-rule form (measured: ~85 ms against ~20 ms per small
// transaction), so only Services with session affinity get them.
//
// One packet's path: a pod connects to 10.96.0.10:80. In prerouting, the
// services chain looks its address, protocol and port up in service-ips
// (one verdict-map lookup) and goes to service-<port>, which marks the
// connection and DNATs to the endpoint numgen picks, 10.42.0.7:8080. The
// packet is
// routed to the pod like any other; no address is rewritten on the way
// between pods. The reply, bridged if both pods share the bridge, is
// translated back by conntrack: bridge-nf-call-iptables (set by Run) makes
// bridged packets pass the ip hooks, as kubeadm requires.
//
// Only what changed is written: each sync renders the Services whose
// object or slices changed, compares with what it wrote before, and
// adds new chains, refills changed ones, and adds, replaces or deletes
// single map elements, in one atomic `nft -f` transaction (through
// sigs.k8s.io/knftables, kube-proxy's library). A change is written at
// once (no minimum sync period: the informer's event wakes the loop), and
// the proxy's own work is proportional to the changed Services, not to
// the table (the hairpin counts and the slices' owners are indexed). What
// still grows with the table is nft's: each transaction is an exec of nft,
// which reads the table's chains and sets before it writes, and the
// kernel checks the table's jumps at commit; about 10 ms for one more
// Service among 1,000 on an idle machine, most of the proxy's part. The
// first sync, one after a failure, and one an hour rewrite the whole
// table. Chains out of use
// are emptied at once and deleted a second later. After a change to a
// UDP Service, conntrack entries whose answer no longer comes from an
// endpoint in use are deleted (over netlink), so clients move to the new
// endpoints at once.
//
// Headless and ExternalName Services get nothing here (they are DNS
// only), nor do Services labelled service.kubernetes.io/service-proxy-name.
package proxy
