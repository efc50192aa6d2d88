package replicaset

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/peapod/peapod/internal/controller/controllertest"
)

// BenchmarkScale0To100 measures a ReplicaSet scaled from 0 to 100 replicas
// against the fake clientset: time until 100 pods exist, reported as
// pod creates per second.
func BenchmarkScale0To100(b *testing.B) {
	for i := range b.N {
		b.StopTimer()
		client := controllertest.NewClientset(newRS("web", 0))
		startWith(b, client, KindReplicaSet)
		controllertest.Eventually(b, 5*time.Second, "status synced", func() error {
			rs, _ := client.AppsV1().ReplicaSets("default").Get(context.Background(), "web", metav1.GetOptions{})
			if rs.Status.ObservedGeneration != 1 {
				return fmt.Errorf("not synced")
			}
			return nil
		})
		rs, _ := client.AppsV1().ReplicaSets("default").Get(context.Background(), "web", metav1.GetOptions{})
		hundred := int32(100)
		rs.Spec.Replicas = &hundred
		b.StartTimer()
		start := time.Now()
		if _, err := client.AppsV1().ReplicaSets("default").Update(context.Background(), rs, metav1.UpdateOptions{}); err != nil {
			b.Fatal(err)
		}
		waitPods(b, client, 100)
		b.ReportMetric(100/time.Since(start).Seconds(), "creates/s")
		_ = i
	}
}
