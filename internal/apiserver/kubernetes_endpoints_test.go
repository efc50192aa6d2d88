//lint:file-ignore SA1019 the kubernetes Service's core/v1 Endpoints are kept beside its EndpointSlice, as kube-apiserver's lease reconciler keeps them, for the clients that still read them
package apiserver

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestAdvertisedEndpoint(t *testing.T) {
	for _, tc := range []struct {
		advertise, listen string
		wantIP            string
		wantErr           string
	}{
		{"", "192.0.2.7:6443", "192.0.2.7", ""},
		{"198.51.100.4", "0.0.0.0:6443", "198.51.100.4", ""},
		{"", "127.0.0.1:6443", "default-route", ""},
		{"", "0.0.0.0:6443", "default-route", ""},
		{"127.0.0.1", "0.0.0.0:6443", "", "--advertise-address"},
		{"169.254.1.1", "0.0.0.0:6443", "", "--advertise-address"},
		{"nonsense", "0.0.0.0:6443", "", "--advertise-address"},
		{"", "nonsense", "", "listen address"},
	} {
		got, err := advertisedEndpoint(tc.advertise, tc.listen)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("advertisedEndpoint(%q, %q) err = %v, want one naming %s", tc.advertise, tc.listen, err, tc.wantErr)
			}
			continue
		}
		want := tc.wantIP
		if want == "default-route" {
			want = ""
			if ip := defaultRouteIPv4(); ip != nil {
				want = ip.String()
			}
		}
		if err != nil || got.ip != want || got.port != 6443 {
			t.Errorf("advertisedEndpoint(%q, %q) = %+v, %v; want %s:6443", tc.advertise, tc.listen, got, err, want)
		}
	}
}

func TestValidateEndpoints(t *testing.T) {
	node := "node-1"
	ok := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "db"}, Subsets: []corev1.EndpointSubset{{
		Addresses:         []corev1.EndpointAddress{{IP: "10.42.0.5", Hostname: "db-0", NodeName: &node}},
		NotReadyAddresses: []corev1.EndpointAddress{{IP: "10.42.0.6"}},
		Ports:             []corev1.EndpointPort{{Name: "sql", Port: 5432, Protocol: corev1.ProtocolTCP}, {Name: "metrics", Port: 9100, Protocol: corev1.ProtocolTCP}},
	}}}
	if errs := ValidateEndpoints(ok); len(errs) != 0 {
		t.Fatalf("valid Endpoints refused: %v", errs)
	}
	bad := ok.DeepCopy()
	bad.Subsets[0].Addresses[0].IP = "127.0.0.1"
	bad.Subsets[0].NotReadyAddresses[0].IP = "no"
	bad.Subsets[0].Ports[1].Name = ""
	bad.Subsets[0].Ports[0].Port = 0
	bad.Subsets[0].Ports[0].Protocol = "ICMP"
	bad.Subsets = append(bad.Subsets, corev1.EndpointSubset{})
	got := ValidateEndpoints(bad).ToAggregate().Error()
	for _, want := range []string{
		"subsets[0].addresses[0].ip: Invalid value: \"127.0.0.1\": may not be in the loopback range",
		"subsets[0].notReadyAddresses[0].ip: Invalid value: \"no\": must be a valid IP address",
		"subsets[0].ports[1].name: Required value",
		"subsets[0].ports[0].port: Invalid value: 0",
		"subsets[0].ports[0].protocol: Unsupported value: \"ICMP\"",
		"subsets[1]: Required value: must specify `addresses` or `notReadyAddresses`",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("errors lack %q:\n%s", want, got)
		}
	}
}

func TestFormatEndpoints(t *testing.T) {
	e := &corev1.Endpoints{Subsets: []corev1.EndpointSubset{{
		Addresses: []corev1.EndpointAddress{{IP: "10.0.0.1"}, {IP: "10.0.0.2"}, {IP: "10.0.0.3"}},
		Ports:     []corev1.EndpointPort{{Port: 80}, {Port: 443}},
	}}}
	if got := formatEndpoints(e); got != "10.0.0.1:80,10.0.0.1:443,10.0.0.2:80 + 3 more..." {
		t.Errorf("formatEndpoints = %q", got)
	}
	if got := formatEndpoints(&corev1.Endpoints{}); got != "<none>" {
		t.Errorf("empty = %q", got)
	}
}
