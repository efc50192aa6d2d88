package daemon

import (
	"strings"
	"testing"

	"github.com/peapod/peapod/internal/config"
	"github.com/peapod/peapod/internal/dns"
)

func TestDNSAddress(t *testing.T) {
	// A routable --listen address is where pods reach the server.
	if a, err := dnsAddress("", "192.0.2.7:6443"); err != nil || a.String() != "192.0.2.7" {
		t.Errorf("dnsAddress(192.0.2.7:6443) = %v, %v", a, err)
	}
	// Loopback and the wildcard are not: the default route's address is.
	for _, listen := range []string{"127.0.0.1:6443", "0.0.0.0:6443"} {
		a, err := dnsAddress("", listen)
		if err != nil {
			if !strings.Contains(err.Error(), "no address for pods to reach it at") {
				t.Errorf("dnsAddress(%s): %v", listen, err)
			}
			continue
		}
		if a.IsLoopback() || a.IsUnspecified() || !a.Is4() {
			t.Errorf("dnsAddress(%s) = %s, not an address pods reach", listen, a)
		}
	}
	if _, err := dnsAddress("", "nonsense"); err == nil || !strings.Contains(err.Error(), `--listen "nonsense"`) {
		t.Errorf("dnsAddress(nonsense) = %v", err)
	}
	if a, err := dnsAddress("192.0.2.9", "0.0.0.0:6443"); err != nil || a.String() != "192.0.2.9" {
		t.Errorf("dnsAddress(advertise 192.0.2.9) = %v, %v", a, err)
	}
	if _, err := dnsAddress("127.0.0.1", "0.0.0.0:6443"); err == nil || !strings.Contains(err.Error(), "--advertise-address") {
		t.Errorf("dnsAddress(advertise loopback) = %v, want an error naming --advertise-address", err)
	}
}

func TestWithClusterDNS(t *testing.T) {
	s, err := dns.Settings{ClusterDomain: "corp.example"}.Complete("10.43.0.0/16")
	if err != nil {
		t.Fatal(err)
	}
	n := withClusterDNS(config.Defaults(), s.Node())
	if len(n.ClusterDNS) != 1 || n.ClusterDNS[0] != "10.43.0.10" || n.Domain() != "corp.example" {
		t.Errorf("node DNS: %v %q", n.ClusterDNS, n.Domain())
	}
	if d := config.Defaults().Domain(); d != "cluster.local" {
		t.Errorf("default domain %q", d)
	}
	bad := config.Defaults()
	bad.NodeName, bad.ClusterDNS = "n", []string{"not-an-ip"}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), `cluster DNS "not-an-ip"`) {
		t.Errorf("Validate: %v", err)
	}
}
