package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"

	"github.com/peapod/peapod/internal/apibalancer"
	"github.com/peapod/peapod/internal/apiserver"
	"github.com/peapod/peapod/internal/config"
	"github.com/peapod/peapod/internal/nodeaddr"
)

// AgentConfig configures `peapod agent`.
type AgentConfig struct {
	// Servers are the API servers' URLs, in order of preference (one, or
	// every server of a cluster whose servers share one etcd).
	Servers []string
	// Token is a join token; it may be empty once the node has joined.
	Token string
	Node  config.Node
	// GCPercent, when not 0, is the process's GOGC (debug.SetGCPercent).
	GCPercent int
	Logger    *slog.Logger
}

// RunAgent joins the cluster through the first server that answers (or
// reuses the credentials of an earlier join) and runs this machine's node
// until ctx ends. Every client of the node dials through an API balancer,
// so when the server it uses dies, its requests and watches move to
// another within seconds; the pods keep running meanwhile either way.
func RunAgent(ctx context.Context, cfg AgentConfig) error {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if cfg.GCPercent != 0 {
		debug.SetGCPercent(cfg.GCPercent)
	}
	servers, err := apibalancer.ParseServers(cfg.Servers)
	if err != nil {
		return err
	}
	// Before the join: a bad --node-ip leaves nothing behind.
	if _, err := nodeaddr.Resolve(cfg.Node.NodeIP); err != nil {
		return err
	}
	credDir := cfg.Node.Paths().NodeCredentials()
	kubeconfig, err := apiserver.JoinNodeVia(ctx, servers, nil, cfg.Token, cfg.Node.NodeName, credDir)
	if err != nil {
		return fmt.Errorf("join: %w", err)
	}
	caPEM, err := os.ReadFile(filepath.Join(credDir, apiserver.NodeCAFile))
	if err != nil {
		return fmt.Errorf("read the cluster CA: %w", err)
	}
	balancer, err := apibalancer.New(servers, apibalancer.Options{CAPEM: caPEM, Logger: log.With("component", "api-balancer")})
	if err != nil {
		return err
	}
	client, _, err := clientFor(kubeconfig, balancer.Configure)
	if err != nil {
		return err
	}
	log.Info("joined", "servers", servers, "node", cfg.Node.NodeName)
	g := newGroup(ctx, log)
	g.Go("api balancer", balancer.Run)
	g.Go("node", func(ctx context.Context) error {
		return runNode(ctx, nodeDeps{client: client, node: cfg.Node, log: log, credDir: credDir})
	})
	return g.Wait()
}
