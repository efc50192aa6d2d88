package apiserver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	crportforward "k8s.io/cri-streaming/pkg/streaming/portforward"
	crremote "k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/streaming/pkg/httpstream"
)

// fakeNode is a node agent's HTTPS server on the kubelet's paths, built
// from the kubelet's own streaming library: logs echo the request, exec
// and attach echo stdin to stdout, port-forward echoes the stream.
type fakeNode struct {
	srv     *httptest.Server
	release chan struct{} // lets a followed log write its second line
	mu      sync.Mutex
	seen    []string // "<method> <path>?<query> <upgrade protocols>"
	clients []string // client certificate CNs
}

func (f *fakeNode) record(r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen = append(f.seen, fmt.Sprintf("%s %s %s", r.Method, r.URL.RequestURI(), r.Header.Get("Sec-Websocket-Protocol")+r.Header.Get("X-Stream-Protocol-Version")))
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		f.clients = append(f.clients, r.TLS.PeerCertificates[0].Subject.CommonName)
	}
}

func (f *fakeNode) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.seen...)
}

type echoExec struct{}

func (echoExec) ExecInContainer(_ context.Context, name, uid, container string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, _ <-chan crremote.TerminalSize, _ time.Duration) error {
	if errw != nil {
		fmt.Fprintf(errw, "%s/%s %v tty=%v\n", name, container, cmd, tty)
	}
	if in != nil && out != nil {
		io.Copy(out, in)
	}
	return nil
}

func (e echoExec) AttachContainer(ctx context.Context, name, uid, container string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan crremote.TerminalSize) error {
	return e.ExecInContainer(ctx, name, uid, container, []string{"attach"}, in, out, errw, tty, resize, 0)
}

type echoForward struct{ ports chan int32 }

func (e echoForward) PortForward(_ context.Context, name, uid string, port int32, stream io.ReadWriteCloser) error {
	e.ports <- port
	defer stream.Close()
	_, err := io.Copy(stream, stream)
	return err
}

