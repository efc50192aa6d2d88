package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/peapod/peapod/internal/nodenet"
	"github.com/peapod/peapod/internal/proxy"
	"github.com/peapod/peapod/internal/runtime"
)

func newResetCommand() *cobra.Command {
	var flags nodeFlags
	cmd := &cobra.Command{
		Use:   "reset",
		Short: "Remove every pod sandbox of this node, the node's pod network (bridge, masquerade rules) and the service proxy's table",
		Long: `reset takes this node apart: every sandbox in the data dir is torn down
(containers killed, network released, mounts, cgroups and netns removed),
then the bridge and the masquerade rules peapod installed, the pod
network between nodes (the VXLAN device, routes to peers, forward rules;
the VTEP MAC record stays), and the service proxy's nftables table (ip
peapod) with the conntrack entries of the connections it translated.
Stop peapod first. The data dir's images and credentials stay.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := flags.standaloneNode()
			if err != nil {
				return err
			}
			rt, err := runtime.New(cmd.Context(), cfg, slog.Default())
			if err != nil {
				return err
			}
			// Every sandbox directory, even one whose record is gone: what
			// its ID names (netns, cgroups, mounts) is swept all the same.
			ids, err := rt.SandboxIDs()
			if err != nil {
				return err
			}
			errs := []error{rt.RemoveWarmSandboxes(cmd.Context())}
			for _, id := range ids {
				if err := rt.RemovePodSandbox(cmd.Context(), id, 0); err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "removed sandbox %s\n", shortID(id))
			}
			if errors.Join(errs...) == nil {
				errs = append(errs, rt.Network().RemoveNodeNetwork(cmd.Context()))
			}
			errs = append(errs, resetNodeNet(cmd.Context(), cfg.Paths().NodeNet()))
			// The service proxy's table, and the conntrack entries of
			// the connections it translated.
			errs = append(errs, proxy.Cleanup(cmd.Context(), proxy.DefaultTable))
			return errors.Join(errs...)
		},
	}
	flags.register(cmd.Flags())
	return cmd
}

// resetNodeNet tears down the pod network between nodes that Setup
// recorded in stateDir, if any.
func resetNodeNet(ctx context.Context, stateDir string) error {
	n, err := nodenet.Load(stateDir, "", slog.Default())
	if nodenet.IsNotConfigured(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer n.Close()
	return n.Teardown(ctx)
}
