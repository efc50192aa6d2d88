package proxy

import (
	"context"
	"fmt"
	"net"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/knftables"

	"github.com/vishvananda/netlink"
)

const testNode = "node-a"

// harness drives a Proxier against knftables' fake, calling its informer
// handlers directly.
type harness struct {
	t   *testing.T
	p   *Proxier
	nft *knftables.Fake
}

func newHarness(t *testing.T, clusterCIDR string) *harness {
	t.Helper()
	nft := knftables.NewFake(knftables.IPv4Family, DefaultTable)
	factory := informers.NewSharedInformerFactory(fake.NewClientset(), 0)
	p, err := New(Config{NodeName: testNode, ClusterCIDR: clusterCIDR}, factory, nft)
	if err != nil {
		t.Fatal(err)
	}
	p.conntrack = func([]change) error { return nil }
	return &harness{t: t, p: p, nft: nft}
}

func (h *harness) sync() {
	h.t.Helper()
	if err := h.p.syncOnce(context.Background()); err != nil {
		h.t.Fatalf("sync: %v", err)
	}
}

func (h *harness) dump() string {
	h.nft.RLock()
	defer h.nft.RUnlock()
	return h.nft.Dump()
}

func (h *harness) lastTx() string {
	h.nft.RLock()
	defer h.nft.RUnlock()
	if h.nft.LastTransaction == nil {
		return ""
	}
	return h.nft.LastTransaction.String()
}

// svc is a ClusterIP Service with one TCP port 80 → 8080 unless changed.
func svc(name, ip string, mods ...func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: ip,
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}}}
	for _, m := range mods {
		m(s)
	}
	return s
}

type ep struct {
	ip                          string
	node                        string
	ready, serving, terminating bool
}

func readyEp(ip, node string) ep { return ep{ip: ip, node: node, ready: true, serving: true} }

// slice is an EndpointSlice of service name with port "http" at port.
func slice(name, svcName string, port int32, proto corev1.Protocol, eps ...ep) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name,
		Labels: map[string]string{discoveryv1.LabelServiceName: svcName}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(port), Protocol: ptr.To(proto)}}}
	for _, e := range eps {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{e.ip},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(e.ready), Serving: ptr.To(e.serving), Terminating: ptr.To(e.terminating)},
			NodeName:   ptr.To(e.node)})
	}
	return s
}

func mustContain(t *testing.T, what, text string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, text)
		}
	}
}

func mustNotContain(t *testing.T, what, text string, unwanted ...string) {
	t.Helper()
	for _, w := range unwanted {
		if strings.Contains(text, w) {
			t.Errorf("%s holds %q:\n%s", what, w, text)
		}
	}
}

// chainOf returns the name of the chain of kind (service-, local-,
// external-, endpoint-) whose name contains part.
func chainOf(t *testing.T, dump, kind, part string) string {
	t.Helper()
	re := regexp.MustCompile(`add chain ip peapod (` + kind + `[^ \n]*)`)
	for _, m := range re.FindAllStringSubmatch(dump, -1) {
		if strings.Contains(m[1], part) {
			return m[1]
		}
	}
	t.Fatalf("no %s chain containing %q:\n%s", kind, part, dump)
	return ""
}

func rulesOf(dump, chain string) []string {
	var out []string
	prefix := "add rule ip peapod " + chain + " "
	for _, line := range strings.Split(dump, "\n") {
		if strings.HasPrefix(line, prefix) {
			out = append(out, strings.TrimPrefix(line, prefix))
		}
	}
	return out
}

