// Package podfiles generates the per-pod files the kubelet manages and
// bind-mounts into every container: /etc/hosts, /etc/resolv.conf and the
// pod's hostname.
//
// Everything here except Write and NodeResolvConfPath is pure: the same pod and node inputs give
// the same bytes, so the rules are tested table-driven without root.
//
// Usage, as the runtime does when it creates a sandbox:
//
//  1. hostname, fqdn, err := podfiles.HostnameInDomain(pod, clusterDomain)
//     (hostname is what the UTS namespace gets; fqdn is "" without
//     spec.subdomain).
//  2. hosts := podfiles.Hosts(pod, podIPs, hostname, fqdn) once CNI has
//     returned the pod IPs; a hostNetwork pod instead has the node's
//     hostname and podfiles.HostNetworkHosts(pod, nodeEtcHosts).
//  3. resolv, err := podfiles.ResolvConf(pod, hostResolvConf, clusterDNS,
//     clusterDomain).
//  4. podfiles.Write(podDir, map[string][]byte{"hosts": hosts,
//     "resolv.conf": resolv, "hostname": []byte(hostname + "\n")}).
package podfiles
