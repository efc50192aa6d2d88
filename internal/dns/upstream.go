package dns

import (
	"fmt"
	"net/netip"
	"os"

	"github.com/peapod/peapod/internal/runtime/podfiles"
)

// HostUpstreams returns the node's resolvers as IP:53, read from
// podfiles.NodeResolvConfPath (systemd-resolved's upstream list when the
// node runs it, so its 127.0.0.53 stub is not one of them), leaving out
// self, the cluster DNS's own address: forwarding there would loop. It
// also returns the file it read.
func HostUpstreams(self netip.AddrPort) ([]string, string, error) {
	path := podfiles.NodeResolvConfPath()
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, path, fmt.Errorf("read the node's resolvers: %w", err)
	}
	return upstreamsFrom(data, self), path, nil
}

// upstreamsFrom is HostUpstreams' pure part.
func upstreamsFrom(resolvConf []byte, self netip.AddrPort) []string {
	var out []string
	for _, s := range podfiles.Nameservers(resolvConf) {
		a, err := netip.ParseAddr(s)
		if err != nil {
			continue
		}
		ap := netip.AddrPortFrom(a.Unmap(), 53)
		if ap == self {
			continue
		}
		out = append(out, ap.String())
	}
	return out
}
