package dns

import (
	"net/netip"
	"strings"

	mdns "github.com/miekg/dns"
)

// SchemaVersion is the version of the Kubernetes DNS specification the
// zone implements, served as dns-version.<zone> TXT (CoreDNS serves the
// same).
const SchemaVersion = "1.1.0"

// schemaVersionTTL is the specification's example TTL for dns-version.
const schemaVersionTTL = 28800

// Reply is the zone's answer to one question.
type Reply struct {
	// Forward says the name is not the zone's: ask the upstream resolvers.
	// Nothing else is set then.
	Forward bool
	// Rcode is mdns.RcodeSuccess (with no Answer: NODATA) or
	// mdns.RcodeNameError (NXDOMAIN).
	Rcode int
	// Answer, Ns and Extra are the message's sections; Ns holds the SOA
	// of a negative answer.
	Answer, Ns, Extra []mdns.RR
	// Chase is the target of a CNAME the answer ends with (an ExternalName
	// Service), which the server resolves for the same type and appends.
	Chase string
}

// Lookup answers q from the zone, per the Kubernetes DNS specification
// and, where it is silent, as CoreDNS's kubernetes plugin does:
//
//   - <svc>.<ns>.svc: A/AAAA of the ClusterIPs; for a headless Service the
//     ready endpoints' addresses (NXDOMAIN when none is ready); a CNAME to
//     the externalName of an ExternalName Service;
//   - <hostname>.<svc>.<ns>.svc: the endpoint's addresses; <hostname> is
//     the endpoint's hostname, else its address dashed (10-1-2-3);
//   - _<port>._<proto>.<svc>.<ns>.svc: SRV per named port (a headless
//     Service: per ready endpoint and port, targeting <hostname>.<svc>...),
//     with the targets' addresses in the additional section;
//   - <a-b-c-d>.<ns>.pod: A a.b.c.d (CoreDNS's "pods insecure", kubeadm's
//     default), in a namespace that exists;
//   - reverse names of ClusterIPs and ready endpoint addresses: PTR;
//   - dns-version: TXT with SchemaVersion; the apex: SOA and NS
//     (ns.dns.<zone>, whose A records are the cluster DNS addresses).
//
// A name that exists without records of q's type gets NODATA, one that
// does not exist NXDOMAIN, both with the zone's SOA. Matching ignores case;
// answers keep the question's spelling. Reverse names the zone does not
// know, and every name outside the zone, are Forward.
func (z *Zone) Lookup(q mdns.Question) Reply {
	owner := mdns.Fqdn(q.Name)
	name := strings.ToLower(owner)
	if strings.HasSuffix(name, ".in-addr.arpa.") || strings.HasSuffix(name, ".ip6.arpa.") {
		return z.lookupReverse(q, owner, name)
	}
	var base string
	switch {
	case name == z.origin:
	case strings.HasSuffix(name, "."+z.origin):
		base = strings.TrimSuffix(name, "."+z.origin)
	default:
		return Reply{Forward: true}
	}
	z.mu.RLock()
	defer z.mu.RUnlock()
	a := answerer{z: z, q: q, owner: owner}
	if base == "" {
		return a.apex()
	}
	labels := strings.Split(base, ".")
	last := len(labels) - 1
	switch {
	case base == "dns-version":
		if q.Qtype == mdns.TypeTXT {
			return a.records(&mdns.TXT{Hdr: a.hdr(owner, mdns.TypeTXT, schemaVersionTTL), Txt: []string{SchemaVersion}})
		}
		return a.nodata()
	case base == "ns.dns":
		return a.addresses(z.nameservers)
	case base == "dns":
		return a.nodata() // the parent of ns.dns exists
	case labels[last] == "svc":
		return a.service(labels[:last])
	case labels[last] == "pod":
		return a.pod(labels[:last])
	}
	return a.nxdomain()
}

// answerer builds the reply to one question; the zone's read lock is held.
type answerer struct {
	z     *Zone
	q     mdns.Question
	owner string // the question's name, fully qualified, as asked
}

func (a answerer) hdr(name string, rrtype uint16, ttl uint32) mdns.RR_Header {
	return mdns.RR_Header{Name: name, Rrtype: rrtype, Class: mdns.ClassINET, Ttl: ttl}
}

func (a answerer) soa() mdns.RR {
	z := a.z
	return &mdns.SOA{Hdr: a.hdr(z.origin, mdns.TypeSOA, z.ttl), Ns: "ns.dns." + z.origin, Mbox: "hostmaster." + z.origin,
		Serial: z.serial, Refresh: 7200, Retry: 1800, Expire: 86400, Minttl: z.ttl}
}

func (a answerer) nodata() Reply {
	return Reply{Rcode: mdns.RcodeSuccess, Ns: []mdns.RR{a.soa()}}
}

