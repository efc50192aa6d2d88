package nodeserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/peapod/peapod/internal/runtime"
	"github.com/peapod/peapod/internal/runtime/oci"
)

// PodRuntime is what the server needs of the node runtime; *runtime.Runtime
// implements it.
type PodRuntime interface {
	ListSandboxes(ctx context.Context) ([]*runtime.SandboxStatus, error)
	WaitContainer(ctx context.Context, cid string) (*runtime.ContainerStatus, error)
	Exec(ctx context.Context, cid string, cmd []string, stdio oci.ExecIO) (int, error)
	Attach(ctx context.Context, cid string, stdio oci.ExecIO) error
	PortForward(ctx context.Context, sandboxID string, port int32, stream io.ReadWriteCloser) error
	// DataDir holds the pods' logs, which outlive a finished pod's sandbox.
	DataDir() string
}

var _ PodRuntime = (*runtime.Runtime)(nil)

// Options configure a Server.
type Options struct {
	// Certificate is the server's TLS certificate (with its key).
	Certificate tls.Certificate
	// ClientCAs verifies client certificates. Every connection must present
	// one it signs (the API server's kubelet client certificate), as the
	// kubelet authenticates the API server.
	ClientCAs *x509.CertPool
	// Logger gets request errors; nil is slog.Default().
	Logger *slog.Logger
	// StreamIdleTimeout closes an exec, attach or port-forward connection
	// idle that long; 0 is 4 hours, the kubelet's default.
	StreamIdleTimeout time.Duration
	// StreamCreationTimeout bounds how long a SPDY client may take to open
	// its streams; 0 is 30 seconds.
	StreamCreationTimeout time.Duration
	// Pods lists the pods GET /pods shows; nil shows none.
	Pods PodLister
	// Configz is what GET /configz shows; nil answers 404.
	Configz *Configz
}

// Server serves the kubelet's streaming and log endpoints for the pods of
// this node. It is safe for concurrent use.
type Server struct {
	rt      PodRuntime
	opts    Options
	log     *slog.Logger
	handler http.Handler
	metrics *serverMetrics
}

// New returns a server over the node runtime rt. It does not listen; see
// Serve.
func New(rt *runtime.Runtime, opts Options) *Server { return newServer(rt, opts) }

func newServer(rt PodRuntime, opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.StreamIdleTimeout == 0 {
		opts.StreamIdleTimeout = 4 * time.Hour
	}
	if opts.StreamCreationTimeout == 0 {
		opts.StreamCreationTimeout = 30 * time.Second
	}
	s := &Server{rt: rt, opts: opts, log: opts.Logger, metrics: newServerMetrics()}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /containerLogs/{namespace}/{pod}/{container}", s.serveLogs)
	for _, p := range []string{"/exec/{namespace}/{pod}/{container}", "/exec/{namespace}/{pod}/{uid}/{container}"} {
		mux.HandleFunc(p, s.serveExec)
	}
	for _, p := range []string{"/attach/{namespace}/{pod}/{container}", "/attach/{namespace}/{pod}/{uid}/{container}"} {
		mux.HandleFunc(p, s.serveAttach)
	}
	for _, p := range []string{"/portForward/{namespace}/{pod}", "/portForward/{namespace}/{pod}/{uid}"} {
		mux.HandleFunc(p, s.servePortForward)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	mux.HandleFunc("GET /pods", s.servePods)
	mux.HandleFunc("GET /configz", s.serveConfigz)
	// The kubelet's profiling handlers, on its paths: the agent's own
	// memory and goroutines, for `kubectl get --raw
	// /api/v1/nodes/NODE/proxy/debug/pprof/heap`. Only the API server
	// reaches this server, for callers it authorized for nodes/proxy.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.Handle("GET /metrics", s.metrics.handler())
	s.handler = s.recoverPanics(mux)
	return s
}

// Handler is the server's HTTP handler without TLS or authentication, for
// callers that provide both.
func (s *Server) Handler() http.Handler { return s.handler }

// TLSConfig is the TLS configuration Serve uses: Options.Certificate, and a
// client certificate signed by Options.ClientCAs required on every
// connection. HTTP/1.1 only, as SPDY and WebSocket upgrades need it.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{s.opts.Certificate},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    s.opts.ClientCAs,
		NextProtos:   []string{"http/1.1"},
	}
}

// Serve serves HTTPS on ln until ctx ends, then closes ln and every
// connection, streams included, and returns nil. It returns an error if
// serving fails otherwise, or if no certificate or client CA is configured.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if len(s.opts.Certificate.Certificate) == 0 || s.opts.ClientCAs == nil {
		ln.Close()
		return errors.New("node server: a certificate and client CAs are required")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tracked := &trackingListener{Listener: ln, conns: map[*trackedConn]struct{}{}}
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 30 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(tls.NewListener(tracked, s.TLSConfig())) }()
	select {
	case err := <-done:
		tracked.closeAll()
		return fmt.Errorf("node server: %w", err)
	case <-ctx.Done():
	}
	_ = srv.Close()
	// Hijacked (streaming) connections are no longer http.Server's.
	tracked.closeAll()
	<-done
	return nil
}

// trackingListener remembers its open connections so that Serve can close
// the hijacked ones too.
type trackingListener struct {
	net.Listener
	mu    sync.Mutex
	conns map[*trackedConn]struct{}
}

type trackedConn struct {
	net.Conn
	l *trackingListener
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, l: l}
	l.mu.Lock()
	l.conns[tc] = struct{}{}
	l.mu.Unlock()
	return tc, nil
}

func (c *trackedConn) Close() error {
	c.l.mu.Lock()
	delete(c.l.conns, c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}

func (l *trackingListener) closeAll() {
	l.mu.Lock()
	conns := make([]*trackedConn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}
