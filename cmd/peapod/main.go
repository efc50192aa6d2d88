// Command peapod runs Kubernetes pods for real: `peapod server` is a
// single-node cluster, `peapod agent` a node joining one, and the other
// subcommands inspect and manage the node. This file only wires commands;
// the work is done in internal/.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	// Before kubectl's packages: no message catalog outside `peapod kubectl`.
	_ "github.com/peapod/peapod/internal/kubectl/translations"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCommand().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "peapod:", err)
		os.Exit(1)
	}
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "peapod",
		Short:         "Kubernetes pods and pod networking, for real",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	var verbose bool
	root.PersistentFlags().BoolVarP(&verbose, "verbose", "v", false, "log debug detail")
	root.PersistentPreRun = func(*cobra.Command, []string) {
		level := slog.LevelInfo
		if verbose {
			level = slog.LevelDebug
		}
		slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
	}
	root.AddCommand(
		newServerCommand(),
		newAgentCommand(),
		newClusterCommand(),
		newTokenCommand(),
		newPSCommand(),
		newNetCommand(),
		newKubectlCommand(),
		newResetCommand(),
		newImageCommand(),
		newPodCommand(),
		newVersionCommand(),
	)
	return root
}
