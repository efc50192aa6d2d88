//lint:file-ignore SA1019 mirroring reads user-written core/v1 Endpoints into EndpointSlices: the deprecated type is its input
package endpointslicemirroring

import (
	"net/netip"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"
)

// ControllerName is the managed-by label value of mirrored slices.
const ControllerName = "endpointslicemirroring-controller.k8s.io"

// MaxEndpointsPerSubset is kube-controller-manager's default
// --mirroring-max-endpoints-per-subset: addresses of one set of ports
// beyond it are not mirrored (it is also the most a slice may hold).
const MaxEndpointsPerSubset = 1000

// Annotations never copied onto mirrored slices.
var droppedAnnotations = map[string]bool{
	corev1.LastAppliedConfigAnnotation:    true,
	corev1.EndpointsLastChangeTriggerTime: true,
}

type plan struct {
	create, update, remove []*discoveryv1.EndpointSlice
	// skipped counts addresses left out (not IPs, or over capacity).
	skipped int
}

// desiredGroup is the content of one mirrored slice.
type desiredGroup struct {
	family    discoveryv1.AddressType
	ports     []discoveryv1.EndpointPort
	endpoints []discoveryv1.Endpoint
}

// reconcile computes the slice changes that mirror eps into existing (the
// slices this controller made for it). Pure.
func reconcile(eps *corev1.Endpoints, existing []*discoveryv1.EndpointSlice) plan {
	var p plan
	groups := map[string]*desiredGroup{}
	for _, subset := range eps.Subsets {
		ports := make([]discoveryv1.EndpointPort, 0, len(subset.Ports))
		for _, sp := range subset.Ports {
			proto := sp.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			ports = append(ports, discoveryv1.EndpointPort{Name: ptr.To(sp.Name), Port: ptr.To(sp.Port),
				Protocol: ptr.To(proto), AppProtocol: sp.AppProtocol})
		}
		add := func(a corev1.EndpointAddress, ready bool) {
			ip, err := netip.ParseAddr(a.IP)
			if err != nil {
				p.skipped++
				return
			}
			family := discoveryv1.AddressTypeIPv4
			if ip.Unmap().Is6() {
				family = discoveryv1.AddressTypeIPv6
			}
			k := string(family) + "|" + portsKey(ports)
			g := groups[k]
			if g == nil {
				g = &desiredGroup{family: family, ports: ports}
				groups[k] = g
			}
			if len(g.endpoints) >= MaxEndpointsPerSubset {
				p.skipped++
				return
			}
			ep := discoveryv1.Endpoint{Addresses: []string{ip.Unmap().String()},
				Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready)}, TargetRef: a.TargetRef, NodeName: a.NodeName}
			if a.Hostname != "" {
				ep.Hostname = ptr.To(a.Hostname)
			}
			g.endpoints = append(g.endpoints, ep)
		}
		for _, a := range subset.Addresses {
			add(a, true)
		}
		for _, a := range subset.NotReadyAddresses {
			add(a, false)
		}
	}
	byKey := map[string][]*discoveryv1.EndpointSlice{}
	for _, s := range existing {
		k := string(s.AddressType) + "|" + portsKey(s.Ports)
		byKey[k] = append(byKey[k], s)
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var unused []*discoveryv1.EndpointSlice
	for k, slices := range byKey {
		if groups[k] == nil {
			unused = append(unused, slices...)
		}
	}
	sort.Slice(unused, func(i, j int) bool { return unused[i].Name < unused[j].Name })
	for _, k := range keys {
		g := groups[k]
		want := mirroredSlice(eps, g)
		have := byKey[k]
		sort.Slice(have, func(i, j int) bool { return have[i].Name < have[j].Name })
		switch {
		case len(have) > 0:
			cur := have[0]
			if !sameContent(cur, want) {
				u := cur.DeepCopy()
				u.Labels, u.Annotations, u.OwnerReferences = want.Labels, want.Annotations, want.OwnerReferences
				u.Ports, u.Endpoints = want.Ports, want.Endpoints
				p.update = append(p.update, u)
			}
			p.remove = append(p.remove, have[1:]...)
		case len(unused) > 0 && unused[0].AddressType == g.family:
			u := unused[0].DeepCopy()
			unused = unused[1:]
			u.Labels, u.Annotations, u.OwnerReferences = want.Labels, want.Annotations, want.OwnerReferences
			u.Ports, u.Endpoints = want.Ports, want.Endpoints
			p.update = append(p.update, u)
		default:
			p.create = append(p.create, want)
		}
	}
	p.remove = append(p.remove, unused...)
	return p
}

// mirroredSlice is the slice mirroring one group of eps.
func mirroredSlice(eps *corev1.Endpoints, g *desiredGroup) *discoveryv1.EndpointSlice {
	labels := map[string]string{}
	for k, v := range eps.Labels {
		if k != discoveryv1.LabelServiceName && k != discoveryv1.LabelManagedBy {
			labels[k] = v
		}
	}
	labels[discoveryv1.LabelServiceName] = eps.Name
	labels[discoveryv1.LabelManagedBy] = ControllerName
	var annotations map[string]string
	for k, v := range eps.Annotations {
		if droppedAnnotations[k] {
			continue
		}
		if annotations == nil {
			annotations = map[string]string{}
		}
		annotations[k] = v
	}
	prefix := eps.Name + "-"
	if len(validation.IsDNS1123Subdomain(prefix+"a")) != 0 {
		prefix = eps.Name
	}
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: prefix, Namespace: eps.Namespace, Labels: labels, Annotations: annotations,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Endpoints", Name: eps.Name, UID: eps.UID,
				Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}},
		},
		AddressType: g.family,
		Ports:       g.ports,
		Endpoints:   g.endpoints,
	}
}

func sameContent(cur, want *discoveryv1.EndpointSlice) bool {
	return apiequality.Semantic.DeepEqual(cur.Labels, want.Labels) &&
		apiequality.Semantic.DeepEqual(emptyNil(cur.Annotations), emptyNil(want.Annotations)) &&
		apiequality.Semantic.DeepEqual(cur.OwnerReferences, want.OwnerReferences) &&
		apiequality.Semantic.DeepEqual(cur.Ports, want.Ports) &&
		apiequality.Semantic.DeepEqual(cur.Endpoints, want.Endpoints)
}

func emptyNil(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

func portsKey(ports []discoveryv1.EndpointPort) string {
	keys := make([]string, 0, len(ports))
	for _, p := range ports {
		keys = append(keys, ptr.Deref(p.Name, "")+"/"+strconv.Itoa(int(ptr.Deref(p.Port, 0)))+"/"+
			string(ptr.Deref(p.Protocol, ""))+"/"+ptr.Deref(p.AppProtocol, ""))
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}
