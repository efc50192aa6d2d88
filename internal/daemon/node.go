package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"github.com/peapod/peapod/internal/controller/persistentvolume"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"

	"github.com/peapod/peapod/internal/agent"
	"github.com/peapod/peapod/internal/agent/nodeserver"
	"github.com/peapod/peapod/internal/apiserver"
	"github.com/peapod/peapod/internal/clusternetwork"
	"github.com/peapod/peapod/internal/config"
	"github.com/peapod/peapod/internal/dns"
	"github.com/peapod/peapod/internal/inittext"
	"github.com/peapod/peapod/internal/nodeaddr"
	"github.com/peapod/peapod/internal/nodenet"
	"github.com/peapod/peapod/internal/proxy"
	"github.com/peapod/peapod/internal/runtime"
	"github.com/peapod/peapod/internal/runtime/spec"
)

type nodeDeps struct {
	client kubernetes.Interface
	node   config.Node
	log    *slog.Logger
	// credDir holds the node's CA, client and serving certificates.
	credDir string
}

// runNode runs this machine as a node, the same way for the server's own
// node and for a node joining from elsewhere:
//
//  1. find the node's address (--node-ip, else the default route's);
//  2. read the cluster's network settings (ConfigMap
//     kube-system/peapod-network);
//  3. register the Node, without a podCIDR, and wait for the server to
//     give it a podCIDR;
//  4. set up the pod network between nodes (internal/nodenet, for the
//     cluster's backend): the VXLAN device or the underlay routes, the
//     forward rules, the pod MTU; publish this node's network annotations
//     so that peers route to it; then follow the peers' Nodes until ctx
//     ends;
//  5. start the runtime (bridge and host-local IPAM on the podCIDR, with
//     the overlay's MTU), the server the API server reaches for logs,
//     exec, attach and port-forward, the agent that serves the pods
//     bound to the node, and the node's service proxy.
//
// Steps 4 and 5 run as one group: the first of them to fail ends the
// node. The kernel state of step 4 (device, FDB, neighbours, routes)
// outlives the process, as the pods do, so pods keep talking across nodes
// while the node is down; `peapod reset` removes it.
func runNode(ctx context.Context, d nodeDeps) error {
	log := d.log.With("component", "agent")
	pn, err := joinPodNetwork(ctx, d, log)
	if err != nil {
		return err
	}
	overlay, err := setUpOverlay(ctx, d, &pn, log)
	if err != nil {
		return err
	}
	defer overlay.Close()
	g := newGroup(ctx, log)
	// One informer factory for what the node watches cluster-wide: the
	// Services and EndpointSlices the service proxy programs, and the
	// Services whose variables containers get.
	factory := informers.NewSharedInformerFactory(d.client, 0)
	defer factory.Shutdown() // after g.Wait: g.ctx has ended
	g.Go("pod network between nodes", func(ctx context.Context) error { return nodenet.Run(ctx, d.client, overlay) })
	if err := startNode(g, d, pn, factory, log); err != nil {
		g.cancel()
		_ = g.Wait()
		return err
	}
	if released, err := inittext.Release(); err != nil {
		log.Warn("could not release the start-up's pages of the binary", "err", err)
	} else {
		log.Debug("released the start-up's pages of the binary", "MiB", released>>20)
	}
	return g.Wait()
}

// podNetwork is what a node knows of the pod network once the server has
// given it a range.
type podNetwork struct {
	podCIDR  netip.Prefix
	settings clusternetwork.Settings
	// dns is the cluster DNS the node's pods resolve through.
	dns  dns.NodeSettings
	addr nodeaddr.Address
	// mtu of the bridge and the pods' interfaces; 0 leaves the kernel's
	// default. The overlay sets it (setUpOverlay).
	mtu int
}

