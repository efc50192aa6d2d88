package proxy

import (
	"net/netip"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// LabelServiceProxyName marks a Service another proxy implements; this
// proxy leaves such Services alone, as kube-proxy does.
const LabelServiceProxyName = "service.kubernetes.io/service-proxy-name"

// servicePort is one port of one Service, with what the proxy needs to
// program it. Built by servicePorts; pure data.
type servicePort struct {
	// name is "namespace/service:port" (port name, possibly empty), used
	// in comments and logs.
	name string
	// chainBase names this port's chains: "HASH-namespace/service/proto/port".
	chainBase string
	clusterIP string
	port      int32
	protocol  string // tcp, udp or sctp
	nodePort  int32
	// externalIPs are spec.externalIPs and the load balancer's ingress
	// IPs: traffic to them is "external", as NodePort traffic.
	externalIPs []string
	// affinitySeconds is the ClientIP session affinity timeout; 0 = none.
	affinitySeconds int32
	itpLocal        bool // internalTrafficPolicy Local
	etpLocal        bool // externalTrafficPolicy Local (and externally reachable)
	endpoints       []endpoint
}

// endpoint is one backend of a service port.
type endpoint struct {
	ip          string
	port        int32
	ready       bool
	serving     bool
	terminating bool
	// local: on this node (the slice's nodeName is the proxy's node).
	local bool
}

func (e endpoint) String() string { return e.ip + ":" + itoa(e.port) }

// externallyAccessible reports whether the port takes "external" traffic
// (NodePort, external IPs), to which externalTrafficPolicy applies.
func (sp *servicePort) externallyAccessible() bool {
	return sp.nodePort != 0 || len(sp.externalIPs) > 0
}

// usesClusterEndpoints: the port sends traffic to endpoints chosen under
// the Cluster policy (internal traffic with policy Cluster, or any
// external traffic: even with policy Local, pods' and the node's own
// traffic to a NodePort is served by every endpoint).
func (sp *servicePort) usesClusterEndpoints() bool {
	return !sp.itpLocal || sp.externallyAccessible()
}

// usesLocalEndpoints: some traffic to the port goes only to this node's
// endpoints.
func (sp *servicePort) usesLocalEndpoints() bool {
	return sp.itpLocal || sp.etpLocal
}

// categorize splits a port's endpoints as kube-proxy's
// CategorizeEndpoints: cluster are the ready endpoints (else, when none is
// ready anywhere, the serving terminating ones), local the ready local
// ones (else the serving terminating local ones), reachable the union of
// those in use, and hasAny whether any endpoint anywhere can serve.
func (sp *servicePort) categorize() (cluster, local, reachable []endpoint, hasAny bool) {
	if sp.usesClusterEndpoints() {
		cluster = filterEndpoints(sp.endpoints, func(e endpoint) bool { return e.ready })
		if len(cluster) == 0 {
			cluster = filterEndpoints(sp.endpoints, func(e endpoint) bool { return e.serving && e.terminating })
		}
		hasAny = len(cluster) > 0
	}
	if !sp.usesLocalEndpoints() {
		return cluster, nil, cluster, hasAny
	}
	var localReady, localServing bool
	for _, e := range sp.endpoints {
		switch {
		case e.ready:
			hasAny = true
			localReady = localReady || e.local
		case e.serving && e.terminating:
			hasAny = true
			localServing = localServing || e.local
		}
	}
	switch {
	case localReady:
		local = filterEndpoints(sp.endpoints, func(e endpoint) bool { return e.local && e.ready })
	case localServing:
		local = filterEndpoints(sp.endpoints, func(e endpoint) bool { return e.local && e.serving && e.terminating })
	}
	if !sp.usesClusterEndpoints() {
		return nil, local, local, hasAny
	}
	seen := map[string]bool{}
	for _, e := range append(append([]endpoint(nil), cluster...), local...) {
		if !seen[e.String()] {
			seen[e.String()] = true
			reachable = append(reachable, e)
		}
	}
	return cluster, local, reachable, hasAny
}

func filterEndpoints(eps []endpoint, keep func(endpoint) bool) []endpoint {
	var out []endpoint
	for _, e := range eps {
		if keep(e) {
			out = append(out, e)
		}
	}
	return out
}

// servicePorts returns the ports of svc this proxy programs, each with
// its endpoints from slices (the Service's EndpointSlices), or nil when
// it programs none of them: a headless or ExternalName Service (no
// ClusterIP), an IPv6 one, or one another proxy implements. node is this
// proxy's node name. Pure.
func servicePorts(svc *corev1.Service, slices []*discoveryv1.EndpointSlice, node string) []*servicePort {
	if _, other := svc.Labels[LabelServiceProxyName]; other {
		return nil
	}
	cip, err := netip.ParseAddr(svc.Spec.ClusterIP)
	if err != nil || !cip.Is4() {
		return nil
	}
	var external []string
	for _, ip := range svc.Spec.ExternalIPs {
		if a, err := netip.ParseAddr(ip); err == nil && a.Is4() {
			external = append(external, a.String())
		}
	}
	if svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
		for _, ing := range svc.Status.LoadBalancer.Ingress {
			if a, err := netip.ParseAddr(ing.IP); err == nil && a.Is4() {
				external = append(external, a.String())
			}
		}
	}
	var affinity int32
	if svc.Spec.SessionAffinity == corev1.ServiceAffinityClientIP {
		affinity = corev1.DefaultClientIPServiceAffinitySeconds
		if c := svc.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
			affinity = *c.ClientIP.TimeoutSeconds
		}
	}
	itpLocal := svc.Spec.InternalTrafficPolicy != nil && *svc.Spec.InternalTrafficPolicy == corev1.ServiceInternalTrafficPolicyLocal
	var out []*servicePort
	for i := range svc.Spec.Ports {
		p := &svc.Spec.Ports[i]
		proto := strings.ToLower(string(p.Protocol))
		if proto == "" {
			proto = "tcp"
		}
		sp := &servicePort{
			name:            svc.Namespace + "/" + svc.Name + ":" + p.Name,
			chainBase:       hashedName(svc.Namespace + "/" + svc.Name + "/" + proto + "/" + p.Name),
			clusterIP:       cip.String(),
			port:            p.Port,
			protocol:        proto,
			externalIPs:     external,
			affinitySeconds: affinity,
			itpLocal:        itpLocal,
		}
		if svc.Spec.Type == corev1.ServiceTypeNodePort || svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
			sp.nodePort = p.NodePort
		}
		sp.etpLocal = svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal && sp.externallyAccessible()
		sp.endpoints = sliceEndpoints(slices, p, node)
		out = append(out, sp)
	}
	return out
}

