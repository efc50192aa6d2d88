package statefulset

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/peapod/peapod/internal/controller/controllertest"
)

func TestParentAndOrdinal(t *testing.T) {
	for _, tc := range []struct {
		name   string
		parent string
		ord    int
	}{
		{"web-0", "web", 0},
		{"web-12", "web", 12},
		{"my-web-3", "my-web", 3},
		{"web", "", -1},
		{"web-x", "", -1},
	} {
		p, o := ParentAndOrdinal(tc.name)
		if p != tc.parent || o != tc.ord {
			t.Errorf("%s: got %q %d", tc.name, p, o)
		}
	}
	if PodName("web", 7) != "web-7" {
		t.Error("PodName")
	}
}

func TestOrderedReadyUpAndDown(t *testing.T) {
	client := start(t, newSet(3, appsv1.OrderedReadyPodManagement))
	waitNames(t, client, "web-0")
	stays(t, client, 100*time.Millisecond, "web-0") // web-1 waits for web-0
	p := pod(t, client, "web-0")
	if p.Spec.Hostname != "web-0" || p.Spec.Subdomain != "nginx" || p.Labels[PodNameLabel] != "web-0" || p.Labels[PodIndexLabel] != "0" || p.Labels[RevisionLabel] == "" {
		t.Fatalf("identity: hostname %q subdomain %q labels %v", p.Spec.Hostname, p.Spec.Subdomain, p.Labels)
	}
	ready(t, client, "web-0")
	waitNames(t, client, "web-0", "web-1")
	stays(t, client, 50*time.Millisecond, "web-0", "web-1")
	ready(t, client, "web-1")
	waitNames(t, client, "web-0", "web-1", "web-2")
	ready(t, client, "web-2")
	controllertest.Eventually(t, 5*time.Second, "status", func() error {
		s, _ := client.AppsV1().StatefulSets("default").Get(context.Background(), "web", metav1.GetOptions{})
		st := s.Status
		if st.Replicas != 3 || st.ReadyReplicas != 3 || st.AvailableReplicas != 3 || st.CurrentReplicas != 3 || st.UpdatedReplicas != 3 ||
			st.CurrentRevision == "" || st.CurrentRevision != st.UpdateRevision || st.ObservedGeneration != 1 {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})

	// Scale down: highest first, the next only once it is gone.
	setReplicas(t, client, 1)
	waitNames(t, client, "web-0", "web-1", "web-2~")
	stays(t, client, 100*time.Millisecond, "web-0", "web-1", "web-2~")
	finish(t, client, "web-2")
	waitNames(t, client, "web-0", "web-1~")
	finish(t, client, "web-1")
	waitNames(t, client, "web-0")
}

func TestParallelCreatesAndDeletesAtOnce(t *testing.T) {
	client := start(t, newSet(3, appsv1.ParallelPodManagement))
	waitNames(t, client, "web-0", "web-1", "web-2")
	setReplicas(t, client, 0)
	waitNames(t, client, "web-0~", "web-1~", "web-2~")
}

func TestReplacesDeletedPodWithSameName(t *testing.T) {
	client := start(t, newSet(2, appsv1.ParallelPodManagement))
	waitNames(t, client, "web-0", "web-1")
	uid := pod(t, client, "web-1").UID
	if err := client.CoreV1().Pods("default").Delete(context.Background(), "web-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	finish(t, client, "web-1")
	waitNames(t, client, "web-0", "web-1")
	if pod(t, client, "web-1").UID == uid {
		t.Fatal("web-1 not recreated")
	}
}

func TestRollingUpdateWithPartition(t *testing.T) {
	client := start(t, newSet(3, appsv1.OrderedReadyPodManagement))
	for i := range 3 {
		waitNames(t, client, []string{"web-0", "web-1", "web-2"}[:i+1]...)
		ready(t, client, PodName("web", i))
	}
	oldRev := pod(t, client, "web-0").Labels[RevisionLabel]
	one := int32(1)
	setReplicas(t, client, 3, func(s *appsv1.StatefulSet) {
		s.Spec.Template.Spec.Containers[0].Image = "busybox:2"
		s.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{
			Type:          appsv1.RollingUpdateStatefulSetStrategyType,
			RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: &one},
		}
	})
	// web-2 goes first; web-1 is untouched until web-2 is back and Ready.
	waitNames(t, client, "web-0", "web-1", "web-2~")
	finish(t, client, "web-2")
	waitNames(t, client, "web-0", "web-1", "web-2")
	if img := pod(t, client, "web-2").Spec.Containers[0].Image; img != "busybox:2" {
		t.Fatalf("web-2 recreated with %s", img)
	}
	stays(t, client, 50*time.Millisecond, "web-0", "web-1", "web-2")
	ready(t, client, "web-2")
	waitNames(t, client, "web-0", "web-1~", "web-2")
	finish(t, client, "web-1")
	waitNames(t, client, "web-0", "web-1", "web-2")
	ready(t, client, "web-1")
	stays(t, client, 100*time.Millisecond, "web-0", "web-1", "web-2") // web-0 is below the partition
	if rev := pod(t, client, "web-0").Labels[RevisionLabel]; rev != oldRev {
		t.Fatalf("web-0 revision changed to %s", rev)
	}
	controllertest.Eventually(t, 5*time.Second, "status", func() error {
		s, _ := client.AppsV1().StatefulSets("default").Get(context.Background(), "web", metav1.GetOptions{})
		st := s.Status
		if st.CurrentRevision != oldRev || st.UpdateRevision == oldRev || st.UpdatedReplicas != 2 || st.CurrentReplicas != 1 {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	// Partition 0 finishes the rollout and makes the update revision current.
	setReplicas(t, client, 3, func(s *appsv1.StatefulSet) { s.Spec.UpdateStrategy.RollingUpdate.Partition = nil })
	waitNames(t, client, "web-0~", "web-1", "web-2")
	finish(t, client, "web-0")
	waitNames(t, client, "web-0", "web-1", "web-2")
	ready(t, client, "web-0")
	controllertest.Eventually(t, 5*time.Second, "rollout complete", func() error {
		s, _ := client.AppsV1().StatefulSets("default").Get(context.Background(), "web", metav1.GetOptions{})
		if st := s.Status; st.CurrentRevision != st.UpdateRevision || st.CurrentReplicas != 3 {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
}
