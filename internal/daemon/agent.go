package daemon

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/peapod/peapod/internal/apiserver"
	"github.com/peapod/peapod/internal/config"
	"github.com/peapod/peapod/internal/nodeaddr"
)

// AgentConfig configures `peapod agent`.
type AgentConfig struct {
	// Server is the API server's URL.
	Server string
	// Token is a join token; it may be empty once the node has joined.
	Token  string
	Node   config.Node
	Logger *slog.Logger
}

// RunAgent joins the server (or reuses the credentials of an earlier
// join) and runs this machine's node until ctx ends.
func RunAgent(ctx context.Context, cfg AgentConfig) error {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	// Before the join: a bad --node-ip leaves nothing behind.
	if _, err := nodeaddr.Resolve(cfg.Node.NodeIP); err != nil {
		return err
	}
	credDir := cfg.Node.Paths().NodeCredentials()
	kubeconfig, err := apiserver.JoinNode(ctx, cfg.Server, nil, cfg.Token, cfg.Node.NodeName, credDir)
	if err != nil {
		return fmt.Errorf("join %s: %w", cfg.Server, err)
	}
	client, _, err := clientFor(kubeconfig)
	if err != nil {
		return err
	}
	log.Info("joined", "server", cfg.Server, "node", cfg.Node.NodeName)
	return runNode(ctx, nodeDeps{client: client, node: cfg.Node, log: log, credDir: credDir})
}
