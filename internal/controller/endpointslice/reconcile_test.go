package endpointslice

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

func testService(ports ...corev1.ServicePort) *corev1.Service {
	if len(ports) == 0 {
		ports = []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("web")}}
	}
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "svc-uid", Labels: map[string]string{"team": "a"}},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, ClusterIP: "10.96.0.10",
			IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol}, Ports: ports},
	}
}

type podOpt func(*corev1.Pod)

func testPod(name, ip string, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name), Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{NodeName: "node-a", Containers: []corev1.Container{{Name: "c",
			Ports: []corev1.ContainerPort{{Name: "web", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
	if ip != "" {
		p.Status.PodIPs = []corev1.PodIP{{IP: ip}}
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func notReady(p *corev1.Pod) { p.Status.Conditions[0].Status = corev1.ConditionFalse }
func terminating(p *corev1.Pod) {
	now := metav1.NewTime(time.Unix(1700000000, 0))
	p.DeletionTimestamp = &now
}
func onNode(n string) podOpt { return func(p *corev1.Pod) { p.Spec.NodeName = n } }
func port(n int32) podOpt {
	return func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].ContainerPort = n }
}
func noPorts(p *corev1.Pod) { p.Spec.Containers[0].Ports = nil }

var nodes = map[string]*corev1.Node{
	"node-a": {ObjectMeta: metav1.ObjectMeta{Name: "node-a", Labels: map[string]string{corev1.LabelTopologyZone: "zone-1"}}},
	"node-b": {ObjectMeta: metav1.ObjectMeta{Name: "node-b"}},
}

func input(svc *corev1.Service, pods []*corev1.Pod, existing ...*discoveryv1.EndpointSlice) reconcileInput {
	return reconcileInput{svc: svc, pods: pods, existing: existing, max: MaxEndpointsPerSlice,
		node: func(n string) (*corev1.Node, bool) { nd, ok := nodes[n]; return nd, ok }}
}

// applied turns a plan into the slices that would exist afterwards,
// naming new ones slice-0, slice-1, ... after those already named.
func applied(existing []*discoveryv1.EndpointSlice, p plan) []*discoveryv1.EndpointSlice {
	byName := map[string]*discoveryv1.EndpointSlice{}
	for _, s := range existing {
		byName[s.Name] = s
	}
	for _, s := range p.remove {
		delete(byName, s.Name)
	}
	for _, s := range p.update {
		byName[s.Name] = s
	}
	for _, s := range p.create {
		c := s.DeepCopy()
		for i := 0; ; i++ {
			c.Name = fmt.Sprintf("slice-%d", i)
			if byName[c.Name] == nil {
				break
			}
		}
		c.UID = types.UID("uid-" + c.Name)
		byName[c.Name] = c
	}
	var out []*discoveryv1.EndpointSlice
	for _, s := range byName {
		out = append(out, s)
	}
	sortByName(out)
	return out
}

func addresses(s *discoveryv1.EndpointSlice) string {
	var a []string
	for _, e := range s.Endpoints {
		a = append(a, e.Addresses...)
	}
	sort.Strings(a)
	return strings.Join(a, ",")
}

func TestReconcileOneSliceWithConditionsLabelsOwnerAndResolvedPorts(t *testing.T) {
	svc := testService()
	pods := []*corev1.Pod{
		testPod("a", "10.42.0.2"),
		testPod("b", "10.42.0.3", notReady),
		testPod("c", "10.42.0.4", terminating),
		testPod("done", "10.42.0.5", func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }),
		testPod("noip", ""),
	}
	p, err := reconcile(input(svc, pods))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.create) != 1 || len(p.update) != 0 || len(p.remove) != 0 {
		t.Fatalf("plan = %d creates, %d updates, %d deletes; want one create", len(p.create), len(p.update), len(p.remove))
	}
	s := p.create[0]
	if s.GenerateName != "web-" || s.AddressType != discoveryv1.AddressTypeIPv4 {
		t.Errorf("generateName %q addressType %q", s.GenerateName, s.AddressType)
	}
	wantLabels := map[string]string{"team": "a", discoveryv1.LabelServiceName: "web", discoveryv1.LabelManagedBy: "endpointslice-controller.k8s.io"}
	if fmt.Sprint(s.Labels) != fmt.Sprint(wantLabels) {
		t.Errorf("labels = %v, want %v", s.Labels, wantLabels)
	}
	if len(s.OwnerReferences) != 1 || s.OwnerReferences[0].UID != "svc-uid" || s.OwnerReferences[0].Kind != "Service" || !*s.OwnerReferences[0].Controller {
		t.Errorf("owner references = %+v", s.OwnerReferences)
	}
	if len(s.Ports) != 1 || *s.Ports[0].Name != "http" || *s.Ports[0].Port != 8080 || *s.Ports[0].Protocol != corev1.ProtocolTCP {
		t.Errorf("ports = %+v, want http 8080/TCP (the pod's port named web)", s.Ports)
	}
	if got := addresses(s); got != "10.42.0.2,10.42.0.3,10.42.0.4" {
		t.Errorf("addresses = %s; finished and IP-less pods must be left out", got)
	}
	conds := map[string]string{}
	for _, e := range s.Endpoints {
		c := e.Conditions
		conds[e.TargetRef.Name] = fmt.Sprintf("ready=%v serving=%v terminating=%v", *c.Ready, *c.Serving, *c.Terminating)
		if *e.NodeName != "node-a" || e.Zone == nil || *e.Zone != "zone-1" || e.Hostname != nil {
			t.Errorf("endpoint %s: node %v zone %v hostname %v", e.TargetRef.Name, e.NodeName, e.Zone, e.Hostname)
		}
	}
	want := map[string]string{
		"a": "ready=true serving=true terminating=false",
		"b": "ready=false serving=false terminating=false",
		"c": "ready=false serving=true terminating=true",
	}
	if fmt.Sprint(conds) != fmt.Sprint(want) {
		t.Errorf("conditions = %v, want %v", conds, want)
	}
}

func TestReconcilePublishNotReadyAddressesAndHostname(t *testing.T) {
	svc := testService()
	svc.Spec.PublishNotReadyAddresses = true
	svc.Spec.ClusterIP = corev1.ClusterIPNone
	sub := func(p *corev1.Pod) { p.Spec.Hostname, p.Spec.Subdomain = "web-0", "web" }
	other := func(p *corev1.Pod) { p.Spec.Hostname, p.Spec.Subdomain = "x", "other" }
	p, _ := reconcile(input(svc, []*corev1.Pod{testPod("a", "10.42.0.2", notReady, sub), testPod("b", "10.42.0.3", other)}))
	s := p.create[0]
	if _, ok := s.Labels[corev1.IsHeadlessService]; !ok {
		t.Errorf("headless Service's slice lacks %s: %v", corev1.IsHeadlessService, s.Labels)
	}
	for _, e := range s.Endpoints {
		if !*e.Conditions.Ready {
			t.Errorf("%s: publishNotReadyAddresses must make every endpoint ready", e.TargetRef.Name)
		}
		switch e.TargetRef.Name {
		case "a":
			if e.Hostname == nil || *e.Hostname != "web-0" {
				t.Errorf("a: hostname %v, want web-0 (subdomain is the Service)", e.Hostname)
			}
		case "b":
			if e.Hostname != nil {
				t.Errorf("b: hostname %v, want none (subdomain is another Service)", *e.Hostname)
			}
		}
	}
}

func TestReconcileNamedPortsPerPod(t *testing.T) {
	svc := testService()
	p, _ := reconcile(input(svc, []*corev1.Pod{
		testPod("a", "10.42.0.2"), testPod("b", "10.42.0.3", port(9090)), testPod("c", "10.42.0.4", noPorts),
	}))
	if len(p.create) != 3 {
		t.Fatalf("%d slices, want 3 (one per distinct port set)", len(p.create))
	}
	got := map[string]string{}
	for _, s := range p.create {
		ports := "none"
		if len(s.Ports) > 0 {
			ports = fmt.Sprint(*s.Ports[0].Port)
		}
		got[ports] = addresses(s)
	}
	want := map[string]string{"8080": "10.42.0.2", "9090": "10.42.0.3", "none": "10.42.0.4"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("slices by port = %v, want %v (a pod without the named port serves no port)", got, want)
	}
}

func TestReconcileSplitsAtMaxAndChurnsLittle(t *testing.T) {
	svc := testService()
	var pods []*corev1.Pod
	for i := range 250 {
		pods = append(pods, testPod(fmt.Sprintf("p%03d", i), fmt.Sprintf("10.42.%d.%d", i/200, i%200+2)))
	}
	p, _ := reconcile(input(svc, pods))
	slices := applied(nil, p)
	var sizes []int
	for _, s := range slices {
		sizes = append(sizes, len(s.Endpoints))
	}
	sort.Ints(sizes)
	if fmt.Sprint(sizes) != "[50 100 100]" {
		t.Fatalf("slice sizes %v, want [50 100 100]", sizes)
	}

	// Unchanged pods: nothing to do.
	p, _ = reconcile(input(svc, pods, slices...))
	if len(p.create)+len(p.update)+len(p.remove) != 0 {
		t.Fatalf("a resync without changes wrote %d/%d/%d slices", len(p.create), len(p.update), len(p.remove))
	}

	// Replace one pod: only the slice that held it changes, and the new
	// pod goes into it.
	replaced := append([]*corev1.Pod{testPod("new", "10.42.9.9")}, pods[1:]...)
	p, _ = reconcile(input(svc, replaced, slices...))
	if len(p.create) != 0 || len(p.remove) != 0 || len(p.update) != 1 {
		t.Fatalf("replacing a pod: %d creates %d updates %d deletes, want one update", len(p.create), len(p.update), len(p.remove))
	}
	if !strings.Contains(addresses(p.update[0]), "10.42.9.9") || strings.Contains(addresses(p.update[0]), "10.42.0.2,") {
		t.Errorf("updated slice holds %s", addresses(p.update[0]))
	}

	// A pod turning not-ready updates its slice in place.
	flipped := append([]*corev1.Pod(nil), pods...)
	flipped[10] = testPod(pods[10].Name, pods[10].Status.PodIP, notReady)
	p, _ = reconcile(input(svc, flipped, slices...))
	if len(p.update) != 1 || len(p.create)+len(p.remove) != 0 {
		t.Fatalf("a readiness change: %d creates %d updates %d deletes, want one update", len(p.create), len(p.update), len(p.remove))
	}

	// Three new pods go into the unchanged slice closest to full that
	// takes them all (the one of 50), not into a new slice.
	more := append(append([]*corev1.Pod(nil), pods...), testPod("x1", "10.43.0.1"), testPod("x2", "10.43.0.2"), testPod("x3", "10.43.0.3"))
	p, _ = reconcile(input(svc, more, slices...))
	if len(p.create) != 0 || len(p.update) != 1 || len(p.update[0].Endpoints) != 53 {
		t.Fatalf("adding 3 pods: %d creates, %d updates; want the 50-slice updated to 53", len(p.create), len(p.update))
	}
}

func TestReconcilePlaceholderAndReuse(t *testing.T) {
	svc := testService()
	p, _ := reconcile(input(svc, nil))
	if len(p.create) != 1 || len(p.create[0].Endpoints) != 0 || len(p.create[0].Ports) != 0 {
		t.Fatalf("no pods: want one empty placeholder, got %d creates", len(p.create))
	}
	slices := applied(nil, p)
	if p, _ := reconcile(input(svc, nil, slices...)); len(p.create)+len(p.update)+len(p.remove) != 0 {
		t.Errorf("the placeholder was rewritten: %d/%d/%d", len(p.create), len(p.update), len(p.remove))
	}
	// The first pod reuses the placeholder's slice instead of a
	// create + delete.
	p, _ = reconcile(input(svc, []*corev1.Pod{testPod("a", "10.42.0.2")}, slices...))
	if len(p.create) != 0 || len(p.remove) != 0 || len(p.update) != 1 || p.update[0].Name != slices[0].Name {
		t.Fatalf("first pod: %d creates %d updates %d deletes; want the placeholder updated", len(p.create), len(p.update), len(p.remove))
	}
	if addresses(p.update[0]) != "10.42.0.2" || len(p.update[0].Ports) != 1 {
		t.Errorf("reused slice: %s ports %v", addresses(p.update[0]), p.update[0].Ports)
	}
	// The last pod gone: back to a placeholder, in the same slice.
	slices = applied(slices, p)
	p, _ = reconcile(input(svc, nil, slices...))
	if len(p.update) != 1 || len(p.update[0].Endpoints) != 0 || len(p.create)+len(p.remove) != 0 {
		t.Errorf("last pod gone: %d creates %d updates %d deletes, want the slice emptied in place", len(p.create), len(p.update), len(p.remove))
	}
}

func TestReconcileLabelsFollowTheService(t *testing.T) {
	svc := testService()
	p, _ := reconcile(input(svc, []*corev1.Pod{testPod("a", "10.42.0.2")}))
	slices := applied(nil, p)
	svc.Labels = map[string]string{"team": "b", discoveryv1.LabelManagedBy: "someone-else"}
	p, _ = reconcile(input(svc, []*corev1.Pod{testPod("a", "10.42.0.2")}, slices...))
	if len(p.update) != 1 || p.update[0].Labels["team"] != "b" || p.update[0].Labels[discoveryv1.LabelManagedBy] != ControllerName {
		t.Fatalf("labels after the Service's changed: %+v", p.update)
	}
}

func TestReconcileSkipsPodsOnUnknownNodes(t *testing.T) {
	svc := testService()
	p, err := reconcile(input(svc, []*corev1.Pod{testPod("a", "10.42.0.2"), testPod("ghost", "10.42.0.3", onNode("gone"))}))
	if err == nil || !strings.Contains(err.Error(), "ghost") {
		t.Errorf("err = %v, want the skipped pod named", err)
	}
	if addresses(p.create[0]) != "10.42.0.2" {
		t.Errorf("addresses %s, want only the pod on a known node", addresses(p.create[0]))
	}
	svc.Spec.PublishNotReadyAddresses = true
	p, err = reconcile(input(svc, []*corev1.Pod{testPod("ghost", "10.42.0.3", onNode("gone"))}))
	if err != nil || addresses(p.create[0]) != "10.42.0.3" {
		t.Errorf("publishNotReadyAddresses keeps it: %v %v", err, addresses(p.create[0]))
	}
}

func TestReconcileDeletesSlicesOfAnotherServiceObjectAndFamily(t *testing.T) {
	svc := testService()
	stale := newSlice(svc, discoveryv1.AddressTypeIPv4, nil)
	stale.Name = "web-old"
	stale.OwnerReferences[0].UID = "older-service-uid"
	v6 := newSlice(svc, discoveryv1.AddressTypeIPv6, nil)
	v6.Name = "web-v6"
	p, _ := reconcile(input(svc, []*corev1.Pod{testPod("a", "10.42.0.2")}, stale, v6))
	var removed []string
	for _, s := range p.remove {
		removed = append(removed, s.Name)
	}
	sort.Strings(removed)
	if fmt.Sprint(removed) != "[web-old web-v6]" || len(p.create) != 1 {
		t.Errorf("removed %v creates %d; want the old Service's and the IPv6 slice removed and a new one made", removed, len(p.create))
	}
}

func TestSlicePrefix(t *testing.T) {
	if got := slicePrefix("web"); got != "web-" {
		t.Errorf("slicePrefix(web) = %q", got)
	}
	long := strings.Repeat("a", 253)
	if got := slicePrefix(long); got != long {
		t.Errorf("a name with no room for the dash keeps no dash")
	}
	_ = ptr.To(1)
}
