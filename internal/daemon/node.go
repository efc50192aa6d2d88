package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
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
	"github.com/peapod/peapod/internal/config"
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

// runNode starts this machine's runtime, the server the API server reaches
// for logs, exec, attach and port-forward, the agent that serves the pods
// bound to this node, and the node's service proxy.
func runNode(ctx context.Context, d nodeDeps) error {
	log := d.log.With("component", "agent")
	// One informer factory for what the node watches cluster-wide: the
	// Services and EndpointSlices the service proxy programs, and the
	// Services whose variables containers get.
	factory := informers.NewSharedInformerFactory(d.client, 0)
	rt, err := runtime.New(ctx, d.node, log, runtime.WithSources(agent.NewSources(d.client)),
		runtime.WithServiceEnv(serviceEnvFrom(factory)))
	if err != nil {
		return fmt.Errorf("start node runtime: %w", err)
	}
	px, err := newServiceProxy(d, factory)
	if err != nil {
		return err
	}
	ln, tlsCfg, err := nodeListener(d)
	if err != nil {
		return err
	}
	port, _ := strconv.Atoi(portOf(ln.Addr()))
	a := agent.New(d.client, rt, agent.Config{
		NodeName:   d.node.NodeName,
		PodCIDR:    d.node.PodCIDR,
		DaemonPort: int32(port),
		Logger:     log,
	})
	srv := nodeserver.New(rt, nodeserver.Options{Certificate: tlsCfg.cert, ClientCAs: tlsCfg.cas, Logger: log, Pods: a,
		Configz: &nodeserver.Configz{Port: int32(port), PodCIDR: d.node.PodCIDR, CgroupRoot: "/" + d.node.CgroupParent, CgroupDriver: "cgroupfs"}})
	g := newGroup(ctx, log)
	factory.Start(g.ctx.Done())
	defer factory.Shutdown() // after g.Wait: g.ctx has ended
	g.Go("node server", func(ctx context.Context) error { return srv.Serve(ctx, ln) })
	g.Go("agent", a.Run)
	g.Go("warm sandboxes", rt.RunWarmPool)
	g.Go("service proxy", px.Run)
	return g.Wait()
}

// newServiceProxy sets up this node's service proxy over factory's
// Service and EndpointSlice informers.
func newServiceProxy(d nodeDeps, factory informers.SharedInformerFactory) (*proxy.Proxier, error) {
	nft, err := proxy.NewTable(proxy.DefaultTable)
	if err != nil {
		return nil, err
	}
	clusterCIDR := d.node.ClusterCIDR
	if clusterCIDR == "" {
		clusterCIDR = d.node.PodCIDR // one node: its range is the pod network
	}
	px, err := proxy.New(proxy.Config{NodeName: d.node.NodeName, ClusterCIDR: clusterCIDR, Logger: d.log}, factory, nft)
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
