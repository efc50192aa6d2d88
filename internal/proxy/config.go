package proxy

import (
	"fmt"
	"log/slog"
	"net/netip"
	"time"
)

// DefaultTable is the nftables table (family ip) the proxy owns.
const DefaultTable = "peapod"

// Config configures a Proxier.
type Config struct {
	// NodeName is this node's name: endpoints whose nodeName it is are
	// local (internal/externalTrafficPolicy Local). Required.
	NodeName string
	// ClusterCIDR is the whole pod network. Traffic from it is pods';
	// traffic to a ClusterIP from outside it (the node, a routed client)
	// is masqueraded, and pods reaching an externalTrafficPolicy Local
	// NodePort are served by every endpoint. Empty: no pod-traffic
	// detection (as kube-proxy without a cluster CIDR).
	ClusterCIDR string
	// Table is the nftables table; default DefaultTable.
	Table string
	// FullSyncPeriod is how often the whole table is rewritten even
	// without changes, repairing edits by others; default 1h.
	FullSyncPeriod time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() (Config, error) {
	if c.NodeName == "" {
		return c, fmt.Errorf("service proxy: NodeName is required")
	}
	if c.ClusterCIDR != "" {
		p, err := netip.ParsePrefix(c.ClusterCIDR)
		if err != nil || !p.Addr().Is4() || p.Masked() != p {
			return c, fmt.Errorf("service proxy: cluster CIDR %q: want an IPv4 network such as 10.42.0.0/16", c.ClusterCIDR)
		}
	}
	if c.Table == "" {
		c.Table = DefaultTable
	}
	if c.FullSyncPeriod <= 0 {
		c.FullSyncPeriod = time.Hour
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}
