package endpointslice

import (
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/peapod/peapod/internal/controller/endpointutil"
)

// ControllerName is the managed-by label value of the slices this
// controller owns, as Kubernetes names it.
const ControllerName = "endpointslice-controller.k8s.io"

// MaxEndpointsPerSlice is kube-controller-manager's default
// --max-endpoints-per-slice.
const MaxEndpointsPerSlice = 100

// plan is what a reconcile decided: slices to create (no name yet), to
// update and to delete.
type plan struct {
	create, update, remove []*discoveryv1.EndpointSlice
}

// reconcileInput is everything a reconcile looks at.
type reconcileInput struct {
	svc      *corev1.Service
	pods     []*corev1.Pod
	existing []*discoveryv1.EndpointSlice // this controller's slices of svc, none being deleted
	// node returns a pod's Node; ok is false when it does not exist.
	node func(name string) (n *corev1.Node, ok bool)
	max  int
}

// reconcile computes the slice changes that make existing match the
// Service's pods, changing as few slices as it can (Kubernetes'
// reconciler: per address family, then per set of ports). err names the
// pods skipped because their Node is unknown (the Service is retried);
// the plan is valid all the same. Pure.
func reconcile(in reconcileInput) (plan, error) {
	var p plan
	var skipped []string
	families := addressTypes(in.svc)
	byFamily := map[discoveryv1.AddressType][]*discoveryv1.EndpointSlice{}
	for _, s := range in.existing {
		if !families[s.AddressType] {
			p.remove = append(p.remove, s)
			continue
		}
		byFamily[s.AddressType] = append(byFamily[s.AddressType], s)
	}
	for _, family := range sortedFamilies(families) {
		fp, sk := reconcileFamily(in, family, byFamily[family])
		p.create = append(p.create, fp.create...)
		p.update = append(p.update, fp.update...)
		p.remove = append(p.remove, fp.remove...)
		skipped = append(skipped, sk...)
	}
	reuseDeletedForCreates(&p, in.svc)
	if len(skipped) > 0 {
		return p, fmt.Errorf("skipped pods of Service %s/%s whose Node does not exist: %v", in.svc.Namespace, in.svc.Name, skipped)
	}
	return p, nil
}

// addressTypes are the families the Service's slices carry: its
// ipFamilies, else the ClusterIP's, else (headless, not yet defaulted)
// both.
func addressTypes(svc *corev1.Service) map[discoveryv1.AddressType]bool {
	out := map[discoveryv1.AddressType]bool{}
	for _, f := range svc.Spec.IPFamilies {
		switch f {
		case corev1.IPv4Protocol:
			out[discoveryv1.AddressTypeIPv4] = true
		case corev1.IPv6Protocol:
			out[discoveryv1.AddressTypeIPv6] = true
		}
	}
	if len(out) > 0 {
		return out
	}
	if endpointutil.IsServiceIPSet(svc) {
		if endpointutil.IsIPv6(svc.Spec.ClusterIP) {
			out[discoveryv1.AddressTypeIPv6] = true
		} else {
			out[discoveryv1.AddressTypeIPv4] = true
		}
		return out
	}
	out[discoveryv1.AddressTypeIPv4], out[discoveryv1.AddressTypeIPv6] = true, true
	return out
}