func TestClusterIPBalancesOverReadyEndpoints(t *testing.T) {
	h := newHarness(t, "10.42.0.0/16")
	h.p.onService(svc("web", "10.96.0.10"))
	h.p.onSlice(slice("web-1", "web", 8080, corev1.ProtocolTCP,
		readyEp("10.42.0.5", testNode), readyEp("10.42.1.5", "node-b"), ep{ip: "10.42.2.5", node: "node-b"}))
	h.sync()
	d := h.dump()
	svcChain := chainOf(t, d, "service-", "ns/web/tcp/http")
	mustContain(t, "table", d,
		"add element ip peapod service-ips { 10.96.0.10 . tcp . 80 : goto "+svcChain+" }",
		"add element ip peapod cluster-ips { 10.96.0.10 }",
		"add rule ip peapod services ip daddr . meta l4proto . th dport vmap @service-ips",
	)
	rules := rulesOf(d, svcChain)
	want := []string{
		"ip daddr 10.96.0.10 tcp dport 80 ip saddr != 10.42.0.0/16 jump mark-for-masquerade",
		"ct mark set ct mark or 0x00100000",
		"meta l4proto tcp dnat ip to numgen random mod 2 map { 0 : 10.42.0.5 . 8080 , 1 : 10.42.1.5 . 8080 }",
	}
	if fmt.Sprint(rules) != fmt.Sprint(want) {
		t.Errorf("service chain rules:\n%q\nwant\n%q", rules, want)
	}
	// A pod reaching itself through the Service is masqueraded.
	mustContain(t, "table", d, "add element ip peapod hairpin { 10.42.0.5 . 10.42.0.5 }", "add element ip peapod hairpin { 10.42.1.5 . 10.42.1.5 }",
		"add rule ip peapod masquerading ct status dnat ip saddr . ip daddr @hairpin masquerade fully-random")
	mustNotContain(t, "table", d, "add chain ip peapod endpoint-")
	mustNotContain(t, "table", d, "10.42.2.5") // not ready, not terminating: unused
}

func TestServiceWithoutEndpointsIsRejectedAndHeadlessIgnored(t *testing.T) {
	h := newHarness(t, "")
	h.p.onService(svc("empty", "10.96.0.11"))
	h.p.onService(svc("headless", corev1.ClusterIPNone))
	h.p.onSlice(slice("headless-1", "headless", 8080, corev1.ProtocolTCP, readyEp("10.42.0.9", testNode)))
	h.p.onService(svc("ext", "", func(s *corev1.Service) {
		s.Spec.Type, s.Spec.ExternalName = corev1.ServiceTypeExternalName, "example.com"
	}))
	h.sync()
	d := h.dump()
	mustContain(t, "table", d, "add element ip peapod no-endpoint-services { 10.96.0.11 . tcp . 80 : goto reject-chain }",
		"add rule ip peapod reject-chain reject")
	mustNotContain(t, "table", d, "10.42.0.9", "service-ips { 10.96.0.11")
}

func TestTerminatingServingEndpointsAreTheFallback(t *testing.T) {
	h := newHarness(t, "")
	h.p.onService(svc("web", "10.96.0.10"))
	h.p.onSlice(slice("web-1", "web", 8080, corev1.ProtocolTCP,
		ep{ip: "10.42.0.5", node: testNode, serving: true, terminating: true},
		ep{ip: "10.42.0.6", node: testNode, terminating: true}))
	h.sync()
	d := h.dump()
	mustContain(t, "table", d, "map { 0 : 10.42.0.5 . 8080 }")
	mustNotContain(t, "table", d, "10.42.0.6")
	// Once a ready endpoint exists, the terminating one is not used.
	h.p.onSlice(slice("web-1", "web", 8080, corev1.ProtocolTCP,
		ep{ip: "10.42.0.5", node: testNode, serving: true, terminating: true}, readyEp("10.42.0.7", testNode)))
	h.sync()
	d = h.dump()
	svcChain := chainOf(t, d, "service-", "ns/web")
	if r := rulesOf(d, svcChain); len(r) != 2 || !strings.HasSuffix(r[1], "numgen random mod 1 map { 0 : 10.42.0.7 . 8080 }") {
		t.Errorf("service chain %q, want only the ready endpoint", r)
	}
}

