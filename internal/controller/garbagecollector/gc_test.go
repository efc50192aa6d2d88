package garbagecollector

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/peapod/peapod/internal/controller/controllertest"
)

func start(t *testing.T, objs ...runtime.Object) *fake.Clientset {
	t.Helper()
	client := controllertest.NewClientset(objs...)
	startWith(t, client)
	return client
}

// startWith runs a collector over client (reactors must be added before).
func startWith(t *testing.T, client *fake.Clientset) {
	t.Helper()
	controllertest.Start(t, client, func(f informers.SharedInformerFactory) (controllertest.Runner, error) {
		return New(client, f, Options{Logger: slog.New(slog.DiscardHandler)})
	})
}

func ref(kind, apiVersion, name string, uid types.UID, block bool) metav1.OwnerReference {
	t := true
	return metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: name, UID: uid, Controller: &t, BlockOwnerDeletion: &block}
}

// tree returns deployment web → replicaset web-1 → pods web-1-a, web-1-b.
func tree() []runtime.Object {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "d-uid"}}
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "default", UID: "rs-uid",
		OwnerReferences: []metav1.OwnerReference{ref("Deployment", "apps/v1", "web", "d-uid", true)}}}
	objs := []runtime.Object{d, rs}
	for _, n := range []string{"a", "b"} {
		objs = append(objs, &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1-" + n, Namespace: "default", UID: types.UID("pod-" + n),
			OwnerReferences: []metav1.OwnerReference{ref("ReplicaSet", "apps/v1", "web-1", "rs-uid", true)}}})
	}
	return objs
}

func gone(t *testing.T, what string, get func() error) {
	t.Helper()
	controllertest.Eventually(t, 5*time.Second, what+" deleted", func() error {
		if err := get(); !apierrors.IsNotFound(err) {
			return fmt.Errorf("still there (err %v)", err)
		}
		return nil
	})
}

func podGet(c *fake.Clientset, name string) func() error {
	return func() error {
		_, err := c.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
		return err
	}
}

func rsGet(c *fake.Clientset) func() error {
	return func() error {
		_, err := c.AppsV1().ReplicaSets("default").Get(context.Background(), "web-1", metav1.GetOptions{})
		return err
	}
}

func dGet(c *fake.Clientset) func() error {
	return func() error {
		_, err := c.AppsV1().Deployments("default").Get(context.Background(), "web", metav1.GetOptions{})
		return err
	}
}

func TestBackgroundPropagation(t *testing.T) {
	c := start(t, tree()...)
	time.Sleep(50 * time.Millisecond) // nothing is dangling: nothing goes
	if rsGet(c)() != nil || podGet(c, "web-1-a")() != nil {
		t.Fatal("collected objects whose owners exist")
	}
	if err := c.AppsV1().Deployments("default").Delete(context.Background(), "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	gone(t, "replicaset", rsGet(c))
	gone(t, "pod a", podGet(c, "web-1-a"))
	gone(t, "pod b", podGet(c, "web-1-b"))
}

// TestForegroundPropagation checks the owner stays (deleting, with the
// foregroundDeletion finalizer) until its dependents are gone.
func TestForegroundPropagation(t *testing.T) {
	c := controllertest.NewClientset(tree()...)
	var mu sync.Mutex
	var order []string
	c.PrependReactor("delete", "*", func(a clienttesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		order = append(order, a.GetResource().Resource+"/"+a.(clienttesting.DeleteAction).GetName())
		mu.Unlock()
		return false, nil, nil
	})
	startWith(t, c)
	fg := metav1.DeletePropagationForeground
	if err := c.AppsV1().Deployments("default").Delete(context.Background(), "web", metav1.DeleteOptions{PropagationPolicy: &fg}); err != nil {
		t.Fatal(err)
	}
	gone(t, "pod a", podGet(c, "web-1-a"))
	gone(t, "pod b", podGet(c, "web-1-b"))
	gone(t, "replicaset", rsGet(c))
	gone(t, "deployment", dGet(c))
	mu.Lock()
	defer mu.Unlock()
	// deployment (marked), replicaset (marked, foreground; a repeat from a
	// stale cache is harmless), then both pods.
	seen := map[string]bool{}
	order = slices.DeleteFunc(order, func(s string) bool { defer func() { seen[s] = true }(); return seen[s] })
	if len(order) != 4 || order[0] != "deployments/web" || order[1] != "replicasets/web-1" {
		t.Fatalf("delete order %v", order)
	}
}

func TestOrphanPropagation(t *testing.T) {
	c := start(t, tree()...)
	orphan := metav1.DeletePropagationOrphan
	if err := c.AppsV1().ReplicaSets("default").Delete(context.Background(), "web-1", metav1.DeleteOptions{PropagationPolicy: &orphan}); err != nil {
		t.Fatal(err)
	}
	gone(t, "replicaset", rsGet(c))
	for _, n := range []string{"web-1-a", "web-1-b"} {
		p, err := c.CoreV1().Pods("default").Get(context.Background(), n, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("orphaned pod %s deleted: %v", n, err)
		}
		if len(p.OwnerReferences) != 0 {
			t.Fatalf("pod %s still owned: %v", n, p.OwnerReferences)
		}
	}
	time.Sleep(50 * time.Millisecond)
	if podGet(c, "web-1-a")() != nil {
		t.Fatal("orphan collected later")
	}
}

func TestDropsGoneOwnerKeepsLiving(t *testing.T) {
	cm := &v1.ReplicationController{ObjectMeta: metav1.ObjectMeta{Name: "alive", Namespace: "default", UID: "alive-uid"}}
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default", UID: "p-uid", OwnerReferences: []metav1.OwnerReference{
		ref("ReplicationController", "v1", "alive", "alive-uid", false),
		ref("ReplicaSet", "apps/v1", "gone", "gone-uid", false),
	}}}
	c := start(t, cm, p)
	controllertest.Eventually(t, 5*time.Second, "gone owner dropped", func() error {
		got, err := c.CoreV1().Pods("default").Get(context.Background(), "p", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(got.OwnerReferences) != 1 || got.OwnerReferences[0].UID != "alive-uid" {
			return fmt.Errorf("refs %v", got.OwnerReferences)
		}
		return nil
	})
}

func TestRecreatedNamesakeIsNotTheOwner(t *testing.T) {
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "default", UID: "new-uid"}}
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default", UID: "p-uid",
		OwnerReferences: []metav1.OwnerReference{ref("ReplicaSet", "apps/v1", "web-1", "old-uid", true)}}}
	c := start(t, rs, p)
	gone(t, "pod of the old replicaset", podGet(c, "p"))
}

func TestNodeLeaseCollected(t *testing.T) {
	node := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", UID: "node-uid"}}
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "n1", Namespace: "kube-node-lease", UID: "lease-uid",
		OwnerReferences: []metav1.OwnerReference{ref("Node", "v1", "n1", "node-uid", false)}}}
	c := start(t, node, lease)
	if err := c.CoreV1().Nodes().Delete(context.Background(), "n1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	gone(t, "lease", func() error {
		_, err := c.CoordinationV1().Leases("kube-node-lease").Get(context.Background(), "n1", metav1.GetOptions{})
		return err
	})
}
