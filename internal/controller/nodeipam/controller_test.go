package nodeipam

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"

	"github.com/peapod/peapod/internal/controller/controllertest"
)

const wait = 10 * time.Second

type harness struct {
	client   *fake.Clientset
	recorder *record.FakeRecorder
}

// start runs a controller over cluster (node ranges of /mask) on a fake
// clientset holding objs, as a restarted server finds them.
func start(t *testing.T, cluster string, mask int, objs ...runtime.Object) *harness {
	t.Helper()
	h := &harness{client: controllertest.NewClientset(objs...), recorder: record.NewFakeRecorder(100)}
	controllertest.Start(t, h.client, func(f informers.SharedInformerFactory) (controllertest.Runner, error) {
		return New(h.client, f, Options{
			ClusterCIDR: netip.MustParsePrefix(cluster), NodeCIDRMaskSize: mask,
			Logger: slog.New(slog.DiscardHandler), Recorder: h.recorder,
		})
	})
	return h
}

func node(name, podCIDR string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if podCIDR != "" {
		n.Spec.PodCIDR, n.Spec.PodCIDRs = podCIDR, []string{podCIDR}
	}
	return n
}

func (h *harness) add(t *testing.T, name string) {
	t.Helper()
	if _, err := h.client.CoreV1().Nodes().Create(context.Background(), node(name, ""), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (h *harness) remove(t *testing.T, name string) {
	t.Helper()
	if err := h.client.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}

// podCIDR waits until the node has a range and returns it, checking that
// podCIDR and podCIDRs agree.
func (h *harness) podCIDR(t *testing.T, name string) string {
	t.Helper()
	var got string
	controllertest.Eventually(t, wait, "node "+name+" gets a podCIDR", func() error {
		n, err := h.client.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if n.Spec.PodCIDR == "" {
			return fmt.Errorf("node %s has no podCIDR", name)
		}
		if len(n.Spec.PodCIDRs) != 1 || n.Spec.PodCIDRs[0] != n.Spec.PodCIDR {
			return fmt.Errorf("node %s: podCIDR %q, podCIDRs %q disagree", name, n.Spec.PodCIDR, n.Spec.PodCIDRs)
		}
		got = n.Spec.PodCIDR
		return nil
	})
	return got
}

func (h *harness) expectRange(t *testing.T, name, want string) {
	t.Helper()
	if got := h.podCIDR(t, name); got != want {
		t.Errorf("node %s got %s, want %s", name, got, want)
	}
}

// event waits for the next recorded event.
func (h *harness) event(t *testing.T) string {
	t.Helper()
	select {
	case e := <-h.recorder.Events:
		return e
	case <-time.After(wait):
		t.Fatal("no event recorded")
		return ""
	}
}

func TestNodesGetDistinctRangesInOrder(t *testing.T) {
	h := start(t, "10.42.0.0/16", 24)
	for i := range 5 {
		name := fmt.Sprintf("n%d", i)
		h.add(t, name)
		h.expectRange(t, name, fmt.Sprintf("10.42.%d.0/24", i))
	}
}

func TestRangesOfTheClusterAreNeverChanged(t *testing.T) {
	h := start(t, "10.42.0.0/16", 24)
	h.add(t, "a")
	first := h.podCIDR(t, "a")
	// The node registers again: its agent updates labels, never podCIDR.
	n, err := h.client.CoreV1().Nodes().Get(context.Background(), "a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Labels = map[string]string{"kubernetes.io/hostname": "a"}
	if _, err := h.client.CoreV1().Nodes().Update(context.Background(), n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.add(t, "b")
	h.expectRange(t, "b", "10.42.1.0/24")
	if got := h.podCIDR(t, "a"); got != first {
		t.Errorf("node a's range changed from %s to %s", first, got)
	}
}

func TestRestartOccupiesHeldRangesFirst(t *testing.T) {
	// Four node ranges; a and c hold 0 and 2 (b, which held 1, was deleted
	// before the restart), d registered meanwhile without one.
	h := start(t, "10.42.0.0/22", 24,
		node("a", "10.42.0.0/24"), node("c", "10.42.2.0/24"), node("d", ""))
	h.expectRange(t, "d", "10.42.3.0/24") // never used: before b's old range
	h.add(t, "e")
	h.expectRange(t, "e", "10.42.1.0/24")
	h.expectRange(t, "a", "10.42.0.0/24")
	h.expectRange(t, "c", "10.42.2.0/24")
}

func TestDeletedNodesRangeIsReusedAfterNeverUsedOnes(t *testing.T) {
	h := start(t, "10.42.0.0/22", 24) // four ranges
	h.add(t, "a")
	h.expectRange(t, "a", "10.42.0.0/24")
	h.add(t, "b")
	h.expectRange(t, "b", "10.42.1.0/24")
	h.remove(t, "a")
	h.add(t, "c")
	h.expectRange(t, "c", "10.42.2.0/24")
	h.add(t, "d")
	h.expectRange(t, "d", "10.42.3.0/24")
	h.add(t, "e")
	h.expectRange(t, "e", "10.42.0.0/24") // a's, once no never-used range is left
}

func TestFullRangeLeavesNodeWithoutOneAndAnEvent(t *testing.T) {
	h := start(t, "10.42.0.0/23", 24) // two ranges
	h.add(t, "a")
	h.expectRange(t, "a", "10.42.0.0/24")
	h.add(t, "b")
	h.expectRange(t, "b", "10.42.1.0/24")
	h.add(t, "c")
	ev := h.event(t)
	if want := "Warning CIDRNotAvailable Node c status is now: CIDRNotAvailable"; ev != want {
		t.Errorf("event = %q, want %q", ev, want)
	}
	n, err := h.client.CoreV1().Nodes().Get(context.Background(), "c", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n.Spec.PodCIDR != "" || len(n.Spec.PodCIDRs) != 0 {
		t.Errorf("node c got %q/%q from a full range", n.Spec.PodCIDR, n.Spec.PodCIDRs)
	}
	// A released range goes to the waiting Node without any update of it.
	h.remove(t, "a")
	h.expectRange(t, "c", "10.42.0.0/24")
}

func TestRecreatedNodeGetsANewRange(t *testing.T) {
	h := start(t, "10.42.0.0/16", 24)
	h.add(t, "a")
	h.expectRange(t, "a", "10.42.0.0/24")
	h.remove(t, "a")
	h.add(t, "a")
	h.expectRange(t, "a", "10.42.1.0/24")
}

func TestPodCIDROutsideTheClusterIsLeftAlone(t *testing.T) {
	h := start(t, "10.42.0.0/16", 24, node("old", "10.88.0.0/16"))
	h.add(t, "new")
	h.expectRange(t, "new", "10.42.0.0/24")
	n, err := h.client.CoreV1().Nodes().Get(context.Background(), "old", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n.Spec.PodCIDR != "10.88.0.0/16" {
		t.Errorf("node old's range was changed to %q", n.Spec.PodCIDR)
	}
	select {
	case e := <-h.recorder.Events:
		if strings.Contains(e, "old") {
			t.Errorf("unexpected event %q", e)
		}
	default:
	}
}
