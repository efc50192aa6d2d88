package nodenet

import (
	"context"
	"errors"
)

// Teardown removes everything Setup and Sync programmed in the node's
// namespace: the VXLAN device (and with it its FDB entries, neighbours and
// the routes through it), every route with RouteProtocol (host-gw's), the
// forward rules, and the records of the config and peers. The VTEP MAC
// record stays, so a node set up again with the same state dir keeps its
// MAC. For `peapod reset` and cluster teardown. Idempotent: what is already
// gone is success. It goes on past failures and returns them joined.
func (n *Network) Teardown(ctx context.Context) error {
	if err := n.lock(); err != nil {
		return err
	}
	defer n.mu.Unlock()
	var errs []error
	errs = append(errs, n.removeDevice())
	_, routeErrs := n.reconcileRoutes(ctx, nil)
	errs = append(errs, routeErrs...)
	errs = append(errs, n.removeForwarding(ctx))
	errs = append(errs, removeRecord(n.s.StateDir, peersFile), removeRecord(n.s.StateDir, configFile))
	n.local, n.lastPeers = nil, nil
	if err := errors.Join(errs...); err != nil {
		return err
	}
	n.log.Info("pod network between nodes torn down", "device", n.s.Device)
	return nil
}