func sortedFamilies(m map[discoveryv1.AddressType]bool) []discoveryv1.AddressType {
	out := make([]discoveryv1.AddressType, 0, len(m))
	for f := range m {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

type portGroup struct {
	ports     []discoveryv1.EndpointPort
	endpoints *endpointSet
}

func reconcileFamily(in reconcileInput, family discoveryv1.AddressType, existing []*discoveryv1.EndpointSlice) (plan, []string) {
	var p plan
	var skipped []string
	existingByPorts := map[string][]*discoveryv1.EndpointSlice{}
	for _, s := range existing {
		if !ownedBy(s, in.svc) {
			p.remove = append(p.remove, s)
			continue
		}
		k := portsKey(s.Ports)
		existingByPorts[k] = append(existingByPorts[k], s)
	}
	desired := map[string]*portGroup{}
	for _, pod := range in.pods {
		if !endpointutil.ShouldPodBeInEndpoints(pod, true) {
			continue
		}
		ports := endpointPorts(in.svc, pod)
		k := portsKey(ports)
		node, ok := in.node(pod.Spec.NodeName)
		if !ok && !in.svc.Spec.PublishNotReadyAddresses {
			// A pod on a Node that does not exist is left out (and the
			// Service retried), so a stale pod cannot hold the slice.
			skipped = append(skipped, pod.Name)
			continue
		}
		ep := podToEndpoint(pod, node, in.svc, family)
		if len(ep.Addresses) == 0 {
			continue
		}
		g := desired[k]
		if g == nil {
			g = &portGroup{ports: ports, endpoints: newEndpointSet()}
			desired[k] = g
		}
		g.endpoints.insert(&ep)
	}
	keys := make([]string, 0, len(desired))
	for k := range desired {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		g := desired[k]
		gp := reconcilePorts(in, family, g.ports, existingByPorts[k], g.endpoints)
		p.create = append(p.create, gp.create...)
		p.update = append(p.update, gp.update...)
		p.remove = append(p.remove, gp.remove...)
	}
	for k, slices := range existingByPorts {
		if desired[k] == nil {
			p.remove = append(p.remove, slices...)
		}
	}
	// A Service without endpoints keeps one empty placeholder slice, so
	// consumers can tell "no endpoints" from "not yet processed".
	if len(existing) == len(p.remove) && len(p.create) == 0 {
		ph := newSlice(in.svc, family, []discoveryv1.EndpointPort{})
		if len(p.remove) == 1 && isPlaceholderOf(p.remove[0], ph) {
			p.remove = nil
		} else {
			p.create = append(p.create, ph)
		}
	}
	sortByName(p.remove)
	return p, skipped
}

// reconcilePorts places the desired endpoints of one set of ports into
// existing slices of that set: (1) keep the endpoints still desired where
// they are, updating changed ones and dropping gone ones; (2) fill the
// slices already changing; (3) put what is left into the unchanged slice
// closest to full that can take all of it, else into new slices.
func reconcilePorts(in reconcileInput, family discoveryv1.AddressType, ports []discoveryv1.EndpointPort, existing []*discoveryv1.EndpointSlice, desired *endpointSet) plan {
	var p plan
	var changed, unchanged []*discoveryv1.EndpointSlice
	sortByName(existing)
	for _, s := range existing {
		var keep []discoveryv1.Endpoint
		updated := false
		for i := range s.Endpoints {
			got := desired.get(&s.Endpoints[i])
			if got == nil {
				continue
			}
			keep = append(keep, *got)
			if !endpointEqual(got, &s.Endpoints[i]) {
				updated = true
			}
			desired.remove(got)
		}
		labels, labelsChanged := sliceLabels(s.Labels, in.svc)
		switch {
		case updated || len(keep) != len(s.Endpoints):
			if len(keep) == 0 {
				p.remove = append(p.remove, s)
				continue
			}
			c := s.DeepCopy()
			c.Endpoints, c.Labels = keep, labels
			changed = append(changed, c)
		case labelsChanged:
			c := s.DeepCopy()
			c.Labels = labels
			changed = append(changed, c)
		default:
			unchanged = append(unchanged, s)
		}
	}
	// Fill the fullest changing slices first.
	sort.SliceStable(changed, func(i, j int) bool { return len(changed[i].Endpoints) > len(changed[j].Endpoints) })
	for _, s := range changed {
		if room := in.max - len(s.Endpoints); room > 0 && desired.len() > 0 {
			s.Endpoints = append(s.Endpoints, desired.popSorted(room)...)
		}
	}
	for desired.len() > 0 {
		var fill *discoveryv1.EndpointSlice
		if desired.len() < in.max {
			if i := sliceToFill(unchanged, desired.len(), in.max); i >= 0 {
				fill = unchanged[i].DeepCopy()
				unchanged = append(unchanged[:i], unchanged[i+1:]...)
				changed = append(changed, fill)
			}
		}
		if fill == nil {
			fill = newSlice(in.svc, family, ports)
			p.create = append(p.create, fill)
		}
		fill.Endpoints = append(fill.Endpoints, desired.popSorted(in.max-len(fill.Endpoints))...)
	}
	sortByName(changed)
	p.update = changed
	return p
}

// sliceToFill returns the index of the slice that ends closest to full
// when n endpoints are added, or -1 when none can take them all.
func sliceToFill(slices []*discoveryv1.EndpointSlice, n, max int) int {
	best, bestDiff := -1, max
	for i, s := range slices {
		if diff := max - (n + len(s.Endpoints)); diff >= 0 && diff < bestDiff {
			best, bestDiff = i, diff
		}
	}
	return best
}

// reuseDeletedForCreates turns a create and a delete of the same family
// into an update of the slice to delete, so a Service's slices are
// replaced in place rather than churned.
func reuseDeletedForCreates(p *plan, svc *corev1.Service) {
	for i := 0; i < len(p.remove) && len(p.create) > 0; {
		old := p.remove[i]
		n := p.create[len(p.create)-1]
		if old.AddressType != n.AddressType || !ownedBy(old, svc) {
			i++
			continue
		}
		u := old.DeepCopy()
		u.Labels, u.Ports, u.Endpoints = n.Labels, n.Ports, n.Endpoints
		u.OwnerReferences = n.OwnerReferences
		p.create = p.create[:len(p.create)-1]
		p.update = append(p.update, u)
		p.remove = append(p.remove[:i], p.remove[i+1:]...)
	}
}

// newSlice is a new slice of svc (to be named by the API from
// generateName).
func newSlice(svc *corev1.Service, family discoveryv1.AddressType, ports []discoveryv1.EndpointPort) *discoveryv1.EndpointSlice {
	labels, _ := sliceLabels(nil, svc)
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName:    slicePrefix(svc.Name),
			Namespace:       svc.Namespace,
			Labels:          labels,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(svc, corev1.SchemeGroupVersion.WithKind("Service"))},
		},
		AddressType: family,
		Ports:       ports,
		Endpoints:   []discoveryv1.Endpoint{},
	}
}

