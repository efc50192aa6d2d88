package nodeserver

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/peapod/peapod/internal/testutil"
)

// panickingLister fails as a bug below the /pods handler would.
type panickingLister struct{}

func (panickingLister) Pods() []*corev1.Pod { panic("pod list exploded") }

func TestPanickingHandlerIsAnswered(t *testing.T) {
	var logs testutil.SyncBuffer
	s := newServer(nil, Options{Pods: panickingLister{}, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()

	res, err := http.Get(srv.URL + "/pods")
	if err != nil {
		t.Fatalf("a panicking handler left the request unanswered: %v", err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusInternalServerError || !strings.Contains(string(body), "panicked") {
		t.Fatalf("GET /pods: %d %q, want a 500 saying the server panicked", res.StatusCode, body)
	}
	log := logs.String()
	for _, want := range []string{`"level":"ERROR"`, `"method":"GET"`, `"endpoint":"GET /pods"`, "pod list exploded", "panickingLister.Pods"} {
		if !strings.Contains(log, want) {
			t.Errorf("panic log lacks %s:\n%s", want, log)
		}
	}

	res, err = http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if want := `node_server_request_panics_total{endpoint="GET /pods",method="GET"} 1`; !strings.Contains(string(body), want) {
		t.Fatalf("/metrics lacks %s:\n%s", want, body)
	}

	// The server goes on answering.
	res, err = http.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("healthz after the panic: %d", res.StatusCode)
	}
}