func TestNodePortAndTrafficPolicies(t *testing.T) {
	np := func(etp corev1.ServiceExternalTrafficPolicy) func(*corev1.Service) {
		return func(s *corev1.Service) {
			s.Spec.Type, s.Spec.ExternalTrafficPolicy = corev1.ServiceTypeNodePort, etp
			s.Spec.Ports[0].NodePort = 30080
		}
	}
	t.Run("cluster policy masquerades", func(t *testing.T) {
		h := newHarness(t, "10.42.0.0/16")
		h.p.onService(svc("web", "10.96.0.10", np(corev1.ServiceExternalTrafficPolicyCluster)))
		h.p.onSlice(slice("web-1", "web", 8080, corev1.ProtocolTCP, readyEp("10.42.1.5", "node-b")))
		h.sync()
		d := h.dump()
		ext := chainOf(t, d, "external-", "ns/web")
		svcChain := chainOf(t, d, "service-", "ns/web")
		mustContain(t, "table", d, "add element ip peapod service-nodeports { tcp . 30080 : goto "+ext+" }",
			"fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports")
		if r := rulesOf(d, ext); fmt.Sprint(r) != fmt.Sprint([]string{"jump mark-for-masquerade", "goto " + svcChain}) {
			t.Errorf("external chain %q", r)
		}
	})
	t.Run("local policy keeps the client and drops without a local endpoint", func(t *testing.T) {
		h := newHarness(t, "10.42.0.0/16")
		h.p.onService(svc("web", "10.96.0.10", np(corev1.ServiceExternalTrafficPolicyLocal)))
		h.p.onSlice(slice("web-1", "web", 8080, corev1.ProtocolTCP, readyEp("10.42.1.5", "node-b")))
		h.sync()
		d := h.dump()
		ext := chainOf(t, d, "external-", "ns/web")
		svcChain := chainOf(t, d, "service-", "ns/web")
		want := []string{"ip saddr 10.42.0.0/16 goto " + svcChain, "fib saddr type local jump mark-for-masquerade", "fib saddr type local goto " + svcChain}
		if r := rulesOf(d, ext); fmt.Sprint(r) != fmt.Sprint(want) {
			t.Errorf("external chain %q, want %q", r, want)
		}
		mustContain(t, "table", d, "add element ip peapod no-endpoint-nodeports { tcp . 30080 : drop }",
			"service-ips { 10.96.0.10 . tcp . 80 : goto "+svcChain)
		// A local endpoint appears: external traffic goes to it only.
		h.p.onSlice(slice("web-1", "web", 8080, corev1.ProtocolTCP, readyEp("10.42.1.5", "node-b"), readyEp("10.42.0.5", testNode)))
		h.sync()
		d = h.dump()
		local := chainOf(t, d, "local-", "ns/web")
		if r := rulesOf(d, ext); len(r) != 4 || r[3] != "goto "+local {
			t.Errorf("external chain %q, want it to end in goto %s", r, local)
		}
		if r := rulesOf(d, local); len(r) != 2 || !strings.HasSuffix(r[1], "numgen random mod 1 map { 0 : 10.42.0.5 . 8080 }") {
			t.Errorf("local chain %q", r)
		}
		mustNotContain(t, "table", d, "no-endpoint-nodeports { tcp . 30080")
	})
	t.Run("internal traffic policy local", func(t *testing.T) {
		h := newHarness(t, "")
		h.p.onService(svc("web", "10.96.0.10", func(s *corev1.Service) {
			s.Spec.InternalTrafficPolicy = ptr.To(corev1.ServiceInternalTrafficPolicyLocal)
		}))
		h.p.onSlice(slice("web-1", "web", 8080, corev1.ProtocolTCP, readyEp("10.42.1.5", "node-b")))
		h.sync()
		mustContain(t, "table", h.dump(), "add element ip peapod no-endpoint-services { 10.96.0.10 . tcp . 80 : drop }")
		mustNotContain(t, "table", h.dump(), "10.42.1.5")
	})
}

