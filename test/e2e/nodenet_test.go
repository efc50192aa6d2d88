package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/peapod/peapod/internal/config"
	"github.com/peapod/peapod/internal/network/netns"
	"github.com/peapod/peapod/internal/nodenet"
	"github.com/peapod/peapod/internal/nodenet/nodenettest"
)

// TestPodNetworkBetweenNodesFollowsTheAPI runs internal/nodenet's
// controller for two network-namespace "nodes" against a real `peapod
// server`, with client-go, as the agent will: each node publishes its
// annotations on its Node (seen with kubectl), programs the other from the
// API, and pods on the two nodes talk by pod IP with their own source
// address; `peapod net` in a node shows the peer; deleting a Node with
// kubectl removes it from the other node's kernel. The server's own node
// publishes its annotations too, but its podCIDR lies outside the lab's
// cluster range: the lab nodes refuse it as a peer.
func TestPodNetworkBetweenNodesFollowsTheAPI(t *testing.T) {
	c := startCluster(t)
	lab := nodenettest.New(t, nodenettest.Options{Nodes: 2})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup

	names := make([]string, len(lab.Nodes))
	nets := make([]*nodenet.Network, len(lab.Nodes))
	dataDirs := make([]string, len(lab.Nodes))
	for i, n := range lab.Nodes {
		names[i] = lab.Name + "-" + n.Name
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: names[i], Labels: map[string]string{corev1.LabelHostname: names[i]}},
			Spec:       corev1.NodeSpec{PodCIDR: n.PodCIDR.String(), PodCIDRs: []string{n.PodCIDR.String()}},
		}
		if _, err := c.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create node %s: %v", names[i], err)
		}
		name := names[i]
		t.Cleanup(func() { _ = c.client.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}) })
		dataDirs[i] = t.TempDir()
		nw, err := nodenet.New(nodenet.Config{
			Backend: nodenet.BackendVXLAN, NodeName: names[i], NodeIP: n.IP.String(),
			PodCIDR: n.PodCIDR.String(), ClusterCIDR: "10.244.0.0/16",
			StateDir: config.PathsFor(dataDirs[i]).NodeNet(), NetNS: n.NetNS,
		}, slog.Default())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = nw.Close() })
		local, err := nw.Setup(ctx)
		if err != nil {
			t.Fatalf("Setup %s: %v", n.Name, err)
		}
		if err := n.SetPodMTU(local.MTU); err != nil {
			t.Fatal(err)
		}
		nets[i] = nw
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := nodenet.Run(ctx, c.client, nw); err != nil && ctx.Err() == nil {
				t.Errorf("Run %s: %v", name, err)
			}
		}()
	}

	// Registered last, so it runs first: the controllers stop before their
	// networks close and the lab goes.
	t.Cleanup(func() { cancel(); wg.Wait() })

	for i := range lab.Nodes {
		c.eventually(30*time.Second, func() error {
			out, err := c.kubectl("get", "node", names[i], "-o", `jsonpath={.metadata.annotations}`)
			if err != nil {
				return err
			}
			for _, want := range []string{`"network.peapod.io/backend-type":"vxlan"`, `"network.peapod.io/public-ip":"` + lab.Nodes[i].IP.String() + `"`, `"network.peapod.io/vtep-mac":"`} {
				if !strings.Contains(out, want) {
					return fmt.Errorf("node %s annotations %s lack %s", names[i], out, want)
				}
			}
			return nil
		})
	}
	a, b := lab.Nodes[0], lab.Nodes[1]
	c.eventually(30*time.Second, func() error {
		return nodenettest.Ping(ctx, a.Pods[0].Endpoint(), b.Pods[0].Endpoint(), time.Second)
	})
	if err := nodenettest.Ping(ctx, b.Pods[0].Endpoint(), a.Pods[0].Endpoint(), 2*time.Second); err != nil {
		t.Errorf("pod on %s cannot reach pod on %s: %v", b.Name, a.Name, err)
	}
	seen, err := nodenettest.Exchange(ctx, a.Pods[0].Endpoint(), b.Pods[0].Endpoint(), 7070)
	if err != nil || seen != a.Pods[0].IP {
		t.Errorf("TCP pod %s -> pod %s: server saw %s (%v), want the client pod's own IP", a.Pods[0].IP, b.Pods[0].IP, seen, err)
	}

	// `peapod net` in node a's namespace shows b as a peer with its route.
	var out []byte
	err = netns.Do(a.NetNS, func() error {
		var err error
		out, err = exec.CommandContext(ctx, peapodBinary(t), "net", "--data-dir", dataDirs[0]).CombinedOutput()
		return err
	})
	if err != nil {
		t.Fatalf("peapod net: %v\n%s", err, out)
	}
	route := fmt.Sprintf("%s via %s dev peapod.1 onlink", b.PodCIDR, b.PodCIDR.Addr())
	for _, want := range []string{"BACKEND     vxlan", names[1], b.IP.String(), route, "FORWARD accepts the cluster range"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("peapod net lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "e2e-node") {
		t.Errorf("the server's own node, whose podCIDR is outside the lab's cluster range, is listed as a peer:\n%s", out)
	}

	// b leaves the cluster: a drops its route, neighbour and FDB entry.
	c.must("delete", "node", names[1])
	c.eventually(30*time.Second, func() error {
		st, err := nets[0].Status(ctx)
		if err != nil {
			return err
		}
		if len(st.Peers) != 0 {
			return fmt.Errorf("node %s still has peers %+v after %s was deleted", names[0], st.Peers, names[1])
		}
		return nil
	})
	if err := nodenettest.Ping(ctx, a.Pods[0].Endpoint(), b.Pods[0].Endpoint(), time.Second); err == nil {
		t.Errorf("pod on a deleted node still reachable")
	}
}
