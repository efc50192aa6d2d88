package apiserver

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// benchServer runs a real server (embedded etcd, HTTPS) for a benchmark
// and returns an unthrottled client config.
func benchServer(b *testing.B) (*Server, *rest.Config) {
	b.Helper()
	dir, err := os.MkdirTemp("", "pp")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := New(ctx, Config{DataDir: dir, Listen: "127.0.0.1:0"})
	if err != nil {
		cancel()
		os.RemoveAll(dir)
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	b.Cleanup(func() {
		cancel()
		<-done
		os.RemoveAll(dir)
	})
	select {
	case <-s.Ready():
	case err := <-done:
		b.Fatalf("serve: %v", err)
	}
	rc, err := clientcmd.BuildConfigFromFlags("", s.Kubeconfig())
	if err != nil {
		b.Fatal(err)
	}
	rc.QPS, rc.Burst = 1e6, 1e6
	return s, rc
}

func benchPod(name string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "bench"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox:1.36", Command: []string{"sleep", "3600"}}}}}
}

// createPods creates n pods named prefix-i with 16 parallel clients.
func createPods(b *testing.B, cs kubernetes.Interface, prefix string, n int) time.Duration {
	b.Helper()
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, 16)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				if _, err := cs.CoreV1().Pods("default").Create(context.Background(), benchPod(fmt.Sprintf("%s-%d", prefix, i)), metav1.CreateOptions{}); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// BenchmarkListPodsTable lists 1,000 pods as a server-side Table (what
// kubectl get pods asks for) through the HTTPS handler over embedded etcd.
// It also reports one `kubectl get pods` run end to end (kubectl-ms).
func BenchmarkListPodsTable(b *testing.B) {
	s, rc := benchServer(b)
	cs := kubernetes.NewForConfigOrDie(rc)
	createPods(b, cs, "p", 1000)
	tr, err := rest.TransportFor(rc)
	if err != nil {
		b.Fatal(err)
	}
	client := &http.Client{Transport: tr}
	url := "https://" + s.Addr() + "/api/v1/namespaces/default/pods?limit=500"
	get := func() int {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("list: %d", resp.StatusCode)
		}
		return int(n)
	}
	url = "https://" + s.Addr() + "/api/v1/namespaces/default/pods"
	get()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		get()
	}
	b.StopTimer()
	if _, err := exec.LookPath("kubectl"); err == nil {
		start := time.Now()
		out, err := exec.Command("kubectl", "--kubeconfig", s.Kubeconfig(), "get", "pods", "--no-headers").Output()
		if err != nil {
			b.Fatal(err)
		}
		if lines := len(splitLines(string(out))); lines != 1000 {
			b.Fatalf("kubectl listed %d pods", lines)
		}
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "kubectl-ms")
	}
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}

// BenchmarkWatchLatency measures the time from the start of a write
// (client-go Create) to the client-go watcher receiving its event, so it
// includes the write itself; it reports the median and p99.
func BenchmarkWatchLatency(b *testing.B) {
	_, rc := benchServer(b)
	cs := kubernetes.NewForConfigOrDie(rc)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := cs.CoreV1().ConfigMaps("default").Watch(ctx, metav1.ListOptions{LabelSelector: "bench=watch"})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("w-%d", i), Labels: map[string]string{"bench": "watch"}}}
		written := time.Now() // the event often arrives before Create returns: time from the start of the write
		if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		for {
			ev, ok := <-w.ResultChan()
			if !ok {
				b.Fatal("watch closed")
			}
			if ev.Type == watch.Added && ev.Object.(*corev1.ConfigMap).Name == cm.Name {
				break
			}
		}
		lat = append(lat, time.Since(written))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkCreatePods creates pods through client-go with 16 parallel
// clients and reports creates per second.
func BenchmarkCreatePods(b *testing.B) {
	_, rc := benchServer(b)
	cs := kubernetes.NewForConfigOrDie(rc)
	b.ResetTimer()
	d := createPods(b, cs, fmt.Sprintf("c%d", time.Now().UnixNano()%1e6), b.N)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/d.Seconds(), "creates/s")
}
