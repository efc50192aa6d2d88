package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/peapod/peapod/internal/apiserver"
	"github.com/peapod/peapod/internal/clusternetwork"
	"github.com/peapod/peapod/internal/config"
	"github.com/peapod/peapod/internal/controller"
	"github.com/peapod/peapod/internal/dns"
	"github.com/peapod/peapod/internal/leaderelect"
	"github.com/peapod/peapod/internal/nodeaddr"
	"github.com/peapod/peapod/internal/scheduler"
)

// ServerConfig configures `peapod server`.
type ServerConfig struct {
	API apiserver.Config
	// Network is the cluster's pod and Service ranges and backend; its
	// ServiceCIDR overrides API.ServiceCIDR. Zero means
	// clusternetwork.Defaults().
	Network clusternetwork.Settings
	// DNS configures the cluster DNS this server runs (zero: defaults).
	DNS dns.Settings
	// Node configures the node this server also runs, unless DisableAgent.
	Node         config.Node
	DisableAgent bool
	Logger       *slog.Logger
	// NodeMonitorGracePeriod is how long a node may go without renewing its
	// Lease before the node lifecycle controller marks it Unknown
	// (0: Kubernetes' 40s).
	NodeMonitorGracePeriod time.Duration
	// DefaultTolerationSeconds is how long pods without their own
	// not-ready/unreachable toleration stay on such a node (0: 300).
	DefaultTolerationSeconds int64
	// LeaderElect runs the scheduler and the controllers only while this
	// server holds their Leases (kube-system/kube-scheduler and
	// kube-system/kube-controller-manager), so that of several servers on
	// one etcd exactly one runs each. Off, they always run: for a lone
	// server only.
	LeaderElect bool
	// LeaderElection times the elections (zero: Kubernetes' 15s/10s/2s).
	LeaderElection leaderelect.Durations
}

// RunServer runs the control plane, and this machine's node unless
// disabled, until ctx ends or a component fails.
func RunServer(ctx context.Context, cfg ServerConfig) error {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if cfg.Network == (clusternetwork.Settings{}) {
		cfg.Network = clusternetwork.Defaults()
	}
	// Before anything is made: a bad flag leaves nothing behind.
	if err := cfg.Network.Validate(); err != nil {
		return err
	}
	if !cfg.DisableAgent {
		if _, err := nodeaddr.Resolve(cfg.Node.NodeIP); err != nil {
			return err
		}
	}
	cfg.LeaderElection = cfg.LeaderElection.WithDefaults()
	if err := cfg.LeaderElection.Validate(); err != nil {
		return err
	}
	identity, err := leaderelect.NewIdentity(cfg.Node.NodeName)
	if err != nil {
		return err
	}
	cfg.API.ServiceCIDR = cfg.Network.ServiceCIDR
	// Before anything is made: bad DNS flags leave nothing behind.
	dnsSettings, err := cfg.DNS.Complete(serviceCIDR(cfg.API))
	if err != nil {
		return err
	}
	dnsAddr, err := dnsAddress(cfg.API.AdvertiseAddress, cfg.API.Listen)
	if err != nil {
		return err
	}
	cfg.API.ReservedServiceIPs = append(cfg.API.ReservedServiceIPs, dnsSettings.ClusterDNS.String())
	cfg.API.Logger = log.With("component", "apiserver")
	// Pods get their service account token and CA, as in Kubernetes; the
	// node reads them through the TokenRequest API.
	cfg.API.AutomountServiceAccountTokens = true
	srv, err := apiserver.New(ctx, cfg.API)
	if err != nil {
		return fmt.Errorf("start API server: %w", err)
	}
	g := newGroup(ctx, log)
	g.Go("apiserver", srv.Serve)
	select {
	case <-srv.Ready():
	case <-g.ctx.Done():
		return g.Wait()
	}
	client, _, err := clientFor(srv.Kubeconfig())
	if err != nil {
		g.cancel()
		_ = g.Wait()
		return err
	}
	log.Info("API server ready", "addr", srv.Addr(), "kubeconfig", srv.Kubeconfig())
	// The cluster's network settings are published (or found unchanged)
	// before any controller hands out a range or any node reads them.
	if err := clusternetwork.Ensure(g.ctx, client, cfg.Network, dnsSettings.Node().Data()); err != nil {
		g.cancel()
		_ = g.Wait()
		return err
	}
	log.Info("cluster network", "clusterCIDR", cfg.Network.ClusterCIDR, "nodeCIDRMaskSize", cfg.Network.NodeCIDRMaskSize,
		"serviceCIDR", cfg.Network.ServiceCIDR, "backend", cfg.Network.Backend)

	// The kube-dns Service takes its fixed address before anything else
	// runs; a Service that holds it stops the start, naming it. Every
	// server answers DNS; only the scheduler and controllers are elected.
	if err := dns.EnsureService(g.ctx, client, dnsSettings); err != nil {
		g.cancel()
		_ = g.Wait()
		return err
	}
	g.Go("cluster DNS", func(ctx context.Context) error {
		return dns.Run(ctx, client, dns.Options{Settings: dnsSettings, Bind: dnsAddr, Logger: log.With("component", "dns")})
	})

	// The scheduler and every controller (node IPAM included) run on one
	// server at a time; the API serves on all.
	elected := func(lease, component string, run func(ctx context.Context) error) func(ctx context.Context) error {
		if !cfg.LeaderElect {
			return run
		}
		return func(ctx context.Context) error {
			return leaderelect.Run(ctx, leaderelect.Config{Client: client, Name: lease, Candidate: cfg.Node.NodeName,
				Identity: identity, Durations: cfg.LeaderElection, Logger: log.With("component", component)}, run)
		}
	}
	g.Go("scheduler", elected(leaderelect.SchedulerLease, "scheduler", func(ctx context.Context) error {
		// A scheduler runs once: each term of leading gets a new one.
		return scheduler.New(client, scheduler.Options{Logger: log.With("component", "scheduler")}).Run(ctx)
	}))
	g.Go("controllers", elected(leaderelect.ControllerManagerLease, "controllers", func(ctx context.Context) error {
		return controller.Run(ctx, client, controller.Options{
			Logger:                   log.With("component", "controllers"),
			ClusterCIDR:              cfg.Network.ClusterPrefix(),
			NodeCIDRMaskSize:         cfg.Network.NodeCIDRMaskSize,
			NodeMonitorGracePeriod:   cfg.NodeMonitorGracePeriod,
			DefaultTolerationSeconds: cfg.DefaultTolerationSeconds,
			StorageDir:               cfg.Node.Paths().Storage(),
		})
	}))

	if !cfg.DisableAgent {
		// The in-process node uses its own node identity, as a joined one
		// would: the node authorizer applies to it too.
		credDir := cfg.Node.Paths().NodeCredentials()
		kubeconfig, err := srv.WriteNodeCredentials(cfg.Node.NodeName, credDir)
		if err != nil {
			g.cancel()
			_ = g.Wait()
			return err
		}
		nodeClient, _, err := clientFor(kubeconfig)
		if err != nil {
			g.cancel()
			_ = g.Wait()
			return err
		}
		g.Go("node", func(ctx context.Context) error {
			return runNode(ctx, nodeDeps{client: nodeClient, node: cfg.Node, log: log, credDir: credDir})
		})
	}
	return g.Wait()
}
