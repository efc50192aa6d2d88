package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// errAddressNotAllowed is kube-apiserver's refusal of a backend address.
var errAddressNotAllowed = errors.New("address not allowed")

// globalUnicast allows global unicast addresses only (private ranges
// included), refusing loopback, link-local and multicast ones: a proxy
// must not become a way into the API server's own host.
func globalUnicast(ip net.IP) error {
	if ip == nil || !ip.IsGlobalUnicast() {
		return errAddressNotAllowed
	}
	return nil
}

// podLocation is where pods/proxy sends a request for a pod, as
// kube-apiserver's pod.ResourceLocation decides: the pod's (first) IP at
// port, else at the first port a container declares, else at the scheme's
// default port. The IP must pass allowed. Pure.
func podLocation(pod *corev1.Pod, scheme, port string, allowed func(net.IP) error) (*url.URL, error) {
	if port == "" {
	containers:
		for _, c := range pod.Spec.Containers {
			for _, p := range c.Ports {
				port = strconv.Itoa(int(p.ContainerPort))
				break containers
			}
		}
	}
	podIP := pod.Status.PodIP
	if len(pod.Status.PodIPs) > 0 {
		podIP = pod.Status.PodIPs[0].IP
	}
	if err := allowed(net.ParseIP(podIP)); err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	loc := &url.URL{Scheme: scheme, Host: podIP}
	if port != "" {
		loc.Host = net.JoinHostPort(podIP, port)
	} else if net.ParseIP(podIP).To4() == nil {
		loc.Host = "[" + podIP + "]"
	}
	return loc, nil
}

// serviceLocation is where services/proxy sends a request for a Service,
// as kube-apiserver's service ResourceLocation decides: a port number is
// first turned into the name of the Service port that has it; then a
// random ready endpoint of a random slice serving the port of that name
// (the only port of a one-port Service may have the name ""), at that
// port's number, the target port. id is the request's
// [SCHEME:]NAME[:PORT], for messages; pick(n) chooses in [0, n). Pure.
func serviceLocation(svc *corev1.Service, eps []discoveryv1.EndpointSlice, id, scheme, port string, pick func(int) int) (*url.URL, error) {
	if n, err := strconv.ParseInt(port, 10, 64); err == nil {
		found := false
		for _, sp := range svc.Spec.Ports {
			if int64(sp.Port) == n {
				port, found = sp.Name, true
				break
			}
		}
		if !found {
			return nil, apierrors.NewServiceUnavailable(fmt.Sprintf("no service port %d found for service %q", n, svc.Name))
		}
	}
	if !slices.ContainsFunc(eps, func(s discoveryv1.EndpointSlice) bool { return len(s.Endpoints) > 0 }) {
		return nil, apierrors.NewServiceUnavailable(fmt.Sprintf("no endpoints available for service %q", svc.Name))
	}
	first := pick(len(eps))
	for i := range eps {
		s := &eps[(first+i)%len(eps)]
		for _, p := range s.Ports {
			if ptr.Deref(p.Name, "") != port || p.Port == nil {
				continue
			}
			var ready []string
			for _, e := range s.Endpoints {
				if ptr.Deref(e.Conditions.Ready, true) && len(e.Addresses) > 0 {
					ready = append(ready, e.Addresses[0])
				}
			}
			if len(ready) == 0 {
				continue
			}
			addr := ready[pick(len(ready))]
			return &url.URL{Scheme: scheme, Host: net.JoinHostPort(addr, strconv.Itoa(int(*p.Port)))}, nil
		}
	}
	return nil, apierrors.NewServiceUnavailable(fmt.Sprintf("no endpoints available for service %q", id))
}

// nodeEndpoint is the address and agent port the API server reaches a
// node at: its InternalIP, else ExternalIP, else Hostname, and the port
// it announces (the kubelet's 10250 if none). Pure.
func nodeEndpoint(node *corev1.Node) (addr string, port int, err error) {
	for _, t := range []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeExternalIP, corev1.NodeHostName} {
		for _, a := range node.Status.Addresses {
			if a.Type == t && a.Address != "" && addr == "" {
				addr = a.Address
			}
		}
	}
	if addr == "" {
		return "", 0, apierrors.NewServiceUnavailable(fmt.Sprintf("node %q has no address", node.Name))
	}
	port = int(node.Status.DaemonEndpoints.KubeletEndpoint.Port)
	if port <= 0 {
		port = DefaultNodeAgentPort
	}
	return addr, port, nil
}

// nodeLocation is where nodes/proxy sends a request for a node, as
// kube-apiserver's node.ResourceLocation decides: the node agent over
// https when no port or the agent's port is asked for (toAgent: use the
// API server's agent credentials), else that port of the node with the
// scheme asked for. Every address the node's name resolves to must pass
// allowed.
func nodeLocation(ctx context.Context, node *corev1.Node, scheme, port string, allowed func(net.IP) error) (loc *url.URL, toAgent bool, err error) {
	host, agentPort, err := nodeEndpoint(node)
	if err != nil {
		return nil, false, err
	}
	ips := []net.IP{net.ParseIP(host)}
	if ips[0] == nil {
		addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
		if err != nil {
			return nil, false, apierrors.NewBadRequest(fmt.Sprintf("resolve node %q address %q: %v", node.Name, host, err))
		}
		if len(addrs) == 0 {
			return nil, false, apierrors.NewBadRequest("no addresses for hostname")
		}
		ips = ips[:0]
		for _, a := range addrs {
			ips = append(ips, a.IP)
		}
	}
	for _, ip := range ips {
		if err := allowed(ip); err != nil {
			return nil, false, apierrors.NewBadRequest(err.Error())
		}
	}
	if port == "" || port == strconv.Itoa(agentPort) {
		return &url.URL{Scheme: "https", Host: net.JoinHostPort(host, strconv.Itoa(agentPort))}, true, nil
	}
	return &url.URL{Scheme: scheme, Host: net.JoinHostPort(host, port)}, false, nil
}

