package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/peapod/peapod/internal/config"
	"github.com/peapod/peapod/internal/kubectl"
)

// newKubectlCommand embeds kubectl, pointed at this machine's server by
// default, so a user without kubectl has one. Everything after `kubectl`
// is kubectl's: `peapod kubectl get pods -o wide`.
func newKubectlCommand() *cobra.Command {
	return &cobra.Command{
		Use:                "kubectl [kubectl arguments]",
		Short:              "Run kubectl against this machine's peapod server (<data-dir>/admin.kubeconfig)",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			dataDir := config.DefaultDataDir
			if d := os.Getenv("PEAPOD_DATA_DIR"); d != "" {
				dataDir = d
			}
			if code := kubectl.Main(args, config.PathsFor(dataDir).AdminKubeconfig()); code != 0 {
				os.Exit(code)
			}
			return nil
		},
	}
}
