package apiserver

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"
)

// startServerWithTokens is startServer with a static token file:
// "admin-token" is an admin, "user-token" a user with no rights.
func startServerWithTokens(t *testing.T, dir string) (*Server, func()) {
	t.Helper()
	tokens := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte("admin-token,token-admin,1,system:masters\nuser-token,plain-user,2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := New(ctx, Config{DataDir: dir, Listen: "127.0.0.1:0", TokenFile: tokens})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	select {
	case <-s.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("server not ready")
	}
	return s, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}
}

// backendSeen is what the test backend saw of a request.
type backendSeen struct {
	Method, Path, Query, Body          string
	Authorization, Impersonate         string
	ForwardedURI, ForwardedFor, Cookie string
}

// startBackend is a pod's HTTP server: /redirect redirects to /landing/,
// /teapot answers 418 with a header of its own, /ws echoes WebSocket
// messages, and everything else describes the request as JSON.
func startBackend(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/landing/", http.StatusFound)
	})
	mux.HandleFunc("/teapot", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", "teapot")
		w.WriteHeader(http.StatusTeapot)
		_, _ = io.WriteString(w, "short and stout")
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		conn, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		for {
			typ, msg, err := conn.ReadMessage()
			if err != nil {
				return
			}
			_ = conn.WriteMessage(typ, append([]byte("echo: "), msg...))
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		_ = json.NewEncoder(w).Encode(backendSeen{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Body: string(body),
			Authorization: r.Header.Get("Authorization"), Impersonate: r.Header.Get("Impersonate-User"),
			ForwardedURI: r.Header.Get("X-Forwarded-Uri"), ForwardedFor: r.Header.Get("X-Forwarded-For"), Cookie: r.Header.Get("Cookie")})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestResourceProxy(t *testing.T) {
	dir := tempDir(t)
	s, stop := startServerWithTokens(t, dir)
	t.Cleanup(stop)
	ctx := context.Background()
	admin, cfg := clientFor(t, s.Kubeconfig())
	backend := startBackend(t)
	_, backendPortStr, _ := net.SplitHostPort(strings.TrimPrefix(backend.URL, "http://"))
	backendPort, _ := strconv.Atoi(backendPortStr)
	node, _ := startFakeNode(t, s.PKI(), true)
	registerNode(t, admin, "node-1", node.srv.URL)

	// A pod whose IP is the backend's (loopback here; a pod IP on a node).
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "web", Image: "busybox",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: int32(backendPort)}}}}}}
	pod, err := admin.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.Status.Phase = corev1.PodRunning
	pod.Status.PodIP = "127.0.0.1"
	pod.Status.PodIPs = []corev1.PodIP{{IP: "127.0.0.1"}}
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	if _, err := admin.CoreV1().Pods("default").UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CoreV1().Services("default").Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{
			{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	rt, err := rest.TransportFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Redirects are the client's to follow: they are what is tested.
	client := &http.Client{Transport: rt, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	base := "https://" + s.Addr()
	do := func(method, path string, body io.Reader, header http.Header) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, body)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	seen := func(body string) backendSeen {
		t.Helper()
		var b backendSeen
		if err := json.Unmarshal([]byte(body), &b); err != nil {
			t.Fatalf("backend answer %q: %v", body, err)
		}
		return b
	}

	t.Run("a loopback pod IP is refused", func(t *testing.T) {
		// kube-apiserver proxies to global unicast addresses only.
		resp, body := do("GET", "/api/v1/namespaces/default/pods/web/proxy/", nil, nil)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "address not allowed") {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		resp, body = do("GET", "/api/v1/nodes/node-1/proxy/healthz", nil, nil)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "address not allowed") {
			t.Fatalf("node at loopback: %d %s", resp.StatusCode, body)
		}
	})
	// From here on, this test's backends on 127.0.0.1 stand for pods and nodes.
	s.front.resources.addressAllowed = func(net.IP) error { return nil }

	t.Run("pods: path, query, body and method pass; credentials do not", func(t *testing.T) {
		for _, id := range []string{"web", "web:" + backendPortStr, "http:web:" + backendPortStr} {
			resp, body := do("POST", "/api/v1/namespaces/default/pods/"+id+"/proxy/some/path?a=1&b=two", strings.NewReader("payload"),
				http.Header{"Impersonate-User": {"someone"}, "Cookie": {"c=1"}})
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s: %d %s", id, resp.StatusCode, body)
			}
			got := seen(body)
			want := backendSeen{Method: "POST", Path: "/some/path", Query: "a=1&b=two", Body: "payload", Cookie: "c=1",
				ForwardedURI: "/api/v1/namespaces/default/pods/" + id + "/proxy/some/path", ForwardedFor: "127.0.0.1"}
			if got != want {
				t.Errorf("%s: backend saw %+v, want %+v", id, got, want)
			}
		}
		// A bearer token authenticates the caller and stops there.
		resp, body := do("GET", "/api/v1/namespaces/default/pods/web/proxy/", nil, http.Header{"Authorization": {"Bearer admin-token"}})
		if resp.StatusCode != http.StatusOK || seen(body).Authorization != "" || seen(body).Path != "/" {
			t.Errorf("with a token: %d %s", resp.StatusCode, body)
		}
	})
	t.Run("status, headers and redirects", func(t *testing.T) {
		resp, body := do("GET", "/api/v1/namespaces/default/pods/web/proxy/teapot", nil, nil)
		if resp.StatusCode != http.StatusTeapot || resp.Header.Get("X-Backend") != "teapot" || body != "short and stout" {
			t.Errorf("teapot: %d %v %q", resp.StatusCode, resp.Header, body)
		}
		// The backend's redirect stays under the proxy path.
		resp, _ = do("GET", "/api/v1/namespaces/default/pods/web/proxy/redirect", nil, nil)
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/api/v1/namespaces/default/pods/web/proxy/landing/" {
			t.Errorf("redirect: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		// .../proxy without a path is redirected to .../proxy/.
		resp, _ = do("GET", "/api/v1/namespaces/default/pods/web/proxy?x=1", nil, nil)
		if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/api/v1/namespaces/default/pods/web/proxy/?x=1" {
			t.Errorf("root: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
	t.Run("WebSocket upgrades pass through", func(t *testing.T) {
		tlsCfg, err := rest.TLSConfigFor(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range []string{"/api/v1/namespaces/default/pods/web/proxy/ws", "/api/v1/namespaces/default/services/web:http/proxy/ws"} {
			conn, resp, err := (&websocket.Dialer{TLSClientConfig: tlsCfg}).Dial("wss://"+s.Addr()+path, nil)
			if err != nil {
				t.Fatalf("%s: %v %v", path, err, resp)
			}
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			if err := conn.WriteMessage(websocket.TextMessage, []byte("hi")); err != nil {
				t.Fatal(err)
			}
			if _, msg, err := conn.ReadMessage(); err != nil || string(msg) != "echo: hi" {
				t.Errorf("%s: %q %v", path, msg, err)
			}
			conn.Close()
		}
	})
	t.Run("services: a ready endpoint at the target port", func(t *testing.T) {
		for _, id := range []string{"web:80", "web:http", "http:web:80"} {
			resp, body := do("GET", "/api/v1/namespaces/default/services/"+id+"/proxy/x", nil, nil)
			if resp.StatusCode != http.StatusOK || seen(body).Path != "/x" {
				t.Errorf("%s: %d %s", id, resp.StatusCode, body)
			}
		}
		// Without a port, the Service port named "" is meant: this
		// Service's only port has a name, so there is none (as on Kubernetes).
		resp, body := do("GET", "/api/v1/namespaces/default/services/web/proxy/", nil, nil)
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, `no endpoints available for service \"web\"`) {
			t.Errorf("no port: %d %s", resp.StatusCode, body)
		}
		resp, body = do("GET", "/api/v1/namespaces/default/services/web:81/proxy/", nil, nil)
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, `no service port 81 found for service \"web\"`) {
			t.Errorf("unknown port: %d %s", resp.StatusCode, body)
		}
		// A pod that is not ready is no endpoint.
		p, _ := admin.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{})
		p.Status.Conditions[0].Status = corev1.ConditionFalse
		p, err := admin.CoreV1().Pods("default").UpdateStatus(ctx, p, metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		resp, body = do("GET", "/api/v1/namespaces/default/services/web:80/proxy/", nil, nil)
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, `no endpoints available for service \"web:80\"`) {
			t.Errorf("no ready pod: %d %s", resp.StatusCode, body)
		}
		p.Status.Conditions[0].Status = corev1.ConditionTrue
		if _, err := admin.CoreV1().Pods("default").UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("nodes: the agent, or another port of the node", func(t *testing.T) {
		before := len(node.requests())
		resp, body := do("GET", "/api/v1/nodes/node-1/proxy/containerLogs/default/web/web?tailLines=2", nil, nil)
		if resp.StatusCode != http.StatusOK || body != "log default/web/web tailLines=2\n" {
			t.Fatalf("agent: %d %q", resp.StatusCode, body)
		}
		if reqs := node.requests()[before:]; len(reqs) != 1 || !strings.HasPrefix(reqs[0], "GET /containerLogs/default/web/web?tailLines=2") {
			t.Errorf("agent saw %q", reqs)
		}
		// An upgrade reaches the agent with the API server's certificate:
		// an exec over WebSocket, on the kubelet's path.
		tlsCfg, err := rest.TLSConfigFor(cfg)
		if err != nil {
			t.Fatal(err)
		}
		conn, wsResp, err := (&websocket.Dialer{TLSClientConfig: tlsCfg, Subprotocols: []string{"v4.channel.k8s.io"}}).Dial(
			"wss://"+s.Addr()+"/api/v1/nodes/node-1/proxy/exec/default/web/web?command=cat&input=1&output=1", nil)
		if err != nil {
			t.Fatalf("exec through nodes/proxy: %v %v", err, wsResp)
		}
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if err := conn.WriteMessage(websocket.BinaryMessage, append([]byte{0}, "through the node proxy"...)); err != nil {
			t.Fatal(err)
		}
		var stdout string
		for !strings.Contains(stdout, "through the node proxy") {
			_, msg, err := conn.ReadMessage()
			if err != nil {
				t.Fatalf("read: %v (stdout %q)", err, stdout)
			}
			if len(msg) > 1 && msg[0] == 1 {
				stdout += string(msg[1:])
			}
		}
		conn.Close()
		resp, body = do("GET", "/api/v1/nodes/node-1:"+backendPortStr+"/proxy/elsewhere", nil, nil)
		if resp.StatusCode != http.StatusOK || seen(body).Path != "/elsewhere" {
			t.Errorf("other port: %d %s", resp.StatusCode, body)
		}
	})
	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			method, path string
			code         int
			want         string
		}{
			{"GET", "/api/v1/namespaces/default/pods/nope/proxy/", 404, `pods \"nope\" not found`},
			{"GET", "/api/v1/namespaces/default/pods/a:b:c:d/proxy/", 400, `invalid pod request \"a:b:c:d\"`},
			{"GET", "/api/v1/namespaces/default/services/nope/proxy/", 404, `services \"nope\" not found`},
			{"GET", "/api/v1/nodes/nope/proxy/", 404, `nodes \"nope\" not found`},
			{"PROPFIND", "/api/v1/namespaces/default/pods/web/proxy/", 405, "PROPFIND"},
		} {
			resp, body := do(tc.method, tc.path, nil, nil)
			if resp.StatusCode != tc.code || !strings.Contains(body, tc.want) {
				t.Errorf("%s %s: %d %s, want %d with %q", tc.method, tc.path, resp.StatusCode, body, tc.code, tc.want)
			}
		}
	})
	t.Run("authorization: the proxy verbs on pods, services and nodes", func(t *testing.T) {
		plain := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		for path, resource := range map[string]string{
			"/api/v1/namespaces/default/pods/web/proxy/":               `resource \"pods/proxy\" in API group \"\" in the namespace \"default\"`,
			"/api/v1/namespaces/default/services/web:80/proxy/":        `resource \"services/proxy\" in API group \"\" in the namespace \"default\"`,
			"/api/v1/nodes/node-1/proxy/containerLogs/default/web/web": `resource \"nodes/proxy\" in API group \"\" at the cluster scope`,
		} {
			req, _ := http.NewRequest("GET", base+path, nil)
			req.Header.Set("Authorization", "Bearer user-token")
			resp, err := plain.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), `User \"plain-user\" cannot get `+resource) {
				t.Errorf("%s: %d %s", path, resp.StatusCode, b)
			}
			req.Header.Set("Authorization", "Bearer admin-token")
			if resp, err = plain.Do(req); err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s as admin: %d", path, resp.StatusCode)
			}
			req.Header.Del("Authorization")
			if resp, err = plain.Do(req); err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s anonymously: %d", path, resp.StatusCode)
			}
		}
		// A node may read pods, but not proxy to them.
		kc, err := s.WriteNodeCredentials("node-1", dir+"/n1")
		if err != nil {
			t.Fatal(err)
		}
		nodeClient, _ := clientFor(t, kc)
		if _, err := nodeClient.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{}); err != nil {
			t.Fatalf("node reading a pod: %v", err)
		}
		err = nodeClient.CoreV1().RESTClient().Get().AbsPath("/api/v1/namespaces/default/pods/web/proxy/").Do(ctx).Error()
		if err == nil || !strings.Contains(err.Error(), "forbidden") {
			t.Errorf("node proxying to a pod: %v", err)
		}
	})
}

