package replicaset

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/peapod/peapod/internal/controller/controllertest"
)

// start runs a controller of kind over a fake clientset holding objs.
func start(t testing.TB, kind Kind, objs ...runtime.Object) *fake.Clientset {
	t.Helper()
	client := controllertest.NewClientset(objs...)
	startWith(t, client, kind)
	return client
}

func startWith(t testing.TB, client *fake.Clientset, kind Kind) {
	t.Helper()
	controllertest.Start(t, client, func(f informers.SharedInformerFactory) (controllertest.Runner, error) {
		return New(client, f, kind, Options{Logger: slog.New(slog.DiscardHandler)})
	})
}

func newRS(name string, replicas int32) *appsv1.ReplicaSet {
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: v1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name, "tier": "web"}},
				Spec:       v1.PodSpec{Containers: []v1.Container{{Name: "c", Image: "busybox"}}},
			},
		},
	}
}

func listPods(t testing.TB, client *fake.Clientset) []v1.Pod {
	t.Helper()
	l, err := client.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

// waitPods waits until exactly n active pods exist.
func waitPods(t testing.TB, client *fake.Clientset, n int) []v1.Pod {
	t.Helper()
	var pods []v1.Pod
	controllertest.Eventually(t, 5*time.Second, fmt.Sprintf("%d pods", n), func() error {
		pods = pods[:0]
		for _, p := range listPods(t, client) {
			if p.Status.Phase != v1.PodFailed && p.DeletionTimestamp == nil {
				pods = append(pods, p)
			}
		}
		if len(pods) != n {
			return fmt.Errorf("have %d", len(pods))
		}
		return nil
	})
	return pods
}

// makeReady marks pod Running and Ready, as a kubelet would.
func makeReady(t testing.TB, client *fake.Clientset, p v1.Pod, since time.Time) {
	t.Helper()
	cur, err := client.CoreV1().Pods(p.Namespace).Get(context.Background(), p.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur.Spec.NodeName = "node-1"
	if cur, err = client.CoreV1().Pods(p.Namespace).Update(context.Background(), cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	cur.Status.Phase = v1.PodRunning
	cur.Status.Conditions = []v1.PodCondition{{Type: v1.PodReady, Status: v1.ConditionTrue, LastTransitionTime: metav1.NewTime(since)}}
	if _, err := client.CoreV1().Pods(p.Namespace).UpdateStatus(context.Background(), cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}