// sliceEndpoints gathers the IPv4 endpoints of one Service port from its
// slices (matched by port name and protocol), one per address and port,
// a ready copy winning over a not-ready one, sorted.
func sliceEndpoints(slices []*discoveryv1.EndpointSlice, p *corev1.ServicePort, node string) []endpoint {
	proto := p.Protocol
	if proto == "" {
		proto = corev1.ProtocolTCP
	}
	byAddr := map[string]endpoint{}
	for _, s := range slices {
		if s.AddressType != discoveryv1.AddressTypeIPv4 {
			continue
		}
		for _, sp := range s.Ports {
			name := ""
			if sp.Name != nil {
				name = *sp.Name
			}
			pproto := corev1.ProtocolTCP
			if sp.Protocol != nil {
				pproto = *sp.Protocol
			}
			if name != p.Name || pproto != proto || sp.Port == nil || *sp.Port <= 0 {
				continue
			}
			for _, e := range s.Endpoints {
				if len(e.Addresses) == 0 {
					continue
				}
				a, err := netip.ParseAddr(e.Addresses[0])
				if err != nil || !a.Is4() {
					continue
				}
				ready := e.Conditions.Ready == nil || *e.Conditions.Ready
				serving := ready
				if e.Conditions.Serving != nil {
					serving = *e.Conditions.Serving
				}
				ep := endpoint{ip: a.String(), port: *sp.Port, ready: ready, serving: serving,
					terminating: e.Conditions.Terminating != nil && *e.Conditions.Terminating,
					local:       e.NodeName != nil && *e.NodeName == node}
				if old, dup := byAddr[ep.String()]; dup && old.ready {
					continue
				}
				byAddr[ep.String()] = ep
			}
		}
	}
	out := make([]endpoint, 0, len(byAddr))
	for _, e := range byAddr {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return lessAddr(out[i], out[j]) })
	return out
}

func lessAddr(a, b endpoint) bool {
	aa, _ := netip.ParseAddr(a.ip)
	ba, _ := netip.ParseAddr(b.ip)
	if c := aa.Compare(ba); c != 0 {
		return c < 0
	}
	return a.port < b.port
}
