package proxy

import (
	"fmt"
	"os"
	"strings"
)

// bridgeNFCallIPTables makes bridged IPv4 packets pass the ip family's
// netfilter hooks. A reply from a backend to a client pod on the same
// bridge is bridged, never routed; without this its conntrack entry is
// never seen and it is not translated back from the endpoint's address
// to the Service's, so the client drops it. It is per network namespace.
const bridgeNFCallIPTables = "/proc/sys/net/bridge/bridge-nf-call-iptables"

// ensureBridgeNetfilter turns bridge-nf-call-iptables on in the calling
// process's network namespace (kubeadm requires it; k3s sets it).
func ensureBridgeNetfilter() error {
	b, err := os.ReadFile(bridgeNFCallIPTables)
	if os.IsNotExist(err) {
		return fmt.Errorf("service proxy: %s is missing: the kernel's br_netfilter module is not loaded (modprobe br_netfilter; hack/setup.sh does it)", bridgeNFCallIPTables)
	}
	if err != nil {
		return fmt.Errorf("service proxy: read %s: %w", bridgeNFCallIPTables, err)
	}
	if strings.TrimSpace(string(b)) == "1" {
		return nil
	}
	if err := os.WriteFile(bridgeNFCallIPTables, []byte("1"), 0o644); err != nil {
		return fmt.Errorf("service proxy: turn on %s: %w", bridgeNFCallIPTables, err)
	}
	return nil
}
