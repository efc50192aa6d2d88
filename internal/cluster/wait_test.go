package cluster

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// A node serves only once it is Ready, its Lease was renewed after its
// process started (a Ready from before a restart does not count), and its
// agent port accepts connections.
func TestNodeServing(t *testing.T) {
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	started := time.Now()
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n2"},
		Status: corev1.NodeStatus{
			Conditions:      []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionFalse}},
			Addresses:       []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}},
			DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(port)}},
		},
	}
	old := metav1.NewMicroTime(started.Add(-10 * time.Second))
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: "n2", Namespace: corev1.NamespaceNodeLease},
		Spec:       coordinationv1.LeaseSpec{RenewTime: &old},
	}
	client := fake.NewClientset(node, lease)
	check := func(want string) {
		t.Helper()
		if got := nodeServing(ctx, client, "n2", started); !strings.Contains(got, want) || (want == "" && got != "") {
			t.Errorf("nodeServing = %q, want %q", got, want)
		}
	}
	check("not Ready")

	node.Status.Conditions[0].Status = corev1.ConditionTrue
	if _, err := client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	check("Lease not renewed since")

	renewed := metav1.NewMicroTime(started.Add(time.Millisecond))
	lease.Spec.RenewTime = &renewed
	if _, err := client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Update(ctx, lease, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	check("")

	ln.Close()
	check("agent port")

	if got := nodeServing(ctx, client, "n9", started); !strings.Contains(got, "get Node") {
		t.Errorf("unknown node: %q", got)
	}
}
