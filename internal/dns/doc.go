// Package dns is the cluster DNS: the records of the Kubernetes DNS
// specification for the cluster's Services and pods, answered from memory,
// and every other name forwarded to the node's resolvers with a cache. It
// runs in `peapod server`, on the server's node address, behind Service
// kube-system/kube-dns.
//
// Usage, as internal/daemon does:
//
//  1. s, err := dns.Settings{...flags...}.Complete(serviceCIDR): the
//     defaults (kube-dns at the 10th address of the Service range, domain
//     cluster.local, port 53) and the flags checked, before anything starts;
//     the API server is told to reserve s.ClusterDNS.
//  2. dns.EnsureService(ctx, client, s) once the API serves: kube-dns with
//     its fixed ClusterIP.
//  3. dns.Run(ctx, client, dns.Options{Settings: s, Bind: nodeAddress}):
//     informers fill a Zone, the server listens (UDP and TCP) on
//     Bind:s.Port, and lists that address as kube-dns's endpoint until ctx
//     ends.
//  4. Nodes write s.Node() (nameserver and domain) into ClusterFirst pods'
//     resolv.conf (internal/runtime/podfiles).
//
// The parts: Zone (zone.go, lookup.go) is the pure record logic, tested
// table-driven; Handler (server.go) answers messages from the Zone or
// through the forwarder (forward.go, cache.go); Serve runs a Handler on a
// UDP and a TCP socket.
package dns
