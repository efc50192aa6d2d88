package deployment

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/clock"

	"github.com/peapod/peapod/internal/controller/controllertest"
	"github.com/peapod/peapod/internal/controller/ctrlutil"
	"github.com/peapod/peapod/internal/controller/replicaset"
)

type env struct {
	client *fake.Clientset
	// kubelet, while true, marks new pods Running and Ready shortly after
	// they appear, as a node agent would.
	kubelet atomic.Bool
}

// start runs the deployment and replicaset controllers over a fake
// clientset holding objs, timed by clk (nil = real); kubelet starts the
// simulated node agent enabled.
func start(t *testing.T, clk clock.WithTicker, kubelet bool, objs ...runtime.Object) *env {
	t.Helper()
	e := &env{client: controllertest.NewClientset(objs...)}
	e.kubelet.Store(kubelet)
	factory := informers.NewSharedInformerFactory(e.client, 0)
	log := slog.New(slog.DiscardHandler)
	rsc, err := replicaset.New(e.client, factory, replicaset.KindReplicaSet, replicaset.Options{Logger: log, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	dc, err := New(e.client, factory, Options{Logger: log, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	// The simulated kubelet stops with the test (t.Context ends just
	// before the controllers are stopped).
	ctx := t.Context()
	if err := ctrlutil.OnEvents(factory.Core().V1().Pods().Informer(), "kubelet pod", func(o any) {
		if e.kubelet.Load() {
			go e.markReady(ctx, o.(*v1.Pod).Name)
		}
	}, nil, nil); err != nil {
		t.Fatal(err)
	}
	controllertest.Run(t, factory, rsc, dc)
	return e
}

// markReady makes pod name Running and Ready after a short delay.
func (e *env) markReady(ctx context.Context, name string) {
	time.Sleep(10 * time.Millisecond)
	p, err := e.client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
	if err != nil || ctx.Err() != nil {
		return
	}
	p.Spec.NodeName = "node-1"
	if p, err = e.client.CoreV1().Pods("default").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		return
	}
	p.Status.Phase = v1.PodRunning
	p.Status.Conditions = []v1.PodCondition{{Type: v1.PodReady, Status: v1.ConditionTrue, LastTransitionTime: metav1.Now()}}
	_, _ = e.client.CoreV1().Pods("default").UpdateStatus(ctx, p, metav1.UpdateOptions{})
}

// readyAll marks every existing pod Ready.
func isReady(p *v1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == v1.PodReady {
			return c.Status == v1.ConditionTrue
		}
	}
	return false
}

func newDeployment(name string, replicas int32, image string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: v1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec:       v1.PodSpec{Containers: []v1.Container{{Name: "c", Image: image}}},
			},
		},
	}
}

func rolling(d *appsv1.Deployment, surge, unavailable intstr.IntOrString) *appsv1.Deployment {
	d.Spec.Strategy = appsv1.DeploymentStrategy{
		Type:          appsv1.RollingUpdateDeploymentStrategyType,
		RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &unavailable},
	}
	return d
}

func (e *env) pods(t *testing.T) []v1.Pod {
	l, err := e.client.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

func (e *env) rss(t *testing.T) []appsv1.ReplicaSet {
	l, err := e.client.AppsV1().ReplicaSets("default").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

func (e *env) get(t *testing.T, name string) *appsv1.Deployment {
	d, err := e.client.AppsV1().Deployments("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// update applies mod to the deployment, retrying on conflicts (the
// controller writes the same object).
func (e *env) update(t *testing.T, name string, mod func(*appsv1.Deployment)) {
	t.Helper()
	controllertest.Eventually(t, 5*time.Second, "update deployment", func() error {
		d := e.get(t, name)
		mod(d)
		_, err := e.client.AppsV1().Deployments("default").Update(context.Background(), d, metav1.UpdateOptions{})
		return err
	})
}

// waitComplete waits until name's rollout is complete: all replicas
// updated and available and Progressing=NewReplicaSetAvailable.
func (e *env) waitComplete(t *testing.T, name string) *appsv1.Deployment {
	t.Helper()
	var d *appsv1.Deployment
	controllertest.Eventually(t, 10*time.Second, "rollout complete", func() error {
		d = e.get(t, name)
		st := d.Status
		r := *d.Spec.Replicas
		cond := getCondition(&st, appsv1.DeploymentProgressing)
		if st.ObservedGeneration < d.Generation || st.UpdatedReplicas != r || st.Replicas != r || st.AvailableReplicas != r ||
			cond == nil || cond.Reason != ReasonNewRSAvailable || len(e.pods(t)) != int(r) {
			return fmt.Errorf("status %+v, %d pods", st, len(e.pods(t)))
		}
		return nil
	})
	return d
}
