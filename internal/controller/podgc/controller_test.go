package podgc

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/peapod/peapod/internal/controller/controllertest"
)

var ctx = context.Background()

func node(name string) *v1.Node { return &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}} }

func pod(name, node string) *v1.Pod {
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, Spec: v1.PodSpec{NodeName: node},
		Status: v1.PodStatus{Phase: v1.PodRunning}}
}

func start(t *testing.T, clk *testingclock.FakeClock, objs ...runtime.Object) *fake.Clientset {
	t.Helper()
	client := controllertest.NewClientset(objs...)
	controllertest.Start(t, client, func(f informers.SharedInformerFactory) (controllertest.Runner, error) {
		return New(client, f, Options{Logger: slog.New(slog.DiscardHandler), Clock: clk})
	})
	return client
}

func podNames(t *testing.T, client *fake.Clientset) []string {
	t.Helper()
	l, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range l.Items {
		out = append(out, p.Name)
	}
	sort.Strings(out)
	return out
}

func waitPods(t *testing.T, client *fake.Clientset, want ...string) {
	t.Helper()
	controllertest.Eventually(t, 5*time.Second, fmt.Sprintf("pods %v", want), func() error {
		if got := podNames(t, client); !slices.Equal(got, want) {
			return fmt.Errorf("have %v", got)
		}
		return nil
	})
}

// TestCollectsPodsOfGoneNodesAfterQuarantine: pods of a node that was
// never there or was deleted go once the quarantine has passed and the
// node is still missing; pods of live nodes, of a node that came back and
// unbound pods stay.
func TestCollectsPodsOfGoneNodesAfterQuarantine(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Now())
	unbound := pod("unbound", "")
	client := start(t, clk, node("live"), node("leaving"), node("returning"),
		pod("on-live", "live"), pod("on-ghost", "ghost"), pod("on-leaving", "leaving"), pod("on-returning", "returning"), unbound)
	all := []string{"on-ghost", "on-leaving", "on-live", "on-returning", "unbound"}
	waitPods(t, client, all...)
	for _, n := range []string{"leaving", "returning"} {
		if err := client.CoreV1().Nodes().Delete(ctx, n, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until the controller has seen both deletions (their quarantine
	// timers are armed), then bring one node back.
	controllertest.Eventually(t, 5*time.Second, "quarantine timers", func() error {
		if !clk.HasWaiters() {
			return fmt.Errorf("no timer yet")
		}
		return nil
	})
	if _, err := client.CoreV1().Nodes().Create(ctx, node("returning"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	clk.Step(DefaultQuarantine / 2)
	for end := time.Now().Add(100 * time.Millisecond); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if got := podNames(t, client); !slices.Equal(got, all) {
			t.Fatalf("pods collected before the quarantine ended: %v", got)
		}
	}
	clk.Step(DefaultQuarantine)
	waitPods(t, client, "on-live", "on-returning", "unbound")
}
