package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"k8s.io/client-go/kubernetes"

	"github.com/peapod/peapod/internal/agent"
	"github.com/peapod/peapod/internal/agent/nodeserver"
	"github.com/peapod/peapod/internal/apiserver"
	"github.com/peapod/peapod/internal/config"
	"github.com/peapod/peapod/internal/runtime"
)

type nodeDeps struct {
	client kubernetes.Interface
	node   config.Node
	log    *slog.Logger
	// credDir holds the node's CA, client and serving certificates.
	credDir string
}

// runNode starts this machine's runtime, the server the API server reaches
// for logs, exec, attach and port-forward, and the agent that serves the
// pods bound to this node.
func runNode(ctx context.Context, d nodeDeps) error {
	log := d.log.With("component", "agent")
	rt, err := runtime.New(ctx, d.node, log, runtime.WithSources(agent.NewSources(d.client)))
	if err != nil {
		return fmt.Errorf("start node runtime: %w", err)
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
