package endpointslice

import (
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/utils/ptr"

	"github.com/peapod/peapod/internal/controller/endpointutil"
)

// podToEndpoint is pod's endpoint for svc in one address family; node is
// the pod's Node (nil when unknown) and gives the zone. Pure.
func podToEndpoint(pod *corev1.Pod, node *corev1.Node, svc *corev1.Service, family discoveryv1.AddressType) discoveryv1.Endpoint {
	serving := endpointutil.IsPodReady(pod)
	terminating := pod.DeletionTimestamp != nil
	// Ready is never true for a terminating pod, unless the Service
	// publishes not-ready addresses.
	ready := svc.Spec.PublishNotReadyAddresses || (serving && !terminating)
	ep := discoveryv1.Endpoint{
		Addresses:  endpointutil.PodIPs(pod, family == discoveryv1.AddressTypeIPv6),
		Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready), Serving: ptr.To(serving), Terminating: ptr.To(terminating)},
		TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
	}
	if pod.Spec.NodeName != "" {
		ep.NodeName = ptr.To(pod.Spec.NodeName)
	}
	if node != nil && node.Labels[corev1.LabelTopologyZone] != "" {
		ep.Zone = ptr.To(node.Labels[corev1.LabelTopologyZone])
	}
	if endpointutil.ShouldSetHostname(pod, svc) {
		ep.Hostname = ptr.To(pod.Spec.Hostname)
	}
	return ep
}

// endpointPorts are the slice ports pod serves for svc: every Service port
// whose targetPort the pod resolves, named as the Service port and
// numbered with the pod's port. A headless Service may have none. Pure.
func endpointPorts(svc *corev1.Service, pod *corev1.Pod) []discoveryv1.EndpointPort {
	out := []discoveryv1.EndpointPort{}
	for i := range svc.Spec.Ports {
		sp := &svc.Spec.Ports[i]
		n, err := endpointutil.FindPort(pod, sp)
		if err != nil {
			continue
		}
		out = append(out, discoveryv1.EndpointPort{Name: ptr.To(sp.Name), Port: ptr.To(n),
			Protocol: ptr.To(protocolOrTCP(sp.Protocol)), AppProtocol: sp.AppProtocol})
	}
	return out
}

func protocolOrTCP(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

// portsKey identifies a set of slice ports, order-insensitive.
func portsKey(ports []discoveryv1.EndpointPort) string {
	keys := make([]string, 0, len(ports))
	for _, p := range ports {
		var b strings.Builder
		b.WriteString(ptr.Deref(p.Name, ""))
		b.WriteByte('/')
		if p.Port != nil {
			b.WriteString(strconv.Itoa(int(*p.Port)))
		}
		b.WriteByte('/')
		b.WriteString(string(ptr.Deref(p.Protocol, "")))
		b.WriteByte('/')
		b.WriteString(ptr.Deref(p.AppProtocol, ""))
		keys = append(keys, b.String())
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}

// endpointKey identifies an endpoint across syncs: its addresses,
// hostname and target (not its conditions, which may change in place).
func endpointKey(ep *discoveryv1.Endpoint) string {
	addrs := append([]string(nil), ep.Addresses...)
	sort.Strings(addrs)
	var b strings.Builder
	b.WriteString(strings.Join(addrs, ","))
	b.WriteByte('|')
	b.WriteString(ptr.Deref(ep.Hostname, ""))
	if ep.TargetRef != nil {
		b.WriteByte('|')
		b.WriteString(ep.TargetRef.Namespace)
		b.WriteByte('/')
		b.WriteString(ep.TargetRef.Name)
	}
	return b.String()
}

// endpointSet is a set of endpoints by endpointKey that pops in key
// order, so a reconcile is deterministic.
type endpointSet struct {
	byKey map[string]*discoveryv1.Endpoint
}

func newEndpointSet() *endpointSet { return &endpointSet{byKey: map[string]*discoveryv1.Endpoint{}} }

func (s *endpointSet) insert(ep *discoveryv1.Endpoint) { s.byKey[endpointKey(ep)] = ep }
func (s *endpointSet) get(ep *discoveryv1.Endpoint) *discoveryv1.Endpoint {
	return s.byKey[endpointKey(ep)]
}
func (s *endpointSet) remove(ep *discoveryv1.Endpoint) { delete(s.byKey, endpointKey(ep)) }
func (s *endpointSet) len() int                        { return len(s.byKey) }

// popSorted removes and returns up to n endpoints, smallest keys first.
func (s *endpointSet) popSorted(n int) []discoveryv1.Endpoint {
	keys := make([]string, 0, len(s.byKey))
	for k := range s.byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if n > len(keys) {
		n = len(keys)
	}
	out := make([]discoveryv1.Endpoint, 0, n)
	for _, k := range keys[:n] {
		out = append(out, *s.byKey[k])
		delete(s.byKey, k)
	}
	return out
}

// endpointEqual compares everything of two endpoints with the same key.
func endpointEqual(a, b *discoveryv1.Endpoint) bool {
	return apiequality.Semantic.DeepEqual(a, b)
}
