package runtime

import (
	"fmt"
	"os"
	goruntime "runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

const benchPod = `
apiVersion: v1
kind: Pod
metadata: {name: bench-%d}
spec:
  containers:
  - {name: main, image: busybox, command: [sleep, "3600"]}
`

// BenchmarkPodStart measures a one-container pod from spec to a running
// process with its IP, image present, per runtime handler. It reports the
// median and p99 besides the mean.
func BenchmarkPodStart(b *testing.B) {
	for _, handler := range []string{"runc", "crun"} {
		b.Run(handler, func(b *testing.B) {
			h := newHarness(b)
			if _, err := h.rt.Handler(handler); err != nil {
				b.Skip(err)
			}
			var took []time.Duration
			for i := 0; i < b.N; i++ {
				pod := h.pod(fmt.Sprintf(benchPod, i))
				b.StartTimer()
				start := time.Now()
				id, err := h.rt.StartPod(h.ctx, pod, handler)
				took = append(took, time.Since(start))
				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
				if st := h.status(id); len(st.IPs) == 0 || st.Containers[0].State != ContainerRunning {
					b.Fatalf("pod not running with an IP: %+v", st)
				}
				if err := h.rt.DeletePod(h.ctx, id, 0); err != nil {
					b.Fatal(err)
				}
			}
			reportPercentiles(b, took)
		})
	}
}

func reportPercentiles(b *testing.B, took []time.Duration) {
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	pct := func(p float64) float64 {
		return float64(took[int(p*float64(len(took)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

// BenchmarkPodMemory measures what peapod keeps running per pod besides the
// pod's own processes: the pause process (the pod's infra, reaper and log
// writer; with no shim per pod there is nothing else) and the runtime's own
// heap growth.
func BenchmarkPodMemory(b *testing.B) {
	const pods = 20
	h := newHarness(b)
	var before goruntime.MemStats
	goruntime.GC()
	goruntime.ReadMemStats(&before)
	var pauseKiB int
	for i := 0; i < b.N; i++ {
		var ids []string
		for j := 0; j < pods; j++ {
			ids = append(ids, h.start(h.pod(fmt.Sprintf(benchPod, j)), ""))
		}
		pauseKiB = 0
		for _, id := range ids {
			st := h.status(id)
			pauseKiB += rssKiB(b, st.PausePID)
		}
		var after goruntime.MemStats
		goruntime.GC()
		goruntime.ReadMemStats(&after)
		b.ReportMetric(float64(pauseKiB)/pods, "pause-RSS-KiB/pod")
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/1024/pods, "heap-KiB/pod")
		for _, id := range ids {
			if err := h.rt.DeletePod(h.ctx, id, 0); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func rssKiB(b *testing.B, pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatalf("no VmRSS for pid %d", pid)
	return 0
}
