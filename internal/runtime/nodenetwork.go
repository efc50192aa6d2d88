package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/peapod/peapod/internal/config"
	"github.com/peapod/peapod/internal/network"
)

// DefaultStandalonePodCIDR is the pod range of a node runtime run without
// a server (`peapod pod run`) on a data dir that never had one.
const DefaultStandalonePodCIDR = network.DefaultPodCIDR

// NodeNetwork is the pod network a node's runtime last set up, recorded in
// the data dir (config.Paths.NodeNetwork): a node of a cluster learns its
// range from the server, and the commands that run the runtime without one
// (`peapod pod run`, `peapod reset`) must find the same range.
type NodeNetwork struct {
	PodCIDR     string `json:"podCIDR"`
	ClusterCIDR string `json:"clusterCIDR"`
	MTU         int    `json:"mtu,omitempty"`
}

// LoadNodeNetwork returns the recorded pod network; found is false when
// the node's runtime never ran on this data dir.
func LoadNodeNetwork(paths config.Paths) (nn NodeNetwork, found bool, err error) {
	err = readJSON(paths.NodeNetwork(), &nn)
	if errors.Is(err, os.ErrNotExist) {
		return NodeNetwork{}, false, nil
	}
	if err != nil {
		return NodeNetwork{}, false, fmt.Errorf("read the node's pod network record: %w", err)
	}
	return nn, true, nil
}

// StandaloneNetwork fills in cfg's pod network for a command that runs the
// node runtime without a server: --pod-cidr if given (with the recorded
// cluster range and MTU when it is the recorded range), else the recorded
// network, else DefaultStandalonePodCIDR.
func StandaloneNetwork(cfg config.Node) (config.Node, error) {
	rec, found, err := LoadNodeNetwork(cfg.Paths())
	if err != nil {
		return cfg, err
	}
	switch {
	case found && (cfg.PodCIDR == "" || cfg.PodCIDR == rec.PodCIDR):
		cfg.PodCIDR, cfg.ClusterCIDR, cfg.MTU = rec.PodCIDR, rec.ClusterCIDR, rec.MTU
	case cfg.PodCIDR == "":
		cfg.PodCIDR = DefaultStandalonePodCIDR
	}
	return cfg, nil
}

// recordNodeNetwork records the network the runtime was set up with. When
// it replaces another range, what the node set up for that one (the
// bridge's gateway address, the masquerade jump) goes first, or pods on
// the new range could not start.
func recordNodeNetwork(ctx context.Context, paths config.Paths, podNet *network.Manager, now NodeNetwork, log *slog.Logger) error {
	old, found, err := LoadNodeNetwork(paths)
	if err != nil {
		log.Warn("the node's pod network record is unreadable; writing it anew", "err", err)
		found = false
	}
	if found && old == now {
		return nil
	}
	if found && (old.PodCIDR != now.PodCIDR || old.ClusterCIDR != now.ClusterCIDR) {
		log.Warn("this node's pod range changed; removing the old range's gateway address and masquerade rules",
			"old", old.PodCIDR, "new", now.PodCIDR, "oldCluster", old.ClusterCIDR, "cluster", now.ClusterCIDR)
		if err := podNet.RemoveStaleRange(ctx, old.PodCIDR, old.ClusterCIDR); err != nil {
			return fmt.Errorf("remove the node's old pod range %s: %w", old.PodCIDR, err)
		}
	}
	return writeJSON(paths.NodeNetwork(), now)
}
