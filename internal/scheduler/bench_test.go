package scheduler

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
)

// benchNodes returns n nodes with room for 1,000 small pods between them.
func benchNodes(n int) []*v1.Node {
	var nodes []*v1.Node
	for i := 0; i < n; i++ {
		nodes = append(nodes, mkNode(fmt.Sprintf("node-%02d", i), "64", "256Gi", func(nd *v1.Node) {
			nd.Status.Allocatable[v1.ResourcePods] = resource.MustParse("1100")
		}))
	}
	return nodes
}

func benchPods(n int) []*v1.Pod {
	pods := make([]*v1.Pod, n)
	for i := range pods {
		pods[i] = mkPod(fmt.Sprintf("web-%04d", i), req("10m", "16Mi"), ownedBy("rs-web"), label("app", "web"))
	}
	return pods
}

// BenchmarkSchedule places 1,000 pods of one ReplicaSet with the pure core,
// adding each to its node as the cache's assume does.
func BenchmarkSchedule(b *testing.B) {
	for _, nodes := range []int{1, 10} {
		b.Run(fmt.Sprintf("1000pods-%dnodes", nodes), func(b *testing.B) {
			pods := benchPods(1000)
			ns := benchNodes(nodes)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				snap := NewSnapshot(ns, nil)
				byName := map[string]*NodeInfo{}
				for _, ni := range snap.Nodes {
					byName[ni.Node.Name] = ni
				}
				for _, p := range pods {
					n, err := Schedule(p, snap)
					if err != nil {
						b.Fatal(err)
					}
					byName[n].AddPod(p)
				}
			}
			b.ReportMetric(float64(1000*b.N)/b.Elapsed().Seconds(), "pods/s")
		})
	}
}

// BenchmarkLoop runs the whole scheduler against the fake clientset: 1,000
// pending pods, timed from Run until every bind has been made.
func BenchmarkLoop(b *testing.B) {
	const n = 1000
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		objs := []runtime.Object{benchNodes(1)[0]}
		for _, p := range benchPods(n) {
			objs = append(objs, p)
		}
		c := newFakeClient(objs...)
		var binds atomic.Int64
		c.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
			if a.GetSubresource() == "binding" {
				binds.Add(1)
			}
			return false, nil, nil
		})
		s := New(c, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		b.StartTimer()
		go func() { done <- s.Run(ctx) }()
		deadline := time.Now().Add(60 * time.Second)
		for binds.Load() < n {
			if time.Now().After(deadline) {
				b.Fatalf("only %d of %d pods bound", binds.Load(), n)
			}
			time.Sleep(time.Millisecond)
		}
		b.StopTimer()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "pods/s")
}
