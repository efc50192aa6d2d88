package endpointslice

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"

	"github.com/peapod/peapod/internal/controller/controllertest"
)

// start runs the controller over a fake API holding objs.
func start(t *testing.T, objs ...runtime.Object) kubernetes.Interface {
	t.Helper()
	objs = append(objs, nodes["node-a"].DeepCopy(), nodes["node-b"].DeepCopy())
	client := controllertest.NewClientset(objs...)
	controllertest.Start(t, client, func(f informers.SharedInformerFactory) (controllertest.Runner, error) {
		return New(client, f, Options{})
	})
	return client
}

func slicesOf(t *testing.T, client kubernetes.Interface) []discoveryv1.EndpointSlice {
	t.Helper()
	l, err := client.DiscoveryV1().EndpointSlices("ns").List(context.Background(), metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=web"})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

func waitAddresses(t *testing.T, client kubernetes.Interface, want string) []discoveryv1.EndpointSlice {
	t.Helper()
	var got []discoveryv1.EndpointSlice
	controllertest.Eventually(t, 5*time.Second, "addresses "+want, func() error {
		got = slicesOf(t, client)
		all := ""
		for i := range got {
			if a := addresses(&got[i]); a != "" {
				if all != "" {
					all += ","
				}
				all += a
			}
		}
		if all != want {
			return fmt.Errorf("addresses %q in %d slices", all, len(got))
		}
		return nil
	})
	return got
}

func TestControllerFollowsPods(t *testing.T) {
	svc := testService()
	client := start(t, svc, testPod("a", "10.42.0.2"), testPod("b", "10.42.0.3"))
	ctx := context.Background()
	got := waitAddresses(t, client, "10.42.0.2,10.42.0.3")
	if len(got) != 1 {
		t.Fatalf("%d slices, want 1", len(got))
	}
	name := got[0].Name

	if err := client.CoreV1().Pods("ns").Delete(ctx, "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	got = waitAddresses(t, client, "10.42.0.3")
	if got[0].Name != name {
		t.Errorf("slice replaced (%s → %s); a pod's removal must update it in place", name, got[0].Name)
	}

	if _, err := client.CoreV1().Pods("ns").Create(ctx, testPod("c", "10.42.0.4"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitAddresses(t, client, "10.42.0.3,10.42.0.4")

	// A pod whose labels stop matching leaves the Service.
	c, _ := client.CoreV1().Pods("ns").Get(ctx, "c", metav1.GetOptions{})
	c.Labels = map[string]string{"app": "other"}
	if _, err := client.CoreV1().Pods("ns").Update(ctx, c, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitAddresses(t, client, "10.42.0.3")
}

func TestControllerRepairsEditedSlices(t *testing.T) {
	client := start(t, testService(), testPod("a", "10.42.0.2"))
	ctx := context.Background()
	got := waitAddresses(t, client, "10.42.0.2")
	s := got[0]
	s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{"10.99.0.1"}})
	if _, err := client.DiscoveryV1().EndpointSlices("ns").Update(ctx, &s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitAddresses(t, client, "10.42.0.2")
	if err := client.DiscoveryV1().EndpointSlices("ns").Delete(ctx, s.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitAddresses(t, client, "10.42.0.2")
}

func TestControllerLeavesSelectorlessAndExternalNameServicesAlone(t *testing.T) {
	plain := testService()
	plain.Name, plain.UID, plain.Spec.Selector = "manual", "manual-uid", nil
	ext := testService()
	ext.Name, ext.UID, ext.Spec.Type, ext.Spec.ExternalName, ext.Spec.ClusterIP = "ext", "ext-uid", corev1.ServiceTypeExternalName, "example.com", ""
	client := start(t, plain, ext, testService(), testPod("a", "10.42.0.2"))
	waitAddresses(t, client, "10.42.0.2") // the controller ran
	l, err := client.DiscoveryV1().EndpointSlices("ns").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range l.Items {
		if n := s.Labels[discoveryv1.LabelServiceName]; n != "web" {
			t.Errorf("slice %s made for Service %s", s.Name, n)
		}
	}
}