func TestSessionAffinity(t *testing.T) {
	h := newHarness(t, "")
	h.p.onService(svc("web", "10.96.0.10", func(s *corev1.Service) {
		s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
		s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr.To(int32(60))}}
	}))
	h.p.onSlice(slice("web-1", "web", 8080, corev1.ProtocolTCP, readyEp("10.42.0.5", testNode), readyEp("10.42.0.6", testNode)))
	h.sync()
	d := h.dump()
	e := chainOf(t, d, "endpoint-", "10.42.0.5/8080")
	set := "affinity-" + strings.TrimPrefix(e, "endpoint-") + "/t60"
	mustContain(t, "table", d, "add set ip peapod "+set+" { type ipv4_addr ; flags dynamic,timeout ; timeout 60s ; }",
		"add rule ip peapod "+e+" update @"+set+" { ip saddr }",
		"ip saddr @"+set+" goto "+e)
	// A new timeout is a new set; the old one goes.
	h.p.onService(svc("web", "10.96.0.10", func(s *corev1.Service) {
		s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
		s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr.To(int32(30))}}
	}))
	h.sync()
	d = h.dump()
	mustNotContain(t, "table", d, set+" ")
	mustContain(t, "table", d, strings.TrimSuffix(set, "/t60")+"/t30")
}