func (a answerer) nxdomain() Reply {
	return Reply{Rcode: mdns.RcodeNameError, Ns: []mdns.RR{a.soa()}}
}

// records answers with rrs, or NODATA when there are none.
func (a answerer) records(rrs ...mdns.RR) Reply {
	if len(rrs) == 0 {
		return a.nodata()
	}
	return Reply{Rcode: mdns.RcodeSuccess, Answer: rrs}
}

// addressRR is an A or AAAA record for ip, or nil when the question asks
// for the other family.
func (a answerer) addressRR(name string, ip netip.Addr, qtype uint16) mdns.RR {
	switch {
	case ip.Is4() && qtype == mdns.TypeA:
		return &mdns.A{Hdr: a.hdr(name, mdns.TypeA, a.z.ttl), A: ip.AsSlice()}
	case ip.Is6() && qtype == mdns.TypeAAAA:
		return &mdns.AAAA{Hdr: a.hdr(name, mdns.TypeAAAA, a.z.ttl), AAAA: ip.AsSlice()}
	}
	return nil
}

// addresses answers an A or AAAA question with ips of its family, any
// other type with NODATA.
func (a answerer) addresses(ips []netip.Addr) Reply {
	var rrs []mdns.RR
	for _, ip := range ips {
		if rr := a.addressRR(a.owner, ip, a.q.Qtype); rr != nil {
			rrs = append(rrs, rr)
		}
	}
	return a.records(rrs...)
}

func (a answerer) apex() Reply {
	z := a.z
	switch a.q.Qtype {
	case mdns.TypeSOA:
		soa := a.soa()
		soa.Header().Name = a.owner
		return a.records(soa)
	case mdns.TypeNS:
		ns := "ns.dns." + z.origin
		r := a.records(&mdns.NS{Hdr: a.hdr(a.owner, mdns.TypeNS, z.ttl), Ns: ns})
		for _, ip := range z.nameservers {
			for _, t := range []uint16{mdns.TypeA, mdns.TypeAAAA} {
				if rr := a.addressRR(ns, ip, t); rr != nil {
					r.Extra = append(r.Extra, rr)
				}
			}
		}
		return r
	}
	return a.nodata()
}

// namespaceExists: a namespace the informer has, or one holding a
// Service (its Namespace event may not have arrived yet).
func (a answerer) namespaceExists(ns string) bool {
	if _, ok := a.z.namespaces[ns]; ok {
		return true
	}
	for k := range a.z.services {
		if k.ns == ns {
			return true
		}
	}
	return false
}

// service answers names under svc.<zone>; labels are the ones before "svc".
func (a answerer) service(labels []string) Reply {
	n := len(labels)
	switch {
	case n == 0: // svc.<zone>
		return a.nodata()
	case n == 1: // <ns>.svc.<zone>
		if a.namespaceExists(labels[0]) {
			return a.nodata()
		}
		return a.nxdomain()
	case n > 4:
		return a.nxdomain()
	}
	k := svcKey{ns: labels[n-1], name: labels[n-2]}
	s := a.z.services[k]
	if s == nil {
		return a.nxdomain()
	}
	switch n {
	case 2:
		return a.serviceRecords(k, s)
	case 3:
		return a.endpointRecords(k, s, labels[0])
	default:
		if !strings.HasPrefix(labels[0], "_") || !strings.HasPrefix(labels[1], "_") {
			return a.nxdomain()
		}
		return a.srvRecords(k, s, labels[0][1:], labels[1][1:])
	}
}

// serviceRecords answers <svc>.<ns>.svc.<zone>.
func (a answerer) serviceRecords(k svcKey, s *service) Reply {
	switch {
	case s.externalName != "":
		r := a.records(&mdns.CNAME{Hdr: a.hdr(a.owner, mdns.TypeCNAME, a.z.ttl), Target: s.externalName})
		if a.q.Qtype != mdns.TypeCNAME {
			r.Chase = s.externalName
		}
		return r
	case s.headless:
		var ips []netip.Addr
		a.z.eachEndpoint(k, s, func(_ endpoint, ip netip.Addr) { ips = append(ips, ip) })
		if len(ips) == 0 {
			return a.nxdomain() // the specification: no ready endpoint, no name
		}
		return a.addresses(ips)
	case s.external:
		return a.nxdomain() // an externalName that is an IP: no record, as CoreDNS
	}
	return a.addresses(s.clusterIPs)
}

// endpointRecords answers <hostname>.<svc>.<ns>.svc.<zone>.
func (a answerer) endpointRecords(k svcKey, s *service, host string) Reply {
	var ips []netip.Addr
	if !s.external {
		a.z.eachEndpoint(k, s, func(e endpoint, ip netip.Addr) {
			if hostnameOf(e, ip) == host {
				ips = append(ips, ip)
			}
		})
	}
	if len(ips) == 0 {
		return a.nxdomain()
	}
	return a.addresses(ips)
}

