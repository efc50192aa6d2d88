package apiserver

import (
	"context"
	"net"
	"net/url"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

func TestParseProxyPath(t *testing.T) {
	for _, tc := range []struct {
		path string
		want proxyRequest
		ok   bool
	}{
		{"/api/v1/namespaces/default/pods/web:80/proxy/", proxyRequest{"pods", "default", "web:80", "/"}, true},
		{"/api/v1/namespaces/default/pods/web/proxy", proxyRequest{"pods", "default", "web", ""}, true},
		{"/api/v1/namespaces/ns/services/https:web:443/proxy/a/b/", proxyRequest{"services", "ns", "https:web:443", "/a/b/"}, true},
		{"/api/v1/nodes/n1/proxy/healthz", proxyRequest{"nodes", "", "n1", "/healthz"}, true},
		{"/api/v1/nodes/n1:10255/proxy", proxyRequest{"nodes", "", "n1:10255", ""}, true},
		{"/api/v1/namespaces/default/pods/web/log", proxyRequest{}, false},
		{"/api/v1/namespaces/default/pods/web", proxyRequest{}, false},
		{"/api/v1/namespaces/default/configmaps/web/proxy/", proxyRequest{}, false},
		{"/api/v1/namespaces/default/pods//proxy/", proxyRequest{}, false},
		{"/api/v1/nodes/n1/status", proxyRequest{}, false},
		{"/api/v1/nodes//proxy", proxyRequest{}, false},
		{"/apis/apps/v1/namespaces/default/deployments/web/proxy/", proxyRequest{}, false},
	} {
		got, ok := parseProxyPath(tc.path)
		if ok != tc.ok || got != tc.want {
			t.Errorf("%s: %+v %v, want %+v %v", tc.path, got, ok, tc.want, tc.ok)
		}
	}
}

func TestPortForwardParams(t *testing.T) {
	for _, tc := range []struct {
		query, want string
		bad         bool
	}{
		{"ports=80", "port=80", false},
		{"ports=80&ports=8080", "port=80%2C8080", false},
		{"ports=80,8080", "port=80%2C8080", false},
		{"port=80", "port=80", false},
		{"", "", false},
		{"ports=0", "", true},
		{"ports=http", "", true},
		{"ports=70000", "", true},
	} {
		q, _ := url.ParseQuery(tc.query)
		got, err := portForwardParams(q)
		if tc.bad {
			if !apierrors.IsBadRequest(err) {
				t.Errorf("%q: %v, want a bad request", tc.query, err)
			}
			continue
		}
		if err != nil || got.Encode() != tc.want {
			t.Errorf("%q: %q %v, want %q", tc.query, got.Encode(), err, tc.want)
		}
	}
}

func allowAll(net.IP) error { return nil }

func TestPodLocation(t *testing.T) {
	pod := func(ip string, ports ...int32) *corev1.Pod {
		p := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "sidecar"}, {Name: "web"}}}}
		for _, n := range ports {
			p.Spec.Containers[1].Ports = append(p.Spec.Containers[1].Ports, corev1.ContainerPort{ContainerPort: n})
		}
		if ip != "" {
			p.Status.PodIP, p.Status.PodIPs = ip, []corev1.PodIP{{IP: ip}}
		}
		return p
	}
	for _, tc := range []struct {
		name         string
		pod          *corev1.Pod
		scheme, port string
		want         string
	}{
		{"the port asked for", pod("10.0.0.5", 8080), "", "80", "//10.0.0.5:80"},
		{"the first declared port", pod("10.0.0.5", 8080, 9090), "", "", "//10.0.0.5:8080"},
		{"no port at all", pod("10.0.0.5"), "https", "", "https://10.0.0.5"},
		{"IPv6", pod("fd00::5"), "", "", "//[fd00::5]"},
		{"IPv6 with a port", pod("fd00::5"), "", "80", "//[fd00::5]:80"},
	} {
		loc, err := podLocation(tc.pod, tc.scheme, tc.port, globalUnicast)
		if err != nil || loc.String() != tc.want {
			t.Errorf("%s: %v %v, want %s", tc.name, loc, err, tc.want)
		}
	}
	for _, ip := range []string{"", "127.0.0.1", "169.254.1.1", "::1"} {
		if _, err := podLocation(pod(ip, 80), "", "", globalUnicast); !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), "address not allowed") {
			t.Errorf("pod IP %q: %v, want address not allowed", ip, err)
		}
	}
}