// EndpointsResolver finds a Service's endpoints, as EndpointSlices
// (those labelled kubernetes.io/service-name=<service>): every port
// named as the Service port it serves, numbered with the target port;
// endpoints' Ready condition says which may take traffic.
// Implementations must be safe for concurrent use.
//
// peapod has no EndpointSlice controller yet: selectorEndpoints derives
// the slices from the Service's selector and the pods. Once EndpointSlices
// are maintained, an implementation listing them replaces it here, and
// services/proxy follows.
type EndpointsResolver interface {
	Endpoints(ctx context.Context, svc *corev1.Service) ([]discoveryv1.EndpointSlice, error)
}

// selectorEndpoints resolves a Service's endpoints from its selector and
// the stored pods, as the EndpointSlice controller would.
type selectorEndpoints struct{ a *api }

var _ EndpointsResolver = selectorEndpoints{}

// Endpoints implements EndpointsResolver.
func (s selectorEndpoints) Endpoints(ctx context.Context, svc *corev1.Service) ([]discoveryv1.EndpointSlice, error) {
	if len(svc.Spec.Selector) == 0 {
		return nil, nil // a selector-less Service's endpoints are the user's to write
	}
	sel := selector{labels: labels.SelectorFromSet(svc.Spec.Selector), fields: fields.Everything()}
	res, err := s.a.listObjects(ctx, s.a.resourceFor("", "v1", "pods"), svc.Namespace, sel, 0, "", "", "")
	if err != nil {
		return nil, err
	}
	pods := make([]*corev1.Pod, 0, len(res.items))
	for _, obj := range res.items {
		pods = append(pods, obj.(*corev1.Pod))
	}
	return endpointSlices(svc, pods), nil
}

// endpointSlices is what the EndpointSlice controller makes of a Service's
// selected pods: an endpoint per pod that has an IP and has not finished,
// in one slice per distinct set of ports (every Service port whose target
// port the pod has). An endpoint is ready when its pod is Ready and not
// terminating, or always when the Service publishes not-ready addresses.
// Pure.
func endpointSlices(svc *corev1.Service, pods []*corev1.Pod) []discoveryv1.EndpointSlice {
	var out []discoveryv1.EndpointSlice
	byPorts := map[string]int{} // the ports' key → index in out
	for _, pod := range pods {
		ip := net.ParseIP(pod.Status.PodIP)
		if ip == nil || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			continue
		}
		var ports []discoveryv1.EndpointPort
		key := ""
		for i := range svc.Spec.Ports {
			sp := &svc.Spec.Ports[i]
			n, err := findPort(pod, sp)
			if err != nil {
				continue
			}
			ports = append(ports, discoveryv1.EndpointPort{Name: ptr.To(sp.Name), Port: ptr.To(int32(n)),
				Protocol: ptr.To(protocolOrTCP(sp.Protocol)), AppProtocol: sp.AppProtocol})
			key += fmt.Sprintf("%s/%d/%s,", sp.Name, n, protocolOrTCP(sp.Protocol))
		}
		if len(ports) == 0 {
			continue
		}
		family := discoveryv1.AddressTypeIPv4
		if ip.To4() == nil {
			family = discoveryv1.AddressTypeIPv6
		}
		key = string(family) + ":" + key
		terminating := pod.DeletionTimestamp != nil
		ready := svc.Spec.PublishNotReadyAddresses || (podIsReady(pod) && !terminating)
		ep := discoveryv1.Endpoint{
			Addresses: []string{pod.Status.PodIP},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready), Serving: ptr.To(podIsReady(pod)),
				Terminating: ptr.To(terminating)},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
			NodeName:  ptr.To(pod.Spec.NodeName),
		}
		i, ok := byPorts[key]
		if !ok {
			i = len(out)
			byPorts[key] = i
			out = append(out, discoveryv1.EndpointSlice{
				ObjectMeta:  metav1.ObjectMeta{Namespace: svc.Namespace, Labels: map[string]string{discoveryv1.LabelServiceName: svc.Name}},
				AddressType: family, Ports: ports,
			})
		}
		out[i].Endpoints = append(out[i].Endpoints, ep)
	}
	return out
}

// findPort resolves a Service port's target port on a pod, as Kubernetes'
// podutil.FindPort: a number as it is (0 is the Service port), a name as
// the container port of that name and protocol (regular containers and
// sidecars).
func findPort(pod *corev1.Pod, sp *corev1.ServicePort) (int, error) {
	tp := sp.TargetPort
	if tp.Type == intstr.Int {
		if tp.IntVal == 0 {
			return int(sp.Port), nil
		}
		return int(tp.IntVal), nil
	}
	containers := pod.Spec.Containers
	for _, c := range pod.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			containers = append(containers[:len(containers):len(containers)], c)
		}
	}
	for _, c := range containers {
		for _, p := range c.Ports {
			if p.Name == tp.StrVal && protocolOrTCP(p.Protocol) == protocolOrTCP(sp.Protocol) {
				return int(p.ContainerPort), nil
			}
		}
	}
	return 0, fmt.Errorf("no container port named %q in pod %s", tp.StrVal, pod.Name)
}

func protocolOrTCP(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

// podIsReady reports the pod's Ready condition.
func podIsReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
