package dns

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func svc(ns, name, clusterIP string, ports ...corev1.ServicePort) *corev1.Service {
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: clusterIP, Ports: ports}}
	if clusterIP != corev1.ClusterIPNone {
		s.Spec.ClusterIPs = strings.Split(clusterIP, ",")
		s.Spec.ClusterIP = s.Spec.ClusterIPs[0]
	}
	return s
}

func svcPort(name string, proto corev1.Protocol, port int32) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Protocol: proto, Port: port}
}

type ep struct {
	ip       string
	hostname string
	ready    *bool
}

func endpointSlice(ns, name, service string, eps []ep, ports ...discoveryv1.EndpointPort) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
		Labels: map[string]string{discoveryv1.LabelServiceName: service}}, AddressType: discoveryv1.AddressTypeIPv4, Ports: ports}
	for _, e := range eps {
		x := discoveryv1.Endpoint{Addresses: []string{e.ip}, Conditions: discoveryv1.EndpointConditions{Ready: e.ready}}
		if e.hostname != "" {
			x.Hostname = ptr.To(e.hostname)
		}
		es.Endpoints = append(es.Endpoints, x)
	}
	return es
}

func slicePort(name string, proto corev1.Protocol, port int32) discoveryv1.EndpointPort {
	return discoveryv1.EndpointPort{Name: ptr.To(name), Protocol: ptr.To(proto), Port: ptr.To(port)}
}

// testZone is a cluster with every kind of Service the records know.
func testZone(t *testing.T) *Zone {
	t.Helper()
	z := NewZone(ZoneOptions{Domain: "cluster.local", Nameservers: []netip.Addr{netip.MustParseAddr("10.96.0.10")}, Serial: 100})
	for _, ns := range []string{"default", "other", "kube-system"} {
		z.SetNamespace(ns)
	}
	http := svcPort("http", corev1.ProtocolTCP, 80)
	z.SetService(svc("default", "web", "10.96.0.20", http, svcPort("dns", corev1.ProtocolUDP, 53)))
	z.SetService(svc("other", "api", "10.96.0.30", svcPort("", corev1.ProtocolTCP, 443)))
	z.SetService(svc("default", "dual", "10.96.0.21,fd00::21", http))
	z.SetService(svc("default", "headless", corev1.ClusterIPNone, http))
	z.SetEndpointSlice(endpointSlice("default", "headless-abc", "headless", []ep{
		{ip: "10.1.0.1", hostname: "web-0", ready: ptr.To(true)},
		{ip: "10.1.0.2"}, // ready unknown: ready, as the API says to read it
		{ip: "10.1.0.3", hostname: "web-2", ready: ptr.To(false)},
	}, slicePort("http", corev1.ProtocolTCP, 8080)))
	z.SetService(svc("default", "empty", corev1.ClusterIPNone))
	z.SetEndpointSlice(endpointSlice("default", "empty-abc", "empty", []ep{{ip: "10.1.0.4", ready: ptr.To(false)}}))
	pnr := svc("default", "pnr", corev1.ClusterIPNone)
	pnr.Spec.PublishNotReadyAddresses = true
	z.SetService(pnr)
	z.SetEndpointSlice(endpointSlice("default", "pnr-abc", "pnr", []ep{{ip: "10.1.1.1", hostname: "db-0", ready: ptr.To(false)}}))
	ext := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "ext"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "www.example.com"}}
	z.SetService(ext)
	extIP := ext.DeepCopy()
	extIP.Name, extIP.Spec.ExternalName = "extip", "192.0.2.9"
	z.SetService(extIP)
	chain := ext.DeepCopy()
	chain.Name, chain.Spec.ExternalName = "chain", "web.default.svc.cluster.local"
	z.SetService(chain)
	// Endpoints of a ClusterIP Service have names too (CoreDNS answers them).
	z.SetEndpointSlice(endpointSlice("default", "web-abc", "web", []ep{{ip: "10.1.2.1", ready: ptr.To(true)}},
		slicePort("http", corev1.ProtocolTCP, 8080)))
	return z
}

// rrs renders records as their zone-file text without TTL and class, sorted.
func rrs(rs []mdns.RR) []string {
	var out []string
	for _, r := range rs {
		f := strings.Fields(r.String())
		out = append(out, f[0]+" "+strings.Join(f[3:], " "))
	}
	slices.Sort(out)
	return out
}

