package endpointutil

import (
	"fmt"
	"reflect"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	corelisters "k8s.io/client-go/listers/core/v1"
)

// ShouldPodBeInEndpoints reports whether pod may be an endpoint at all:
// it has an IP, has not finished (Succeeded or Failed) and, unless
// includeTerminating, is not being deleted. The EndpointSlice controller
// includes terminating pods (with their conditions); the Endpoints
// controller only when the Service publishes not-ready addresses. Pure.
func ShouldPodBeInEndpoints(pod *corev1.Pod, includeTerminating bool) bool {
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return false
	}
	if pod.Status.PodIP == "" && len(pod.Status.PodIPs) == 0 {
		return false
	}
	return includeTerminating || pod.DeletionTimestamp == nil
}

// IsPodReady reports the pod's Ready condition.
func IsPodReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// FindPort resolves a Service port's targetPort on pod, as Kubernetes'
// FindPort: a number is used as it is; a name is the containerPort of that
// name and the Service port's protocol, in the regular containers, then in
// the sidecars (init containers with restartPolicy Always). A name no
// container defines is an error: the pod then serves no endpoint on that
// port. Pure.
func FindPort(pod *corev1.Pod, sp *corev1.ServicePort) (int32, error) {
	tp := sp.TargetPort
	if tp.Type == intstr.Int {
		if tp.IntVal == 0 {
			return sp.Port, nil
		}
		return tp.IntVal, nil
	}
	proto := protocolOrTCP(sp.Protocol)
	for _, c := range pod.Spec.Containers {
		if p, ok := namedPort(c, tp.StrVal, proto); ok {
			return p, nil
		}
	}
	for _, c := range pod.Spec.InitContainers {
		if c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
			continue
		}
		if p, ok := namedPort(c, tp.StrVal, proto); ok {
			return p, nil
		}
	}
	return 0, fmt.Errorf("pod %s/%s has no container port named %q (%s)", pod.Namespace, pod.Name, tp.StrVal, proto)
}

func namedPort(c corev1.Container, name string, proto corev1.Protocol) (int32, bool) {
	for _, p := range c.Ports {
		if p.Name == name && protocolOrTCP(p.Protocol) == proto {
			return p.ContainerPort, true
		}
	}
	return 0, false
}

func protocolOrTCP(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

// ShouldSetHostname reports whether pod's endpoint carries its hostname:
// the pod names one and its subdomain is the Service (same namespace), the
// rule that gives StatefulSet pods their DNS names. Pure.
func ShouldSetHostname(pod *corev1.Pod, svc *corev1.Service) bool {
	return pod.Spec.Hostname != "" && pod.Spec.Subdomain == svc.Name && pod.Namespace == svc.Namespace
}

// IsServiceIPSet reports whether svc has a ClusterIP (not headless, not
// ExternalName).
func IsServiceIPSet(svc *corev1.Service) bool {
	return svc.Spec.ClusterIP != "" && svc.Spec.ClusterIP != corev1.ClusterIPNone
}

// PodIPs returns pod's IPs of one family (IPv4 when v6 is false), from
// status.podIPs, falling back to status.podIP, in canonical form;
// unparsable ones are left out.
func PodIPs(pod *corev1.Pod, v6 bool) []string {
	var ips []string
	for _, ip := range pod.Status.PodIPs {
		ips = append(ips, ip.IP)
	}
	if len(ips) == 0 && pod.Status.PodIP != "" {
		ips = []string{pod.Status.PodIP}
	}
	var out []string
	for _, ip := range ips {
		if a, ok := parseIP(ip); ok && isV6(a) == v6 {
			out = append(out, a)
		}
	}
	return out
}

// PodServiceKeys returns the "namespace/name" keys of the Services in
// services whose selector matches cur and, when old is not nil and its
// labels differ, of those that matched old: the Services whose endpoints
// a change from old to cur may alter. Services without a selector have
// no endpoints made from pods. A key may repeat; the work queue merges
// them.
func PodServiceKeys(services corelisters.ServiceLister, old, cur *corev1.Pod) []string {
	keys := servicesSelecting(services, cur)
	if old != nil && !reflect.DeepEqual(old.Labels, cur.Labels) {
		keys = append(keys, servicesSelecting(services, old)...)
	}
	return keys
}

func servicesSelecting(services corelisters.ServiceLister, pod *corev1.Pod) []string {
	svcs, err := services.Services(pod.Namespace).List(labels.Everything())
	if err != nil {
		return nil
	}
	var keys []string
	for _, s := range svcs {
		if s.Spec.Selector != nil && labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(pod.Labels)) {
			keys = append(keys, s.Namespace+"/"+s.Name)
		}
	}
	return keys
}