// srvRecords answers _<port>._<proto>.<svc>.<ns>.svc.<zone>.
func (a answerer) srvRecords(k svcKey, s *service, portName, proto string) Reply {
	if s.external || portName == "" {
		return a.nxdomain()
	}
	type target struct {
		name string
		port uint16
		ip   netip.Addr // of a headless endpoint
	}
	var targets []target
	svcName := a.z.serviceName(k)
	if s.headless {
		for _, sl := range a.z.slices[k] {
			for _, p := range sl.ports {
				if p.name != portName || p.proto != proto {
					continue
				}
				for _, e := range sl.endpoints {
					if !e.ready && !s.publishNotReady {
						continue
					}
					for _, ip := range e.addrs {
						targets = append(targets, target{name: hostnameOf(e, ip) + "." + svcName, port: p.port, ip: ip})
					}
				}
			}
		}
	} else {
		for _, p := range s.ports {
			if p.name == portName && p.proto == proto {
				targets = append(targets, target{name: svcName, port: p.port})
			}
		}
	}
	if len(targets) == 0 {
		return a.nxdomain()
	}
	if a.q.Qtype != mdns.TypeSRV {
		return a.nodata()
	}
	weight := uint16(max(1, 100/len(targets)))
	r := Reply{Rcode: mdns.RcodeSuccess}
	glue := map[string]bool{}
	for _, t := range targets {
		r.Answer = append(r.Answer, &mdns.SRV{Hdr: a.hdr(a.owner, mdns.TypeSRV, a.z.ttl), Priority: 0, Weight: weight, Port: t.port, Target: t.name})
		ips := []netip.Addr{t.ip}
		if !s.headless {
			ips = s.clusterIPs
		}
		for _, ip := range ips {
			key := t.name + "/" + ip.String()
			if glue[key] || !ip.IsValid() {
				continue
			}
			glue[key] = true
			for _, qt := range []uint16{mdns.TypeA, mdns.TypeAAAA} {
				if rr := a.addressRR(t.name, ip, qt); rr != nil {
					r.Extra = append(r.Extra, rr)
				}
			}
		}
	}
	return r
}

// pod answers names under pod.<zone>; labels are the ones before "pod".
func (a answerer) pod(labels []string) Reply {
	switch len(labels) {
	case 0: // pod.<zone>
		return a.nodata()
	case 1: // <ns>.pod.<zone>
		if a.namespaceExists(labels[0]) {
			return a.nodata()
		}
		return a.nxdomain()
	case 2:
	default:
		return a.nxdomain()
	}
	if !a.namespaceExists(labels[1]) {
		return a.nxdomain()
	}
	ip, ok := undashed(labels[0])
	if !ok {
		return a.nxdomain()
	}
	return a.addresses([]netip.Addr{ip})
}

// undashed parses a pod record's first label: a-b-c-d for IPv4, the IPv6
// address with ':' written '-' (as CoreDNS reads it).
func undashed(label string) (netip.Addr, bool) {
	s := strings.ReplaceAll(label, "-", ":")
	if strings.Count(label, "-") == 3 && !strings.Contains(label, "--") {
		s = strings.ReplaceAll(label, "-", ".")
	}
	ip, err := netip.ParseAddr(s)
	if err != nil || ip.Zone() != "" {
		return netip.Addr{}, false
	}
	return ip, ip.Is4() || (ip.Is6() && !ip.Is4In6())
}

// lookupReverse answers PTR questions for the addresses the zone knows
// and hands everything else to the upstreams (CoreDNS's fallthrough for
// in-addr.arpa and ip6.arpa).
func (z *Zone) lookupReverse(q mdns.Question, owner, name string) Reply {
	if q.Qtype != mdns.TypePTR {
		return Reply{Forward: true}
	}
	z.mu.RLock()
	defer z.mu.RUnlock()
	bySvc := z.ptr[name]
	if len(bySvc) == 0 {
		return Reply{Forward: true}
	}
	a := answerer{z: z, q: q, owner: owner}
	var rrs []mdns.RR
	for _, targets := range bySvc {
		for _, t := range targets {
			rrs = append(rrs, &mdns.PTR{Hdr: a.hdr(owner, mdns.TypePTR, z.ttl), Ptr: t})
		}
	}
	sortPTR(rrs)
	return Reply{Rcode: mdns.RcodeSuccess, Answer: rrs}
}

// sortPTR orders PTR records by target, so answers are stable whatever
// the map order.
func sortPTR(rrs []mdns.RR) {
	for i := 1; i < len(rrs); i++ {
		for j := i; j > 0 && rrs[j].(*mdns.PTR).Ptr < rrs[j-1].(*mdns.PTR).Ptr; j-- {
			rrs[j], rrs[j-1] = rrs[j-1], rrs[j]
		}
	}
}