func TestMultiplePortsAndOnePortOverTCPAndUDP(t *testing.T) {
	h := newHarness(t, "")
	h.p.onService(svc("dns", "10.96.0.53", func(s *corev1.Service) {
		s.Spec.Ports = []corev1.ServicePort{{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}, {Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP},
			{Name: "metrics", Port: 9153, Protocol: corev1.ProtocolTCP}, {Name: "sctp", Port: 7777, Protocol: corev1.ProtocolSCTP}}
	}))
	s := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "dns-1", Labels: map[string]string{discoveryv1.LabelServiceName: "dns"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports: []discoveryv1.EndpointPort{{Name: ptr.To("dns"), Port: ptr.To(int32(5353)), Protocol: ptr.To(corev1.ProtocolUDP)},
			{Name: ptr.To("dns-tcp"), Port: ptr.To(int32(5353)), Protocol: ptr.To(corev1.ProtocolTCP)},
			{Name: ptr.To("metrics"), Port: ptr.To(int32(9153)), Protocol: ptr.To(corev1.ProtocolTCP)},
			{Name: ptr.To("sctp"), Port: ptr.To(int32(7777)), Protocol: ptr.To(corev1.ProtocolSCTP)}},
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.42.0.53"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}}}
	h.p.onSlice(s)
	h.sync()
	mustContain(t, "table", h.dump(),
		"10.96.0.53 . udp . 53 : goto service-", "10.96.0.53 . tcp . 53 : goto service-", "10.96.0.53 . tcp . 9153 : goto service-",
		"10.96.0.53 . sctp . 7777 : goto service-",
		"meta l4proto udp dnat ip to numgen random mod 1 map { 0 : 10.42.0.53 . 5353 }",
		"meta l4proto tcp dnat ip to numgen random mod 1 map { 0 : 10.42.0.53 . 5353 }",
		"meta l4proto tcp dnat ip to numgen random mod 1 map { 0 : 10.42.0.53 . 9153 }",
		"meta l4proto sctp dnat ip to numgen random mod 1 map { 0 : 10.42.0.53 . 7777 }")
}

func TestIncrementalSyncTouchesOnlyWhatChanged(t *testing.T) {
	h := newHarness(t, "")
	for i := range 20 {
		name := fmt.Sprintf("s%02d", i)
		h.p.onService(svc(name, fmt.Sprintf("10.96.1.%d", i+1)))
		h.p.onSlice(slice(name+"-1", name, 8080, corev1.ProtocolTCP, readyEp(fmt.Sprintf("10.42.1.%d", i+1), testNode)))
	}
	h.sync()
	full := h.lastTx()
	mustContain(t, "first sync", full, "flush chain ip peapod services")

	// Nothing changed: no transaction at all.
	h.p.onService(svc("s03", "10.96.1.4"))
	before := h.nft.LastTransaction
	h.sync()
	if h.nft.LastTransaction != before {
		t.Errorf("an unchanged Service wrote a transaction:\n%s", h.lastTx())
	}

	// One more endpoint for s05: its service chain is refilled and the
	// endpoint joins the hairpin set, nothing else.
	h.p.onSlice(slice("s05-1", "s05", 8080, corev1.ProtocolTCP, readyEp("10.42.1.6", testNode), readyEp("10.42.9.9", testNode)))
	h.sync()
	tx := h.lastTx()
	mustNotContain(t, "incremental sync", tx, "services", "ns/s04", "ns/s06", "service-ips", "flush map")
	mustContain(t, "incremental sync", tx, "ns/s05/tcp/http", "10.42.9.9 . 8080", "numgen random mod 2",
		"add element ip peapod hairpin { 10.42.9.9 . 10.42.9.9 }")
	if n := strings.Count(tx, "\n"); n > 8 {
		t.Errorf("incremental sync wrote %d operations:\n%s", n, tx)
	}

	// One more Service: its elements are added, no other.
	h.p.onService(svc("new", "10.96.2.1"))
	h.p.onSlice(slice("new-1", "new", 8080, corev1.ProtocolTCP, readyEp("10.42.2.1", testNode)))
	h.sync()
	tx = h.lastTx()
	mustContain(t, "new service", tx, "add element ip peapod service-ips { 10.96.2.1 . tcp . 80 : goto service-")
	mustNotContain(t, "new service", tx, "10.96.1.")

	// A Service deleted: its elements go, its chains are emptied now and
	// deleted a second later.
	h.p.onServiceDelete(svc("s07", "10.96.1.8"))
	h.sync()
	tx = h.lastTx()
	mustContain(t, "deletion", tx, "delete element ip peapod service-ips { 10.96.1.8 . tcp . 80 }", "flush chain ip peapod service-")
	mustContain(t, "table after deletion", h.dump(), "ns/s07") // still there, empty
	for c := range h.p.stale {
		h.p.stale[c] = time.Now().Add(-2 * staleChainAge)
	}
	h.sync()
	mustNotContain(t, "table after the stale delay", h.dump(), "ns/s07")
}

func TestFullSyncRemovesLeftoversOfAnEarlierRun(t *testing.T) {
	h := newHarness(t, "")
	h.p.onService(svc("old", "10.96.0.20"))
	h.p.onSlice(slice("old-1", "old", 8080, corev1.ProtocolTCP, readyEp("10.42.0.20", testNode)))
	h.sync()
	// A new proxier on the same table (an agent restart) without the
	// Service: the first sync is full and takes its chains out.
	factory := informers.NewSharedInformerFactory(fake.NewClientset(), 0)
	p2, err := New(Config{NodeName: testNode}, factory, h.nft)
	if err != nil {
		t.Fatal(err)
	}
	p2.conntrack = func([]change) error { return nil }
	if err := p2.syncOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	d := h.dump()
	mustNotContain(t, "table", d, "10.96.0.20", "10.42.0.20")
	if len(p2.stale) != 1 {
		t.Errorf("old chains scheduled for deletion: %v, want the service chain", p2.stale)
	}
	for c := range p2.stale {
		p2.stale[c] = time.Now().Add(-2 * staleChainAge)
	}
	if err := p2.syncOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	mustNotContain(t, "table after the stale delay", h.dump(), "ns/old")
}

func TestHairpinSetCountsSharedEndpoints(t *testing.T) {
	h := newHarness(t, "")
	two := func(s *corev1.Service) {
		s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: "alt", Port: 81, Protocol: corev1.ProtocolTCP})
	}
	h.p.onService(svc("a", "10.96.0.21", two))
	h.p.onService(svc("b", "10.96.0.22"))
	for _, name := range []string{"a", "b"} {
		s := slice(name+"-1", name, 8080, corev1.ProtocolTCP, readyEp("10.42.0.50", testNode))
		s.Ports = append(s.Ports, discoveryv1.EndpointPort{Name: ptr.To("alt"), Port: ptr.To(int32(8081)), Protocol: ptr.To(corev1.ProtocolTCP)})
		h.p.onSlice(s)
	}
	h.sync()
	const el = "add element ip peapod hairpin { 10.42.0.50 . 10.42.0.50 }"
	mustContain(t, "table", h.dump(), el)
	h.p.onServiceDelete(svc("a", "10.96.0.21"))
	h.sync()
	mustContain(t, "table after a's deletion", h.dump(), el)
	mustNotContain(t, "transaction", h.lastTx(), "hairpin")
	h.p.onServiceDelete(svc("b", "10.96.0.22"))
	h.sync()
	mustNotContain(t, "table after b's deletion", h.dump(), "10.42.0.50 . 10.42.0.50")
	if len(h.p.hairpin) != 0 {
		t.Errorf("hairpin counts left: %v", h.p.hairpin)
	}
}

