package e2e

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/vishvananda/netns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/peapod/peapod/internal/dns"
)

// TestClusterDNS is issue 12's cluster DNS through a real `peapod server`:
// the kube-dns Service and its endpoint, every record kind asked with
// busybox nslookup from a pod and with a DNS client in the pod's network
// namespace (exact rcodes and sections), names of another namespace through
// the search path, external names forwarded to an upstream given with
// --cluster-dns-upstream, resolv.conf per dnsPolicy, and a new Service
// resolvable as soon as the API has it.
//
// The queries go to the DNS endpoint (the server's node address, port
// 53), which is what kube-dns's ClusterIP leads to through the service
// proxy; dns_clusterip_test.go asks through the ClusterIP.
func TestClusterDNS(t *testing.T) {
	upstream := startUpstream(t)
	c := startOwnNetworkCluster(t, "ppdns0", "10.232.0.0/16", "--cluster-dns-upstream", upstream.addr)
	d := newDNSFixture(t, c)

	t.Run("kube-dns", func(t *testing.T) { testKubeDNSService(t, d) })
	t.Run("Records", func(t *testing.T) { testDNSRecords(t, d) })
	t.Run("Nslookup", func(t *testing.T) { testNslookup(t, d) })
	t.Run("OtherNamespace", func(t *testing.T) { testOtherNamespace(t, d) })
	t.Run("Upstream", func(t *testing.T) { testUpstream(t, d, upstream) })
	t.Run("ResolvConf", func(t *testing.T) { testResolvConf(t, d) })
	t.Run("NewService", func(t *testing.T) { testNewService(t, d) })
	t.Run("TCP", func(t *testing.T) { testDNSOverTCP(t, d) })
}

// dnsFixture is a cluster with the Services and pods every record kind
// needs, in namespace dnstest.
type dnsFixture struct {
	c *cluster
	// endpoint is the DNS server's address (kube-dns's endpoint).
	endpoint string
	// webIP is Service web's ClusterIP; db are the StatefulSet's pods.
	webIP string
	db    []*corev1.Pod
	// client is a busybox pod in dnstest; clientNS its network namespace.
	client   *corev1.Pod
	clientNS string
}

const dnsFixtureManifest = `
apiVersion: v1
kind: Service
metadata: {name: web, namespace: dnstest}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, protocol: TCP}, {name: syslog, port: 514, protocol: UDP}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: dnstest}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: pg, port: 5432}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: dnstest}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      terminationGracePeriodSeconds: 0
      containers: [{name: db, image: busybox, command: [sleep, "3600"]}]
---
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: dnstest}
spec: {type: ExternalName, externalName: outside.example}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: dnstest}
spec:
  terminationGracePeriodSeconds: 0
  containers: [{name: c, image: busybox, command: [sleep, "3600"]}]
`

func newDNSFixture(t *testing.T, c *cluster) *dnsFixture {
	t.Helper()
	c = c.with(t)
	d := &dnsFixture{c: c}
	c.namespace("dnstest")
	c.apply(dnsFixtureManifest)
	// Before the cluster's own cleanup deletes every pod: a StatefulSet
	// left behind would make its pods again.
	t.Cleanup(func() {
		if err := c.client.AppsV1().StatefulSets("dnstest").Delete(context.Background(), "db", metav1.DeleteOptions{}); err != nil {
			t.Errorf("delete StatefulSet db: %v", err)
		}
	})
	d.endpoint = kubeDNSEndpoint(t, c)
	d.client = c.waitPod("dnstest", "client", 90*time.Second, "running", running)
	for _, name := range []string{"db-0", "db-1"} {
		d.db = append(d.db, c.waitPod("dnstest", name, 90*time.Second, "running", running))
	}
	// The StatefulSet's endpoints, which the EndpointSlice controller
	// writes for the headless Service: each pod's IP with its hostname.
	c.waitReadyEndpoints("dnstest", "db", 2)
	svc, err := c.client.CoreV1().Services("dnstest").Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d.webIP = svc.Spec.ClusterIP
	d.clientNS = podNetNS(t, c, "dnstest", "client")
	return d
}

