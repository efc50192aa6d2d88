package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// freePort returns a loopback port nothing listens on.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

func portOf(t *testing.T, rawURL string) int {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// httpServer serves the paths the httpGet cases use on 127.0.0.1.
func httpServer(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "fine") })
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "bad", http.StatusInternalServerError) })
	mux.HandleFunc("/notfound", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	mux.HandleFunc("/created", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusCreated) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(3 * time.Second):
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, strings.Repeat("x", 20000)) })
	mux.HandleFunc("/redirect-same", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusFound) })
	mux.HandleFunc("/redirect-fail", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/fail", http.StatusFound) })
	mux.HandleFunc("/redirect-loop", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/redirect-loop", http.StatusFound) })
	mux.HandleFunc("/redirect-other", func(w http.ResponseWriter, r *http.Request) {
		// Another host name for the same server: the kubelet does not follow.
		http.Redirect(w, r, "http://localhost:"+strings.Split(r.Host, ":")[1]+"/ok", http.StatusFound)
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "ua=%s accept=%s x=%s host=%s q=%s", r.UserAgent(), r.Header.Get("Accept"), r.Header.Get("X-Custom"), r.Host, r.URL.RawQuery)
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func grpcServer(t *testing.T, withHealth bool) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	if withHealth {
		hs := health.NewServer()
		hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
		hs.SetServingStatus("down", healthpb.HealthCheckResponse_NOT_SERVING)
		healthpb.RegisterHealthServer(s, hs)
	}
	go s.Serve(l) //nolint:errcheck // ends with Stop
	t.Cleanup(s.Stop)
	return l.Addr().(*net.TCPAddr).Port
}

func ptr[T any](v T) *T { return &v }

func TestRun(t *testing.T) {
	hs := httpServer(t)
	hp := portOf(t, hs.URL)
	tlsS := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "secure") }))
	t.Cleanup(tlsS.Close)
	tp := portOf(t, tlsS.URL)
	tcpL, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tcpL.Close() })
	go func() {
		for {
			c, err := tcpL.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	tcpPort := tcpL.Addr().(*net.TCPAddr).Port
	gp := grpcServer(t, true)
	gpNoHealth := grpcServer(t, false)
	closed := freePort(t)

	ctr := &corev1.Container{Name: "app", Ports: []corev1.ContainerPort{
		{Name: "http", ContainerPort: int32(hp)},
		{Name: "tcp", ContainerPort: int32(tcpPort)},
	}}
	execFn := func(ctx context.Context, cmd []string) ([]byte, int, error) {
		switch cmd[0] {
		case "ok":
			return []byte("all good"), 0, nil
		case "fail":
			return []byte("broken"), 2, nil
		case "missing":
			return nil, -1, errors.New("executable file not found")
		case "hang":
			<-ctx.Done()
			return nil, -1, ctx.Err()
		}
		return nil, -1, fmt.Errorf("unexpected %v", cmd)
	}
	target := Target{PodIP: "127.0.0.1", Exec: execFn}

	httpGet := func(path string, port intstr.IntOrString) corev1.ProbeHandler {
		return corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: port}}
	}
	hport := intstr.FromInt32(int32(hp))

	cases := []struct {
		name    string
		handler corev1.ProbeHandler
		timeout int32
		target  *Target
		want    Result
		msg     string // substring of the message
		wantErr bool
	}{
		{name: "exec success", handler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"ok"}}}, want: Success, msg: "all good"},
		{name: "exec nonzero", handler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"fail"}}}, want: Failure, msg: "broken"},
		{name: "exec cannot run", handler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"missing"}}}, want: Unknown, wantErr: true},
		{name: "exec timeout", handler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"hang", "x"}}}, want: Failure, msg: `command "hang x" timed out`},
		{name: "exec without func", handler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"ok"}}}, target: &Target{PodIP: "127.0.0.1"}, want: Unknown, wantErr: true},
		{name: "http 200", handler: httpGet("/ok", hport), want: Success, msg: "fine"},
		{name: "http 201", handler: httpGet("/created", hport), want: Success},
		{name: "http 500", handler: httpGet("/fail", hport), want: Failure, msg: "HTTP probe failed with statuscode: 500"},
		{name: "http 404", handler: httpGet("/notfound", hport), want: Failure, msg: "statuscode: 404"},
		{name: "http port by name", handler: httpGet("/ok", intstr.FromString("http")), want: Success, msg: "fine"},
		{name: "http port number as string", handler: httpGet("/ok", intstr.FromString(strconv.Itoa(hp))), want: Success},
		{name: "http unknown port name", handler: httpGet("/ok", intstr.FromString("nope")), want: Unknown, wantErr: true},
		{name: "http port out of range", handler: httpGet("/ok", intstr.FromInt32(70000)), want: Unknown, wantErr: true},
		{name: "http refused", handler: httpGet("/ok", intstr.FromInt32(int32(closed))), want: Failure, msg: "connection refused"},
		{name: "http timeout", handler: httpGet("/slow", hport), want: Failure, msg: "Client.Timeout exceeded"},
		{name: "http body truncated", handler: httpGet("/big", hport), want: Success, msg: strings.Repeat("x", 100)},
		{name: "http redirect same host followed", handler: httpGet("/redirect-same", hport), want: Success, msg: "fine"},
		{name: "http redirect same host to failure", handler: httpGet("/redirect-fail", hport), want: Failure, msg: "statuscode: 500"},
		{name: "http redirect loop", handler: httpGet("/redirect-loop", hport), want: Failure, msg: "stopped after 10 redirects"},
		{name: "http redirect other host not followed", handler: httpGet("/redirect-other", hport), want: Success, msg: "Probe terminated redirects"},
		{name: "http default headers and query", handler: httpGet("/echo?a=b", hport), want: Success, msg: "ua=kube-probe/" + KubeVersion + " accept=*/* x= host=127.0.0.1:" + strconv.Itoa(hp) + " q=a=b"},
		{name: "http custom headers", handler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/echo", Port: hport, HTTPHeaders: []corev1.HTTPHeader{
			{Name: "user-agent", Value: "mine"}, {Name: "X-Custom", Value: "v"}, {Name: "Host", Value: "example.test"}, {Name: "Accept", Value: "text/plain"},
		}}}, want: Success, msg: "ua=mine accept=text/plain x=v host=example.test"},
		{name: "http explicit host", handler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Host: "127.0.0.1", Path: "/ok", Port: hport}}, target: &Target{}, want: Success},
		{name: "http no pod ip", handler: httpGet("/ok", hport), target: &Target{}, want: Unknown, wantErr: true},
		{name: "https insecure", handler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Scheme: corev1.URISchemeHTTPS, Path: "/", Port: intstr.FromInt32(int32(tp))}}, want: Success, msg: "secure"},
		{name: "tcp open", handler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(int32(tcpPort))}}, want: Success},
		{name: "tcp by name", handler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("tcp")}}, want: Success},
		{name: "tcp closed", handler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(int32(closed))}}, want: Failure, msg: "connection refused"},
		{name: "tcp explicit host", handler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Host: "127.0.0.1", Port: intstr.FromInt32(int32(tcpPort))}}, target: &Target{}, want: Success},
		{name: "grpc serving", handler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: int32(gp)}}, want: Success, msg: "service healthy"},
		{name: "grpc not serving", handler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: int32(gp), Service: ptr("down")}}, want: Failure, msg: `responded with "NOT_SERVING"`},
		{name: "grpc unknown service", handler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: int32(gp), Service: ptr("other")}}, want: Failure, msg: "NotFound"},
		{name: "grpc no health service", handler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: int32(gpNoHealth)}}, want: Failure, msg: "does not implement the grpc health protocol"},
		{name: "grpc refused", handler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: int32(closed)}}, want: Failure, msg: "failed to connect service"},
		{name: "grpc no pod ip", handler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: int32(gp)}}, target: &Target{}, want: Unknown, wantErr: true},
		{name: "no handler", handler: corev1.ProbeHandler{}, want: Unknown, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tg := target
			if tc.target != nil {
				tg = *tc.target
			}
			p := &corev1.Probe{ProbeHandler: tc.handler, TimeoutSeconds: tc.timeout}
			start := time.Now()
			got, msg, err := Run(context.Background(), p, ctr, tg)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("result = %v, want %v (msg %q, err %v)", got, tc.want, msg, err)
			}
			if !strings.Contains(msg, tc.msg) {
				t.Errorf("message = %q, want it to contain %q", msg, tc.msg)
			}
			if d := time.Since(start); d > 2500*time.Millisecond {
				t.Errorf("attempt took %v, beyond the 1 s default timeout", d)
			}
			if tc.name == "http body truncated" && len(msg) != maxBodyBytes {
				t.Errorf("body message is %d bytes, want %d", len(msg), maxBodyBytes)
			}
		})
	}
}

func TestRunCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"x"}}}}
	res, _, err := Run(ctx, p, &corev1.Container{}, Target{Exec: func(ctx context.Context, _ []string) ([]byte, int, error) {
		return nil, -1, ctx.Err()
	}})
	if res != Unknown || !errors.Is(err, context.Canceled) {
		t.Fatalf("Run on cancelled ctx = %v, %v; want Unknown, context.Canceled", res, err)
	}
}

func TestResolvePort(t *testing.T) {
	c := &corev1.Container{Ports: []corev1.ContainerPort{{Name: "web", ContainerPort: 8080}, {Name: "zero", ContainerPort: 0}}}
	cases := []struct {
		in      intstr.IntOrString
		want    int
		wantErr bool
	}{
		{intstr.FromInt32(80), 80, false},
		{intstr.FromString("web"), 8080, false},
		{intstr.FromString("443"), 443, false},
		{intstr.FromString("nope"), -1, true},
		{intstr.FromString("zero"), 0, true},
		{intstr.FromInt32(0), 0, true},
		{intstr.FromInt32(65536), 65536, true},
	}
	for _, tc := range cases {
		got, err := ResolvePort(tc.in, c)
		if (err != nil) != tc.wantErr || (!tc.wantErr && got != tc.want) {
			t.Errorf("ResolvePort(%v) = %d, %v; want %d, error %v", tc.in.String(), got, err, tc.want, tc.wantErr)
		}
	}
}
