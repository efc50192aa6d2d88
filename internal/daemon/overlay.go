package daemon

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/peapod/peapod/internal/nodenet"
)

// setUpOverlay sets up this node's share of the pod network between nodes
// (step 4 of runNode) for the cluster's backend: the VXLAN device (vxlan)
// or the underlay link (host-gw), IPv4 forwarding and the forward rules
// for the cluster range; it sets pn.mtu to what the pods' interfaces must
// use (the underlay's, less VXLAN's 50 bytes) and publishes the node's
// network annotations, before any pod of the node runs. The caller runs
// nodenet.Run on the returned network and closes it.
//
// The node's namespace holds one node's overlay: the device is
// nodenet.DefaultDevice (peapod.1) on VXLAN's port, as flannel.1 is, and
// the routes to peers are every route of nodenet's protocol. Nodes sharing
// a machine run in namespaces of their own (`peapod cluster`).
func setUpOverlay(ctx context.Context, d nodeDeps, pn *podNetwork, log *slog.Logger) (*nodenet.Network, error) {
	backend, err := nodenet.ParseBackend(pn.settings.Backend)
	if err != nil {
		return nil, fmt.Errorf("the cluster's network settings: %w", err)
	}
	overlay, err := nodenet.New(nodenet.Config{
		Backend:     backend,
		NodeName:    d.node.NodeName,
		NodeIP:      pn.addr.IP.String(),
		PodCIDR:     pn.podCIDR.String(),
		ClusterCIDR: pn.settings.ClusterCIDR,
		StateDir:    d.node.Paths().NodeNet(),
	}, log)
	if err != nil {
		return nil, fmt.Errorf("the pod network between nodes: %w", err)
	}
	local, err := overlay.Setup(ctx)
	if err != nil {
		overlay.Close()
		return nil, fmt.Errorf("set up the pod network between nodes (%s): %w", backend, err)
	}
	if local.MTU > 0 {
		pn.mtu = local.MTU
	}
	if err := nodenet.Publish(ctx, d.client, overlay); err != nil {
		overlay.Close()
		return nil, err
	}
	return overlay, nil
}
