package apibalancer

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/peapod/peapod/internal/apiserver"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestParseServers(t *testing.T) {
	got, err := ParseServers([]string{"https://10.0.0.1:6443, https://10.0.0.2:6443/", "https://10.0.0.1:6443", "https://lb.example"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, " ") != "https://10.0.0.1:6443 https://10.0.0.2:6443 https://lb.example" {
		t.Fatalf("servers %v", got)
	}
	if a, _ := hostPort("https://lb.example"); a != "lb.example:443" {
		t.Fatalf("default port: %s", a)
	}
	for _, bad := range []string{"http://10.0.0.1:6443", "10.0.0.1:6443", "https://", "https://h/api"} {
		if _, err := ParseServers([]string{bad}); err == nil || !strings.Contains(err.Error(), "--server") {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if _, err := ParseServers([]string{" , "}); err == nil || !strings.Contains(err.Error(), "--server: required") {
		t.Errorf("no server: %v", err)
	}
}

// TestServerNameIsOnEveryServer: the name the Balancer checks is one
// every peapod API server's certificate carries.
func TestServerNameIsOnEveryServer(t *testing.T) {
	if !slices.Contains(apiserver.DefaultServingNames(), DefaultServerName) {
		t.Fatalf("%s is not among the API servers' names %v", DefaultServerName, apiserver.DefaultServingNames())
	}
}

func TestDialOrder(t *testing.T) {
	a, b, c := &server{url: "a", healthy: true}, &server{url: "b", healthy: false}, &server{url: "c", healthy: true}
	names := func(ss []*server) string {
		var out []string
		for _, s := range ss {
			out = append(out, s.url)
		}
		return strings.Join(out, ",")
	}
	if got := names(dialOrder([]*server{a, b, c}, 1)); got != "b,a,c" {
		t.Fatalf("from b: %s", got)
	}
	if got := names(dialOrder([]*server{a, b, c}, 0)); got != "a,c,b" {
		t.Fatalf("from a: %s (the unhealthy one last)", got)
	}
}

// apiServer is a stand-in API server: its serving certificate comes from
// peapod's PKI over a CA shared with the others, as a second server's
// would; /readyz answers as ready says; /who names it; /watch sends its
// name and holds the connection, as a watch does.
type apiServer struct {
	name  string
	srv   *httptest.Server
	ready atomic.Bool
}

func sharedPKI(t *testing.T) (first, second *apiserver.PKI) {
	t.Helper()
	dir1, dir2 := t.TempDir(), t.TempDir()
	sans := apiserver.DefaultServingNames()
	var err error
	if first, err = apiserver.LoadOrCreatePKI(dir1, sans); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ca.crt", "ca.key"} {
		data, err := os.ReadFile(filepath.Join(dir1, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir2, f), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if second, err = apiserver.LoadOrCreatePKI(dir2, sans); err != nil {
		t.Fatal(err)
	}
	return first, second
}

func startAPIServer(t *testing.T, name string, pki *apiserver.PKI) *apiServer {
	t.Helper()
	s := &apiServer{name: name}
	s.ready.Store(true)
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "[-]etcd failed", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("/who", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, name) })
	mux.HandleFunc("/watch", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, name+"\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	s.srv = httptest.NewUnstartedServer(mux)
	s.srv.EnableHTTP2 = true
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes cut by the test
	s.srv.TLS = &tls.Config{Certificates: []tls.Certificate{pki.Server}}
	s.srv.StartTLS()
	t.Cleanup(s.srv.Close)
	return s
}

// TestFailover: a client built on the Balancer follows the live server.
// The current server failing its health check closes the connections to
// it (a watch ends) and moves new requests to the other; a server that
// stops answering at all is skipped at the next dial. The TLS check
// passes on both servers with the name they share, whichever URL the
// client was given.
func TestFailover(t *testing.T) {
	pkiA, pkiB := sharedPKI(t)
	a, b := startAPIServer(t, "a", pkiA), startAPIServer(t, "b", pkiB)
	bal, err := New([]string{a.srv.URL, b.srv.URL}, Options{CAPEM: pkiA.CAPEM, HealthInterval: 20 * time.Millisecond, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- bal.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	cfg := bal.Configure(&rest.Config{Host: a.srv.URL, TLSClientConfig: rest.TLSClientConfig{CAData: pkiA.CAPEM}})
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// who asks which server answers. A request already on its way over a
	// connection the server closed fails; client-go retries (informers
	// re-list and re-watch), and so does this, once.
	who := func() string {
		t.Helper()
		resp, err := client.Get(a.srv.URL + "/who")
		if err != nil {
			resp, err = client.Get(a.srv.URL + "/who")
		}
		if err != nil {
			t.Fatalf("request: %v", err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	if got := who(); got != "a" {
		t.Fatalf("first request went to %s", got)
	}
	// A watch on a.
	resp, err := client.Get(a.srv.URL + "/watch")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	watch := bufio.NewReader(resp.Body)
	if line, err := watch.ReadString('\n'); err != nil || line != "a\n" {
		t.Fatalf("watch: %q %v", line, err)
	}
	watchEnded := make(chan error, 1)
	go func() {
		_, err := watch.ReadString('\n')
		watchEnded <- err
	}()

	// a loses etcd: its /readyz fails.
	a.ready.Store(false)
	select {
	case err := <-watchEnded:
		if err == nil {
			t.Fatal("the watch on a got data instead of ending")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the watch on the failed server was not closed")
	}
	if got := who(); got != "b" {
		t.Fatalf("after a failed its health check, a request went to %s", got)
	}
	if bal.Current() != b.srv.URL {
		t.Fatalf("current %s, want %s", bal.Current(), b.srv.URL)
	}

	// a recovers; the client stays on b until b fails.
	a.ready.Store(true)
	for !bal.isHealthy(0) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := who(); got != "b" {
		t.Fatalf("a recovered server took the connections back: %s", got)
	}
	// b dies outright (kill -9): the next dial finds a.
	b.srv.CloseClientConnections()
	b.srv.Close()
	client.CloseIdleConnections()
	if got := who(); got != "a" {
		t.Fatalf("after b died, a request went to %s", got)
	}
}

func (b *Balancer) isHealthy(i int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.servers[i].healthy
}
