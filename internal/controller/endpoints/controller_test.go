//lint:file-ignore SA1019 this is the legacy Endpoints controller: core/v1 Endpoints is its whole job, as in kube-controller-manager
package endpoints

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"

	"github.com/peapod/peapod/internal/controller/controllertest"
)

func start(t *testing.T, objs ...runtime.Object) kubernetes.Interface {
	t.Helper()
	client := controllertest.NewClientset(objs...)
	controllertest.Start(t, client, func(f informers.SharedInformerFactory) (controllertest.Runner, error) {
		return New(client, f, Options{})
	})
	return client
}

func TestControllerWritesAndDeletesEndpoints(t *testing.T) {
	svc := svcWith(corev1.ServicePort{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("web")})
	manual := svcWith(corev1.ServicePort{Port: 80, Protocol: corev1.ProtocolTCP})
	manual.Name, manual.Spec.Selector = "manual", nil
	userEps := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "manual", Namespace: "ns"},
		Subsets: []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{{IP: "192.0.2.1"}}, Ports: []corev1.EndpointPort{{Port: 80}}}}}
	orphan := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "gone", Namespace: "ns"}}
	client := start(t, svc, manual, userEps, orphan, pod("a", "10.0.0.2", true, 8080))
	ctx := context.Background()
	controllertest.Eventually(t, 5*time.Second, "endpoints", func() error {
		e, err := client.CoreV1().Endpoints("ns").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if got := render(e.Subsets); got != "[10.0.0.2 | | http:8080/TCP ]" {
			return fmt.Errorf("subsets %s", got)
		}
		return nil
	})
	controllertest.Eventually(t, 5*time.Second, "orphan removed", func() error {
		if _, err := client.CoreV1().Endpoints("ns").Get(ctx, "gone", metav1.GetOptions{}); err == nil {
			return fmt.Errorf("Endpoints without a Service still there")
		}
		return nil
	})
	if e, err := client.CoreV1().Endpoints("ns").Get(ctx, "manual", metav1.GetOptions{}); err != nil || e.Subsets[0].Addresses[0].IP != "192.0.2.1" {
		t.Errorf("user-written Endpoints of a selector-less Service changed: %v %v", e, err)
	}
	if err := client.CoreV1().Services("ns").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	controllertest.Eventually(t, 5*time.Second, "endpoints deleted with the Service", func() error {
		if _, err := client.CoreV1().Endpoints("ns").Get(ctx, "web", metav1.GetOptions{}); err == nil {
			return fmt.Errorf("still there")
		}
		return nil
	})
}
