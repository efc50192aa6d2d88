// Package daemon composes peapod's components into its two long-running
// processes, each started in one straight line:
//
//  1. RunServer: the cluster's network settings checked, the API server
//     (with etcd), the settings published in their ConfigMap, then the
//     scheduler and controllers, and, unless disabled, this machine's node
//     (runtime + agent), so one command gives a working single-node
//     cluster. With several servers on one etcd, the scheduler and the
//     controllers run only on the one holding their Leases (leaderelect).
//  2. RunAgent: a node on its own, joining a server from another machine;
//     given several servers, it joins through the first that answers and
//     every client of the node fails over between them (apibalancer).
//
// Both run their node with runNode: register, wait for the server's
// podCIDR, set up the pod network between nodes (internal/nodenet), then
// start the runtime on the podCIDR (see node.go).
//
// A component that fails ends the process: a service manager restarts it,
// and the pods keep running meanwhile.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// group runs components until the first one fails or ctx ends, then
// cancels the rest and waits for them.
type group struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
	err    error
	log    *slog.Logger
}

func newGroup(ctx context.Context, log *slog.Logger) *group {
	ctx, cancel := context.WithCancel(ctx)
	return &group{ctx: ctx, cancel: cancel, log: log}
}

// Go runs a component; its return ends the group unless ctx already ended.
func (g *group) Go(name string, run func(ctx context.Context) error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		err := run(g.ctx)
		if g.ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("stopped")
		}
		g.once.Do(func() {
			g.err = fmt.Errorf("%s: %w", name, err)
			g.log.Error("component failed; stopping", "component", name, "err", err)
			g.cancel()
		})
	}()
}

// Wait blocks until every component has returned.
func (g *group) Wait() error {
	<-g.ctx.Done()
	g.wg.Wait()
	return g.err
}

// clientFor builds a client from a kubeconfig, with rate limits that let
// bursts of pods through: peapod's components are its own, not tenants.
// Each of adjust changes the configuration first (an agent's dials go
// through its API balancer).
func clientFor(kubeconfig string, adjust ...func(*rest.Config) *rest.Config) (kubernetes.Interface, *rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, nil, fmt.Errorf("load kubeconfig %s: %w", kubeconfig, err)
	}
	for _, a := range adjust {
		cfg = a(cfg)
	}
	cfg.QPS, cfg.Burst = 500, 1000
	// Protobuf, as Kubernetes' own components speak it: cheaper to encode
	// and decode than JSON on a busy node.
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("client for %s: %w", kubeconfig, err)
	}
	return client, cfg, nil
}