// joinPodNetwork registers the node and waits for its range (steps 1-3
// of runNode).
func joinPodNetwork(ctx context.Context, d nodeDeps, log *slog.Logger) (podNetwork, error) {
	addr, err := nodeaddr.Resolve(d.node.NodeIP)
	if err != nil {
		return podNetwork{}, err
	}
	settings, data, err := clusternetwork.Read(ctx, d.client, log)
	if err != nil {
		return podNetwork{}, err
	}
	clusterDNS, err := dns.NodeSettingsFromData(data)
	if err != nil {
		// A cluster without DNS settings (a server from before cluster
		// DNS) leaves ClusterFirst pods on the node's resolvers, as the
		// kubelet does without --cluster-dns.
		log.Warn("no cluster DNS for this node's pods", "configmap", clusternetwork.ConfigMapNamespace+"/"+clusternetwork.ConfigMapName, "err", err)
	}
	// The network annotations are nodenet's to publish (setUpOverlay), once
	// it knows them all: registration writes none.
	if err := agent.RegisterNode(ctx, d.client, agent.Registration{NodeName: d.node.NodeName,
		Annotations: map[string]string{persistentvolume.AnnNodeStorageDir: d.node.Paths().Storage()}}); err != nil {
		return podNetwork{}, err
	}
	node, err := agent.WaitForPodCIDR(ctx, d.client, d.node.NodeName, log)
	if err != nil {
		return podNetwork{}, err
	}
	podCIDR, err := nodePodCIDR(node, d.node.PodCIDR, settings)
	if err != nil {
		return podNetwork{}, err
	}
	log.Info("pod network", "node", d.node.NodeName, "podCIDR", podCIDR, "clusterCIDR", settings.ClusterCIDR,
		"backend", settings.Backend, "nodeIP", addr.IP, "link", addr.Link)
	return podNetwork{podCIDR: podCIDR, settings: settings, dns: clusterDNS, addr: addr, mtu: d.node.MTU}, nil
}

// nodePodCIDR returns the range the server gave node, refusing one that
// disagrees with --pod-cidr (flag, when given) or lies outside the
// cluster range. It is pure.
func nodePodCIDR(node *corev1.Node, flag string, settings clusternetwork.Settings) (netip.Prefix, error) {
	got, err := netip.ParsePrefix(node.Spec.PodCIDR)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("node %s: podCIDR %q does not parse: %w", node.Name, node.Spec.PodCIDR, err)
	}
	if flag != "" {
		want, err := netip.ParsePrefix(flag)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("--pod-cidr %q: not a CIDR", flag)
		}
		if want.Masked() != got.Masked() {
			return netip.Prefix{}, fmt.Errorf("--pod-cidr %s disagrees with node %s's podCIDR %s, which the server gave it from the cluster range %s; "+
				"drop --pod-cidr (the server decides each node's range)", flag, node.Name, got, settings.ClusterCIDR)
		}
	}
	cluster := settings.ClusterPrefix()
	if got.Masked() != got || !got.Addr().Is4() || got.Bits() < cluster.Bits() || !cluster.Contains(got.Addr()) {
		return netip.Prefix{}, fmt.Errorf("node %s's podCIDR %s is not a range of the cluster range %s; "+
			"delete the Node (kubectl delete node %s; for the server's own node, with the server started once with --disable-agent) "+
			"so that the server gives it one", node.Name, got, cluster, node.Name)
	}
	return got, nil
}

