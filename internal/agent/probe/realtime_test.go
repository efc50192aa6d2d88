package probe

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// nextUpdate waits up to d for an update on ch.
func nextUpdate(t *testing.T, ch <-chan Update, d time.Duration) Update {
	t.Helper()
	select {
	case u := <-ch:
		return u
	case <-time.After(d):
		t.Fatalf("no update within %v", d)
		return Update{}
	}
}

func realManager(t *testing.T) (*Manager, <-chan Update) {
	t.Helper()
	ch := make(chan Update, 16)
	m := NewManager(func(u Update) { ch <- u })
	t.Cleanup(m.Stop)
	return m, ch
}

// TestRealHTTPReadiness toggles a loopback HTTP server's health and sees
// readiness follow within a period.
func TestRealHTTPReadiness(t *testing.T) {
	t.Parallel()
	var healthy atomic.Bool
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(s.Close)
	port := s.Listener.Addr().(*net.TCPAddr).Port
	m, ch := realManager(t)
	c := &corev1.Container{Name: "web", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: int32(port)}},
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}},
			PeriodSeconds: 1, FailureThreshold: 1,
		}}
	m.AddContainer("uid", c, "id1", time.Now(), Target{PodIP: "127.0.0.1"})
	if got := m.Result("id1", Readiness); got != Failure {
		t.Fatalf("initial readiness = %v, want Failure", got)
	}
	healthy.Store(true)
	if u := nextUpdate(t, ch, 3*time.Second); u.Kind != Readiness || u.Result != Success || u.ContainerID != "id1" {
		t.Fatalf("update = %+v, want readiness Success", u)
	}
	healthy.Store(false)
	u := nextUpdate(t, ch, 3*time.Second)
	if u.Kind != Readiness || u.Result != Failure || u.Message != "HTTP probe failed with statuscode: 503" {
		t.Fatalf("update = %+v, want readiness Failure with status 503", u)
	}
	if got := m.Result("id1", Readiness); got != Failure {
		t.Fatalf("readiness = %v, want Failure", got)
	}
}

// TestRealTCPLiveness closes the listener a liveness probe connects to and
// sees the container reported for restart once, then re-added.
func TestRealTCPLiveness(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := l.Addr().(*net.TCPAddr).Port
	m, ch := realManager(t)
	c := &corev1.Container{Name: "db", LivenessProbe: &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(int32(port))}},
		PeriodSeconds: 1, FailureThreshold: 2,
	}}
	m.AddContainer("uid", c, "id1", time.Now(), Target{PodIP: "127.0.0.1"})
	time.Sleep(1500 * time.Millisecond)
	if got := m.Result("id1", Liveness); got != Success {
		t.Fatalf("liveness = %v, want Success", got)
	}
	l.Close()
	u := nextUpdate(t, ch, 4*time.Second)
	if u.Kind != Liveness || u.Result != Failure || u.ContainerID != "id1" {
		t.Fatalf("update = %+v, want liveness Failure", u)
	}
	// The agent restarts: old ID removed, new ID added, starting Success.
	m.RemoveContainer("id1")
	m.AddContainer("uid", c, "id2", time.Now(), Target{PodIP: "127.0.0.1"})
	if got := m.Result("id2", Liveness); got != Success {
		t.Fatalf("new container liveness = %v, want Success", got)
	}
	select {
	case u := <-ch:
		if u.ContainerID == "id1" {
			t.Fatalf("second update for the old container: %+v", u)
		}
	case <-time.After(1500 * time.Millisecond):
	}
}

// TestRealGRPCStartup gates readiness on a gRPC startup probe.
func TestRealGRPCStartup(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("app", healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(gs, hs)
	go gs.Serve(l) //nolint:errcheck // ends with Stop
	t.Cleanup(gs.Stop)
	port := l.Addr().(*net.TCPAddr).Port

	var readyCalls atomic.Int32
	exec := func(_ context.Context, cmd []string) ([]byte, int, error) {
		readyCalls.Add(1)
		return []byte("ok"), 0, nil
	}
	m, ch := realManager(t)
	c := &corev1.Container{Name: "svc",
		StartupProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: int32(port), Service: ptr("app")}},
			PeriodSeconds: 1, FailureThreshold: 30,
		},
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}},
			PeriodSeconds: 60,
		},
	}
	m.AddContainer("uid", c, "id1", time.Now(), Target{PodIP: "127.0.0.1", Exec: exec})
	time.Sleep(1500 * time.Millisecond)
	if got := m.Result("id1", Startup); got != Unknown || readyCalls.Load() != 0 {
		t.Fatalf("startup = %v, readiness calls %d; want Unknown and none", got, readyCalls.Load())
	}
	hs.SetServingStatus("app", healthpb.HealthCheckResponse_SERVING)
	if u := nextUpdate(t, ch, 3*time.Second); u.Kind != Startup || u.Result != Success || u.Message != "service healthy" {
		t.Fatalf("update = %+v, want startup Success", u)
	}
	// Readiness is probed at once, not a 60 s period later.
	if u := nextUpdate(t, ch, 2*time.Second); u.Kind != Readiness || u.Result != Success {
		t.Fatalf("update = %+v, want readiness Success", u)
	}
}
