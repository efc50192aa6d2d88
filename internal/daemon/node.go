package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/peapod/peapod/internal/agent"
	"github.com/peapod/peapod/internal/agent/nodeserver"
	"github.com/peapod/peapod/internal/apiserver"
	"github.com/peapod/peapod/internal/clusternetwork"
	"github.com/peapod/peapod/internal/config"
	"github.com/peapod/peapod/internal/dns"
	"github.com/peapod/peapod/internal/nodeaddr"
	"github.com/peapod/peapod/internal/runtime"
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
//  3. register the Node, without a podCIDR, with its address and backend
//     for its peers, and wait for the server to give it a podCIDR;
//  4. [the pod network between nodes plugs in here];
//  5. start the runtime (bridge and host-local IPAM on the podCIDR), the
//     server the API server reaches for logs, exec, attach and
//     port-forward, and the agent that serves the pods bound to the node.
func runNode(ctx context.Context, d nodeDeps) error {
	log := d.log.With("component", "agent")
	pn, err := joinPodNetwork(ctx, d, log)
	if err != nil {
		return err
	}

	// ── The pod network between nodes plugs in here. ──────────────────
	// pn holds everything it needs: the node's podCIDR, the cluster's
	// settings (range and backend) and the node's address and underlay
	// link (pn.addr.Link, pn.addr.MTU); d.client reads the peers' Nodes.
	// The overlay (internal/nodenet, issue 10) sets up this node's side
	// for pn.settings.Backend, publishes its own annotations (the VTEP
	// MAC) and sets pn.mtu to the underlay MTU less its encapsulation, all
	// before the runtime builds the bridge below; its loop that follows
	// the peers runs until ctx ends (hand it to startNode to join the
	// node's group, so that its failure ends the node like the agent's).
	// ──────────────────────────────────────────────────────────────────

	return startNode(ctx, d, pn, log)
}

// podNetwork is what a node knows of the pod network once the server has
// given it a range.
type podNetwork struct {
	podCIDR  netip.Prefix
	settings clusternetwork.Settings
	// dns is the cluster DNS the node's pods resolve through.
	dns  dns.NodeSettings
	addr nodeaddr.Address
	// annotations are the node's, for its peers (address, backend).
	annotations map[string]string
	// mtu of the bridge and the pods' interfaces; 0 leaves the kernel's
	// default.
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
	annotations := map[string]string{clusternetwork.AnnotationPublicIP: addr.IP.String()}
	if settings.Backend != clusternetwork.BackendNone {
		annotations[clusternetwork.AnnotationBackendType] = settings.Backend
	}
	if err := agent.RegisterNode(ctx, d.client, agent.Registration{NodeName: d.node.NodeName, Annotations: annotations}); err != nil {
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
	return podNetwork{podCIDR: podCIDR, settings: settings, dns: clusterDNS, addr: addr, annotations: annotations, mtu: d.node.MTU}, nil
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

// startNode starts the runtime on the node's range, the node server and
// the agent (step 5 of runNode), until ctx ends or one of them fails.
func startNode(ctx context.Context, d nodeDeps, pn podNetwork, log *slog.Logger) error {
	cfg := withClusterDNS(d.node, pn.dns)
	cfg.PodCIDR = pn.podCIDR.String()
	cfg.ClusterCIDR = pn.settings.ClusterCIDR
	cfg.NodeIP = pn.addr.IP.String()
	cfg.MTU = pn.mtu
	rt, err := runtime.New(ctx, cfg, log, runtime.WithSources(agent.NewSources(d.client)))
	if err != nil {
		return fmt.Errorf("start node runtime: %w", err)
	}
	ln, tlsCfg, err := nodeListener(d)
	if err != nil {
		return err
	}
	port, _ := strconv.Atoi(portOf(ln.Addr()))
	a := agent.New(d.client, rt, agent.Config{
		NodeName:    cfg.NodeName,
		Annotations: pn.annotations,
		DaemonPort:  int32(port),
		Logger:      log,
	})
	srv := nodeserver.New(rt, nodeserver.Options{Certificate: tlsCfg.cert, ClientCAs: tlsCfg.cas, Logger: log, Pods: a,
		Configz: &nodeserver.Configz{Port: int32(port), PodCIDR: cfg.PodCIDR, CgroupRoot: "/" + cfg.CgroupParent, CgroupDriver: "cgroupfs"}})
	g := newGroup(ctx, log)
	g.Go("node server", func(ctx context.Context) error { return srv.Serve(ctx, ln) })
	g.Go("agent", a.Run)
	g.Go("warm sandboxes", rt.RunWarmPool)
	return g.Wait()
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