// kubeDNSEndpoint waits for kube-dns's EndpointSlice to list an address
// and returns it as host:port.
func kubeDNSEndpoint(t *testing.T, c *cluster) string {
	t.Helper()
	var addr string
	c.eventually(30*time.Second, func() error {
		es, err := c.client.DiscoveryV1().EndpointSlices("kube-system").Get(context.Background(), "kube-dns", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(es.Endpoints) != 1 || len(es.Endpoints[0].Addresses) != 1 || len(es.Ports) != 2 {
			return fmt.Errorf("kube-dns EndpointSlice lists %d endpoints, %d ports", len(es.Endpoints), len(es.Ports))
		}
		addr = net.JoinHostPort(es.Endpoints[0].Addresses[0], fmt.Sprint(*es.Ports[0].Port))
		return nil
	})
	return addr
}

// publishPodEndpoints writes an EndpointSlice of a Service without a
// selector listing pods (ready, with their hostname), as a user or
// another controller would.
func publishPodEndpoints(t *testing.T, c *cluster, ns, service, name string, pods []*corev1.Pod, ports ...discoveryv1.EndpointPort) {
	t.Helper()
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{
			discoveryv1.LabelServiceName: service, discoveryv1.LabelManagedBy: "e2e"}},
		AddressType: discoveryv1.AddressTypeIPv4, Ports: ports,
	}
	for _, p := range pods {
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{p.Status.PodIP}, Hostname: ptr.To(p.Spec.Hostname),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: p.Name, UID: p.UID}})
	}
	if _, err := c.client.DiscoveryV1().EndpointSlices(ns).Create(context.Background(), es, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create EndpointSlice %s/%s: %v", ns, name, err)
	}
}

// podNetNS returns the network namespace path of a pod's sandbox.
func podNetNS(t *testing.T, c *cluster, ns, name string) string {
	t.Helper()
	for _, sb := range psSandboxes(t, c) {
		if sb.PodNamespace == ns && sb.PodName == name && sb.NetNSPath != "" {
			return sb.NetNSPath
		}
	}
	t.Fatalf("no sandbox of pod %s/%s in peapod ps", ns, name)
	return ""
}

// inNetNS runs f on an OS thread in the network namespace at path; sockets
// f opens stay in that namespace after it returns.
func inNetNS(path string, f func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	target, err := netns.GetFromPath(path)
	if err != nil {
		return err
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		return err
	}
	ferr := f()
	if err := netns.Set(orig); err != nil {
		// The thread stays in the pod's namespace: let it die with the lock held.
		runtime.LockOSThread()
		return fmt.Errorf("back to the test's network namespace: %w", err)
	}
	return ferr
}

// query asks server one question from the network namespace nsPath (a
// pod's), over UDP or TCP.
func query(t *testing.T, nsPath, server, name string, qtype uint16, tcp bool) *mdns.Msg {
	t.Helper()
	netw := "udp"
	if tcp {
		netw = "tcp"
	}
	var conn *mdns.Conn
	if err := inNetNS(nsPath, func() (err error) {
		conn, err = mdns.DialTimeout(netw, server, 5*time.Second)
		return err
	}); err != nil {
		t.Fatalf("dial %s %s from %s: %v", netw, server, nsPath, err)
	}
	defer conn.Close()
	m := new(mdns.Msg)
	m.SetQuestion(mdns.Fqdn(name), qtype)
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if err := conn.WriteMsg(m); err != nil {
		t.Fatalf("query %s: %v", name, err)
	}
	resp, err := conn.ReadMsg()
	if err != nil {
		t.Fatalf("query %s %s: %v", name, mdns.TypeToString[qtype], err)
	}
	return resp
}

// answers renders an answer section as "type value" strings, sorted.
func answers(m *mdns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		f := strings.Fields(rr.String())
		out = append(out, strings.Join(f[3:], " "))
	}
	slices.Sort(out)
	return out
}

