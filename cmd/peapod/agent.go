package main

import (
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/peapod/peapod/internal/daemon"
)

func newAgentCommand() *cobra.Command {
	var flags nodeFlags
	var servers []string
	var token string
	cmd := &cobra.Command{
		Use:   "agent --server URL[,URL...] --token TOKEN",
		Short: "Run this machine as a node of a peapod server elsewhere",
		Long: `agent joins the server with a token from 'peapod token create' (verifying
the server's CA against the hash the token carries), keeps the node
credentials it is given in <data-dir>/node, registers the node, waits for
the server to give it a pod range (its podCIDR, from the server's
--cluster-cidr) and reads the cluster's network settings, then sets up its
pod network and runs the pods the server binds to this node. Given several
servers (of one cluster, on one etcd), it joins through the first that
answers, and when the server it uses dies, every connection of the node
moves to a live one within seconds.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			node, err := flags.node()
			if err != nil {
				return err
			}
			return daemon.RunAgent(cmd.Context(), daemon.AgentConfig{Servers: servers, Token: token, Node: node, Logger: slog.Default()})
		},
	}
	flags.register(cmd.Flags())
	flags.registerNodeIP(cmd.Flags())
	cmd.Flags().StringSliceVar(&servers, "server", nil, "URL of the peapod server's API; for a cluster of several servers, each of them (repeat the flag or separate URLs with commas): the node fails over between them")
	cmd.Flags().StringVar(&token, "token", "", "join token from 'peapod token create' (not needed once joined)")
	return cmd
}
