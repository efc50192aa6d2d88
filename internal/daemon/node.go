package daemon

import (
	"context"
	"fmt"
	"log/slog"

	"k8s.io/client-go/kubernetes"

	"github.com/peapod/peapod/internal/agent"
	"github.com/peapod/peapod/internal/apiserver"
	"github.com/peapod/peapod/internal/config"
	"github.com/peapod/peapod/internal/runtime"
)

type nodeDeps struct {
	client kubernetes.Interface
	node   config.Node
	log    *slog.Logger
	pki    *apiserver.PKI
}

// runNode starts this machine's runtime and the agent that serves the pods
// bound to it.
func runNode(ctx context.Context, d nodeDeps) error {
	log := d.log.With("component", "agent")
	rt, err := runtime.New(ctx, d.node, log)
	if err != nil {
		return fmt.Errorf("start node runtime: %w", err)
	}
	a := agent.New(d.client, rt, agent.Config{
		NodeName: d.node.NodeName,
		PodCIDR:  d.node.PodCIDR,
		Logger:   log,
	})
	return a.Run(ctx)
}
