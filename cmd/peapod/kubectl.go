package main

import (
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/peapod/peapod/internal/config"
	"github.com/peapod/peapod/internal/kubectl"
)

// newKubectlCommand embeds kubectl, pointed at this machine's server by
// default, so a user without kubectl has one. Everything after `kubectl`
// is kubectl's (`peapod kubectl get pods -o wide`) except --data-dir,
// which names the peapod data dir whose admin.kubeconfig to use, as for
// every other node command.
func newKubectlCommand() *cobra.Command {
	return &cobra.Command{
		Use:                "kubectl [--data-dir DIR] [kubectl arguments]",
		Short:              "Run kubectl against this machine's peapod server (<data-dir>/admin.kubeconfig)",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			dataDir, args := kubectlDataDir(args, os.Getenv("PEAPOD_DATA_DIR"))
			if code := kubectl.Main(args, config.PathsFor(dataDir).AdminKubeconfig()); code != 0 {
				os.Exit(code)
			}
			return nil
		},
	}
}

// kubectlDataDir takes --data-dir DIR or --data-dir=DIR out of kubectl's
// arguments (kubectl has no flag of that name, so it is ours wherever it
// stands; after a bare "--" everything is kubectl's). Without it the data
// dir is env (PEAPOD_DATA_DIR), else the default. Pure.
func kubectlDataDir(args []string, env string) (string, []string) {
	dataDir := config.DefaultDataDir
	if env != "" {
		dataDir = env
	}
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return dataDir, append(out, args[i:]...)
		case a == "--data-dir" && i+1 < len(args):
			dataDir = args[i+1]
			i++
		case strings.HasPrefix(a, "--data-dir="):
			dataDir = strings.TrimPrefix(a, "--data-dir=")
		default:
			out = append(out, a)
		}
	}
	return dataDir, out
}
