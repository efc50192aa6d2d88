package daemonset

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/peapod/peapod/internal/controller/controllertest"
)

func start(t *testing.T, objs ...runtime.Object) *fake.Clientset {
	t.Helper()
	client := controllertest.NewClientset(objs...)
	controllertest.Start(t, client, func(f informers.SharedInformerFactory) (controllertest.Runner, error) {
		return New(client, f, Options{Logger: slog.New(slog.DiscardHandler)})
	})
	return client
}

var ctx = context.Background()

// podsByTarget lists live daemon pods as "node=image" (terminating ones
// with a "~"), sorted.
func podsByTarget(t *testing.T, client *fake.Clientset) []string {
	t.Helper()
	l, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range l.Items {
		n, err := TargetNode(&p)
		if err != nil {
			t.Fatalf("pod %s has no target node: %v", p.Name, err)
		}
		s := n + "=" + p.Spec.Containers[0].Image
		if p.DeletionTimestamp != nil {
			s += "~"
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func waitPods(t *testing.T, client *fake.Clientset, want ...string) {
	t.Helper()
	sort.Strings(want)
	controllertest.Eventually(t, 5*time.Second, fmt.Sprintf("pods %v", want), func() error {
		if got := podsByTarget(t, client); !slices.Equal(got, want) {
			return fmt.Errorf("have %v", got)
		}
		return nil
	})
}

// stays fails if the pods change away from want within d.
func stays(t *testing.T, client *fake.Clientset, d time.Duration, want ...string) {
	t.Helper()
	sort.Strings(want)
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if got := podsByTarget(t, client); !slices.Equal(got, want) {
			t.Fatalf("pods changed to %v, want to stay %v", got, want)
		}
	}
}

func podOn(t *testing.T, client *fake.Clientset, node string) *v1.Pod {
	t.Helper()
	l, _ := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	var found *v1.Pod
	for i := range l.Items {
		if n, _ := TargetNode(&l.Items[i]); n == node && l.Items[i].DeletionTimestamp == nil {
			if found != nil {
				t.Fatalf("two live pods on %s", node)
			}
			found = &l.Items[i]
		}
	}
	if found == nil {
		t.Fatalf("no pod on %s", node)
	}
	return found
}

// markReady makes node's pod Running and Ready, as its agent would.
func markReady(t *testing.T, client *fake.Clientset, node string) {
	t.Helper()
	p := podOn(t, client, node)
	p.Status.Phase = v1.PodRunning
	p.Status.Conditions = []v1.PodCondition{{Type: v1.PodReady, Status: v1.ConditionTrue, LastTransitionTime: metav1.Now()}}
	if _, err := client.CoreV1().Pods("default").UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func updateDS(t *testing.T, client *fake.Clientset, mod func(*appsv1.DaemonSet)) {
	t.Helper()
	controllertest.Eventually(t, 5*time.Second, "update daemonset", func() error {
		ds, err := client.AppsV1().DaemonSets("default").Get(ctx, "agent", metav1.GetOptions{})
		if err != nil {
			return err
		}
		before := ds.Spec.Template.DeepCopy()
		mod(ds)
		// The API server's template generation, which the fake lacks.
		if g := templateGeneration(ds); g != nil && !equalTemplates(before, &ds.Spec.Template) {
			ds.Annotations[appsv1.DeprecatedTemplateGeneration] = fmt.Sprint(*g + 1)
		}
		_, err = client.AppsV1().DaemonSets("default").Update(ctx, ds, metav1.UpdateOptions{})
		return err
	})
}

func equalTemplates(a, b *v1.PodTemplateSpec) bool {
	pa, _ := runtime.DefaultUnstructuredConverter.ToUnstructured(a)
	pb, _ := runtime.DefaultUnstructuredConverter.ToUnstructured(b)
	return fmt.Sprint(pa) == fmt.Sprint(pb)
}

func image(img string) func(*appsv1.DaemonSet) {
	return func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.Containers[0].Image = img }
}

func waitStatus(t *testing.T, client *fake.Clientset, what string, ok func(appsv1.DaemonSetStatus) bool) {
	t.Helper()
	controllertest.Eventually(t, 5*time.Second, what, func() error {
		ds, err := client.AppsV1().DaemonSets("default").Get(ctx, "agent", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if !ok(ds.Status) || ds.Status.ObservedGeneration != ds.Generation {
			return fmt.Errorf("status %+v, generation %d", ds.Status, ds.Generation)
		}
		return nil
	})
}

// revisions lists the DaemonSet's ControllerRevisions as "revision:image".
func revisions(t *testing.T, client *fake.Clientset) []string {
	t.Helper()
	l, err := client.AppsV1().ControllerRevisions("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range l.Items {
		ds := &appsv1.DaemonSet{}
		if err := applyRevision(ds, &r); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%d:%s", r.Revision, ds.Spec.Template.Spec.Containers[0].Image))
	}
	sort.Strings(out)
	return out
}

func applyRevision(ds *appsv1.DaemonSet, r *appsv1.ControllerRevision) error {
	client := fake.NewClientset(&appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "n"}})
	got, err := client.AppsV1().DaemonSets("n").Patch(ctx, "x", types.StrategicMergePatchType, r.Data.Raw, metav1.PatchOptions{})
	if err != nil {
		return err
	}
	*ds = *got
	return nil
}

func TestOnePodPerMatchingNode(t *testing.T) {
	ds := newDS(func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.NodeSelector = map[string]string{"role": "worker"} })
	client := start(t, ds, node("n1", labelled("role", "worker")), node("n2", labelled("role", "worker")), node("n3"))
	waitPods(t, client, "n1=busybox:1", "n2=busybox:1")
	p := podOn(t, client, "n1")
	if p.Spec.NodeName != "" {
		t.Errorf("pod bound by the controller to %s; the scheduler binds", p.Spec.NodeName)
	}
	if p.Labels[HashLabel] == "" || p.Labels[GenerationLabel] != "1" || p.Labels["app"] != "agent" {
		t.Errorf("labels %v", p.Labels)
	}
	if ref := metav1.GetControllerOf(p); ref == nil || ref.Kind != "DaemonSet" || ref.Name != "agent" {
		t.Errorf("controller ref %+v", ref)
	}
	for _, tol := range daemonTolerations {
		if !slices.ContainsFunc(p.Spec.Tolerations, func(x v1.Toleration) bool { return x.MatchToleration(&tol) }) {
			t.Errorf("pod lacks toleration %+v", tol)
		}
	}
	waitStatus(t, client, "status", func(st appsv1.DaemonSetStatus) bool {
		return st.DesiredNumberScheduled == 2 && st.CurrentNumberScheduled == 2 && st.UpdatedNumberScheduled == 2 && st.NumberReady == 0 && st.NumberUnavailable == 2
	})
	if got := revisions(t, client); !slices.Equal(got, []string{"1:busybox:1"}) {
		t.Errorf("revisions %v", got)
	}

	// A node that joins, or starts matching, gets its pod; one that stops
	// matching loses it.
	if _, err := client.CoreV1().Nodes().Create(ctx, node("n4", labelled("role", "worker")), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	n3, _ := client.CoreV1().Nodes().Get(ctx, "n3", metav1.GetOptions{})
	n3.Labels["role"] = "worker"
	if _, err := client.CoreV1().Nodes().Update(ctx, n3, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPods(t, client, "n1=busybox:1", "n2=busybox:1", "n3=busybox:1", "n4=busybox:1")
	n1, _ := client.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
	n1.Spec.Taints = []v1.Taint{{Key: "maintenance", Effect: v1.TaintEffectNoExecute}}
	if _, err := client.CoreV1().Nodes().Update(ctx, n1, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPods(t, client, "n2=busybox:1", "n3=busybox:1", "n4=busybox:1")
	for _, n := range []string{"n2", "n3", "n4"} {
		markReady(t, client, n)
	}
	waitStatus(t, client, "status after the node changes", func(st appsv1.DaemonSetStatus) bool {
		return st.DesiredNumberScheduled == 3 && st.NumberReady == 3 && st.NumberAvailable == 3 && st.NumberMisscheduled == 0
	})

	// A deleted node no longer counts; its unscheduled pod goes (a bound
	// one is the pod garbage collector's).
	if err := client.CoreV1().Nodes().Delete(ctx, "n4", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPods(t, client, "n2=busybox:1", "n3=busybox:1")
	waitStatus(t, client, "status after node n4 left", func(st appsv1.DaemonSetStatus) bool { return st.DesiredNumberScheduled == 2 })
}

func TestFailedPodIsReplaced(t *testing.T) {
	client := start(t, newDS(), node("n1"))
	waitPods(t, client, "n1=busybox:1")
	p := podOn(t, client, "n1")
	p.Status.Phase = v1.PodFailed
	if _, err := client.CoreV1().Pods("default").UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	controllertest.Eventually(t, 5*time.Second, "a new pod replaces the failed one", func() error {
		if q := podOn(t, client, "n1"); q.UID == p.UID {
			return fmt.Errorf("still the failed pod")
		}
		return nil
	})
}

// TestRollingUpdateOneNodeAtATime: with maxUnavailable 1, a new template
// replaces one node's pod at a time, the next only once the new one is
// ready; history records both templates, and going back to the first
// (kubectl rollout undo applies its revision) renumbers it as the newest.
func TestRollingUpdateOneNodeAtATime(t *testing.T) {
	client := start(t, newDS(), node("n1"), node("n2"), node("n3"))
	waitPods(t, client, "n1=busybox:1", "n2=busybox:1", "n3=busybox:1")
	for _, n := range []string{"n1", "n2", "n3"} {
		markReady(t, client, n)
	}
	waitStatus(t, client, "all available", func(st appsv1.DaemonSetStatus) bool { return st.NumberAvailable == 3 })

	updateDS(t, client, image("busybox:2"))
	waitPods(t, client, "n1=busybox:2", "n2=busybox:1", "n3=busybox:1")
	stays(t, client, 100*time.Millisecond, "n1=busybox:2", "n2=busybox:1", "n3=busybox:1")
	waitStatus(t, client, "one updated", func(st appsv1.DaemonSetStatus) bool {
		return st.UpdatedNumberScheduled == 1 && st.NumberAvailable == 2
	})
	markReady(t, client, "n1")
	waitPods(t, client, "n1=busybox:2", "n2=busybox:2", "n3=busybox:1")
	stays(t, client, 50*time.Millisecond, "n1=busybox:2", "n2=busybox:2", "n3=busybox:1")
	markReady(t, client, "n2")
	waitPods(t, client, "n1=busybox:2", "n2=busybox:2", "n3=busybox:2")
	markReady(t, client, "n3")
	waitStatus(t, client, "rolled out", func(st appsv1.DaemonSetStatus) bool {
		return st.UpdatedNumberScheduled == 3 && st.NumberAvailable == 3
	})
	if got := revisions(t, client); !slices.Equal(got, []string{"1:busybox:1", "2:busybox:2"}) {
		t.Fatalf("revisions %v", got)
	}

	// Undo: apply revision 1's data, as kubectl rollout undo does.
	l, _ := client.AppsV1().ControllerRevisions("default").List(ctx, metav1.ListOptions{})
	var first *appsv1.ControllerRevision
	for i := range l.Items {
		if l.Items[i].Revision == 1 {
			first = &l.Items[i]
		}
	}
	ds, _ := client.AppsV1().DaemonSets("default").Get(ctx, "agent", metav1.GetOptions{})
	if matches(ds, first) {
		t.Fatal("revision 1 matches the current template")
	}
	updateDS(t, client, func(ds *appsv1.DaemonSet) {
		old := &appsv1.DaemonSet{}
		if err := applyRevision(old, first); err != nil {
			t.Fatal(err)
		}
		ds.Spec.Template = old.Spec.Template
	})
	controllertest.Eventually(t, 5*time.Second, "revision 1 renumbered 3", func() error {
		if got := revisions(t, client); !slices.Equal(got, []string{"2:busybox:2", "3:busybox:1"}) {
			return fmt.Errorf("revisions %v", got)
		}
		return nil
	})
	waitPods(t, client, "n1=busybox:1", "n2=busybox:2", "n3=busybox:2")
}

func TestRollingUpdateWithSurge(t *testing.T) {
	client := start(t, newDS(surge("1")), node("n1"), node("n2"))
	waitPods(t, client, "n1=busybox:1", "n2=busybox:1")
	markReady(t, client, "n1")
	markReady(t, client, "n2")
	waitStatus(t, client, "available", func(st appsv1.DaemonSetStatus) bool { return st.NumberAvailable == 2 })
	updateDS(t, client, image("busybox:2"))
	// The new pod starts beside the old one, one node at a time.
	waitPods(t, client, "n1=busybox:1", "n1=busybox:2", "n2=busybox:1")
	stays(t, client, 100*time.Millisecond, "n1=busybox:1", "n1=busybox:2", "n2=busybox:1")
	l, _ := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	for _, p := range l.Items {
		if p.Spec.Containers[0].Image == "busybox:2" {
			p.Status.Phase = v1.PodRunning
			p.Status.Conditions = []v1.PodCondition{{Type: v1.PodReady, Status: v1.ConditionTrue, LastTransitionTime: metav1.Now()}}
			if _, err := client.CoreV1().Pods("default").UpdateStatus(ctx, &p, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitPods(t, client, "n1=busybox:2", "n2=busybox:1", "n2=busybox:2")
}

func TestOnDeleteWaitsForTheUser(t *testing.T) {
	client := start(t, newDS(func(ds *appsv1.DaemonSet) {
		ds.Spec.UpdateStrategy = appsv1.DaemonSetUpdateStrategy{Type: appsv1.OnDeleteDaemonSetStrategyType}
	}), node("n1"), node("n2"))
	waitPods(t, client, "n1=busybox:1", "n2=busybox:1")
	updateDS(t, client, image("busybox:2"))
	waitStatus(t, client, "observed, nothing updated", func(st appsv1.DaemonSetStatus) bool { return st.UpdatedNumberScheduled == 0 })
	stays(t, client, 100*time.Millisecond, "n1=busybox:1", "n2=busybox:1")
	if err := client.CoreV1().Pods("default").Delete(ctx, podOn(t, client, "n2").Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPods(t, client, "n1=busybox:1", "n2=busybox:2")
}

// TestAdoptsOrphans: a matching pod without an owner on a node is
// adopted instead of getting a second one beside it.
func TestAdoptsOrphans(t *testing.T) {
	orphan := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "stray", Namespace: "default", Labels: map[string]string{"app": "agent"}},
		Spec:       v1.PodSpec{NodeName: "n1", Containers: []v1.Container{{Name: "c", Image: "busybox:1"}}},
	}
	client := start(t, newDS(func(ds *appsv1.DaemonSet) {
		ds.Spec.UpdateStrategy = appsv1.DaemonSetUpdateStrategy{Type: appsv1.OnDeleteDaemonSetStrategyType}
	}), node("n1"), orphan)
	controllertest.Eventually(t, 5*time.Second, "adoption", func() error {
		p, _ := client.CoreV1().Pods("default").Get(ctx, "stray", metav1.GetOptions{})
		if metav1.GetControllerOf(p) == nil {
			return fmt.Errorf("not adopted")
		}
		return nil
	})
	stays(t, client, 100*time.Millisecond, "n1=busybox:1")
}

// TestHistoryLimit: revisions beyond revisionHistoryLimit go, oldest
// first.
func TestHistoryLimit(t *testing.T) {
	client := start(t, newDS(func(ds *appsv1.DaemonSet) {
		one := int32(1)
		ds.Spec.RevisionHistoryLimit = &one
	}))
	want := func(revs ...string) {
		t.Helper()
		controllertest.Eventually(t, 5*time.Second, fmt.Sprintf("revisions %v", revs), func() error {
			if got := revisions(t, client); !slices.Equal(got, revs) {
				return fmt.Errorf("have %v", got)
			}
			return nil
		})
	}
	want("1:busybox:1")
	updateDS(t, client, image("busybox:2"))
	want("1:busybox:1", "2:busybox:2")
	updateDS(t, client, image("busybox:3"))
	want("2:busybox:2", "3:busybox:3")
}
