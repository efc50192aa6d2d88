package lifecycle

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/peapod/peapod/internal/agent/probe"
)

// hits records the requests a loopback server received.
type hits struct {
	mu   sync.Mutex
	reqs []string
}

func (h *hits) add(r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reqs = append(h.reqs, r.URL.RequestURI()+" ua="+r.UserAgent()+" x="+r.Header.Get("X-Hook")+" auth="+r.Header.Get("Authorization"))
}

func (h *hits) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.reqs
	h.reqs = nil
	return out
}

func TestRun(t *testing.T) {
	rec := &hits{}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.add(r)
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	t.Cleanup(s.Close)
	port := s.Listener.Addr().(*net.TCPAddr).Port
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().(*net.TCPAddr).Port
	l.Close()

	c := &corev1.Container{Name: "app", Ports: []corev1.ContainerPort{{Name: "web", ContainerPort: int32(port)}}}
	exec := func(ctx context.Context, cmd []string) ([]byte, int, error) {
		switch cmd[0] {
		case "ok":
			return []byte("done"), 0, nil
		case "sh":
			return []byte("oops\n"), 3, nil
		}
		return nil, -1, errors.New(`exec: "` + cmd[0] + `": executable file not found in $PATH`)
	}
	target := probe.Target{PodIP: "127.0.0.1", Exec: exec}
	httpGet := func(path string, p intstr.IntOrString) *corev1.LifecycleHandler {
		return &corev1.LifecycleHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: p, HTTPHeaders: []corev1.HTTPHeader{{Name: "X-Hook", Value: "1"}}}}
	}
	cases := []struct {
		name    string
		h       *corev1.LifecycleHandler
		target  *probe.Target
		wantErr string // exact error text; "" for success
		errHas  string // or a substring of it
		hits    []string
	}{
		{name: "exec ok", h: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"ok"}}}},
		{name: "exec exit code", h: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "exit 3"}}},
			wantErr: `Exec lifecycle hook ([sh -c exit 3]) for Container "app" failed - error: command 'sh -c exit 3' exited with 3: oops` + "\n" + `, message: "oops\n"`},
		{name: "exec cannot run", h: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"nope"}}},
			wantErr: `Exec lifecycle hook ([nope]) for Container "app" failed - error: exec: "nope": executable file not found in $PATH, message: ""`},
		{name: "exec without func", h: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"ok"}}}, target: &probe.Target{}, errHas: "no exec function"},
		{name: "http ok", h: httpGet("/hook?x=1", intstr.FromInt32(int32(port))),
			hits: []string{"/hook?x=1 ua=kube-lifecycle/" + probe.KubeVersion + " x=1 auth="}},
		{name: "http status ignored", h: httpGet("/fail", intstr.FromString("web")),
			hits: []string{"/fail ua=kube-lifecycle/" + probe.KubeVersion + " x=1 auth="}},
		{name: "http refused", h: httpGet("/stop", intstr.FromInt32(int32(closed))),
			errHas: `HTTP lifecycle hook (/stop) for Container "app" failed - error: Get "http://127.0.0.1:` + strconv.Itoa(closed) + `/stop": dial tcp`},
		{name: "http unknown port name", h: httpGet("/x", intstr.FromString("nope")), errHas: "port nope not found"},
		{name: "http no pod ip", h: httpGet("/x", intstr.FromString("web")), target: &probe.Target{}, errHas: "no host and no pod IP"},
		{name: "https answered in http falls back", h: &corev1.LifecycleHandler{HTTPGet: &corev1.HTTPGetAction{
			Scheme: corev1.URISchemeHTTPS, Path: "/tls", Port: intstr.FromInt32(int32(port)),
			HTTPHeaders: []corev1.HTTPHeader{{Name: "Authorization", Value: "Bearer x"}},
		}}, hits: []string{"/tls ua=kube-lifecycle/" + probe.KubeVersion + " x= auth="}},
		{name: "sleep", h: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 1}}},
		{name: "no handler", h: &corev1.LifecycleHandler{}, errHas: "Cannot run handler: invalid handler"},
		{name: "nil handler", h: nil, errHas: "Cannot run handler: invalid handler"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tg := target
			if tc.target != nil {
				tg = *tc.target
			}
			start := time.Now()
			err := Run(context.Background(), tc.h, c, tg)
			switch {
			case tc.wantErr == "" && tc.errHas == "":
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
			case err == nil:
				t.Fatalf("Run succeeded, want an error")
			case tc.wantErr != "" && err.Error() != tc.wantErr:
				t.Fatalf("error =\n%q\nwant\n%q", err.Error(), tc.wantErr)
			case !strings.Contains(err.Error(), tc.errHas):
				t.Fatalf("error = %q, want it to contain %q", err.Error(), tc.errHas)
			}
			if err != nil {
				var he *HookError
				if !errors.As(err, &he) {
					t.Fatalf("error %T is not a *HookError", err)
				}
			}
			got := rec.take()
			if strings.Join(got, "|") != strings.Join(tc.hits, "|") {
				t.Fatalf("server saw %q, want %q", got, tc.hits)
			}
			if tc.h != nil && tc.h.Sleep != nil {
				if d := time.Since(start); d < time.Second || d > 3*time.Second {
					t.Fatalf("sleep hook of 1 s took %v", d)
				}
			}
		})
	}
}

func TestSleepCutShort(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := Run(ctx, &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 30}}, &corev1.Container{Name: "app"}, probe.Target{})
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("sleep hook outlived its ctx: %v", d)
	}
	want := `Sleep lifecycle hook (30) for Container "app" failed - error: container terminated before sleep hook finished`
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %q", err, want)
	}
}

// TestHTTPCutShort shows ctx bounds an httpGet hook (the grace period of a
// preStop hook).
func TestHTTPCutShort(t *testing.T) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	t.Cleanup(s.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	h := &corev1.LifecycleHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/slow", Port: intstr.FromInt32(int32(s.Listener.Addr().(*net.TCPAddr).Port))}}
	err := Run(ctx, h, &corev1.Container{Name: "app"}, probe.Target{PodIP: "127.0.0.1"})
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error = %v, want a deadline", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("httpGet hook outlived its ctx: %v", d)
	}
}

func TestEventMessage(t *testing.T) {
	cases := []struct {
		err  *HookError
		pod  string
		want string
	}{
		{&HookError{Handler: "Exec", Detail: "[false]", Container: "c", Output: "x", Err: errors.New("boom")}, "web_default(uid)",
			`Exec lifecycle hook ([false]) for Container "c" in Pod "web_default(uid)" failed - error: boom, message: "x"`},
		{&HookError{Handler: "HTTP", Detail: "/stop", Container: "c", Err: errors.New("boom")}, "web_default(uid)",
			`HTTP lifecycle hook (/stop) for Container "c" in Pod "web_default(uid)" failed - error: boom`},
		{&HookError{Handler: "Sleep", Detail: "5", Container: "c", Err: errors.New("boom")}, "p",
			`Sleep lifecycle hook (5) for Container "c" in Pod "p" failed - error: boom`},
		{&HookError{Container: "c", Err: errors.New("invalid handler: x")}, "p", `Cannot run handler: invalid handler: x`},
	}
	for _, tc := range cases {
		if got := tc.err.EventMessage(tc.pod); got != tc.want {
			t.Errorf("EventMessage = %q, want %q", got, tc.want)
		}
	}
}
