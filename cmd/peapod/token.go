package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/peapod/peapod/internal/apiserver"
	"github.com/peapod/peapod/internal/config"
)

func newTokenCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Manage join tokens for nodes"}
	var dataDir, kubeconfig string
	var ttl time.Duration
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a join token: `peapod agent --server URL --token TOKEN` joins a node with it",
		Long: `create makes a bootstrap token (stored as a Secret in kube-system, valid
for --ttl) and prints it prefixed with the hash of the cluster CA, so a
joining node can verify the server it talks to before trusting it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if kubeconfig == "" {
				kubeconfig = config.PathsFor(dataDir).AdminKubeconfig()
			}
			token, err := apiserver.CreateJoinTokenFromKubeconfig(cmd.Context(), kubeconfig, ttl)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), token)
			return nil
		},
	}
	create.Flags().StringVar(&dataDir, "data-dir", config.DefaultDataDir, "the server's data dir (for its admin kubeconfig)")
	create.Flags().StringVar(&kubeconfig, "kubeconfig", "", "admin kubeconfig (default <data-dir>/admin.kubeconfig)")
	create.Flags().DurationVar(&ttl, "ttl", 24*time.Hour, "how long the token can be used to join")
	cmd.AddCommand(create)
	return cmd
}
