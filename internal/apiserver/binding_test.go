package apiserver

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/peapod/peapod/internal/scheduler"
)

// podScheduled returns the pod's PodScheduled condition, or nil.
func podScheduled(p *corev1.Pod) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.PodScheduled {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// The binding subresource sets spec.nodeName and PodScheduled=True in one
// write, as kube-apiserver's does, and binds only the pod the Binding
// names (its UID) and only once.
func TestBindingSetsPodScheduled(t *testing.T) {
	s, stop := startServer(t, tempDir(t))
	t.Cleanup(stop)
	cs, _ := clientFor(t, s.Kubeconfig())
	ctx := context.Background()
	pods := cs.CoreV1().Pods("default")
	pod := func(name string) *corev1.Pod {
		p, err := pods.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	bind := func(p *corev1.Pod, uid string, node string) error {
		return pods.Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: p.Name, UID: types.UID(uid)},
			Target: corev1.ObjectReference{Kind: "Node", Name: node}}, metav1.CreateOptions{})
	}

	// A pod the scheduler found no room for once, then bound.
	web := pod("web")
	web.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
		Reason: corev1.PodReasonUnschedulable, Message: "0/1 nodes are available", LastTransitionTime: metav1.NewTime(time.Now().Add(-time.Hour))}}
	web, err := pods.UpdateStatus(ctx, web, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now().Truncate(time.Second)
	if err := bind(web, string(web.UID), "node1"); err != nil {
		t.Fatalf("bind: %v", err)
	}
	got, err := pods.Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := podScheduled(got)
	if got.Spec.NodeName != "node1" || c == nil || c.Status != corev1.ConditionTrue || c.Reason != "" || c.Message != "" {
		t.Fatalf("bound pod: nodeName %q, PodScheduled %+v; want node1 and True without the Unschedulable reason", got.Spec.NodeName, c)
	}
	if c.LastTransitionTime.Time.Before(before) {
		t.Errorf("PodScheduled lastTransitionTime %v: not the time of the binding (after %v)", c.LastTransitionTime, before)
	}
	if n := len(got.Status.Conditions); n != 1 {
		t.Errorf("%d conditions, want the one PodScheduled: %+v", n, got.Status.Conditions)
	}

	// Bound once: a second binding is refused and changes nothing.
	if err := bind(got, "", "node2"); !apierrors.IsConflict(err) {
		t.Fatalf("second binding: %v, want Conflict", err)
	}
	if again, _ := pods.Get(ctx, "web", metav1.GetOptions{}); again.Spec.NodeName != "node1" || again.ResourceVersion != got.ResourceVersion {
		t.Fatalf("second binding changed the pod: nodeName %q, resourceVersion %s → %s", again.Spec.NodeName, got.ResourceVersion, again.ResourceVersion)
	}

	// A decision made for an earlier pod of the same name binds nothing.
	db := pod("db")
	if err := bind(db, "6a1b0b6e-0000-4000-8000-000000000000", "node1"); !apierrors.IsConflict(err) || !strings.Contains(err.Error(), "UID") {
		t.Fatalf("binding with another pod's UID: %v, want Conflict naming the UID", err)
	}
	if cur, _ := pods.Get(ctx, "db", metav1.GetOptions{}); cur.Spec.NodeName != "" || podScheduled(cur) != nil {
		t.Fatalf("pod bound by a Binding for another UID: nodeName %q, PodScheduled %+v", cur.Spec.NodeName, podScheduled(cur))
	}
	if err := bind(db, string(db.UID), "node1"); err != nil {
		t.Fatalf("bind with its own UID: %v", err)
	}
}

