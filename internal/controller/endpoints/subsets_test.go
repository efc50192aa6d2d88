//lint:file-ignore SA1019 this is the legacy Endpoints controller: core/v1 Endpoints is its whole job, as in kube-controller-manager
package endpoints

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func svcWith(ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", Labels: map[string]string{"team": "a"}},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, ClusterIP: "10.96.0.10", Ports: ports}}
}

func pod(name, ip string, ready bool, portNum int32) *corev1.Pod {
	st := corev1.ConditionTrue
	if !ready {
		st = corev1.ConditionFalse
	}
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("u-" + name), Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}}}
	if portNum != 0 {
		p.Spec.Containers[0].Ports = []corev1.ContainerPort{{Name: "web", ContainerPort: portNum, Protocol: corev1.ProtocolTCP}}
	}
	return p
}

func render(ss []corev1.EndpointSubset) string {
	out := ""
	for _, s := range ss {
		out += "["
		for _, a := range s.Addresses {
			out += a.IP + " "
		}
		out += "| "
		for _, a := range s.NotReadyAddresses {
			out += a.IP + " "
		}
		out += "| "
		for _, p := range s.Ports {
			out += fmt.Sprintf("%s:%d/%s ", p.Name, p.Port, p.Protocol)
		}
		out += "]"
	}
	return out
}

func TestDesiredSubsets(t *testing.T) {
	svc := svcWith(
		corev1.ServicePort{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("web")},
		corev1.ServicePort{Name: "metrics", Port: 9100, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(9100)},
	)
	term := pod("t", "10.0.0.9", true, 8080)
	now := metav1.Now()
	term.DeletionTimestamp = &now
	pods := []*corev1.Pod{
		pod("b", "10.0.0.3", false, 8080),
		pod("a", "10.0.0.2", true, 8080),
		pod("c", "10.0.0.4", true, 0), // no port named web: metrics only
		term,
	}
	got := render(desiredSubsets(svc, pods))
	want := "[10.0.0.2 | 10.0.0.3 | http:8080/TCP metrics:9100/TCP ][10.0.0.4 | | metrics:9100/TCP ]"
	if got != want {
		t.Errorf("subsets\n got %s\nwant %s", got, want)
	}
	svc.Spec.PublishNotReadyAddresses = true
	got = render(desiredSubsets(svc, pods))
	want = "[10.0.0.2 10.0.0.3 10.0.0.9 | | http:8080/TCP metrics:9100/TCP ][10.0.0.4 | | metrics:9100/TCP ]"
	if got != want {
		t.Errorf("publishNotReadyAddresses: subsets\n got %s\nwant %s", got, want)
	}
}

func TestRepackIsCanonical(t *testing.T) {
	p80 := []corev1.EndpointPort{{Name: "a", Port: 80, Protocol: corev1.ProtocolTCP}}
	p81 := []corev1.EndpointPort{{Name: "b", Port: 81, Protocol: corev1.ProtocolTCP}}
	in := []corev1.EndpointSubset{
		{Addresses: []corev1.EndpointAddress{{IP: "10.0.0.2"}}, Ports: p81},
		{NotReadyAddresses: []corev1.EndpointAddress{{IP: "10.0.0.1"}}, Ports: p80},
		{Addresses: []corev1.EndpointAddress{{IP: "10.0.0.1"}}, Ports: p81},
		{Addresses: []corev1.EndpointAddress{{IP: "10.0.0.2"}}, Ports: p80},
	}
	got := render(Repack(in))
	// 10.0.0.1 is ready on one port and not on the other: ready wins.
	want := "[10.0.0.1 10.0.0.2 | | a:80/TCP b:81/TCP ]"
	if got != want {
		t.Errorf("Repack\n got %s\nwant %s", got, want)
	}
	if render(Repack(Repack(in))) != got {
		t.Error("Repack is not idempotent")
	}
}

func TestTruncate(t *testing.T) {
	var addrs []corev1.EndpointAddress
	for i := range 1500 {
		addrs = append(addrs, corev1.EndpointAddress{IP: fmt.Sprintf("10.0.%d.%d", i/250, i%250)})
	}
	out, over := truncate([]corev1.EndpointSubset{{Addresses: addrs[:1000]}, {Addresses: addrs[1000:]}}, MaxAddresses)
	n := 0
	for _, s := range out {
		n += len(s.Addresses)
	}
	if !over || n != MaxAddresses || len(out[0].Addresses) != 666 {
		t.Errorf("truncate: over=%v total=%d first=%d", over, n, len(out[0].Addresses))
	}
	if _, over := truncate(out, MaxAddresses); over {
		t.Error("a full object is not over capacity")
	}
}

func TestDesiredEndpointsLabels(t *testing.T) {
	svc := svcWith()
	e := desiredEndpoints(svc, nil, nil, false)
	if e.Labels["team"] != "a" || e.Labels["endpointslice.kubernetes.io/skip-mirror"] != "true" {
		t.Errorf("labels %v", e.Labels)
	}
	if _, ok := e.Labels[corev1.IsHeadlessService]; ok {
		t.Error("a Service with a ClusterIP is not headless")
	}
	svc.Spec.ClusterIP = corev1.ClusterIPNone
	if _, ok := desiredEndpoints(svc, nil, nil, true).Labels[corev1.IsHeadlessService]; !ok {
		t.Error("headless label missing")
	}
	if desiredEndpoints(svc, nil, nil, true).Annotations[OverCapacityAnnotation] != "truncated" {
		t.Error("over-capacity annotation missing")
	}
}