// slicePrefix is "<service>-", or the bare name when the dash would make
// it too long for a name.
func slicePrefix(name string) string {
	if len(validation.IsDNS1123Subdomain(name+"-a")) != 0 {
		return name
	}
	return name + "-"
}

// sliceLabels returns the labels a slice of svc must carry — the
// Service's own (without the reserved keys), the headless label for a
// Service without a ClusterIP, the service-name and managed-by labels —
// and whether the Service's labels differ from those on the slice.
func sliceLabels(current map[string]string, svc *corev1.Service) (map[string]string, bool) {
	have, want := map[string]string{}, map[string]string{}
	for k, v := range current {
		if !reservedLabel(k) {
			have[k] = v
		}
	}
	for k, v := range svc.Labels {
		if !reservedLabel(k) {
			want[k] = v
		}
	}
	changed := len(have) != len(want)
	for k, v := range want {
		if hv, ok := have[k]; !ok || hv != v {
			changed = true
		}
	}
	if !endpointutil.IsServiceIPSet(svc) {
		want[corev1.IsHeadlessService] = ""
	}
	want[discoveryv1.LabelServiceName] = svc.Name
	want[discoveryv1.LabelManagedBy] = ControllerName
	if current != nil && !changed {
		// The reserved labels themselves may have been edited.
		for _, k := range []string{corev1.IsHeadlessService, discoveryv1.LabelServiceName, discoveryv1.LabelManagedBy} {
			cv, cok := current[k]
			wv, wok := want[k]
			if cok != wok || cv != wv {
				changed = true
			}
		}
	}
	return want, changed
}

func reservedLabel(k string) bool {
	return k == discoveryv1.LabelServiceName || k == discoveryv1.LabelManagedBy || k == corev1.IsHeadlessService
}

// ownedBy reports whether svc (this very object, by UID) owns s.
func ownedBy(s *discoveryv1.EndpointSlice, svc *corev1.Service) bool {
	for _, o := range s.OwnerReferences {
		if o.UID == svc.UID && o.Kind == "Service" && o.APIVersion == "v1" {
			return true
		}
	}
	return false
}

// isPlaceholderOf reports whether s already is the placeholder ph: no
// endpoints, no ports, same labels and owner.
func isPlaceholderOf(s, ph *discoveryv1.EndpointSlice) bool {
	if len(s.Endpoints) != 0 || len(s.Ports) != 0 || s.AddressType != ph.AddressType || len(s.Labels) != len(ph.Labels) {
		return false
	}
	for k, v := range ph.Labels {
		if s.Labels[k] != v {
			return false
		}
	}
	return len(s.OwnerReferences) == 1 && s.OwnerReferences[0].UID == ph.OwnerReferences[0].UID
}

func sortByName(s []*discoveryv1.EndpointSlice) {
	sort.SliceStable(s, func(i, j int) bool { return s[i].Name < s[j].Name })
}
