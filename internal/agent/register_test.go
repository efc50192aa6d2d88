package agent

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
)

// These tests use a fake API only.

func TestRegisterNodeNeverWritesPodCIDR(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	reg := Registration{NodeName: "n1", Annotations: map[string]string{"network.peapod.io/public-ip": "192.0.2.7"}}
	if err := RegisterNode(ctx, client, reg); err != nil {
		t.Fatal(err)
	}
	n, err := client.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n.Spec.PodCIDR != "" || len(n.Spec.PodCIDRs) != 0 {
		t.Errorf("registered with podCIDR %q/%q", n.Spec.PodCIDR, n.Spec.PodCIDRs)
	}
	if n.Labels[corev1.LabelHostname] != "n1" || n.Annotations["network.peapod.io/public-ip"] != "192.0.2.7" {
		t.Errorf("labels %v, annotations %v", n.Labels, n.Annotations)
	}

	// Registering again keeps the server's range and what others wrote.
	n.Spec.PodCIDR, n.Spec.PodCIDRs = "10.42.3.0/24", []string{"10.42.3.0/24"}
	n.Annotations["network.peapod.io/vtep-mac"] = "aa:bb:cc:dd:ee:ff"
	n.Labels["team"] = "a"
	if _, err := client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	reg.Annotations["network.peapod.io/public-ip"] = "192.0.2.8"
	if err := RegisterNode(ctx, client, reg); err != nil {
		t.Fatal(err)
	}
	n, err = client.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n.Spec.PodCIDR != "10.42.3.0/24" {
		t.Errorf("registering again changed podCIDR to %q", n.Spec.PodCIDR)
	}
	if n.Annotations["network.peapod.io/vtep-mac"] != "aa:bb:cc:dd:ee:ff" || n.Labels["team"] != "a" {
		t.Errorf("registering again dropped others' metadata: labels %v, annotations %v", n.Labels, n.Annotations)
	}
	if n.Annotations["network.peapod.io/public-ip"] != "192.0.2.8" {
		t.Errorf("public-ip = %q, want the new address", n.Annotations["network.peapod.io/public-ip"])
	}
}

// logBuffer is a goroutine-safe log sink.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestWaitForPodCIDR(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}})
	logs := &logBuffer{}
	type result struct {
		node *corev1.Node
		err  error
	}
	done := make(chan result, 1)
	go func() {
		n, err := WaitForPodCIDR(ctx, client, "n1", slog.New(slog.NewTextHandler(logs, nil)))
		done <- result{n, err}
	}()
	for !strings.Contains(logs.String(), "waiting for the server to give this node its podCIDR") {
		select {
		case r := <-done:
			t.Fatalf("WaitForPodCIDR returned before the node had a range: %+v", r)
		case <-ctx.Done():
			t.Fatal("WaitForPodCIDR did not say it waits")
		case <-time.After(10 * time.Millisecond):
		}
	}
	patch := []byte(`{"spec":{"podCIDR":"10.42.1.0/24","podCIDRs":["10.42.1.0/24"]}}`)
	if _, err := client.CoreV1().Nodes().Patch(ctx, "n1", types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.err != nil || r.node.Spec.PodCIDR != "10.42.1.0/24" {
			t.Errorf("WaitForPodCIDR = %v, %v; want the node with 10.42.1.0/24", r.node, r.err)
		}
	case <-ctx.Done():
		t.Fatal("WaitForPodCIDR did not see the podCIDR")
	}

	// A node that has one returns at once.
	n, err := WaitForPodCIDR(ctx, client, "n1", slog.New(slog.DiscardHandler))
	if err != nil || n.Spec.PodCIDR != "10.42.1.0/24" {
		t.Errorf("second WaitForPodCIDR = %v, %v", n, err)
	}
}

func TestWaitForPodCIDRStopsWhenTheNodeIsDeleted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}})
	logs := &logBuffer{}
	done := make(chan error, 1)
	go func() {
		_, err := WaitForPodCIDR(ctx, client, "n1", slog.New(slog.NewTextHandler(logs, nil)))
		done <- err
	}()
	for !strings.Contains(logs.String(), "waiting") {
		time.Sleep(10 * time.Millisecond)
	}
	if err := client.CoreV1().Nodes().Delete(ctx, "n1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "deleted") {
			t.Errorf("WaitForPodCIDR after the delete = %v, want an error saying so", err)
		}
	case <-ctx.Done():
		t.Fatal("WaitForPodCIDR kept waiting for a deleted node")
	}
}
