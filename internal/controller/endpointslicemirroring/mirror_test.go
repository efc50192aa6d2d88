//lint:file-ignore SA1019 mirroring reads user-written core/v1 Endpoints into EndpointSlices: the deprecated type is its input
package endpointslicemirroring

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
	"k8s.io/utils/ptr"

	"github.com/peapod/peapod/internal/controller/controllertest"
)

func userEndpoints() *corev1.Endpoints {
	return &corev1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "ns", UID: "eps-uid", Labels: map[string]string{"team": "a"},
			Annotations: map[string]string{corev1.LastAppliedConfigAnnotation: "{}", "note": "x"}},
		Subsets: []corev1.EndpointSubset{
			{Addresses: []corev1.EndpointAddress{{IP: "192.0.2.1", Hostname: "db-0"}, {IP: "not-an-ip"}},
				NotReadyAddresses: []corev1.EndpointAddress{{IP: "192.0.2.2"}},
				Ports:             []corev1.EndpointPort{{Name: "sql", Port: 5432, Protocol: corev1.ProtocolTCP}}},
			{Addresses: []corev1.EndpointAddress{{IP: "2001:db8::1"}}, Ports: []corev1.EndpointPort{{Name: "sql", Port: 5432}}},
		},
	}
}

func TestReconcileMirrors(t *testing.T) {
	p := reconcile(userEndpoints(), nil)
	if len(p.create) != 2 || p.skipped != 1 {
		t.Fatalf("%d creates, %d skipped; want 2 slices (IPv4, IPv6) and the non-IP skipped", len(p.create), p.skipped)
	}
	s := p.create[0]
	if s.AddressType != discoveryv1.AddressTypeIPv4 {
		s = p.create[1]
	}
	if s.Labels["team"] != "a" || s.Labels[discoveryv1.LabelServiceName] != "db" || s.Labels[discoveryv1.LabelManagedBy] != ControllerName {
		t.Errorf("labels %v", s.Labels)
	}
	if _, ok := s.Annotations[corev1.LastAppliedConfigAnnotation]; ok || s.Annotations["note"] != "x" {
		t.Errorf("annotations %v", s.Annotations)
	}
	if o := s.OwnerReferences; len(o) != 1 || o[0].Kind != "Endpoints" || o[0].UID != "eps-uid" || !*o[0].Controller {
		t.Errorf("owner %+v", o)
	}
	got := ""
	for _, e := range s.Endpoints {
		got += fmt.Sprintf("%s ready=%v host=%s; ", e.Addresses[0], *e.Conditions.Ready, ptr.Deref(e.Hostname, ""))
	}
	if got != "192.0.2.1 ready=true host=db-0; 192.0.2.2 ready=false host=; " || *s.Ports[0].Port != 5432 {
		t.Errorf("endpoints %s ports %v", got, s.Ports)
	}
	// Mirroring the same again changes nothing.
	var existing []*discoveryv1.EndpointSlice
	for i, c := range p.create {
		c.Name = fmt.Sprint("db-", i)
		existing = append(existing, c)
	}
	if p := reconcile(userEndpoints(), existing); len(p.create)+len(p.update)+len(p.remove) != 0 {
		t.Errorf("unchanged Endpoints rewrote slices: %d/%d/%d", len(p.create), len(p.update), len(p.remove))
	}
	// A port change updates the slice in place.
	e := userEndpoints()
	e.Subsets[0].Ports[0].Port = 5433
	if p := reconcile(e, existing); len(p.update) != 1 || len(p.create)+len(p.remove) != 0 {
		t.Errorf("port change: %d/%d/%d, want one update", len(p.create), len(p.update), len(p.remove))
	}
}

func start(t *testing.T, objs ...runtime.Object) kubernetes.Interface {
	t.Helper()
	client := controllertest.NewClientset(objs...)
	controllertest.Start(t, client, func(f informers.SharedInformerFactory) (controllertest.Runner, error) {
		return New(client, f, Options{})
	})
	return client
}

func mirroredCount(client kubernetes.Interface) int {
	l, _ := client.DiscoveryV1().EndpointSlices("ns").List(context.Background(),
		metav1.ListOptions{LabelSelector: discoveryv1.LabelManagedBy + "=" + ControllerName})
	return len(l.Items)
}

func TestControllerMirrorsOnlySelectorlessServices(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "ns"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "sql", Port: 5432}}}}
	client := start(t, svc, userEndpoints())
	ctx := context.Background()
	controllertest.Eventually(t, 5*time.Second, "mirrored", func() error {
		if n := mirroredCount(client); n != 2 {
			return fmt.Errorf("%d mirrored slices", n)
		}
		return nil
	})
	// The Service gains a selector: the Endpoints are the controller's
	// business now, and the mirrors go.
	setSelector := func(sel map[string]string) {
		t.Helper()
		cur, err := client.CoreV1().Services("ns").Get(ctx, "db", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cur.Spec.Selector = sel
		if _, err := client.CoreV1().Services("ns").Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	setSelector(map[string]string{"app": "db"})
	controllertest.Eventually(t, 5*time.Second, "mirrors removed", func() error {
		if n := mirroredCount(client); n != 0 {
			return fmt.Errorf("%d mirrored slices left", n)
		}
		return nil
	})
	// skip-mirror keeps Endpoints of a selector-less Service unmirrored.
	setSelector(nil)
	controllertest.Eventually(t, 5*time.Second, "mirrored again", func() error {
		if n := mirroredCount(client); n != 2 {
			return fmt.Errorf("%d mirrored slices", n)
		}
		return nil
	})
	e, _ := client.CoreV1().Endpoints("ns").Get(ctx, "db", metav1.GetOptions{})
	e.Labels[discoveryv1.LabelSkipMirror] = "true"
	if _, err := client.CoreV1().Endpoints("ns").Update(ctx, e, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	controllertest.Eventually(t, 5*time.Second, "skip-mirror honoured", func() error {
		if n := mirroredCount(client); n != 0 {
			return fmt.Errorf("%d mirrored slices left", n)
		}
		return nil
	})
}
