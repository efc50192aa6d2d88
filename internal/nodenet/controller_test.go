package nodenet

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/peapod/peapod/internal/nodenet/nodenettest"
)

// eventually retries f until it succeeds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runController runs Run for ln until the returned stop is called (or the
// test ends).
func runController(t testing.TB, client kubernetes.Interface, nw *Network) (stop func()) {
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := Run(ctx, client, nw); err != nil && ctx.Err() == nil {
			t.Errorf("Run: %v", err)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

func hasRoute(t *testing.T, ln *labNode, dst string) bool {
	for _, r := range readKernel(t, ln).routes {
		if len(r) >= len(dst) && r[:len(dst)] == dst {
			return true
		}
	}
	return false
}

// TestRunFollowsNodes drives three nodes' controllers from one (fake) API:
// each publishes its annotations, every node programs the others and pods
// talk; a Node that joins is programmed everywhere, one that leaves is
// removed everywhere; an agent restarted after a node left while it was
// down removes that node's stale entries from its first full-list sync.
func TestRunFollowsNodes(t *testing.T) {
	lab, nodes := setupLab(t, 3, BackendVXLAN, nil)
	_ = lab
	client := fake.NewClientset()
	for _, ln := range nodes {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: ln.Name}, Spec: corev1.NodeSpec{PodCIDR: ln.PodCIDR.String(), PodCIDRs: []string{ln.PodCIDR.String()}}}
		if _, err := client.CoreV1().Nodes().Create(t.Context(), n, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	stops := make([]func(), len(nodes))
	for i, ln := range nodes {
		stops[i] = runController(t, client, ln.net)
	}
	for _, ln := range nodes {
		eventually(t, 10*time.Second, "annotations of "+ln.Name, func() error {
			n, err := client.CoreV1().Nodes().Get(t.Context(), ln.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if !published(n, ln.local.Annotations) {
				return fmt.Errorf("annotations %v, want %v", n.Annotations, ln.local.Annotations)
			}
			return nil
		})
	}
	for i, ln := range nodes {
		want := wantVXLANState(peersOf(nodes, i))
		eventually(t, 10*time.Second, "peers programmed on "+ln.Name, func() error {
			if got := readKernel(t, ln); !sameSet(got.routes, want.routes) || !sameSet(got.fdb, want.fdb) || !sameSet(got.neighs, want.neighs) {
				return fmt.Errorf("kernel %+v, want %+v", got, want)
			}
			return nil
		})
	}
	pingAll(t, nodes)

	// A node joins (no agent behind it: its entries are what matters).
	joiner := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node9", Annotations: vxlanAnn("172.31.250.9", "0a:00:00:00:00:09")},
		Spec:       corev1.NodeSpec{PodCIDR: "10.244.9.0/24"},
	}
	if _, err := client.CoreV1().Nodes().Create(t.Context(), joiner, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, ln := range nodes {
		eventually(t, 10*time.Second, "node9 programmed on "+ln.Name, func() error {
			if !hasRoute(t, ln, "10.244.9.0/24 via 10.244.9.0 dev peapod.1 onlink") {
				return fmt.Errorf("no route to node9's pods")
			}
			return nil
		})
	}
	if err := client.CoreV1().Nodes().Delete(t.Context(), "node9", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for i, ln := range nodes {
		want := wantVXLANState(peersOf(nodes, i))
		eventually(t, 10*time.Second, "node9 removed on "+ln.Name, func() error {
			if got := readKernel(t, ln); !sameSet(got.routes, want.routes) || !sameSet(got.fdb, want.fdb) || !sameSet(got.neighs, want.neighs) {
				return fmt.Errorf("kernel %+v, want %+v", got, want)
			}
			return nil
		})
	}

	// node1's agent stops; node3 leaves meanwhile; node1 comes back.
	stops[0]()
	if err := client.CoreV1().Nodes().Delete(t.Context(), nodes[2].Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := readKernel(t, nodes[0]); len(got.routes) != 2 {
		t.Fatalf("node1 changed while its agent was down: %+v", got)
	}
	restarted := openNode(t, nodes[0].Node, labConfig(nodes[0].Node, BackendVXLAN))
	if _, err := restarted.Setup(t.Context()); err != nil {
		t.Fatal(err)
	}
	nodes[0].net = restarted
	runController(t, client, restarted)
	want := wantVXLANState([]Peer{nodes[1].peer()})
	eventually(t, 10*time.Second, "node3's entries removed on the restarted node1", func() error {
		if got := readKernel(t, nodes[0]); !sameSet(got.routes, want.routes) || !sameSet(got.fdb, want.fdb) || !sameSet(got.neighs, want.neighs) {
			return fmt.Errorf("kernel %+v, want %+v", got, want)
		}
		return nil
	})
	if err := nodenettest.Ping(t.Context(), nodes[0].Pods[0].Endpoint(), nodes[1].Pods[0].Endpoint(), 2*time.Second); err != nil {
		t.Errorf("node1 -> node2 after the restart: %v", err)
	}

	// Someone overwrites node1's MAC annotation: it is published again.
	n1, err := client.CoreV1().Nodes().Get(t.Context(), nodes[0].Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n1.Annotations[AnnotationVTEPMAC] = net.HardwareAddr{0x0a, 1, 2, 3, 4, 5}.String()
	if _, err := client.CoreV1().Nodes().Update(t.Context(), n1, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "node1's annotations republished", func() error {
		n, err := client.CoreV1().Nodes().Get(t.Context(), nodes[0].Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if n.Annotations[AnnotationVTEPMAC] != nodes[0].local.VTEPMAC.String() {
			return fmt.Errorf("vtep-mac %s", n.Annotations[AnnotationVTEPMAC])
		}
		return nil
	})
}
