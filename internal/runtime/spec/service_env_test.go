package spec

import (
	"reflect"
	"sort"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func service(ns, name, ip string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{ClusterIP: ip, Ports: ports}}
}

func TestServiceEnv(t *testing.T) {
	services := []*corev1.Service{
		service("default", "kubernetes", "10.96.0.1", corev1.ServicePort{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP}),
		service("shop", "redis-primary", "10.96.0.20",
			corev1.ServicePort{Name: "redis", Port: 6379, Protocol: corev1.ProtocolTCP},
			corev1.ServicePort{Name: "stats-udp", Port: 9000, Protocol: corev1.ProtocolUDP}),
		service("shop", "headless", corev1.ClusterIPNone, corev1.ServicePort{Port: 80}),
		service("other", "web", "10.96.0.30", corev1.ServicePort{Port: 80, Protocol: corev1.ProtocolTCP}),
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "p"}}
	got := ServiceEnv(pod, services)
	want := map[string]string{
		"KUBERNETES_SERVICE_HOST":       "10.96.0.1",
		"KUBERNETES_SERVICE_PORT":       "443",
		"KUBERNETES_SERVICE_PORT_HTTPS": "443",
		"KUBERNETES_PORT":               "tcp://10.96.0.1:443",
		"KUBERNETES_PORT_443_TCP":       "tcp://10.96.0.1:443",
		"KUBERNETES_PORT_443_TCP_PROTO": "tcp",
		"KUBERNETES_PORT_443_TCP_PORT":  "443",
		"KUBERNETES_PORT_443_TCP_ADDR":  "10.96.0.1",

		"REDIS_PRIMARY_SERVICE_HOST":           "10.96.0.20",
		"REDIS_PRIMARY_SERVICE_PORT":           "6379",
		"REDIS_PRIMARY_SERVICE_PORT_REDIS":     "6379",
		"REDIS_PRIMARY_SERVICE_PORT_STATS_UDP": "9000",
		"REDIS_PRIMARY_PORT":                   "tcp://10.96.0.20:6379",
		"REDIS_PRIMARY_PORT_6379_TCP":          "tcp://10.96.0.20:6379",
		"REDIS_PRIMARY_PORT_6379_TCP_PROTO":    "tcp",
		"REDIS_PRIMARY_PORT_6379_TCP_PORT":     "6379",
		"REDIS_PRIMARY_PORT_6379_TCP_ADDR":     "10.96.0.20",
		"REDIS_PRIMARY_PORT_9000_UDP":          "udp://10.96.0.20:9000",
		"REDIS_PRIMARY_PORT_9000_UDP_PROTO":    "udp",
		"REDIS_PRIMARY_PORT_9000_UDP_PORT":     "9000",
		"REDIS_PRIMARY_PORT_9000_UDP_ADDR":     "10.96.0.20",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ServiceEnv =\n%v\nwant\n%v", got, want)
	}
	off := false
	pod.Spec.EnableServiceLinks = &off
	got = ServiceEnv(pod, services)
	var keys []string
	for k := range got {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) != 8 || got["KUBERNETES_SERVICE_HOST"] != "10.96.0.1" || got["REDIS_PRIMARY_SERVICE_HOST"] != "" {
		t.Errorf("enableServiceLinks=false: %v; want only the kubernetes Service's", keys)
	}
}

func TestEnvWithServiceVariables(t *testing.T) {
	in := testInput()
	in.ServiceEnv = map[string]string{"WEB_SERVICE_HOST": "10.96.0.5", "WEB_SERVICE_PORT": "80", "MINE": "svc"}
	in.Container.Env = []corev1.EnvVar{{Name: "URL", Value: "http://$(WEB_SERVICE_HOST):$(WEB_SERVICE_PORT)"}, {Name: "MINE", Value: "own"}}
	in.Container.Args = []string{"$(WEB_SERVICE_HOST)"}
	got, err := Env(in)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"PATH=/bin", "HOSTNAME=web", "IMG=1", "URL=http://10.96.0.5:80", "MINE=own", "WEB_SERVICE_HOST=10.96.0.5", "WEB_SERVICE_PORT=80"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Env = %q\nwant %q", got, want)
	}
	s, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	if args := s.Process.Args; args[len(args)-1] != "10.96.0.5" {
		t.Errorf("args %q: $(WEB_SERVICE_HOST) not expanded", args)
	}
}