func readyPod(name, ip string, ready bool, ports ...corev1.ContainerPort) *corev1.Pod {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name)},
		Spec:       corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c", Ports: ports}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}},
	}
}

func TestEndpointSlices(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{
		{Name: "http", Port: 80, TargetPort: intstr.FromString("web")},
		{Name: "metrics", Port: 9100, TargetPort: intstr.FromInt32(9100)},
		{Name: "udp", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromString("web")},
	}}}
	web := corev1.ContainerPort{Name: "web", ContainerPort: 8080}
	terminating := readyPod("terminating", "10.0.0.4", true, web)
	terminating.DeletionTimestamp = &metav1.Time{}
	done := readyPod("done", "10.0.0.5", true, web)
	done.Status.Phase = corev1.PodSucceeded
	sidecar := readyPod("sidecar", "10.0.0.6", true)
	sidecar.Spec.InitContainers = []corev1.Container{{Name: "proxy", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways),
		Ports: []corev1.ContainerPort{{Name: "web", ContainerPort: 8443}}}}
	got := endpointSlices(svc, []*corev1.Pod{
		readyPod("a", "10.0.0.1", true, web),
		readyPod("b", "10.0.0.2", false, web),
		readyPod("no-ip", "", true, web),
		terminating, done, sidecar,
	})
	// Pods with the same ports share a slice; the sidecar's port differs.
	if len(got) != 2 || len(got[0].Endpoints) != 3 || len(got[1].Endpoints) != 1 {
		t.Fatalf("slices %+v, want [a b terminating] [sidecar]", got)
	}
	s := got[0]
	if s.AddressType != discoveryv1.AddressTypeIPv4 || s.Labels[discoveryv1.LabelServiceName] != "web" {
		t.Errorf("slice meta: %v %v", s.AddressType, s.Labels)
	}
	// The named target port resolves to the container's TCP port; the
	// UDP Service port finds no UDP port of that name.
	if len(s.Ports) != 2 || *s.Ports[0].Name != "http" || *s.Ports[0].Port != 8080 || *s.Ports[0].Protocol != corev1.ProtocolTCP ||
		*s.Ports[1].Name != "metrics" || *s.Ports[1].Port != 9100 {
		t.Errorf("ports %+v", s.Ports)
	}
	type cond struct{ ready, serving, terminating bool }
	for i, want := range []struct {
		ip string
		c  cond
	}{{"10.0.0.1", cond{true, true, false}}, {"10.0.0.2", cond{false, false, false}}, {"10.0.0.4", cond{false, true, true}}} {
		e := s.Endpoints[i]
		c := cond{*e.Conditions.Ready, *e.Conditions.Serving, *e.Conditions.Terminating}
		if e.Addresses[0] != want.ip || c != want.c || e.TargetRef.Kind != "Pod" || *e.NodeName != "n1" {
			t.Errorf("endpoint %d: %v %+v, want %s %+v", i, e.Addresses, c, want.ip, want.c)
		}
	}
	if p := got[1].Ports[0]; *p.Port != 8443 {
		t.Errorf("a sidecar's named port: %+v", p)
	}
	// A Service that publishes not-ready addresses counts every one ready.
	svc.Spec.PublishNotReadyAddresses = true
	if got := endpointSlices(svc, []*corev1.Pod{readyPod("b", "10.0.0.2", false, web)}); len(got) != 1 || !*got[0].Endpoints[0].Conditions.Ready {
		t.Errorf("publishNotReadyAddresses: %+v", got)
	}
}

