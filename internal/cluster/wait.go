package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// pollInterval is how often waits look again.
const pollInterval = 200 * time.Millisecond

// Client returns a client-go client with the cluster's admin
// credentials, for the first server whose API answers (node 1's unless it
// is down), so node operations work while a server of several is down.
func (st *State) Client() (kubernetes.Interface, error) {
	_, client, err := st.liveServer()
	return client, err
}

// liveServer returns the first server node whose API answers /readyz,
// with an admin client for it; with none answering, node 1 and its client
// (whose requests then fail with the reason).
func (st *State) liveServer() (*Node, kubernetes.Interface, error) {
	servers := st.ServerNodes()
	if len(servers) == 0 {
		return nil, nil, fmt.Errorf("cluster %s has no server", st.Name)
	}
	if len(servers) > 1 {
		for _, n := range servers {
			client, err := adminClient(n.Kubeconfig())
			if err != nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			_, err = client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
			cancel()
			if err == nil {
				return n, client, nil
			}
		}
	}
	client, err := adminClient(servers[0].Kubeconfig())
	return servers[0], client, err
}

func adminClient(kubeconfig string) (kubernetes.Interface, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", kubeconfig, err)
	}
	cfg.Timeout = 10 * time.Second
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("client for %s: %w", kubeconfig, err)
	}
	return client, nil
}

// waitAPI waits until server's API answers /readyz with its admin
// kubeconfig, failing early (with its log) if the server process ends.
func waitAPI(ctx context.Context, server *Node) (kubernetes.Interface, error) {
	var last error
	for {
		if !server.running() {
			return nil, fmt.Errorf("node %s: peapod server exited\n%s", server.Name, server.logTail())
		}
		if _, err := os.Stat(server.Kubeconfig()); err != nil {
			last = err
		} else if client, err := adminClient(server.Kubeconfig()); err != nil {
			last = err
		} else if _, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx); err != nil {
			last = err
		} else {
			return client, nil
		}
		if err := sleep(ctx, pollInterval); err != nil {
			return nil, fmt.Errorf("node %s: API not ready: %w (last: %v)\n%s", server.Name, err, last, server.logTail())
		}
	}
}

// waitNodesReady waits until every node of nodes serves: Ready in the
// API, its Lease renewed since since (by the process started then, not a
// Ready left from before a restart) and its agent port accepting
// connections from the host. It fails early (with its log) if a node's
// process ends, and names the nodes that do not serve, with their logs,
// if ctx ends first.
func waitNodesReady(ctx context.Context, client kubernetes.Interface, st *State, nodes []Node, since time.Time) error {
	since = since.Truncate(time.Microsecond) // the Lease's precision
	for {
		why := map[string]string{}
		for _, n := range nodes {
			why[n.Name] = nodeServing(ctx, client, n.Name, since)
		}
		done := true
		for _, w := range why {
			done = done && w == ""
		}
		if done {
			return nil
		}
		for _, n := range nodes {
			if !n.running() {
				return fmt.Errorf("node %s: peapod %s exited\n%s", n.Name, n.Role, n.logTail())
			}
		}
		if err := sleep(ctx, pollInterval); err != nil {
			var msg []string
			for _, n := range nodes {
				if why[n.Name] != "" {
					msg = append(msg, fmt.Sprintf("node %s not Ready: %v (%s)\n%s", n.Name, err, why[n.Name], n.logTail()))
				}
			}
			return errors.New(strings.Join(msg, "\n"))
		}
	}
}

// nodeServing says why the node does not serve yet, or "" if it does.
func nodeServing(ctx context.Context, client kubernetes.Interface, name string, since time.Time) string {
	node, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Sprintf("get Node: %v", err)
	}
	if !nodeReady(node) {
		return "Node not Ready"
	}
	lease, err := client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Sprintf("get Lease: %v", err)
	}
	if lease.Spec.RenewTime == nil || lease.Spec.RenewTime.Time.Before(since) {
		return "Lease not renewed since the node's process started"
	}
	port := node.Status.DaemonEndpoints.KubeletEndpoint.Port
	var ip string
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			ip = a.Address
		}
	}
	if port == 0 || ip == "" {
		return "no agent address in the Node's status"
	}
	conn, err := net.DialTimeout("tcp", net.JoinHostPort(ip, fmt.Sprint(port)), time.Second)
	if err != nil {
		return fmt.Sprintf("agent port: %v", err)
	}
	conn.Close()
	return ""
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// logTail is the end of the node's log, for error messages.
func (n *Node) logTail() string {
	data, err := os.ReadFile(n.Log)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return fmt.Sprintf("--- last lines of %s ---\n%s", n.Log, bytes.Join(lines, []byte("\n")))
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
