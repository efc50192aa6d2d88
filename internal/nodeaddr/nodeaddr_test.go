package nodeaddr

import (
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

// These tests only read the machine's addresses and routes.

func TestResolveDefaultIsAnAddressOfThisMachine(t *testing.T) {
	a, err := Resolve("")
	if err != nil {
		t.Fatal(err)
	}
	if !a.IP.Is4() || a.Link == "" || a.MTU <= 0 {
		t.Fatalf("Resolve(\"\") = %+v", a)
	}
	again, err := Resolve(a.IP.String())
	if err != nil {
		t.Fatalf("the default address %s is not configured here: %v", a.IP, err)
	}
	if again != a {
		t.Errorf("Resolve(%s) = %+v, want %+v", a.IP, again, a)
	}
}

func TestResolveLoopback(t *testing.T) {
	a, err := Resolve("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if a.Link != "lo" || a.MTU != lo.Attrs().MTU {
		t.Errorf("Resolve(127.0.0.1) = %+v, want lo with MTU %d", a, lo.Attrs().MTU)
	}
}

func TestResolveRefusesAddressesNotHere(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"203.0.113.77", "--node-ip 203.0.113.77: no interface of this machine has this address"},
		{"node-1", `--node-ip "node-1": not an IP address`},
		{"10.0.0.1/24", `--node-ip "10.0.0.1/24": not an IP address`},
		{"fd00::1", "--node-ip fd00::1: not IPv4"},
	} {
		if _, err := Resolve(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Resolve(%q) = %v, want %q", tc.in, err, tc.want)
		}
	}
}