// startNode starts the runtime on the node's range and, in g, the node
// server, the agent and the service proxy (step 5 of runNode).
func startNode(g *group, d nodeDeps, pn podNetwork, factory informers.SharedInformerFactory, log *slog.Logger) error {
	ctx := g.ctx
	cfg := withClusterDNS(d.node, pn.dns)
	cfg.PodCIDR = pn.podCIDR.String()
	cfg.ClusterCIDR = pn.settings.ClusterCIDR
	cfg.NodeIP = pn.addr.IP.String()
	cfg.MTU = pn.mtu
	rt, err := runtime.New(ctx, cfg, log, runtime.WithSources(agent.NewSources(d.client)),
		runtime.WithServiceEnv(serviceEnvFrom(factory)))
	if err != nil {
		return fmt.Errorf("start node runtime: %w", err)
	}
	px, err := newServiceProxy(cfg, factory, d.log)
	if err != nil {
		return err
	}
	ln, tlsCfg, err := nodeListener(d)
	if err != nil {
		return err
	}
	port, _ := strconv.Atoi(portOf(ln.Addr()))
	a := agent.New(d.client, rt, agent.Config{
		NodeName:   cfg.NodeName,
		DaemonPort: int32(port),
		StorageDir: cfg.Paths().Storage(),
		Logger:     log,
	})
	srv := nodeserver.New(rt, nodeserver.Options{Certificate: tlsCfg.cert, ClientCAs: tlsCfg.cas, Logger: log, Pods: a,
		Configz: &nodeserver.Configz{Port: int32(port), PodCIDR: cfg.PodCIDR, CgroupRoot: "/" + cfg.CgroupParent, CgroupDriver: "cgroupfs"}})
	factory.Start(g.ctx.Done())
	g.Go("node server", func(ctx context.Context) error { return srv.Serve(ctx, ln) })
	g.Go("agent", a.Run)
	g.Go("warm sandboxes", rt.RunWarmPool)
	g.Go("service proxy", px.Run)
	return nil
}

// newServiceProxy sets up this node's service proxy over factory's
// Service and EndpointSlice informers.
func newServiceProxy(cfg config.Node, factory informers.SharedInformerFactory, log *slog.Logger) (*proxy.Proxier, error) {
	nft, err := proxy.NewTable(proxy.DefaultTable)
	if err != nil {
		return nil, err
	}
	px, err := proxy.New(proxy.Config{NodeName: cfg.NodeName, ClusterCIDR: cfg.ClusterCIDR, Logger: log}, factory, nft)
	if err != nil {
		return nil, fmt.Errorf("start service proxy: %w", err)
	}
	return px, nil
}

// serviceEnvFrom computes pods' Service environment variables from
// factory's Service informer, as the kubelet does; until the informer has
// read the Services once, containers wait (their creation is retried).
func serviceEnvFrom(factory informers.SharedInformerFactory) runtime.ServiceEnvFunc {
	inf := factory.Core().V1().Services()
	lister, synced := inf.Lister(), inf.Informer().HasSynced
	return func(_ context.Context, pod *corev1.Pod) (map[string]string, error) {
		if !synced() {
			return nil, errors.New("the node has not read the Services from the API yet")
		}
		svcs, err := lister.List(labels.Everything())
		if err != nil {
			return nil, fmt.Errorf("list services: %w", err)
		}
		return spec.ServiceEnv(pod, svcs), nil
	}
}

type nodeTLS struct {
	cert tls.Certificate
	cas  *x509.CertPool
}

// nodeListener opens the node server's port with the node's serving
// certificate, trusting the cluster CA for client certificates.
func nodeListener(d nodeDeps) (net.Listener, nodeTLS, error) {
	cert, err := tls.LoadX509KeyPair(filepath.Join(d.credDir, apiserver.NodeServingCertFile), filepath.Join(d.credDir, apiserver.NodeServingKeyFile))
	if err != nil {
		return nil, nodeTLS{}, fmt.Errorf("load node serving certificate: %w", err)
	}
	caPEM, err := os.ReadFile(filepath.Join(d.credDir, apiserver.NodeCAFile))
	if err != nil {
		return nil, nodeTLS{}, fmt.Errorf("load cluster CA: %w", err)
	}
	cas := x509.NewCertPool()
	if !cas.AppendCertsFromPEM(caPEM) {
		return nil, nodeTLS{}, fmt.Errorf("cluster CA %s holds no certificate", filepath.Join(d.credDir, apiserver.NodeCAFile))
	}
	ln, err := net.Listen("tcp", d.node.AgentListen)
	if err != nil {
		return nil, nodeTLS{}, fmt.Errorf("node server: listen on %s: %w", d.node.AgentListen, err)
	}
	return ln, nodeTLS{cert: cert, cas: cas}, nil
}

func portOf(a net.Addr) string {
	_, port, _ := net.SplitHostPort(a.String())
	return port
}
