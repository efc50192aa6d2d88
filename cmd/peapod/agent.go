package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/peapod/peapod/internal/daemon"
)

// defaultAgentGCPercent is `peapod agent`'s GOGC. The agent's live heap is
// small (about 5 MiB with 10 pods: informer caches, pod state, the
// packages' init data), and Go's default of 100 lets the heap grow to
// twice that between collections; at 25 it stays within a quarter above
// it, for a collection every ~1.5 MiB allocated, which the agent's
// allocation rate makes rare.
const defaultAgentGCPercent = 25

func newAgentCommand() *cobra.Command {
	var flags nodeFlags
	var servers []string
	var token string
	var gcPercent int
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
			gc, err := agentGCPercent(gcPercent, cmd.Flags().Changed("gc-percent"), os.Getenv("GOGC"))
			if err != nil {
				return err
			}
			return daemon.RunAgent(cmd.Context(), daemon.AgentConfig{Servers: servers, Token: token, Node: node, GCPercent: gc, Logger: slog.Default()})
		},
	}
	flags.register(cmd.Flags())
	flags.registerNodeIP(cmd.Flags())
	cmd.Flags().StringSliceVar(&servers, "server", nil, "URL of the peapod server's API; for a cluster of several servers, each of them (repeat the flag or separate URLs with commas): the node fails over between them")
	cmd.Flags().StringVar(&token, "token", "", "join token from 'peapod token create' (not needed once joined)")
	cmd.Flags().IntVar(&gcPercent, "gc-percent", defaultAgentGCPercent, "how far the agent's heap may grow above its live data before Go collects it, in percent (Go's GOGC; the GOGC variable, when set, wins over the default): lower keeps less memory for more frequent collections")
	return cmd
}

// agentGCPercent is the GOGC the agent sets: the flag's value when given,
// else none (0) when the GOGC variable already set one, else the default.
// It is pure.
func agentGCPercent(flag int, given bool, env string) (int, error) {
	if given && flag < 1 {
		return 0, fmt.Errorf("--gc-percent %d: want at least 1 (to turn collection off, use GOGC=off with GOMEMLIMIT)", flag)
	}
	if !given && env != "" {
		return 0, nil
	}
	return flag, nil
}
