//lint:file-ignore SA1019 this is the legacy Endpoints controller: core/v1 Endpoints is its whole job, as in kube-controller-manager
package endpoints

import (
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/peapod/peapod/internal/controller/endpointutil"
)

// MaxAddresses is the most addresses an Endpoints object holds, as
// Kubernetes' maxCapacity.
const MaxAddresses = 1000

// Annotations Kubernetes sets on controller-made Endpoints.
const (
	OverCapacityAnnotation = "endpoints.kubernetes.io/over-capacity"
	truncated              = "truncated"
)

// desiredSubsets computes the subsets of svc's Endpoints from its pods,
// repacked. Pure.
func desiredSubsets(svc *corev1.Service, pods []*corev1.Pod) []corev1.EndpointSubset {
	v6 := endpointutil.IsIPv6(svc.Spec.ClusterIP) ||
		(len(svc.Spec.IPFamilies) > 0 && svc.Spec.IPFamilies[0] == corev1.IPv6Protocol)
	var subsets []corev1.EndpointSubset
	for _, pod := range pods {
		if !endpointutil.ShouldPodBeInEndpoints(pod, svc.Spec.PublishNotReadyAddresses) {
			continue
		}
		ips := endpointutil.PodIPs(pod, v6)
		if len(ips) == 0 {
			continue
		}
		addr := corev1.EndpointAddress{IP: ips[0],
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID}}
		if pod.Spec.NodeName != "" {
			n := pod.Spec.NodeName
			addr.NodeName = &n
		}
		if endpointutil.ShouldSetHostname(pod, svc) {
			addr.Hostname = pod.Spec.Hostname
		}
		ready := svc.Spec.PublishNotReadyAddresses || endpointutil.IsPodReady(pod)
		add := func(ports []corev1.EndpointPort) {
			s := corev1.EndpointSubset{Ports: ports}
			if ready {
				s.Addresses = []corev1.EndpointAddress{addr}
			} else {
				s.NotReadyAddresses = []corev1.EndpointAddress{addr}
			}
			subsets = append(subsets, s)
		}
		if len(svc.Spec.Ports) == 0 {
			// A headless Service may have no ports.
			if svc.Spec.ClusterIP == corev1.ClusterIPNone {
				add(nil)
			}
			continue
		}
		for i := range svc.Spec.Ports {
			sp := &svc.Spec.Ports[i]
			n, err := endpointutil.FindPort(pod, sp)
			if err != nil {
				continue
			}
			proto := sp.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			add([]corev1.EndpointPort{{Name: sp.Name, Port: n, Protocol: proto, AppProtocol: sp.AppProtocol}})
		}
	}
	return Repack(subsets)
}

// Repack returns subsets in the canonical form Kubernetes' RepackSubsets
// gives: addresses grouped by the exact set of ports they serve (one
// subset per set), an address both ready and not ready counted ready,
// addresses sorted by IP then target UID, ports by name, number and
// protocol, subsets by their first address. Pure.
func Repack(subsets []corev1.EndpointSubset) []corev1.EndpointSubset {
	type addrKey struct {
		ip  string
		uid string
	}
	addrs := map[addrKey]*corev1.EndpointAddress{}
	readyOf := map[addrKey]bool{}
	// portsOf maps each address to the ports it serves (a port of -1
	// stands for "no ports").
	portsOf := map[addrKey]map[string]corev1.EndpointPort{}
	note := func(a corev1.EndpointAddress, ready bool, ports []corev1.EndpointPort) {
		k := addrKey{ip: a.IP}
		if a.TargetRef != nil {
			k.uid = string(a.TargetRef.UID)
		}
		if _, ok := addrs[k]; !ok {
			c := a
			addrs[k] = &c
			portsOf[k] = map[string]corev1.EndpointPort{}
		}
		readyOf[k] = readyOf[k] || ready
		if len(ports) == 0 {
			ports = []corev1.EndpointPort{{Port: -1}}
		}
		for _, p := range ports {
			portsOf[k][portKey(p)] = p
		}
	}
	for _, s := range subsets {
		for _, a := range s.Addresses {
			note(a, true, s.Ports)
		}
		for _, a := range s.NotReadyAddresses {
			note(a, false, s.Ports)
		}
	}
	type group struct {
		ports           []corev1.EndpointPort
		ready, notReady []corev1.EndpointAddress
	}
	groups := map[string]*group{}
	for k, a := range addrs {
		var keys []string
		for pk := range portsOf[k] {
			keys = append(keys, pk)
		}
		sort.Strings(keys)
		gk := strings.Join(keys, ";")
		g := groups[gk]
		if g == nil {
			g = &group{}
			for _, pk := range keys {
				if p := portsOf[k][pk]; p.Port != -1 {
					g.ports = append(g.ports, p)
				}
			}
			groups[gk] = g
		}
		if readyOf[k] {
			g.ready = append(g.ready, *a)
		} else {
			g.notReady = append(g.notReady, *a)
		}
	}
	out := make([]corev1.EndpointSubset, 0, len(groups))
	for _, g := range groups {
		sortAddresses(g.ready)
		sortAddresses(g.notReady)
		out = append(out, corev1.EndpointSubset{Addresses: g.ready, NotReadyAddresses: g.notReady, Ports: g.ports})
	}
	sort.Slice(out, func(i, j int) bool { return firstAddress(out[i]) < firstAddress(out[j]) })
	return out
}

func portKey(p corev1.EndpointPort) string {
	app := ""
	if p.AppProtocol != nil {
		app = *p.AppProtocol
	}
	return p.Name + "/" + strconv.Itoa(int(p.Port)) + "/" + string(p.Protocol) + "/" + app
}

func sortAddresses(a []corev1.EndpointAddress) {
	sort.Slice(a, func(i, j int) bool {
		if a[i].IP != a[j].IP {
			return a[i].IP < a[j].IP
		}
		return uidOf(a[i]) < uidOf(a[j])
	})
}

func uidOf(a corev1.EndpointAddress) string {
	if a.TargetRef == nil {
		return ""
	}
	return string(a.TargetRef.UID)
}

func firstAddress(s corev1.EndpointSubset) string {
	if len(s.Addresses) > 0 {
		return s.Addresses[0].IP + "/" + uidOf(s.Addresses[0])
	}
	if len(s.NotReadyAddresses) > 0 {
		return s.NotReadyAddresses[0].IP + "/" + uidOf(s.NotReadyAddresses[0])
	}
	return ""
}

// truncate keeps at most max addresses across subsets, ready ones
// first, spread over the subsets in proportion to their size, as
// Kubernetes does; it reports whether anything was dropped. Pure.
func truncate(subsets []corev1.EndpointSubset, max int) ([]corev1.EndpointSubset, bool) {
	total := 0
	for _, s := range subsets {
		total += len(s.Addresses) + len(s.NotReadyAddresses)
	}
	if total <= max {
		return subsets, false
	}
	out := make([]corev1.EndpointSubset, len(subsets))
	left := max
	for i, s := range subsets {
		n := len(s.Addresses) + len(s.NotReadyAddresses)
		share := n * max / total
		if i == len(subsets)-1 || share > left {
			share = left
		}
		left -= share
		c := corev1.EndpointSubset{Ports: s.Ports}
		r := min(share, len(s.Addresses))
		c.Addresses = append([]corev1.EndpointAddress(nil), s.Addresses[:r]...)
		nr := min(share-r, len(s.NotReadyAddresses))
		c.NotReadyAddresses = append([]corev1.EndpointAddress(nil), s.NotReadyAddresses[:nr]...)
		out[i] = c
	}
	return out, true
}
