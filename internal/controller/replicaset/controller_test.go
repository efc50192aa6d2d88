package replicaset

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clienttesting "k8s.io/client-go/testing"

	"github.com/peapod/peapod/internal/controller/controllertest"
)

func TestCreatesFromTemplateWithOwnerRef(t *testing.T) {
	client := start(t, KindReplicaSet, newRS("web", 3))
	pods := waitPods(t, client, 3)
	for _, p := range pods {
		ref := metav1.GetControllerOf(&p)
		if ref == nil || ref.Kind != "ReplicaSet" || ref.Name != "web" || ref.BlockOwnerDeletion == nil || !*ref.BlockOwnerDeletion {
			t.Fatalf("pod %s: bad controller ref %+v", p.Name, ref)
		}
		if p.GenerateName != "web-" || p.Labels["tier"] != "web" {
			t.Fatalf("pod %s: generateName %q labels %v", p.Name, p.GenerateName, p.Labels)
		}
	}
	controllertest.Eventually(t, 5*time.Second, "status", func() error {
		rs, _ := client.AppsV1().ReplicaSets("default").Get(context.Background(), "web", metav1.GetOptions{})
		if rs.Status.Replicas != 3 || rs.Status.FullyLabeledReplicas != 3 || rs.Status.ObservedGeneration != 1 {
			return fmt.Errorf("status %+v", rs.Status)
		}
		return nil
	})
}