// Bursts of pods created one after another, as `kubectl run` does, are
// every one bound by the real scheduler and delivered to a node's
// spec.nodeName watch, as the agent's informer sees them. Before reads on
// the embedded etcd were kept from lagging what watches delivered, a pod
// now and then stayed Pending for good: the scheduler's bind of a pod it
// had just been told of read "not found" and the scheduler forgot the pod.
// That failed 5 of 10 runs of this test under -race, the stuck pod with
// no spec.nodeName, no condition and no event; storage's
// TestReadSeesWhatWatchDelivered catches the cause itself, without -race.
func TestBurstOfPodsAllBoundAndDelivered(t *testing.T) {
	dir := tempDir(t)
	s, stop := startServer(t, dir)
	t.Cleanup(stop)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// As peapod's own components talk to the API: protobuf, high limits.
	component := func(kubeconfig string) kubernetes.Interface {
		t.Helper()
		rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		rc.QPS, rc.Burst = 500, 1000
		rc.ContentType = "application/vnd.kubernetes.protobuf"
		rc.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
		return kubernetes.NewForConfigOrDie(rc)
	}
	nodeKubeconfig, err := s.WriteNodeCredentials("n1", filepath.Join(dir, "node"))
	if err != nil {
		t.Fatal(err)
	}
	nodeClient := component(nodeKubeconfig)
	// Registered and Ready, as the agent makes it.
	node, err := nodeClient.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node.Status = readyNodeStatus()
	if _, err := nodeClient.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	sched := scheduler.New(component(s.Kubeconfig()), scheduler.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	schedDone := make(chan error, 1)
	go func() { schedDone <- sched.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-schedDone; err != nil {
			t.Errorf("scheduler: %v", err)
		}
	})

	// The node's view, as the agent's informer has it.
	factory := informers.NewSharedInformerFactoryWithOptions(nodeClient, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", "n1").String()
		}))
	onNode := factory.Core().V1().Pods().Informer()
	// And, as the agent does, it reports each pod it is given as running:
	// writes that land while the scheduler binds the next pods.
	var reports sync.WaitGroup
	t.Cleanup(func() { cancel(); reports.Wait() })
	running := func(obj any) {
		p := obj.(*corev1.Pod).DeepCopy()
		if p.Status.Phase == corev1.PodRunning {
			return
		}
		reports.Add(1)
		go func() {
			defer reports.Done()
			p.Status.Phase, p.Status.PodIP = corev1.PodRunning, "10.0.0.1"
			if _, err := nodeClient.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil && ctx.Err() == nil && !apierrors.IsConflict(err) {
				t.Errorf("report %s/%s running: %v", p.Namespace, p.Name, err)
			}
		}()
	}
	if _, err := onNode.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: running, UpdateFunc: func(_, obj any) { running(obj) }}); err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	t.Cleanup(factory.Shutdown)
	if !cache.WaitForCacheSync(ctx.Done(), onNode.HasSynced) {
		t.Fatal("node's pod informer did not sync")
	}
	select {
	case <-sched.Ready():
	case err := <-schedDone:
		t.Fatalf("scheduler stopped: %v", err)
	}

	// JSON, as kubectl; unthrottled, so each burst comes fast.
	_, userConfig := clientFor(t, s.Kubeconfig())
	userConfig.QPS, userConfig.Burst = 1000, 1000
	user := kubernetes.NewForConfigOrDie(userConfig)
	const bursts, perBurst = 3, 50
	for b := 0; b < bursts; b++ {
		ns := fmt.Sprintf("burst%d", b)
		if _, err := user.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		var names []string
		for i := 0; i < perBurst; i++ {
			name := fmt.Sprintf("p%02d", i)
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"run": name}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: name, Image: "busybox", Args: []string{"sleep", "3600"}}}}}
			if _, err := user.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			names = append(names, name)
		}
		// Every pod reaches the node bound, with PodScheduled=True.
		missing := func() []string {
			var out []string
			for _, name := range names {
				obj, ok, _ := onNode.GetStore().GetByKey(ns + "/" + name)
				if !ok {
					out = append(out, name)
					continue
				}
				if c := podScheduled(obj.(*corev1.Pod)); c == nil || c.Status != corev1.ConditionTrue || c.LastTransitionTime.IsZero() {
					out = append(out, name+" (delivered without PodScheduled=True)")
				}
			}
			return out
		}
		deadline := time.Now().Add(60 * time.Second)
		for left := missing(); len(left) > 0; left = missing() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d of %d pods not bound and delivered to the node's watch within 60s:\n%s",
					ns, len(left), perBurst, describePods(ctx, user, ns, left))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// readyNodeStatus is a Ready node with room for every burst.
func readyNodeStatus() corev1.NodeStatus {
	res := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("64"), corev1.ResourceMemory: resource.MustParse("256Gi"),
		corev1.ResourcePods: resource.MustParse("1000")}
	return corev1.NodeStatus{Capacity: res, Allocatable: res,
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue,
			LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}}
}

// describePods says, for each stuck pod, on which side it stuck: its
// spec.nodeName, its conditions and its events.
func describePods(ctx context.Context, cs kubernetes.Interface, ns string, names []string) string {
	var b strings.Builder
	evs, _ := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
	for _, name := range names {
		name, _, _ = strings.Cut(name, " ")
		p, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			fmt.Fprintf(&b, "  %s: %v\n", name, err)
			continue
		}
		var reasons []string
		for _, e := range evs.Items {
			if e.InvolvedObject.Name == name {
				reasons = append(reasons, e.Reason+": "+e.Message)
			}
		}
		sort.Strings(reasons)
		fmt.Fprintf(&b, "  %s: spec.nodeName %q, conditions %+v, events %q\n", name, p.Spec.NodeName, p.Status.Conditions, reasons)
	}
	return b.String()
}