// TestIncrementalHairpinWorkIsTheChangedServicesOnly: with a thousand
// Services programmed, one more recounts only its own endpoint addresses
// (the sync of one Service must not walk every endpoint of the table),
// and a failed transaction leaves the proxy's counts untouched.
func TestIncrementalHairpinWorkIsTheChangedServicesOnly(t *testing.T) {
	h := newHarness(t, "")
	for i := range 1000 {
		name := fmt.Sprintf("s%04d", i)
		h.p.onService(svc(name, fmt.Sprintf("10.96.%d.%d", i/250, i%250+1)))
		h.p.onSlice(slice(name+"-1", name, 8080, corev1.ProtocolTCP,
			readyEp(fmt.Sprintf("10.42.%d.%d", i/250, i%250+1), testNode), readyEp("10.42.200.1", testNode)))
	}
	h.sync()
	if n := len(h.p.hairpin); n != 1001 {
		t.Fatalf("hairpin counts %d addresses, want 1001", n)
	}

	newPart := renderService(servicePorts(svc("new", "10.97.0.1"),
		[]*discoveryv1.EndpointSlice{slice("new-1", "new", 8080, corev1.ProtocolTCP,
			readyEp("10.43.0.1", testNode), readyEp("10.42.200.1", testNode))}, testNode), "")
	tx := h.nft.NewTransaction()
	_, counts := writeChanges(tx, []change{{new: newPart}}, false, h.p.hairpin)
	if want := map[string]int{"10.43.0.1": 1, "10.42.200.1": 1001}; !reflect.DeepEqual(counts, want) {
		t.Errorf("one more Service recounted %v, want %v", counts, want)
	}
	if n := h.p.hairpin["10.42.200.1"]; n != 1000 {
		t.Errorf("writeChanges changed the proxy's count of a shared address to %d before the transaction ran", n)
	}

	h.p.onService(svc("new", "10.97.0.1"))
	h.p.onSlice(slice("new-1", "new", 8080, corev1.ProtocolTCP, readyEp("10.43.0.1", testNode), readyEp("10.42.200.1", testNode)))
	h.sync()
	last := h.lastTx()
	mustContain(t, "one more Service", last, "add element ip peapod hairpin { 10.43.0.1 . 10.43.0.1 }")
	mustNotContain(t, "one more Service", last, "10.42.200.1 . 10.42.200.1", "10.42.0.")
	if h.p.hairpin["10.42.200.1"] != 1001 || h.p.hairpin["10.43.0.1"] != 1 || len(h.p.hairpin) != 1002 {
		t.Errorf("hairpin counts after one more Service: shared %d, new %d, %d addresses",
			h.p.hairpin["10.42.200.1"], h.p.hairpin["10.43.0.1"], len(h.p.hairpin))
	}
}