func TestReplacesDeletedAndFailedPods(t *testing.T) {
	client := start(t, KindReplicaSet, newRS("web", 3))
	pods := waitPods(t, client, 3)
	ctx := context.Background()
	if err := client.CoreV1().Pods("default").Delete(ctx, pods[0].Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	failed := pods[1]
	failed.ResourceVersion = ""
	failed.Status.Phase = v1.PodFailed
	failed.Status.Reason = "Evicted"
	if _, err := client.CoreV1().Pods("default").UpdateStatus(ctx, &failed, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	now := waitPods(t, client, 3)
	names := map[string]bool{}
	for _, p := range now {
		names[p.Name] = true
	}
	if names[pods[0].Name] || names[pods[1].Name] || !names[pods[2].Name] {
		t.Fatalf("replacement kept old names: before %s %s, now %v", pods[0].Name, pods[1].Name, names)
	}
}

func TestScaleUpAndDownPrefersNotReady(t *testing.T) {
	rs := newRS("web", 10)
	client := start(t, KindReplicaSet, rs)
	pods := waitPods(t, client, 10)
	ready := map[string]bool{}
	for _, p := range pods[:2] {
		makeReady(t, client, p, time.Now())
		ready[p.Name] = true
	}
	controllertest.Eventually(t, 5*time.Second, "ready status", func() error {
		got, _ := client.AppsV1().ReplicaSets("default").Get(context.Background(), "web", metav1.GetOptions{})
		if got.Status.ReadyReplicas != 2 || got.Status.AvailableReplicas != 2 {
			return fmt.Errorf("status %+v", got.Status)
		}
		return nil
	})
	got, _ := client.AppsV1().ReplicaSets("default").Get(context.Background(), "web", metav1.GetOptions{})
	two := int32(2)
	got.Spec.Replicas = &two
	if _, err := client.AppsV1().ReplicaSets("default").Update(context.Background(), got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, p := range waitPods(t, client, 2) {
		if !ready[p.Name] {
			t.Fatalf("scale-down kept not-ready pod %s instead of a ready one", p.Name)
		}
	}
}

func TestAdoptsOrphansAndReleasesMismatches(t *testing.T) {
	orphan := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "orphan", Namespace: "default", Labels: map[string]string{"app": "web"}}}
	client := start(t, KindReplicaSet, newRS("web", 2), orphan)
	pods := waitPods(t, client, 2)
	var found *v1.Pod
	for i := range pods {
		if pods[i].Name == "orphan" {
			found = &pods[i]
		}
	}
	if found == nil {
		t.Fatalf("orphan not adopted: %v", pods)
	}
	controllertest.Eventually(t, 5*time.Second, "adoption", func() error {
		p, _ := client.CoreV1().Pods("default").Get(context.Background(), "orphan", metav1.GetOptions{})
		if ref := metav1.GetControllerOf(p); ref == nil || ref.Name != "web" {
			return fmt.Errorf("refs %v", p.OwnerReferences)
		}
		return nil
	})
	// Relabel: the RS releases it and creates a replacement.
	p, _ := client.CoreV1().Pods("default").Get(context.Background(), "orphan", metav1.GetOptions{})
	p.Labels = map[string]string{"app": "other"}
	p.ResourceVersion = "" // the RS may be patching it concurrently
	if _, err := client.CoreV1().Pods("default").Update(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	controllertest.Eventually(t, 5*time.Second, "release", func() error {
		p, _ := client.CoreV1().Pods("default").Get(context.Background(), "orphan", metav1.GetOptions{})
		if len(p.OwnerReferences) != 0 {
			return fmt.Errorf("refs %v", p.OwnerReferences)
		}
		return nil
	})
	waitPods(t, client, 3) // 2 owned + the released one
}

func TestMinReadySecondsAvailability(t *testing.T) {
	rs := newRS("web", 1)
	rs.Spec.MinReadySeconds = 1
	client := start(t, KindReplicaSet, rs)
	p := waitPods(t, client, 1)[0]
	makeReady(t, client, p, time.Now())
	get := func() appsv1.ReplicaSetStatus {
		got, _ := client.AppsV1().ReplicaSets("default").Get(context.Background(), "web", metav1.GetOptions{})
		return got.Status
	}
	controllertest.Eventually(t, 2*time.Second, "ready but not available", func() error {
		if st := get(); st.ReadyReplicas != 1 || st.AvailableReplicas != 0 {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	controllertest.Eventually(t, 5*time.Second, "available after minReadySeconds", func() error {
		if st := get(); st.AvailableReplicas != 1 {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
}

func TestReplicationController(t *testing.T) {
	three := int32(3)
	rc := &v1.ReplicationController{
		ObjectMeta: metav1.ObjectMeta{Name: "rc", Namespace: "default"},
		Spec: v1.ReplicationControllerSpec{
			Replicas: &three,
			Template: &v1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "rc"}},
				Spec:       v1.PodSpec{Containers: []v1.Container{{Name: "c", Image: "busybox"}}},
			},
		},
	}
	client := start(t, KindReplicationController, rc)
	pods := waitPods(t, client, 3)
	if ref := metav1.GetControllerOf(&pods[0]); ref == nil || ref.Kind != "ReplicationController" || ref.APIVersion != "v1" {
		t.Fatalf("controller ref %+v", ref)
	}
	if err := client.CoreV1().Pods("default").Delete(context.Background(), pods[0].Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPods(t, client, 3)
	controllertest.Eventually(t, 5*time.Second, "rc status", func() error {
		got, _ := client.CoreV1().ReplicationControllers("default").Get(context.Background(), "rc", metav1.GetOptions{})
		if got.Status.Replicas != 3 || got.Status.ObservedGeneration != 1 {
			return fmt.Errorf("status %+v", got.Status)
		}
		return nil
	})
}

func TestFailedCreateSetsReplicaFailure(t *testing.T) {
	client := controllertest.NewClientset(newRS("web", 2))
	client.PrependReactor("create", "pods", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(v1.Resource("pods"), "", fmt.Errorf("exceeded quota"))
	})
	startWith(t, client, KindReplicaSet)
	controllertest.Eventually(t, 5*time.Second, "ReplicaFailure", func() error {
		got, _ := client.AppsV1().ReplicaSets("default").Get(context.Background(), "web", metav1.GetOptions{})
		for _, c := range got.Status.Conditions {
			if c.Type == appsv1.ReplicaSetReplicaFailure && c.Reason == "FailedCreate" {
				return nil
			}
		}
		return fmt.Errorf("conditions %+v", got.Status.Conditions)
	})
}