func testKubeDNSService(t *testing.T, d *dnsFixture) {
	c := d.c.with(t)
	svc, err := c.client.CoreV1().Services("kube-system").Get(context.Background(), "kube-dns", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Spec.ClusterIP != "10.96.0.10" || svc.Labels["k8s-app"] != "kube-dns" || svc.Spec.Selector != nil {
		t.Errorf("kube-dns: clusterIP %s labels %v selector %v", svc.Spec.ClusterIP, svc.Labels, svc.Spec.Selector)
	}
	var ports []string
	for _, p := range svc.Spec.Ports {
		ports = append(ports, fmt.Sprintf("%s/%d/%s->%s", p.Name, p.Port, p.Protocol, p.TargetPort.String()))
	}
	if want := []string{"dns/53/UDP->53", "dns-tcp/53/TCP->53"}; !slices.Equal(ports, want) {
		t.Errorf("kube-dns ports %q, want %q", ports, want)
	}
	es, err := c.client.DiscoveryV1().EndpointSlices("kube-system").Get(context.Background(), "kube-dns", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(d.endpoint)
	if es.Labels[discoveryv1.LabelServiceName] != "kube-dns" || es.Labels[discoveryv1.LabelManagedBy] != dns.ManagedBy ||
		!*es.Endpoints[0].Conditions.Ready || port != "53" {
		t.Errorf("kube-dns EndpointSlice: %+v", es)
	}
	// The endpoint is the server's node address, not loopback: pods reach it.
	if a, err := netip.ParseAddr(host); err != nil || a.IsLoopback() || !a.IsGlobalUnicast() {
		t.Errorf("kube-dns endpoint %s is not an address pods reach", host)
	}
	// The address is kube-dns's for good: a Service asking for none never gets it.
	out, err := c.kubectl("create", "service", "clusterip", "taken", "-n", "dnstest", "--clusterip=10.96.0.10", "--tcp=80")
	if err == nil || !strings.Contains(out, "already allocated") {
		t.Errorf("a Service took kube-dns's address: %v\n%s", err, out)
	}
}

// testDNSRecords asks for every record kind from the client pod's network
// namespace and checks rcodes and sections exactly.
func testDNSRecords(t *testing.T, d *dnsFixture) {
	ns, srv := d.clientNS, d.endpoint
	db0, db1 := d.db[0].Status.PodIP, d.db[1].Status.PodIP
	client := d.client.Status.PodIP
	for _, tc := range []struct {
		name  string
		qtype uint16
		rcode int
		want  []string
	}{
		{"web.dnstest.svc.cluster.local", mdns.TypeA, mdns.RcodeSuccess, []string{"A " + d.webIP}},
		{"WEB.DNSTest.svc.Cluster.Local.", mdns.TypeA, mdns.RcodeSuccess, []string{"A " + d.webIP}},
		{"web.dnstest.svc.cluster.local", mdns.TypeAAAA, mdns.RcodeSuccess, nil}, // NODATA
		{"nope.dnstest.svc.cluster.local", mdns.TypeA, mdns.RcodeNameError, nil},
		{"dnstest.svc.cluster.local", mdns.TypeA, mdns.RcodeSuccess, nil},
		{"nonamespace.svc.cluster.local", mdns.TypeA, mdns.RcodeNameError, nil},
		{"kubernetes.default.svc.cluster.local", mdns.TypeA, mdns.RcodeSuccess, []string{"A 10.96.0.1"}},
		{"kube-dns.kube-system.svc.cluster.local", mdns.TypeA, mdns.RcodeSuccess, []string{"A 10.96.0.10"}},
		{"db.dnstest.svc.cluster.local", mdns.TypeA, mdns.RcodeSuccess, sorted("A "+db0, "A "+db1)},
		{"db-0.db.dnstest.svc.cluster.local", mdns.TypeA, mdns.RcodeSuccess, []string{"A " + db0}},
		{"db-1.db.dnstest.svc.cluster.local", mdns.TypeA, mdns.RcodeSuccess, []string{"A " + db1}},
		{"db-7.db.dnstest.svc.cluster.local", mdns.TypeA, mdns.RcodeNameError, nil},
		{"_http._tcp.web.dnstest.svc.cluster.local", mdns.TypeSRV, mdns.RcodeSuccess, []string{"SRV 0 100 80 web.dnstest.svc.cluster.local."}},
		{"_syslog._udp.web.dnstest.svc.cluster.local", mdns.TypeSRV, mdns.RcodeSuccess, []string{"SRV 0 100 514 web.dnstest.svc.cluster.local."}},
		{"_http._udp.web.dnstest.svc.cluster.local", mdns.TypeSRV, mdns.RcodeNameError, nil},
		{"_pg._tcp.db.dnstest.svc.cluster.local", mdns.TypeSRV, mdns.RcodeSuccess,
			[]string{"SRV 0 50 5432 db-0.db.dnstest.svc.cluster.local.", "SRV 0 50 5432 db-1.db.dnstest.svc.cluster.local."}},
		{"ext.dnstest.svc.cluster.local", mdns.TypeCNAME, mdns.RcodeSuccess, []string{"CNAME outside.example."}},
		{"ext.dnstest.svc.cluster.local", mdns.TypeA, mdns.RcodeSuccess, []string{"A 192.0.2.77", "CNAME outside.example."}},
		{strings.ReplaceAll(client, ".", "-") + ".dnstest.pod.cluster.local", mdns.TypeA, mdns.RcodeSuccess, []string{"A " + client}},
		{strings.ReplaceAll(client, ".", "-") + ".nonamespace.pod.cluster.local", mdns.TypeA, mdns.RcodeNameError, nil},
		{reverse(t, d.webIP), mdns.TypePTR, mdns.RcodeSuccess, []string{"PTR web.dnstest.svc.cluster.local."}},
		{reverse(t, db0), mdns.TypePTR, mdns.RcodeSuccess, []string{"PTR db-0.db.dnstest.svc.cluster.local."}},
		{"dns-version.cluster.local", mdns.TypeTXT, mdns.RcodeSuccess, []string{`TXT "1.1.0"`}},
		{"cluster.local", mdns.TypeNS, mdns.RcodeSuccess, []string{"NS ns.dns.cluster.local."}},
	} {
		resp := query(t, ns, srv, tc.name, tc.qtype, false)
		name := tc.name + " " + mdns.TypeToString[tc.qtype]
		if resp.Rcode != tc.rcode {
			t.Errorf("%s: rcode %s, want %s", name, mdns.RcodeToString[resp.Rcode], mdns.RcodeToString[tc.rcode])
		}
		if got := answers(resp); !slices.Equal(got, tc.want) {
			t.Errorf("%s: answer %q, want %q", name, got, tc.want)
		}
		if len(tc.want) == 0 && (len(resp.Ns) != 1 || resp.Ns[0].Header().Rrtype != mdns.TypeSOA) {
			t.Errorf("%s: negative answer without the zone's SOA: %v", name, resp.Ns)
		}
		if strings.HasSuffix(mdns.Fqdn(strings.ToLower(tc.name)), "cluster.local.") && !resp.Authoritative {
			t.Errorf("%s: not authoritative", name)
		}
	}
}

func sorted(s ...string) []string {
	slices.Sort(s)
	return s
}

func reverse(t *testing.T, ip string) string {
	t.Helper()
	r, err := mdns.ReverseAddr(ip)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// testNslookup asks busybox's nslookup, inside the client pod, for each
// record kind, as a user would.
func testNslookup(t *testing.T, d *dnsFixture) {
	c := d.c.with(t)
	host, _, _ := net.SplitHostPort(d.endpoint)
	nslookup := func(args ...string) (string, error) {
		return c.kubectl(append([]string{"exec", "-n", "dnstest", "client", "--", "nslookup"}, append(args, host)...)...)
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"-type=a", "web.dnstest.svc.cluster.local"}, []string{"Address: " + d.webIP}},
		{[]string{"-type=a", "db.dnstest.svc.cluster.local"}, []string{"Address: " + d.db[0].Status.PodIP, "Address: " + d.db[1].Status.PodIP}},
		{[]string{"-type=a", "db-1.db.dnstest.svc.cluster.local"}, []string{"Address: " + d.db[1].Status.PodIP}},
		{[]string{"-type=srv", "_http._tcp.web.dnstest.svc.cluster.local"}, []string{"80 web.dnstest.svc.cluster.local"}},
		{[]string{"-type=srv", "_pg._tcp.db.dnstest.svc.cluster.local"}, []string{"5432 db-0.db.dnstest.svc.cluster.local", "5432 db-1.db.dnstest.svc.cluster.local"}},
		{[]string{"-type=cname", "ext.dnstest.svc.cluster.local"}, []string{"canonical name = outside.example"}},
		{[]string{"-type=a", strings.ReplaceAll(d.client.Status.PodIP, ".", "-") + ".dnstest.pod.cluster.local"}, []string{"Address: " + d.client.Status.PodIP}},
		{[]string{d.webIP}, []string{"name = web.dnstest.svc.cluster.local"}},
		{[]string{"-type=txt", "dns-version.cluster.local"}, []string{"1.1.0"}},
	} {
		out, err := nslookup(tc.args...)
		if err != nil {
			t.Errorf("nslookup %s: %v\n%s", strings.Join(tc.args, " "), err, out)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("nslookup %s: no %q in\n%s", strings.Join(tc.args, " "), w, out)
			}
		}
	}
	out, err := nslookup("-type=a", "nope.dnstest.svc.cluster.local")
	if err == nil || !strings.Contains(out, "NXDOMAIN") {
		t.Errorf("nslookup of a missing Service: %v\n%s", err, out)
	}
}