func TestLookup(t *testing.T) {
	const soa = "cluster.local. SOA ns.dns.cluster.local. hostmaster.cluster.local."
	for _, tc := range []struct {
		name    string
		qname   string
		qtype   uint16
		forward bool
		rcode   int
		answer  []string
		extra   []string
		chase   string
		// negative answers carry the SOA
		noSOA bool
	}{
		{name: "service A", qname: "web.default.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{"web.default.svc.cluster.local. A 10.96.0.20"}},
		{name: "no trailing dot, other case: answered in the question's spelling", qname: "WEB.Default.svc.Cluster.Local", qtype: mdns.TypeA,
			answer: []string{"WEB.Default.svc.Cluster.Local. A 10.96.0.20"}},
		{name: "service AAAA of an IPv4 Service: NODATA", qname: "web.default.svc.cluster.local.", qtype: mdns.TypeAAAA},
		{name: "service TXT: NODATA", qname: "web.default.svc.cluster.local.", qtype: mdns.TypeTXT},
		{name: "dual-stack A", qname: "dual.default.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{"dual.default.svc.cluster.local. A 10.96.0.21"}},
		{name: "dual-stack AAAA", qname: "dual.default.svc.cluster.local.", qtype: mdns.TypeAAAA,
			answer: []string{"dual.default.svc.cluster.local. AAAA fd00::21"}},
		{name: "another namespace", qname: "api.other.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{"api.other.svc.cluster.local. A 10.96.0.30"}},
		{name: "no such service: NXDOMAIN", qname: "nope.default.svc.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError},
		{name: "service in the wrong namespace: NXDOMAIN", qname: "web.other.svc.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError},
		{name: "namespace name: NODATA", qname: "default.svc.cluster.local.", qtype: mdns.TypeA},
		{name: "no such namespace: NXDOMAIN", qname: "nope.svc.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError},
		{name: "svc: NODATA", qname: "svc.cluster.local.", qtype: mdns.TypeA},
		{name: "apex A: NODATA", qname: "cluster.local.", qtype: mdns.TypeA},
		{name: "apex SOA", qname: "cluster.local.", qtype: mdns.TypeSOA, noSOA: true,
			answer: []string{soa + " SERIAL 7200 1800 86400 5"}},
		{name: "apex NS with glue", qname: "cluster.local.", qtype: mdns.TypeNS, noSOA: true,
			answer: []string{"cluster.local. NS ns.dns.cluster.local."}, extra: []string{"ns.dns.cluster.local. A 10.96.0.10"}},
		{name: "ns.dns", qname: "ns.dns.cluster.local.", qtype: mdns.TypeA, answer: []string{"ns.dns.cluster.local. A 10.96.0.10"}},
		{name: "dns-version", qname: "dns-version.cluster.local.", qtype: mdns.TypeTXT,
			answer: []string{`dns-version.cluster.local. TXT "1.1.0"`}},
		{name: "dns-version A: NODATA", qname: "dns-version.cluster.local.", qtype: mdns.TypeA},
		{name: "unknown name in the zone: NXDOMAIN", qname: "foo.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError},
		{name: "search-path miss: NXDOMAIN", qname: "web.default.svc.cluster.local.default.svc.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError},
		{name: "external name with a search suffix: NXDOMAIN", qname: "example.com.default.svc.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError},

		{name: "headless: the ready endpoints", qname: "headless.default.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{"headless.default.svc.cluster.local. A 10.1.0.1", "headless.default.svc.cluster.local. A 10.1.0.2"}},
		{name: "headless AAAA: NODATA", qname: "headless.default.svc.cluster.local.", qtype: mdns.TypeAAAA},
		{name: "headless without ready endpoints: NXDOMAIN", qname: "empty.default.svc.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError},
		{name: "publishNotReadyAddresses", qname: "pnr.default.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{"pnr.default.svc.cluster.local. A 10.1.1.1"}},
		{name: "endpoint by hostname (StatefulSet pod)", qname: "web-0.headless.default.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{"web-0.headless.default.svc.cluster.local. A 10.1.0.1"}},
		{name: "endpoint without hostname: its dashed address", qname: "10-1-0-2.headless.default.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{"10-1-0-2.headless.default.svc.cluster.local. A 10.1.0.2"}},
		{name: "endpoint not ready: NXDOMAIN", qname: "web-2.headless.default.svc.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError},
		{name: "endpoint not ready, published anyway", qname: "db-0.pnr.default.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{"db-0.pnr.default.svc.cluster.local. A 10.1.1.1"}},
		{name: "endpoint of a ClusterIP Service", qname: "10-1-2-1.web.default.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{"10-1-2-1.web.default.svc.cluster.local. A 10.1.2.1"}},
		{name: "no such endpoint: NXDOMAIN", qname: "web-9.headless.default.svc.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError},

		{name: "SRV of a named port", qname: "_http._tcp.web.default.svc.cluster.local.", qtype: mdns.TypeSRV,
			answer: []string{"_http._tcp.web.default.svc.cluster.local. SRV 0 100 80 web.default.svc.cluster.local."},
			extra:  []string{"web.default.svc.cluster.local. A 10.96.0.20"}},
		{name: "SRV over UDP, other case", qname: "_DNS._UDP.web.default.svc.cluster.local.", qtype: mdns.TypeSRV,
			answer: []string{"_DNS._UDP.web.default.svc.cluster.local. SRV 0 100 53 web.default.svc.cluster.local."},
			extra:  []string{"web.default.svc.cluster.local. A 10.96.0.20"}},
		{name: "SRV of a headless Service: one per ready endpoint", qname: "_http._tcp.headless.default.svc.cluster.local.", qtype: mdns.TypeSRV,
			answer: []string{
				"_http._tcp.headless.default.svc.cluster.local. SRV 0 50 8080 10-1-0-2.headless.default.svc.cluster.local.",
				"_http._tcp.headless.default.svc.cluster.local. SRV 0 50 8080 web-0.headless.default.svc.cluster.local.",
			},
			extra: []string{"10-1-0-2.headless.default.svc.cluster.local. A 10.1.0.2", "web-0.headless.default.svc.cluster.local. A 10.1.0.1"}},
		{name: "SRV with the wrong protocol: NXDOMAIN", qname: "_http._udp.web.default.svc.cluster.local.", qtype: mdns.TypeSRV, rcode: mdns.RcodeNameError},
		{name: "SRV of an unknown port: NXDOMAIN", qname: "_nope._tcp.web.default.svc.cluster.local.", qtype: mdns.TypeSRV, rcode: mdns.RcodeNameError},
		{name: "an SRV name asked for A: NODATA", qname: "_http._tcp.web.default.svc.cluster.local.", qtype: mdns.TypeA},
		{name: "unnamed port: no SRV", qname: "_._tcp.api.other.svc.cluster.local.", qtype: mdns.TypeSRV, rcode: mdns.RcodeNameError},
		{name: "two labels without underscores: NXDOMAIN", qname: "http.tcp.web.default.svc.cluster.local.", qtype: mdns.TypeSRV, rcode: mdns.RcodeNameError},
		{name: "too many labels: NXDOMAIN", qname: "a._http._tcp.web.default.svc.cluster.local.", qtype: mdns.TypeSRV, rcode: mdns.RcodeNameError},

		{name: "ExternalName: CNAME, target chased", qname: "ext.default.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{"ext.default.svc.cluster.local. CNAME www.example.com."}, chase: "www.example.com."},
		{name: "ExternalName asked for CNAME", qname: "ext.default.svc.cluster.local.", qtype: mdns.TypeCNAME,
			answer: []string{"ext.default.svc.cluster.local. CNAME www.example.com."}},
		{name: "ExternalName to a cluster name", qname: "chain.default.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{"chain.default.svc.cluster.local. CNAME web.default.svc.cluster.local."}, chase: "web.default.svc.cluster.local."},
		{name: "ExternalName that is an IP: NXDOMAIN", qname: "extip.default.svc.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError},
		{name: "ExternalName has no SRV", qname: "_http._tcp.ext.default.svc.cluster.local.", qtype: mdns.TypeSRV, rcode: mdns.RcodeNameError},

		{name: "pod A", qname: "10-1-0-9.default.pod.cluster.local.", qtype: mdns.TypeA,
			answer: []string{"10-1-0-9.default.pod.cluster.local. A 10.1.0.9"}},
		{name: "pod AAAA of an IPv4 name: NODATA", qname: "10-1-0-9.default.pod.cluster.local.", qtype: mdns.TypeAAAA},
		{name: "pod IPv6", qname: "fd00--9.default.pod.cluster.local.", qtype: mdns.TypeAAAA,
			answer: []string{"fd00--9.default.pod.cluster.local. AAAA fd00::9"}},
		{name: "pod in no namespace: NXDOMAIN", qname: "10-1-0-9.nope.pod.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError},
		{name: "pod name not an address: NXDOMAIN", qname: "web.default.pod.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError},
		{name: "pod label out of range: NXDOMAIN", qname: "10-1-0-300.default.pod.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError},
		{name: "pod namespace: NODATA", qname: "default.pod.cluster.local.", qtype: mdns.TypeA},

		{name: "PTR of a ClusterIP", qname: "20.0.96.10.in-addr.arpa.", qtype: mdns.TypePTR, noSOA: true,
			answer: []string{"20.0.96.10.in-addr.arpa. PTR web.default.svc.cluster.local."}},
		{name: "PTR of an IPv6 ClusterIP", qname: mustReverse("fd00::21"), qtype: mdns.TypePTR, noSOA: true,
			answer: []string{mustReverse("fd00::21") + " PTR dual.default.svc.cluster.local."}},
		{name: "PTR of a headless endpoint", qname: "1.0.1.10.in-addr.arpa.", qtype: mdns.TypePTR, noSOA: true,
			answer: []string{"1.0.1.10.in-addr.arpa. PTR web-0.headless.default.svc.cluster.local."}},
		{name: "PTR of an endpoint without hostname", qname: "2.0.1.10.in-addr.arpa.", qtype: mdns.TypePTR, noSOA: true,
			answer: []string{"2.0.1.10.in-addr.arpa. PTR 10-1-0-2.headless.default.svc.cluster.local."}},
		{name: "PTR of a not-ready endpoint: not ours", qname: "3.0.1.10.in-addr.arpa.", qtype: mdns.TypePTR, forward: true},
		{name: "PTR unknown: upstream", qname: "1.2.0.192.in-addr.arpa.", qtype: mdns.TypePTR, forward: true},
		{name: "reverse name asked for A: upstream", qname: "20.0.96.10.in-addr.arpa.", qtype: mdns.TypeA, forward: true},

		{name: "outside the zone", qname: "example.com.", qtype: mdns.TypeA, forward: true},
		{name: "the zone as a label elsewhere", qname: "cluster.local.example.com.", qtype: mdns.TypeA, forward: true},
		{name: "a suffix of the zone that is not it", qname: "xcluster.local.", qtype: mdns.TypeA, forward: true},
		{name: "single label", qname: "web.", qtype: mdns.TypeA, forward: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			z := testZone(t)
			r := z.Lookup(mdns.Question{Name: tc.qname, Qtype: tc.qtype, Qclass: mdns.ClassINET})
			if r.Forward != tc.forward {
				t.Fatalf("Forward = %v, want %v (%+v)", r.Forward, tc.forward, r)
			}
			if tc.forward {
				return
			}
			if r.Rcode != tc.rcode {
				t.Errorf("rcode = %s, want %s", mdns.RcodeToString[r.Rcode], mdns.RcodeToString[tc.rcode])
			}
			got := rrs(r.Answer)
			if tc.qtype == mdns.TypeSOA && len(r.Answer) == 1 { // the serial counts the fixture's changes
				got[0] = strings.Replace(got[0], fmt.Sprint(r.Answer[0].(*mdns.SOA).Serial), "SERIAL", 1)
			}
			if !slices.Equal(got, tc.answer) {
				t.Errorf("answer:\n got %q\nwant %q", got, tc.answer)
			}
			if got := rrs(r.Extra); !slices.Equal(got, tc.extra) {
				t.Errorf("extra:\n got %q\nwant %q", got, tc.extra)
			}
			if r.Chase != tc.chase {
				t.Errorf("chase = %q, want %q", r.Chase, tc.chase)
			}
			wantSOA := len(tc.answer) == 0 && !tc.noSOA
			if gotSOA := len(r.Ns) == 1 && strings.HasPrefix(rrs(r.Ns)[0], soa); gotSOA != wantSOA {
				t.Errorf("SOA in authority = %v (%q), want %v", gotSOA, rrs(r.Ns), wantSOA)
			}
		})
	}
}

func mustReverse(ip string) string {
	s, err := mdns.ReverseAddr(ip)
	if err != nil {
		panic(err)
	}
	return s
}

// TestZoneChanges follows Services and slices through updates and deletes.
func TestZoneChanges(t *testing.T) {
	z := testZone(t)
	a := func(name string) (int, []string) {
		r := z.Lookup(mdns.Question{Name: name, Qtype: mdns.TypeA, Qclass: mdns.ClassINET})
		return r.Rcode, rrs(r.Answer)
	}
	ptrOf := func(name string) []string {
		r := z.Lookup(mdns.Question{Name: name, Qtype: mdns.TypePTR, Qclass: mdns.ClassINET})
		if r.Forward {
			return nil
		}
		return rrs(r.Answer)
	}

	// A ClusterIP changes (deleted and recreated): the name and the PTR follow.
	z.SetService(svc("default", "web", "10.96.0.99", svcPort("http", corev1.ProtocolTCP, 80)))
	if _, got := a("web.default.svc.cluster.local."); !slices.Equal(got, []string{"web.default.svc.cluster.local. A 10.96.0.99"}) {
		t.Errorf("after the change: %q", got)
	}
	if got := ptrOf("20.0.96.10.in-addr.arpa."); got != nil {
		t.Errorf("old PTR still answered: %q", got)
	}
	if got := ptrOf("99.0.96.10.in-addr.arpa."); len(got) != 1 {
		t.Errorf("new PTR: %q", got)
	}

	// An endpoint becomes ready.
	z.SetEndpointSlice(endpointSlice("default", "empty-abc", "empty", []ep{{ip: "10.1.0.4", ready: ptr.To(true)}}))
	if rc, got := a("empty.default.svc.cluster.local."); rc != mdns.RcodeSuccess || len(got) != 1 {
		t.Errorf("endpoint ready: %s %q", mdns.RcodeToString[rc], got)
	}
	// A second slice of the same Service adds to it; a repeated address counts once.
	z.SetEndpointSlice(endpointSlice("default", "empty-def", "empty", []ep{{ip: "10.1.0.4"}, {ip: "10.1.0.5"}}))
	if _, got := a("empty.default.svc.cluster.local."); len(got) != 2 {
		t.Errorf("two slices: %q", got)
	}
	z.DeleteEndpointSlice("default", "empty-def")
	z.DeleteEndpointSlice("default", "empty-abc")
	if rc, _ := a("empty.default.svc.cluster.local."); rc != mdns.RcodeNameError {
		t.Errorf("slices deleted: rcode %s, want NXDOMAIN", mdns.RcodeToString[rc])
	}
	if got := ptrOf("4.0.1.10.in-addr.arpa."); got != nil {
		t.Errorf("PTR of a deleted slice's endpoint: %q", got)
	}

	// A slice relabelled to another Service moves with it.
	moved := endpointSlice("default", "headless-abc", "pnr", []ep{{ip: "10.1.0.1", hostname: "web-0"}})
	z.SetEndpointSlice(moved)
	if rc, _ := a("web-0.headless.default.svc.cluster.local."); rc != mdns.RcodeNameError {
		t.Errorf("relabelled slice still under its old Service")
	}
	if rc, _ := a("web-0.pnr.default.svc.cluster.local."); rc != mdns.RcodeSuccess {
		t.Errorf("relabelled slice not under its new Service")
	}
	// A slice that loses its label carries nothing.
	delete(moved.Labels, discoveryv1.LabelServiceName)
	z.SetEndpointSlice(moved)
	if rc, _ := a("web-0.pnr.default.svc.cluster.local."); rc != mdns.RcodeNameError {
		t.Errorf("unlabelled slice still answered")
	}

	// A deleted Service and namespace.
	z.DeleteService("default", "web")
	if rc, _ := a("web.default.svc.cluster.local."); rc != mdns.RcodeNameError {
		t.Errorf("deleted Service: rcode %s", mdns.RcodeToString[rc])
	}
	if got := ptrOf("99.0.96.10.in-addr.arpa."); got != nil {
		t.Errorf("PTR of a deleted Service: %q", got)
	}
	z.DeleteService("other", "api")
	z.DeleteNamespace("other")
	if rc, _ := a("other.svc.cluster.local."); rc != mdns.RcodeNameError {
		t.Errorf("deleted namespace: rcode %s", mdns.RcodeToString[rc])
	}
	// The SOA serial counts changes.
	r := z.Lookup(mdns.Question{Name: "cluster.local.", Qtype: mdns.TypeSOA, Qclass: mdns.ClassINET})
	if serial := r.Answer[0].(*mdns.SOA).Serial; serial <= 100 {
		t.Errorf("SOA serial %d did not advance", serial)
	}
}

// TestZoneOtherDomain serves another cluster domain, given with a dot and
// in capitals.
func TestZoneOtherDomain(t *testing.T) {
	z := NewZone(ZoneOptions{Domain: "Corp.Example.", TTL: 30})
	z.SetNamespace("default")
	z.SetService(svc("default", "web", "10.96.0.20"))
	r := z.Lookup(mdns.Question{Name: "web.default.svc.corp.example.", Qtype: mdns.TypeA, Qclass: mdns.ClassINET})
	if got := rrs(r.Answer); !slices.Equal(got, []string{"web.default.svc.corp.example. A 10.96.0.20"}) || r.Answer[0].Header().Ttl != 30 {
		t.Errorf("answer %q (ttl %d)", got, r.Answer[0].Header().Ttl)
	}
	if r := z.Lookup(mdns.Question{Name: "web.default.svc.cluster.local.", Qtype: mdns.TypeA, Qclass: mdns.ClassINET}); !r.Forward {
		t.Errorf("cluster.local is not this zone's, got %+v", r)
	}
}