func TestServiceLocation(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{
		{Name: "http", Port: 80}, {Name: "admin", Port: 8081},
	}}}
	endpoint := func(ip string, ready *bool) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ready}}
	}
	port := func(name string, n int32) discoveryv1.EndpointPort {
		return discoveryv1.EndpointPort{Name: ptr.To(name), Port: ptr.To(n)}
	}
	eps := []discoveryv1.EndpointSlice{
		{Endpoints: []discoveryv1.Endpoint{endpoint("10.0.0.9", ptr.To(false))}, Ports: []discoveryv1.EndpointPort{port("http", 8080)}},
		{Endpoints: []discoveryv1.Endpoint{endpoint("10.0.0.1", ptr.To(true)), endpoint("10.0.0.8", ptr.To(false)), endpoint("10.0.0.2", nil)},
			Ports: []discoveryv1.EndpointPort{port("http", 8080), port("admin", 9000)}},
	}
	first := func(int) int { return 0 }
	last := func(n int) int { return n - 1 }
	for _, tc := range []struct {
		id, scheme, port string
		pick             func(int) int
		want             string
	}{
		{"web:80", "", "80", first, "//10.0.0.1:8080"},
		{"web:80", "", "80", last, "//10.0.0.2:8080"}, // an unknown readiness counts as ready
		{"web:http", "", "http", first, "//10.0.0.1:8080"},
		{"https:web:8081", "https", "8081", first, "https://10.0.0.1:9000"},
	} {
		loc, err := serviceLocation(svc, eps, tc.id, tc.scheme, tc.port, tc.pick)
		if err != nil || loc.String() != tc.want {
			t.Errorf("%s: %v %v, want %s", tc.id, loc, err, tc.want)
		}
	}
	for _, tc := range []struct {
		id, port string
		eps      []discoveryv1.EndpointSlice
		want     string
	}{
		{"web:81", "81", eps, `no service port 81 found for service "web"`},
		{"web:80", "80", nil, `no endpoints available for service "web"`},
		{"web:80", "80", eps[:1], `no endpoints available for service "web:80"`},
		{"web:nope", "nope", eps, `no endpoints available for service "web:nope"`},
		{"web", "", eps, `no endpoints available for service "web"`},
	} {
		_, err := serviceLocation(svc, tc.eps, tc.id, "", tc.port, first)
		if !apierrors.IsServiceUnavailable(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.id, err, tc.want)
		}
	}
}

func TestNodeLocation(t *testing.T) {
	node := func(port int32, addrs ...corev1.NodeAddress) *corev1.Node {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}
		n.Status.Addresses = addrs
		n.Status.DaemonEndpoints.KubeletEndpoint.Port = port
		return n
	}
	ctx := context.Background()
	internal := corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "192.0.2.7"}
	hostname := corev1.NodeAddress{Type: corev1.NodeHostName, Address: "n1.example"}
	for _, tc := range []struct {
		name         string
		node         *corev1.Node
		scheme, port string
		want         string
		toAgent      bool
	}{
		{"the agent", node(10250, hostname, internal), "", "", "https://192.0.2.7:10250", true},
		{"the agent by its port, any scheme asked", node(11000, internal), "http", "11000", "https://192.0.2.7:11000", true},
		{"the kubelet's default port", node(0, internal), "", "", "https://192.0.2.7:10250", true},
		{"another port", node(10250, internal), "", "9100", "//192.0.2.7:9100", false},
		{"another port over https", node(10250, internal), "https", "9443", "https://192.0.2.7:9443", false},
	} {
		loc, toAgent, err := nodeLocation(ctx, tc.node, tc.scheme, tc.port, globalUnicast)
		if err != nil || loc.String() != tc.want || toAgent != tc.toAgent {
			t.Errorf("%s: %v %v %v, want %s %v", tc.name, loc, toAgent, err, tc.want, tc.toAgent)
		}
	}
	// Loopback is refused, by address or by a name that resolves to it.
	for _, a := range []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}, {Type: corev1.NodeHostName, Address: "localhost"}} {
		if _, _, err := nodeLocation(ctx, node(10250, a), "", "", globalUnicast); !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), "address not allowed") {
			t.Errorf("%s: %v, want address not allowed", a.Address, err)
		}
	}
	if _, _, err := nodeLocation(ctx, node(10250), "", "", allowAll); !apierrors.IsServiceUnavailable(err) {
		t.Errorf("no address: %v", err)
	}
}
