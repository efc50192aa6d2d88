package dns

import (
	"net/netip"
	"strings"
	"sync"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// Zone is the cluster domain's records, kept from the Services,
// EndpointSlices and Namespaces the informers deliver (Set*/Delete*), and
// answered from memory (Lookup). It holds only what the records need, not
// the API objects. Safe for concurrent use: updates take a write lock,
// lookups a read lock.
type Zone struct {
	origin      string // "cluster.local.", lower case
	ttl         uint32
	nameservers []netip.Addr

	mu         sync.RWMutex
	serial     uint32
	namespaces map[string]struct{}
	services   map[svcKey]*service
	// slices are the EndpointSlices of each Service, by slice name.
	slices map[svcKey]map[string]*slice
	// sliceOwner finds the Service of a slice on delete (the object
	// handed to a delete may be a tombstone without labels).
	sliceOwner map[sliceKey]svcKey
	// ptr maps reverse names (d.c.b.a.in-addr.arpa.) to their targets, per
	// Service so that one Service's change rewrites only its own entries.
	ptr      map[string]map[svcKey][]string
	ptrNames map[svcKey][]string
}

type svcKey struct{ ns, name string }
type sliceKey struct{ ns, name string }

// service is what the records need of a Service.
type service struct {
	headless bool
	// external: type ExternalName; externalName is its CNAME target, fully
	// qualified, or "" when spec.externalName is an IP (no record).
	external        bool
	externalName    string
	clusterIPs      []netip.Addr
	ports           []port
	publishNotReady bool
}

type port struct {
	name, proto string // lower case
	port        uint16
}

// slice is what the records need of an EndpointSlice.
type slice struct {
	endpoints []endpoint
	ports     []port
}

type endpoint struct {
	addrs    []netip.Addr
	hostname string // spec.endpoints[].hostname; "" means the address, dashed
	ready    bool
}

// ZoneOptions configure a Zone.
type ZoneOptions struct {
	// Domain is the cluster domain, e.g. cluster.local.
	Domain string
	// TTL of every answer but dns-version's (default 5 s, CoreDNS's).
	TTL uint32
	// Nameservers are the cluster DNS addresses, the answer for
	// ns.dns.<domain> and the apex NS record's glue.
	Nameservers []netip.Addr
	// Serial is the SOA serial before the first change (the server passes
	// the time it started, as CoreDNS's serial is a modification time).
	Serial uint32
}

// DefaultTTL is the TTL of the cluster's records: CoreDNS's kubernetes
// plugin default, short so that clients that cache see a Service's change
// within seconds.
const DefaultTTL = 5

// NewZone returns an empty zone for opts.Domain.
func NewZone(opts ZoneOptions) *Zone {
	if opts.TTL == 0 {
		opts.TTL = DefaultTTL
	}
	return &Zone{
		origin:      mdns.Fqdn(strings.ToLower(opts.Domain)),
		ttl:         opts.TTL,
		nameservers: opts.Nameservers,
		serial:      opts.Serial,
		namespaces:  map[string]struct{}{},
		services:    map[svcKey]*service{},
		slices:      map[svcKey]map[string]*slice{},
		sliceOwner:  map[sliceKey]svcKey{},
		ptr:         map[string]map[svcKey][]string{},
		ptrNames:    map[svcKey][]string{},
	}
}

// Origin returns the zone's name, fully qualified and in lower case.
func (z *Zone) Origin() string { return z.origin }

// SetNamespace records that a namespace exists.
func (z *Zone) SetNamespace(name string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.namespaces[strings.ToLower(name)] = struct{}{}
	z.serial++
}

// DeleteNamespace forgets a namespace.
func (z *Zone) DeleteNamespace(name string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	delete(z.namespaces, strings.ToLower(name))
	z.serial++
}

// SetService adds or replaces a Service's records.
func (z *Zone) SetService(svc *corev1.Service) {
	k := svcKey{strings.ToLower(svc.Namespace), strings.ToLower(svc.Name)}
	s := &service{publishNotReady: svc.Spec.PublishNotReadyAddresses}
	switch {
	case svc.Spec.Type == corev1.ServiceTypeExternalName:
		s.external = true
		// An IP in externalName is no CNAME target: CoreDNS answers no
		// record for it, and neither do we.
		if _, err := netip.ParseAddr(svc.Spec.ExternalName); err != nil && svc.Spec.ExternalName != "" {
			s.externalName = mdns.Fqdn(svc.Spec.ExternalName)
		}
	case svc.Spec.ClusterIP == corev1.ClusterIPNone:
		s.headless = true
	default:
		ips := svc.Spec.ClusterIPs
		if len(ips) == 0 && svc.Spec.ClusterIP != "" {
			ips = []string{svc.Spec.ClusterIP}
		}
		for _, ip := range ips {
			if a, err := netip.ParseAddr(ip); err == nil {
				s.clusterIPs = append(s.clusterIPs, a.Unmap())
			}
		}
	}
	for _, p := range svc.Spec.Ports {
		s.ports = append(s.ports, port{name: strings.ToLower(p.Name), proto: protoOf(p.Protocol), port: uint16(p.Port)})
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	z.services[k] = s
	z.reindexPTR(k)
	z.serial++
}

// DeleteService removes a Service's records (its slices' stay until they
// are deleted, unused).
func (z *Zone) DeleteService(namespace, name string) {
	k := svcKey{strings.ToLower(namespace), strings.ToLower(name)}
	z.mu.Lock()
	defer z.mu.Unlock()
	delete(z.services, k)
	z.reindexPTR(k)
	z.serial++
}

// SetEndpointSlice adds or replaces an EndpointSlice's endpoints. Slices
// without the kubernetes.io/service-name label, and FQDN slices, carry no
// records.
func (z *Zone) SetEndpointSlice(es *discoveryv1.EndpointSlice) {
	owner := es.Labels[discoveryv1.LabelServiceName]
	sk := sliceKey{es.Namespace, es.Name}
	if owner == "" || es.AddressType == discoveryv1.AddressTypeFQDN {
		z.DeleteEndpointSlice(es.Namespace, es.Name)
		return
	}
	k := svcKey{strings.ToLower(es.Namespace), strings.ToLower(owner)}
	sl := &slice{}
	for _, p := range es.Ports {
		var pp port
		if p.Name != nil {
			pp.name = strings.ToLower(*p.Name)
		}
		if p.Protocol != nil {
			pp.proto = protoOf(*p.Protocol)
		} else {
			pp.proto = "tcp"
		}
		if p.Port != nil {
			pp.port = uint16(*p.Port)
		}
		sl.ports = append(sl.ports, pp)
	}
	for _, ep := range es.Endpoints {
		e := endpoint{ready: ep.Conditions.Ready == nil || *ep.Conditions.Ready}
		if ep.Hostname != nil {
			e.hostname = strings.ToLower(*ep.Hostname)
		}
		for _, a := range ep.Addresses {
			if ip, err := netip.ParseAddr(a); err == nil {
				e.addrs = append(e.addrs, ip.Unmap())
			}
		}
		if len(e.addrs) > 0 {
			sl.endpoints = append(sl.endpoints, e)
		}
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	if old, ok := z.sliceOwner[sk]; ok && old != k { // relabelled to another Service
		delete(z.slices[old], es.Name)
		z.reindexPTR(old)
	}
	z.sliceOwner[sk] = k
	if z.slices[k] == nil {
		z.slices[k] = map[string]*slice{}
	}
	z.slices[k][es.Name] = sl
	z.reindexPTR(k)
	z.serial++
}

// DeleteEndpointSlice removes an EndpointSlice's endpoints.
func (z *Zone) DeleteEndpointSlice(namespace, name string) {
	sk := sliceKey{namespace, name}
	z.mu.Lock()
	defer z.mu.Unlock()
	k, ok := z.sliceOwner[sk]
	if !ok {
		return
	}
	delete(z.sliceOwner, sk)
	delete(z.slices[k], name)
	if len(z.slices[k]) == 0 {
		delete(z.slices, k)
	}
	z.reindexPTR(k)
	z.serial++
}

func protoOf(p corev1.Protocol) string {
	if p == "" {
		return "tcp"
	}
	return strings.ToLower(string(p))
}

// reindexPTR rewrites the reverse entries of Service k: its ClusterIPs
// point at the Service's name, its ready endpoints' addresses at
// <hostname>.<service>, as CoreDNS answers them. The caller holds the write
// lock.
func (z *Zone) reindexPTR(k svcKey) {
	for _, name := range z.ptrNames[k] {
		delete(z.ptr[name], k)
		if len(z.ptr[name]) == 0 {
			delete(z.ptr, name)
		}
	}
	delete(z.ptrNames, k)
	s := z.services[k]
	if s == nil || s.external {
		return
	}
	add := func(ip netip.Addr, target string) {
		name, err := mdns.ReverseAddr(ip.String())
		if err != nil {
			return
		}
		if z.ptr[name] == nil {
			z.ptr[name] = map[svcKey][]string{}
		}
		if len(z.ptr[name][k]) == 0 {
			z.ptrNames[k] = append(z.ptrNames[k], name)
		}
		z.ptr[name][k] = append(z.ptr[name][k], target)
	}
	svcName := z.serviceName(k)
	for _, ip := range s.clusterIPs {
		add(ip, svcName)
	}
	z.eachEndpoint(k, s, func(e endpoint, ip netip.Addr) {
		add(ip, hostnameOf(e, ip)+"."+svcName)
	})
}

// serviceName is <service>.<ns>.svc.<zone>.
func (z *Zone) serviceName(k svcKey) string {
	return k.name + "." + k.ns + ".svc." + z.origin
}

// eachEndpoint calls f for every address of Service k's endpoints that
// counts as ready (ready, or any with publishNotReadyAddresses), once per
// address even when slices repeat it (as they may while being rewritten).
// The caller holds a lock.
func (z *Zone) eachEndpoint(k svcKey, s *service, f func(e endpoint, ip netip.Addr)) {
	var seen map[netip.Addr]bool
	for _, sl := range z.slices[k] {
		for _, e := range sl.endpoints {
			if !e.ready && !s.publishNotReady {
				continue
			}
			for _, ip := range e.addrs {
				if seen == nil {
					seen = map[netip.Addr]bool{}
				}
				if seen[ip] {
					continue
				}
				seen[ip] = true
				f(e, ip)
			}
		}
	}
}

// hostnameOf is an endpoint's hostname as the specification defines it:
// its hostname field, else a name unique within the Service, here its
// address with '.' or ':' turned into '-' (CoreDNS's choice).
func hostnameOf(e endpoint, ip netip.Addr) string {
	if e.hostname != "" {
		return e.hostname
	}
	return dashed(ip)
}

func dashed(ip netip.Addr) string {
	s := ip.String()
	if ip.Is4() {
		return strings.ReplaceAll(s, ".", "-")
	}
	return strings.ReplaceAll(s, ":", "-")
}