// TestPacketPathIsTheSameAtAnyNumberOfServices: the chains every packet
// crosses (the base chains and the fixed ones they jump to) hold the same
// rules with 10 Services and with 500, each a map or set lookup, and a
// Service's own chain is as long in both: a first packet's cost does not
// grow with the number of Services (issue 12). (500, not 1,000: knftables'
// fake finds each element by a linear search.)
func TestPacketPathIsTheSameAtAnyNumberOfServices(t *testing.T) {
	shared := func(n int) (map[string][]string, []string) {
		h := newHarness(t, "10.42.0.0/16")
		for i := range n {
			name := fmt.Sprintf("s%04d", i)
			h.p.onService(svc(name, fmt.Sprintf("10.96.%d.%d", i/250, i%250+1), func(s *corev1.Service) {
				s.Spec.Type = corev1.ServiceTypeNodePort
				s.Spec.Ports[0].NodePort = int32(30000 + i)
			}))
			var eps []ep
			for j := range 3 {
				eps = append(eps, readyEp(fmt.Sprintf("10.42.%d.%d", (i*3+j)/250, (i*3+j)%250+1), testNode))
			}
			h.p.onSlice(slice(name+"-1", name, 8080, corev1.ProtocolTCP, eps...))
		}
		h.sync()
		d := h.dump()
		chains := map[string][]string{}
		for _, bc := range baseChains() {
			chains[bc.name] = rulesOf(d, bc.name)
		}
		for name := range fixedChains() {
			chains[name] = rulesOf(d, name)
		}
		return chains, rulesOf(d, chainOf(t, d, prefixService, "ns/s0000/"))
	}
	few, fewSvc := shared(10)
	many, manySvc := shared(500)
	if len(many[chainServices]) != 2 || len(many["nat-prerouting"]) != 1 {
		t.Fatalf("services chain %v, nat-prerouting %v: want 2 lookups and 1 jump", many[chainServices], many["nat-prerouting"])
	}
	if !reflect.DeepEqual(few, many) {
		t.Errorf("the shared chains differ between 10 and 500 Services:\n%v\n%v", few, many)
	}
	for name, rules := range many {
		for _, r := range rules {
			if strings.Contains(r, "10.96.") || strings.Contains(r, "10.42.") && !strings.Contains(r, "10.42.0.0/16") {
				t.Errorf("chain %s, crossed by every packet, names a Service or an endpoint: %s", name, r)
			}
		}
	}
	if len(fewSvc) != len(manySvc) || len(manySvc) > 3 {
		t.Errorf("a Service's chain has %d rules among 10 Services, %d among 500 (want the same, at most 3):\n%v", len(fewSvc), len(manySvc), manySvc)
	}
}

// TestSliceMovesBetweenServices: a slice relabelled to another Service
// leaves the first one's endpoints, one whose label goes leaves every
// Service, and a deletion whose final state carries other labels still
// removes the slice from where the proxy filed it.
func TestSliceMovesBetweenServices(t *testing.T) {
	h := newHarness(t, "")
	h.p.onService(svc("a", "10.96.0.31"))
	h.p.onService(svc("b", "10.96.0.32"))
	h.p.onSlice(slice("x", "a", 8080, corev1.ProtocolTCP, readyEp("10.42.0.31", testNode)))
	h.sync()
	mustContain(t, "table", h.dump(), "add element ip peapod service-ips { 10.96.0.31 . tcp . 80 : goto service-",
		"add element ip peapod no-endpoint-services { 10.96.0.32 . tcp . 80 : goto reject-chain }")

	h.p.onSlice(slice("x", "b", 8080, corev1.ProtocolTCP, readyEp("10.42.0.31", testNode)))
	h.sync()
	d := h.dump()
	mustContain(t, "table after the move", d, "add element ip peapod service-ips { 10.96.0.32 . tcp . 80 : goto service-",
		"add element ip peapod no-endpoint-services { 10.96.0.31 . tcp . 80 : goto reject-chain }")
	mustNotContain(t, "table after the move", d, "service-ips { 10.96.0.31 ")

	unlabelled := slice("x", "b", 8080, corev1.ProtocolTCP, readyEp("10.42.0.31", testNode))
	delete(unlabelled.Labels, discoveryv1.LabelServiceName)
	h.p.onSlice(unlabelled)
	h.sync()
	mustContain(t, "table after the label went", h.dump(), "add element ip peapod no-endpoint-services { 10.96.0.32 . tcp . 80 : goto reject-chain }")

	h.p.onSlice(slice("x", "a", 8080, corev1.ProtocolTCP, readyEp("10.42.0.31", testNode)))
	h.sync()
	h.p.onSliceDelete(cache.DeletedFinalStateUnknown{Key: "ns/x", Obj: slice("x", "b", 8080, corev1.ProtocolTCP)})
	h.sync()
	mustContain(t, "table after the deletion", h.dump(), "add element ip peapod no-endpoint-services { 10.96.0.31 . tcp . 80 : goto reject-chain }")
	if len(h.p.slices) != 0 || len(h.p.sliceOwner) != 0 {
		t.Errorf("slices left after the deletion: %v %v", h.p.slices, h.p.sliceOwner)
	}
}