// testOtherNamespace: a pod in another namespace, whose resolv.conf has
// the cluster search path, resolves <svc>.<ns> and the short name of a
// Service of its own namespace. Its nameserver is the DNS endpoint, given
// with dnsPolicy None (the ClusterFirst variant, through kube-dns's
// ClusterIP, is in dns_clusterip_test.go).
func testOtherNamespace(t *testing.T, d *dnsFixture) {
	c := d.c.with(t)
	host, _, _ := net.SplitHostPort(d.endpoint)
	c.namespace("dnsother")
	c.apply(fmt.Sprintf(`
apiVersion: v1
kind: Service
metadata: {name: local, namespace: dnsother}
spec: {ports: [{port: 80}]}
---
apiVersion: v1
kind: Pod
metadata: {name: other, namespace: dnsother}
spec:
  terminationGracePeriodSeconds: 0
  dnsPolicy: None
  dnsConfig:
    nameservers: [%s]
    searches: [dnsother.svc.cluster.local, svc.cluster.local, cluster.local]
    options: [{name: ndots, value: "5"}]
  containers: [{name: c, image: busybox, command: [sleep, "3600"]}]
`, host))
	c.waitPod("dnsother", "other", 90*time.Second, "running", running)
	local, err := c.client.CoreV1().Services("dnsother").Get(context.Background(), "local", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The libc resolver (getaddrinfo, which ping calls before it sends)
	// walks resolv.conf's search path: "web.dnstest" has fewer dots than
	// ndots, so web.dnstest.dnsother.svc.cluster.local is asked first
	// (NXDOMAIN), then web.dnstest.svc.cluster.local. busybox's nslookup
	// does not walk the search path for names with a dot, so it is not the
	// tool here.
	for name, want := range map[string]string{"web.dnstest": d.webIP, "local": local.Spec.ClusterIP, "db-0.db.dnstest": d.db[0].Status.PodIP,
		"web.dnstest.svc": d.webIP, "web.dnstest.svc.cluster.local": d.webIP} {
		out, _ := c.kubectl("exec", "-n", "dnsother", "other", "--", "ping", "-c", "1", "-W", "1", name)
		if !strings.Contains(out, fmt.Sprintf("PING %s (%s)", name, want)) {
			t.Errorf("from namespace dnsother, %s did not resolve to %s:\n%s", name, want, out)
		}
	}
	out, _ := c.kubectl("exec", "-n", "dnsother", "other", "--", "ping", "-c", "1", "-W", "1", "nope.dnstest")
	if !strings.Contains(out, "bad address") {
		t.Errorf("a missing Service resolved:\n%s", out)
	}
}

// fakeUpstream is a resolver on loopback answering outside.example. with
// 192.0.2.77 and NXDOMAIN for anything else, counting what it is asked.
type fakeUpstream struct {
	addr    string
	queries atomic.Int32
}

func startUpstream(t *testing.T) *fakeUpstream {
	t.Helper()
	u := &fakeUpstream{}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	u.addr = pc.LocalAddr().String()
	h := mdns.HandlerFunc(func(w mdns.ResponseWriter, req *mdns.Msg) {
		u.queries.Add(1)
		m := new(mdns.Msg)
		m.SetReply(req)
		q := req.Question[0]
		if strings.EqualFold(q.Name, "outside.example.") {
			if q.Qtype == mdns.TypeA {
				m.Answer = []mdns.RR{&mdns.A{Hdr: mdns.RR_Header{Name: q.Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, 77)}}
			}
		} else {
			m.Rcode = mdns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- dns.Serve(ctx, h, pc, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return u
}

func testUpstream(t *testing.T, d *dnsFixture, u *fakeUpstream) {
	before := u.queries.Load()
	resp := query(t, d.clientNS, d.endpoint, "outside.example", mdns.TypeA, false)
	if got := answers(resp); !slices.Equal(got, []string{"A 192.0.2.77"}) || resp.Authoritative {
		t.Errorf("outside.example: %q (authoritative %v)", got, resp.Authoritative)
	}
	if resp := query(t, d.clientNS, d.endpoint, "nothing.example", mdns.TypeA, false); resp.Rcode != mdns.RcodeNameError {
		t.Errorf("upstream NXDOMAIN came back as %s", mdns.RcodeToString[resp.Rcode])
	}
	if u.queries.Load() == before {
		t.Error("the upstream was never asked")
	}
	// Answered again from the cache: the upstream is not asked twice.
	n := u.queries.Load()
	query(t, d.clientNS, d.endpoint, "outside.example", mdns.TypeA, false)
	if u.queries.Load() != n {
		t.Error("a cached name went to the upstream again")
	}
	out, err := d.c.with(t).kubectl("exec", "-n", "dnstest", "client", "--", "nslookup", "-type=a", "outside.example", strings.Split(d.endpoint, ":")[0])
	if err != nil || !strings.Contains(out, "192.0.2.77") {
		t.Errorf("nslookup outside.example: %v\n%s", err, out)
	}
}

// testResolvConf checks the resolv.conf each dnsPolicy gives, as the
// kubelet writes it.
func testResolvConf(t *testing.T, d *dnsFixture) {
	c := d.c.with(t)
	hostConf, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		t.Fatal(err)
	}
	var hostServers []string
	for _, line := range strings.Split(string(hostConf), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "nameserver" {
			hostServers = append(hostServers, "nameserver "+f[1])
		}
	}
	c.apply(`
apiVersion: v1
kind: Pod
metadata: {name: default-policy, namespace: dnstest}
spec:
  terminationGracePeriodSeconds: 0
  dnsPolicy: Default
  containers: [{name: c, image: busybox, command: [sleep, "3600"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: none-policy, namespace: dnstest}
spec:
  terminationGracePeriodSeconds: 0
  dnsPolicy: None
  dnsConfig:
    nameservers: [192.0.2.53]
    searches: [corp.example]
    options: [{name: ndots, value: "2"}, {name: edns0}]
  containers: [{name: c, image: busybox, command: [sleep, "3600"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: first-with-config, namespace: dnstest}
spec:
  terminationGracePeriodSeconds: 0
  dnsConfig:
    searches: [corp.example]
    options: [{name: ndots, value: "2"}]
  containers: [{name: c, image: busybox, command: [sleep, "3600"]}]
`)
	resolv := func(pod string) string {
		c.waitPod("dnstest", pod, 90*time.Second, "running", running)
		return c.must("exec", "-n", "dnstest", pod, "--", "cat", "/etc/resolv.conf")
	}
	clusterSearch := "search dnstest.svc.cluster.local svc.cluster.local cluster.local"
	if got := resolv("client"); !strings.HasPrefix(got, clusterSearch) || !strings.Contains(got, "nameserver 10.96.0.10\n") ||
		!strings.HasSuffix(got, "options ndots:5") || strings.Count(got, "nameserver") != 1 {
		t.Errorf("ClusterFirst resolv.conf:\n%s", got)
	}
	got := resolv("default-policy")
	for _, s := range hostServers {
		if !strings.Contains(got, s) {
			t.Errorf("Default resolv.conf lacks the node's %q:\n%s", s, got)
		}
	}
	if strings.Contains(got, "10.96.0.10") || strings.Contains(got, "svc.cluster.local") {
		t.Errorf("Default resolv.conf has the cluster DNS:\n%s", got)
	}
	if got := resolv("none-policy"); got != "search corp.example\nnameserver 192.0.2.53\noptions ndots:2 edns0" {
		t.Errorf("None resolv.conf:\n%s", got)
	}
	if got := resolv("first-with-config"); !strings.HasPrefix(got, clusterSearch) || !strings.Contains(got, " corp.example\n") ||
		!strings.Contains(got, "options ndots:2") {
		t.Errorf("ClusterFirst with dnsConfig:\n%s", got)
	}
}

// testNewService: a Service is answered as soon as the API has it, and
// gone as soon as it is deleted: the zone follows a watch, nothing polls.
// How soon is measured in `make bench` (the target is within a second);
// here the test waits for the condition and logs the time.
func testNewService(t *testing.T, d *dnsFixture) {
	c := d.c.with(t)
	ctx := context.Background()
	start := time.Now()
	svc, err := c.client.CoreV1().Services("dnstest").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "fresh"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(80)}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.eventually(10*time.Second, func() error {
		resp := query(t, d.clientNS, d.endpoint, "fresh.dnstest.svc.cluster.local", mdns.TypeA, false)
		if got := answers(resp); !slices.Equal(got, []string{"A " + svc.Spec.ClusterIP}) {
			return fmt.Errorf("fresh: %s %q", mdns.RcodeToString[resp.Rcode], got)
		}
		return nil
	})
	t.Logf("a new Service resolved %s after its create was sent", time.Since(start).Round(time.Millisecond))
	if err := c.client.CoreV1().Services("dnstest").Delete(ctx, "fresh", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	c.eventually(10*time.Second, func() error {
		if resp := query(t, d.clientNS, d.endpoint, "fresh.dnstest.svc.cluster.local", mdns.TypeA, false); resp.Rcode != mdns.RcodeNameError {
			return fmt.Errorf("deleted Service still answered: %s", mdns.RcodeToString[resp.Rcode])
		}
		return nil
	})
}

// testDNSOverTCP: an answer too large for 512 bytes of UDP comes back
// truncated, and whole over TCP (which busybox nslookup does not retry,
// but libc resolvers do).
func testDNSOverTCP(t *testing.T, d *dnsFixture) {
	c := d.c.with(t)
	var pods []*corev1.Pod
	for i := range 40 {
		pods = append(pods, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("big-%d", i)},
			Spec: corev1.PodSpec{Hostname: fmt.Sprintf("big-%d", i)}, Status: corev1.PodStatus{PodIP: fmt.Sprintf("10.254.0.%d", i+1)}})
	}
	c.apply("apiVersion: v1\nkind: Service\nmetadata: {name: big, namespace: dnstest}\nspec: {clusterIP: None, ports: [{port: 80}]}\n")
	publishPodEndpoints(t, c, "dnstest", "big", "big-e2e", pods)
	c.eventually(10*time.Second, func() error {
		resp := query(t, d.clientNS, d.endpoint, "big.dnstest.svc.cluster.local", mdns.TypeA, false)
		if !resp.Truncated {
			return fmt.Errorf("UDP answer of %d records not truncated", len(resp.Answer))
		}
		return nil
	})
	resp := query(t, d.clientNS, d.endpoint, "big.dnstest.svc.cluster.local", mdns.TypeA, true)
	if resp.Truncated || len(resp.Answer) != 40 {
		t.Errorf("TCP: truncated %v, %d answers, want 40", resp.Truncated, len(resp.Answer))
	}
}
