package main

import (
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/peapod/peapod/internal/config"
	"github.com/peapod/peapod/internal/nodenet"
)

func newNetCommand() *cobra.Command {
	dataDir := config.DefaultDataDir
	var output string
	cmd := &cobra.Command{
		Use:   "net",
		Short: "Show this node's pod network between nodes: backend, device and, per peer, node IP, podCIDR, VTEP MAC and route",
		Long: `net shows this node's share of the pod network between nodes as the
kernel has it: the backend (vxlan, host-gw or none), this node's podCIDR
and node IP, the VXLAN device (MTU, MAC, local address, parent link),
whether FORWARD accepts the cluster range, and per peer node its node IP,
podCIDR, VTEP MAC, the route to its pods and (vxlan) whether its FDB and
neighbour entries are in place. Peer names are those of the agent's last
reconciliation, recorded in <data-dir>/nodenet; everything else is read
from the kernel of the network namespace net runs in. It needs no API
access and changes nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("--output %q: want table or json", output)
			}
			stateDir := config.PathsFor(dataDir).NodeNet()
			n, err := nodenet.Load(stateDir, "", slog.Default())
			if nodenet.IsNotConfigured(err) {
				fmt.Fprintf(cmd.OutOrStdout(), "no pod network between nodes is set up on this node (nothing recorded in %s)\n", stateDir)
				return nil
			}
			if err != nil {
				return err
			}
			defer n.Close()
			st, err := n.Status(cmd.Context())
			if err != nil {
				return err
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			return nodenet.Render(cmd.OutOrStdout(), st)
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", dataDir, "directory holding all of peapod's state")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}