func startFakeNode(t *testing.T, p *PKI, trusted bool) (*fakeNode, echoForward) {
	t.Helper()
	f := &fakeNode{release: make(chan struct{})}
	fwd := echoForward{ports: make(chan int32, 4)}
	mux := http.NewServeMux()
	mux.HandleFunc("/containerLogs/{ns}/{pod}/{container}", func(w http.ResponseWriter, r *http.Request) {
		f.record(r)
		if r.PathValue("container") == "missing" {
			http.Error(w, "container missing not found", http.StatusNotFound)
			return
		}
		fmt.Fprintf(w, "log %s/%s/%s %s\n", r.PathValue("ns"), r.PathValue("pod"), r.PathValue("container"), r.URL.RawQuery)
		if r.URL.Query().Get("follow") == "true" {
			w.(http.Flusher).Flush()
			select {
			case <-f.release:
			case <-r.Context().Done():
				return
			}
			fmt.Fprintln(w, "second line")
		}
	})
	stream := func(exec bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			f.record(r)
			opts, err := crremote.NewOptions(r)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			if exec {
				crremote.ServeExec(w, r, echoExec{}, r.PathValue("pod"), "", r.PathValue("container"), r.URL.Query()["command"],
					opts, time.Minute, 30*time.Second, crremote.SupportedStreamingProtocols)
			} else {
				crremote.ServeAttach(w, r, echoExec{}, r.PathValue("pod"), "", r.PathValue("container"),
					opts, time.Minute, 30*time.Second, crremote.SupportedStreamingProtocols)
			}
		}
	}
	mux.HandleFunc("/exec/{ns}/{pod}/{container}", stream(true))
	mux.HandleFunc("/attach/{ns}/{pod}/{container}", stream(false))
	mux.HandleFunc("/portForward/{ns}/{pod}", func(w http.ResponseWriter, r *http.Request) {
		f.record(r)
		opts, err := crportforward.NewV4Options(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		crportforward.ServePortForward(w, r, fwd, r.PathValue("pod"), "", opts, time.Minute, 30*time.Second, crportforward.SupportedProtocols)
	})
	f.srv = httptest.NewUnstartedServer(mux)
	if trusted {
		certPEM, keyPEM, err := p.IssueServingCert([]string{"node-1"}, []net.IP{net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		f.srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: p.Pool}
	}
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f, fwd
}

func registerNode(t *testing.T, c kubernetes.Interface, name, serverURL string) {
	t.Helper()
	u, _ := url.Parse(serverURL)
	host, port, _ := net.SplitHostPort(u.Host)
	p, _ := strconv.Atoi(port)
	ctx := context.Background()
	n, err := c.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: name}, {Type: corev1.NodeInternalIP, Address: host}}
	n.Status.DaemonEndpoints.KubeletEndpoint.Port = int32(p)
	if _, err := c.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestNodeProxy(t *testing.T) {
	dir := tempDir(t)
	s, stop := startServer(t, dir)
	t.Cleanup(stop)
	ctx := context.Background()
	admin, cfg := clientFor(t, s.Kubeconfig())
	node, fwd := startFakeNode(t, s.PKI(), true)
	registerNode(t, admin, "node-1", node.srv.URL)
	untrusted, _ := startFakeNode(t, s.PKI(), false)
	registerNode(t, admin, "node-2", untrusted.srv.URL)

	mk := func(name, nodeName string, containers ...string) {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{NodeName: nodeName}}
		for _, c := range containers {
			pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: c, Image: "busybox"})
		}
		if _, err := admin.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mk("web", "node-1", "nginx", "writer")
	mk("one", "node-1", "only")
	mk("pending", "", "c")
	mk("elsewhere", "node-2", "c")

	t.Run("logs", func(t *testing.T) {
		tail, limit, since := int64(5), int64(1000), int64(60)
		out, err := admin.CoreV1().Pods("default").GetLogs("web", &corev1.PodLogOptions{Container: "writer", TailLines: &tail,
			LimitBytes: &limit, SinceSeconds: &since, Timestamps: true, Previous: true}).DoRaw(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := string(out)
		for _, want := range []string{"log default/web/writer ", "tailLines=5", "limitBytes=1000", "sinceSeconds=60", "timestamps=true", "previous=true"} {
			if !strings.Contains(got, want) {
				t.Errorf("log output %q lacks %q", got, want)
			}
		}
		// The only container is the default; the agent saw the API server's client certificate.
		if out, err := admin.CoreV1().Pods("default").GetLogs("one", &corev1.PodLogOptions{}).DoRaw(ctx); err != nil || !strings.HasPrefix(string(out), "log default/one/only") {
			t.Fatalf("default container: %q %v", out, err)
		}
		for _, cn := range node.clients {
			if cn != KubeletClientUser {
				t.Errorf("agent saw client %q", cn)
			}
		}
	})
	t.Run("logs follow streams", func(t *testing.T) {
		rc, err := admin.CoreV1().Pods("default").GetLogs("one", &corev1.PodLogOptions{Follow: true}).Stream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		br := bufio.NewReader(rc)
		line, err := br.ReadString('\n')
		if err != nil || !strings.Contains(line, "follow=true") {
			t.Fatalf("first line %q %v", line, err)
		}
		close(node.release) // the second line is written only now
		if line, err = br.ReadString('\n'); err != nil || line != "second line\n" {
			t.Fatalf("second line %q %v", line, err)
		}
	})
	t.Run("log errors", func(t *testing.T) {
		logErr := func(pod string, o *corev1.PodLogOptions) error {
			return admin.CoreV1().Pods("default").GetLogs(pod, o).Do(ctx).Error()
		}
		err := logErr("web", &corev1.PodLogOptions{})
		if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), "a container name must be specified for pod web, choose one of: [nginx writer]") {
			t.Errorf("no container: %v", err)
		}
		err = logErr("web", &corev1.PodLogOptions{Container: "nope"})
		if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), "container nope is not valid for pod web") {
			t.Errorf("bad container: %v", err)
		}
		neg := int64(-1)
		if err = logErr("one", &corev1.PodLogOptions{TailLines: &neg}); !apierrors.IsInvalid(err) {
			t.Errorf("negative tailLines: %v", err)
		}
		if err = logErr("pending", &corev1.PodLogOptions{}); !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), "does not have a host assigned") {
			t.Errorf("unscheduled pod: %v", err)
		}
		if err = logErr("nope", &corev1.PodLogOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("missing pod: %v", err)
		}
		// A node whose serving certificate the CA did not sign is not trusted.
		if err = logErr("elsewhere", &corev1.PodLogOptions{}); !apierrors.IsServiceUnavailable(err) || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("untrusted node: %v", err)
		}
		if len(untrusted.requests()) != 0 {
			t.Errorf("untrusted node got requests: %v", untrusted.requests())
		}
	})

	execURL := func(sub string, params url.Values) *url.URL {
		return admin.CoreV1().RESTClient().Post().Resource("pods").Namespace("default").Name("web").
			SubResource(sub).Param("container", "writer").Param("stdin", "true").Param("stdout", "true").
			Param("stderr", "true").Param("command", "cat").Param("command", "-").URL()
	}
	runExec := func(t *testing.T, e remotecommand.Executor, input string) (string, string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if err := e.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: strings.NewReader(input), Stdout: &stdout, Stderr: &stderr}); err != nil {
			t.Fatalf("stream: %v (stderr %q)", err, stderr.String())
		}
		return stdout.String(), stderr.String()
	}
	t.Run("exec over SPDY", func(t *testing.T) {
		e, err := remotecommand.NewSPDYExecutor(cfg, "POST", execURL("exec", nil))
		if err != nil {
			t.Fatal(err)
		}
		out, errOut := runExec(t, e, "hello spdy")
		if out != "hello spdy" || errOut != "web/writer [cat -] tty=false\n" {
			t.Fatalf("stdout %q stderr %q", out, errOut)
		}
	})
	t.Run("attach over SPDY", func(t *testing.T) {
		e, err := remotecommand.NewSPDYExecutor(cfg, "POST", execURL("attach", nil))
		if err != nil {
			t.Fatal(err)
		}
		if out, errOut := runExec(t, e, "attached"); out != "attached" || !strings.Contains(errOut, "[attach]") {
			t.Fatalf("stdout %q stderr %q", out, errOut)
		}
	})
	t.Run("exec as kubectl does: WebSocket first, then SPDY", func(t *testing.T) {
		u := execURL("exec", nil)
		ws, err := remotecommand.NewWebSocketExecutor(cfg, "GET", u.String())
		if err != nil {
			t.Fatal(err)
		}
		sp, err := remotecommand.NewSPDYExecutor(cfg, "POST", u)
		if err != nil {
			t.Fatal(err)
		}
		e, err := remotecommand.NewFallbackExecutor(ws, sp, func(err error) bool {
			return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
		})
		if err != nil {
			t.Fatal(err)
		}
		before := len(node.requests())
		if out, _ := runExec(t, e, "fallback"); out != "fallback" {
			t.Fatalf("stdout %q", out)
		}
		reqs := node.requests()[before:]
		if len(reqs) != 2 || !strings.HasPrefix(reqs[0], "GET /exec/default/web/writer?") || !strings.Contains(reqs[0], "v5.channel.k8s.io") ||
			!strings.HasPrefix(reqs[1], "POST /exec/default/web/writer?") {
			t.Fatalf("agent saw %q", reqs)
		}
	})
	t.Run("exec over WebSocket passes through", func(t *testing.T) {
		u := execURL("exec", nil)
		u.Scheme = "wss"
		tlsCfg, err := rest.TLSConfigFor(cfg)
		if err != nil {
			t.Fatal(err)
		}
		d := websocket.Dialer{TLSClientConfig: tlsCfg, Subprotocols: []string{"v4.channel.k8s.io"}}
		conn, resp, err := d.Dial(u.String(), nil)
		if err != nil {
			t.Fatalf("dial: %v %v", err, resp)
		}
		defer conn.Close()
		if conn.Subprotocol() != "v4.channel.k8s.io" {
			t.Fatalf("subprotocol %q", conn.Subprotocol())
		}
		if err := conn.WriteMessage(websocket.BinaryMessage, append([]byte{0}, "over ws"...)); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		var stdout string
		for !strings.Contains(stdout, "over ws") {
			_, msg, err := conn.ReadMessage()
			if err != nil {
				t.Fatalf("read: %v (stdout %q)", err, stdout)
			}
			if len(msg) > 1 && msg[0] == 1 {
				stdout += string(msg[1:])
			}
		}
	})
	t.Run("port-forward over SPDY", func(t *testing.T) {
		u := admin.CoreV1().RESTClient().Post().Resource("pods").Namespace("default").Name("one").SubResource("portforward").URL()
		transport, upgrader, err := spdy.RoundTripperFor(cfg)
		if err != nil {
			t.Fatal(err)
		}
		dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, "POST", u)
		stopCh, readyCh := make(chan struct{}), make(chan struct{})
		defer close(stopCh)
		pf, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:8080"}, stopCh, readyCh, io.Discard, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 1)
		go func() { errc <- pf.ForwardPorts() }()
		select {
		case <-readyCh:
		case err := <-errc:
			t.Fatal(err)
		}
		ports, err := pf.GetPorts()
		if err != nil {
			t.Fatal(err)
		}
		c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(ports[0].Local))))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("echo %q %v", buf, err)
		}
		if p := <-fwd.ports; p != 8080 {
			t.Fatalf("agent forwarded port %d", p)
		}
	})
	t.Run("installed kubectl", func(t *testing.T) {
		if _, err := exec.LookPath("kubectl"); err != nil {
			t.Skip("kubectl not installed")
		}
		if out := mustKubectl(t, s.Kubeconfig(), "", "logs", "one", "--tail=3"); !strings.Contains(out, "log default/one/only tailLines=3") {
			t.Errorf("kubectl logs: %q", out)
		}
		// kubectl 1.32 tries WebSocket v5 first and falls back to SPDY.
		if out := mustKubectl(t, s.Kubeconfig(), "from kubectl", "exec", "-i", "web", "-c", "writer", "--", "cat"); !strings.Contains(out, "from kubectl") {
			t.Errorf("kubectl exec: %q", out)
		}
	})
	t.Run("authn and authz", func(t *testing.T) {
		insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		resp, err := insecure.Get("https://" + s.Addr() + "/api/v1/namespaces/default/pods/one/log")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("anonymous logs: %d", resp.StatusCode)
		}
		kc, err := s.WriteNodeCredentials("node-1", dir+"/n1")
		if err != nil {
			t.Fatal(err)
		}
		nodeClient, _ := clientFor(t, kc)
		if _, err := nodeClient.CoreV1().Pods("default").GetLogs("one", &corev1.PodLogOptions{}).DoRaw(ctx); !apierrors.IsForbidden(err) {
			t.Fatalf("node reading logs: %v", err)
		}
		_, ncfg := clientFor(t, kc)
		e, _ := remotecommand.NewSPDYExecutor(ncfg, "POST", execURL("exec", nil))
		if err := e.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: strings.NewReader("x"), Stdout: io.Discard}); err == nil || !strings.Contains(err.Error(), "403") && !strings.Contains(strings.ToLower(err.Error()), "forbidden") {
			t.Fatalf("node exec: %v", err)
		}
	})
}