// TestLogsOverWebSocketThroughAPI reads pods/log as WebSocket clients do,
// in both subprotocols, following new lines.
func TestLogsOverWebSocketThroughAPI(t *testing.T) {
	dir := tempDir(t)
	s, stop := startServer(t, dir)
	t.Cleanup(stop)
	ctx := context.Background()
	admin, cfg := clientFor(t, s.Kubeconfig())
	node, _ := startFakeNode(t, s.PKI(), true)
	registerNode(t, admin, "node-1", node.srv.URL)
	if _, err := admin.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "one"},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "only", Image: "busybox"}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := rest.TLSConfigFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dial := func(query string, protocols ...string) *websocket.Conn {
		t.Helper()
		conn, resp, err := (&websocket.Dialer{TLSClientConfig: tlsCfg, Subprotocols: protocols}).Dial(
			"wss://"+s.Addr()+"/api/v1/namespaces/default/pods/one/log?"+query, nil)
		if err != nil {
			t.Fatalf("dial: %v %v", err, resp)
		}
		t.Cleanup(func() { conn.Close() })
		_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		if conn.Subprotocol() != strings.Join(protocols, "") {
			t.Fatalf("negotiated %q", conn.Subprotocol())
		}
		return conn
	}
	read := func(conn *websocket.Conn, b64 bool) string {
		t.Helper()
		typ, msg, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if b64 {
			if typ != websocket.TextMessage {
				t.Fatalf("base64.binary.k8s.io sent message type %d", typ)
			}
			if msg, err = base64.StdEncoding.DecodeString(string(msg)); err != nil {
				t.Fatal(err)
			}
		} else if typ != websocket.BinaryMessage {
			t.Fatalf("binary.k8s.io sent message type %d", typ)
		}
		return string(msg)
	}

	// base64, with the log options passed to the agent.
	conn := dial("tailLines=3&timestamps=true", "base64.binary.k8s.io")
	if first := read(conn, true); first != "" {
		t.Fatalf("first message %q, want the empty one", first)
	}
	if got := read(conn, true); got != "log default/one/only tailLines=3&timestamps=true\n" {
		t.Errorf("log: %q", got)
	}
	if _, _, err := conn.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Errorf("end of log: %v, want a normal close", err)
	}

	// binary, following: the second line arrives when written.
	conn = dial("follow=true", "binary.k8s.io")
	var got string
	for !strings.Contains(got, "follow=true\n") {
		got += read(conn, false)
	}
	close(node.release)
	for !strings.Contains(got, "second line\n") {
		got += read(conn, false)
	}

	// An error before streaming is a Status, as for plain requests.
	_, resp, err := (&websocket.Dialer{TLSClientConfig: tlsCfg, Subprotocols: []string{"binary.k8s.io"}}).Dial(
		"wss://"+s.Addr()+"/api/v1/namespaces/default/pods/one/log?container=nope", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad container: %v %v", err, resp)
	}
	b, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(b), "container nope is not valid for pod one") {
		t.Errorf("bad container: %s", b)
	}
}