func TestConfigRefusesBadClusterCIDR(t *testing.T) {
	factory := informers.NewSharedInformerFactory(fake.NewClientset(), 0)
	for _, c := range []Config{{NodeName: "n", ClusterCIDR: "10.42.0.1/16"}, {NodeName: "n", ClusterCIDR: "fd00::/64"}, {}} {
		if _, err := New(c, factory, knftables.NewFake(knftables.IPv4Family, DefaultTable)); err == nil {
			t.Errorf("config %+v accepted", c)
		}
	}
}

func flow(dst string, dport uint16, replySrc string, sport uint16) *netlink.ConntrackFlow {
	return &netlink.ConntrackFlow{
		Forward: netlink.IPTuple{Protocol: 17, SrcIP: net.ParseIP("10.42.0.9"), SrcPort: 40000, DstIP: net.ParseIP(dst), DstPort: dport},
		Reverse: netlink.IPTuple{Protocol: 17, SrcIP: net.ParseIP(replySrc), SrcPort: sport, DstIP: net.ParseIP("10.42.0.9"), DstPort: 40000},
	}
}

func TestUDPFilter(t *testing.T) {
	mk := func(eps ...string) *part {
		sp := &servicePort{name: "ns/dns:dns", chainBase: hashedName("ns/dns/udp/dns"), clusterIP: "10.96.0.53", port: 53, protocol: "udp", nodePort: 30053}
		for _, e := range eps {
			sp.endpoints = append(sp.endpoints, endpoint{ip: e, port: 5353, ready: true, serving: true})
		}
		return renderService([]*servicePort{sp}, "")
	}
	local := map[string]bool{"192.168.1.10": true}
	if udpFilterFor([]change{{old: mk("10.42.0.1"), new: mk("10.42.0.1")}}, local) != nil {
		t.Error("an unchanged UDP Service asked for a conntrack cleanup")
	}
	f := udpFilterFor([]change{{old: mk("10.42.0.1"), new: mk("10.42.0.2")}}, local)
	for _, tc := range []struct {
		flow *netlink.ConntrackFlow
		want bool
	}{
		{flow("10.96.0.53", 53, "10.42.0.1", 5353), true},      // to the replaced endpoint
		{flow("10.96.0.53", 53, "10.42.0.2", 5353), false},     // to the new one
		{flow("10.96.0.53", 53, "10.96.0.53", 53), true},       // never translated
		{flow("192.168.1.10", 30053, "10.42.0.1", 5353), true}, // NodePort, old endpoint
		{flow("192.168.1.10", 30053, "10.42.0.2", 5353), false},
		{flow("8.8.8.8", 30053, "8.8.8.8", 30053), false},  // not to this node
		{flow("10.96.0.99", 53, "10.42.0.1", 5353), false}, // another Service
	} {
		if got := f.MatchConntrackFlow(tc.flow); got != tc.want {
			t.Errorf("flow to %s:%d answered by %s: match %v, want %v", tc.flow.Forward.DstIP, tc.flow.Forward.DstPort, tc.flow.Reverse.SrcIP, got, tc.want)
		}
	}
	tcp := flow("10.96.0.53", 53, "10.42.0.1", 5353)
	tcp.Forward.Protocol = 6
	if f.MatchConntrackFlow(tcp) {
		t.Error("a TCP flow matched the UDP filter")
	}
	gone := udpFilterFor([]change{{old: mk("10.42.0.1"), new: nil}}, local)
	if !gone.MatchConntrackFlow(flow("10.96.0.53", 53, "10.42.0.1", 5353)) {
		t.Error("flows of a deleted UDP Service survive")
	}
}
