package statefulset

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
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

func start(t *testing.T, objs ...runtime.Object) *fake.Clientset {
	t.Helper()
	client := controllertest.NewClientset(objs...)
	controllertest.Start(t, client, func(f informers.SharedInformerFactory) (controllertest.Runner, error) {
		return New(client, f, Options{Logger: slog.New(slog.DiscardHandler)})
	})
	return client
}

// newSet returns a StatefulSet "web" whose pods carry a test finalizer, so
// deleted pods linger (terminating) until the test finishes them.
func newSet(replicas int32, policy appsv1.PodManagementPolicyType) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            &replicas,
			ServiceName:         "nginx",
			PodManagementPolicy: policy,
			Selector:            &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: v1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}, Finalizers: []string{"test/hold"}},
				Spec:       v1.PodSpec{Containers: []v1.Container{{Name: "c", Image: "busybox:1"}}},
			},
		},
	}
}

// names lists pod names, sorted; terminating ones get a "~" suffix.
func names(t *testing.T, client *fake.Clientset) []string {
	t.Helper()
	l, err := client.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range l.Items {
		n := p.Name
		if p.DeletionTimestamp != nil {
			n += "~"
		}
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func waitNames(t *testing.T, client *fake.Clientset, want ...string) {
	t.Helper()
	sort.Strings(want)
	controllertest.Eventually(t, 5*time.Second, fmt.Sprintf("pods %v", want), func() error {
		if got := names(t, client); fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("have %v", got)
		}
		return nil
	})
}

// stays fails if the pod set changes away from want within d.
func stays(t *testing.T, client *fake.Clientset, d time.Duration, want ...string) {
	t.Helper()
	sort.Strings(want)
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if got := names(t, client); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("pods changed to %v, want to stay %v", got, want)
		}
	}
}

func pod(t *testing.T, client *fake.Clientset, name string) *v1.Pod {
	t.Helper()
	p, err := client.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// ready marks a pod Running and Ready, as a node agent would.
func ready(t *testing.T, client *fake.Clientset, name string) {
	t.Helper()
	p := pod(t, client, name)
	p.Status.Phase = v1.PodRunning
	p.Status.Conditions = []v1.PodCondition{{Type: v1.PodReady, Status: v1.ConditionTrue, LastTransitionTime: metav1.Now()}}
	if _, err := client.CoreV1().Pods("default").UpdateStatus(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// finish completes a terminating pod's deletion by dropping its finalizer.
func finish(t *testing.T, client *fake.Clientset, name string) {
	t.Helper()
	p := pod(t, client, name)
	p.Finalizers = nil
	if _, err := client.CoreV1().Pods("default").Update(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func setReplicas(t *testing.T, client *fake.Clientset, n int32, mod ...func(*appsv1.StatefulSet)) {
	t.Helper()
	controllertest.Eventually(t, 5*time.Second, "update statefulset", func() error {
		s, err := client.AppsV1().StatefulSets("default").Get(context.Background(), "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		s.Spec.Replicas = &n
		for _, m := range mod {
			m(s)
		}
		_, err = client.AppsV1().StatefulSets("default").Update(context.Background(), s, metav1.UpdateOptions{})
		return err
	})
}
