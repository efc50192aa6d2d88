// Package apibalancer moves a node's connections to a live API server
// when the one it uses dies, as k3s's agent load balancer does
// (pkg/agent/loadbalancer), but inside the process: a dialer that every
// client-go client of the node uses, instead of a proxy port on
// localhost.
//
// Usage:
//
//  1. New(servers, Options{CAPEM: the cluster CA}) with the servers'
//     URLs in order of preference.
//  2. Configure(restConfig) before building clients: their connections
//     are dialed by the Balancer, and TLS checks every server's
//     certificate for ServerName (DefaultServerName, which the PKI puts in
//     every server's certificate) instead of the URL's host, since a
//     connection for the first URL may go to the second server.
//  3. Run(ctx) health-checks every server (/readyz, which fails when a
//     server cannot reach etcd) each HealthInterval.
//
// How a failover happens: a connection is dialed to the current server,
// or, if that fails, to the next one in order, which becomes current.
// When the current server fails its health check and another passes,
// the other becomes current and every connection to the failed one is
// closed: client-go's requests fail once and are retried, and its watch
// streams end and are re-established (from their last resourceVersion,
// which both servers share through etcd) over a connection to the live
// server. A server that recovers is used again only when the current one
// fails, so connections do not flap.
package apibalancer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/rest"
)

// DefaultServerName is the name TLS checks on every server: one of the
// names peapod's PKI puts in every API server's serving certificate (the
// in-cluster name of the kubernetes Service), so one name fits them all.
const DefaultServerName = "kubernetes.default.svc"

// Defaults of Options.
const (
	DefaultHealthInterval = time.Second
	DefaultDialTimeout    = 5 * time.Second
)

// Options configure a Balancer.
type Options struct {
	// CAPEM is the cluster CA, which signed every server's certificate;
	// the health checks verify with it.
	CAPEM []byte
	// ServerName is checked on every server's certificate
	// (DefaultServerName if empty).
	ServerName string
	// HealthInterval is how often each server is checked; DialTimeout
	// bounds one dial (and one health check).
	HealthInterval, DialTimeout time.Duration
	Logger                      *slog.Logger
}

// Balancer picks the API server a node's connections go to. Safe for
// concurrent use.
type Balancer struct {
	opts    Options
	servers []*server
	dialer  net.Dialer
	check   func(ctx context.Context, s *server) error

	mu      sync.Mutex
	current int
}

// server is one API server and the connections open to it.
type server struct {
	url     string
	address string // host:port
	healthy bool   // guarded by Balancer.mu
	mu      sync.Mutex
	conns   map[*trackedConn]struct{}
}

// ParseServers splits --server values (repeated, or comma-separated) into
// URLs, checking each: https, a host, no path. Pure.
func ParseServers(values []string) ([]string, error) {
	var out []string
	for _, v := range values {
		for _, s := range strings.Split(v, ",") {
			s = strings.TrimRight(strings.TrimSpace(s), "/")
			if s == "" {
				continue
			}
			if _, err := hostPort(s); err != nil {
				return nil, err
			}
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("--server: required (https://HOST:6443; repeat it, or separate URLs with commas, for several servers)")
	}
	return out, nil
}

// hostPort returns the dial address of an API server URL.
func hostPort(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return "", fmt.Errorf("--server %q: want https://HOST[:PORT]", raw)
	}
	port := u.Port()
	if port == "" {
		port = "443"
	}
	return net.JoinHostPort(u.Hostname(), port), nil
}

// New returns a Balancer over servers (URLs, in order of preference),
// every one assumed healthy until checked.
func New(servers []string, opts Options) (*Balancer, error) {
	servers, err := ParseServers(servers)
	if err != nil {
		return nil, err
	}
	if opts.ServerName == "" {
		opts.ServerName = DefaultServerName
	}
	if opts.HealthInterval <= 0 {
		opts.HealthInterval = DefaultHealthInterval
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = DefaultDialTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	b := &Balancer{opts: opts, dialer: net.Dialer{Timeout: opts.DialTimeout, KeepAlive: 30 * time.Second}}
	for _, s := range servers {
		addr, _ := hostPort(s)
		b.servers = append(b.servers, &server{url: s, address: addr, healthy: true, conns: map[*trackedConn]struct{}{}})
	}
	pool := x509.NewCertPool()
	if len(opts.CAPEM) > 0 && !pool.AppendCertsFromPEM(opts.CAPEM) {
		return nil, errors.New("api balancer: the CA holds no certificate")
	}
	b.check = func(ctx context.Context, s *server) error { return b.readyz(ctx, s, pool) }
	return b, nil
}

// Servers returns the servers' URLs, in order of preference.
func (b *Balancer) Servers() []string {
	out := make([]string, len(b.servers))
	for i, s := range b.servers {
		out[i] = s.url
	}
	return out
}

// Current returns the URL of the server new connections go to.
func (b *Balancer) Current() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.servers[b.current].url
}

// Configure returns a copy of cfg whose connections the Balancer dials,
// checking ServerName on every server's certificate.
func (b *Balancer) Configure(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.Dial = b.DialContext
	cfg.TLSClientConfig.ServerName = b.opts.ServerName
	return cfg
}

// dialOrder is the order servers are tried in: the current one, then the
// healthy ones in order of preference, then the unhealthy ones (a health
// check may lag behind a recovery). Pure; b.mu held.
func dialOrder(servers []*server, current int) []*server {
	order := []*server{servers[current]}
	for _, healthy := range []bool{true, false} {
		for i, s := range servers {
			if i != current && s.healthy == healthy {
				order = append(order, s)
			}
		}
	}
	return order
}

// DialContext dials the current server, or the next that answers, which
// then becomes current. The address asked for is ignored: every server
// serves the same API. It implements rest.Config's Dial.
func (b *Balancer) DialContext(ctx context.Context, network, _ string) (net.Conn, error) {
	b.mu.Lock()
	order := dialOrder(b.servers, b.current)
	b.mu.Unlock()
	var errs []error
	for _, s := range order {
		conn, err := b.dialer.DialContext(ctx, network, s.address)
		if err == nil {
			b.use(s)
			return s.track(conn), nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", s.url, err))
		if ctx.Err() != nil {
			break
		}
		b.setHealthy(s, false)
	}
	return nil, fmt.Errorf("dial API server: %w", errors.Join(errs...))
}

// use makes s current (it answered when the current one did not).
func (b *Balancer) use(s *server) {
	b.mu.Lock()
	defer b.mu.Unlock()
	i := slices.Index(b.servers, s)
	if i != b.current {
		b.opts.Logger.Info("API server switched", "from", b.servers[b.current].url, "to", s.url)
		b.current = i
	}
}

// setHealthy records a check's result. A current server turning
// unhealthy while another is healthy hands over: the other becomes
// current and the connections to the failed one are closed.
func (b *Balancer) setHealthy(s *server, healthy bool) {
	b.mu.Lock()
	was := s.healthy
	s.healthy = healthy
	if was == healthy {
		b.mu.Unlock()
		return
	}
	if healthy {
		b.opts.Logger.Info("API server healthy", "server", s.url)
		b.mu.Unlock()
		return
	}
	b.opts.Logger.Warn("API server unhealthy", "server", s.url)
	next := -1
	for i, o := range b.servers {
		if o.healthy {
			next = i
			break
		}
	}
	if next < 0 {
		// Nothing better: keep what is open, a server whose etcd
		// blipped still serves the streams it has.
		b.mu.Unlock()
		return
	}
	if b.servers[b.current] == s {
		b.opts.Logger.Info("API server switched", "from", s.url, "to", b.servers[next].url)
		b.current = next
	}
	b.mu.Unlock()
	s.closeAll(b.opts.Logger)
}

// Run checks every server each HealthInterval until ctx ends. It returns
// nil then.
func (b *Balancer) Run(ctx context.Context) error {
	t := time.NewTicker(b.opts.HealthInterval)
	defer t.Stop()
	for {
		var wg sync.WaitGroup
		for _, s := range b.servers {
			wg.Go(func() {
				cctx, cancel := context.WithTimeout(ctx, b.opts.DialTimeout)
				defer cancel()
				err := b.check(cctx, s)
				if ctx.Err() != nil {
					return
				}
				if err != nil {
					b.opts.Logger.Debug("API server health check", "server", s.url, "err", err)
				}
				b.setHealthy(s, err == nil)
			})
		}
		wg.Wait()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// readyz asks s's /readyz, anonymously (as the API allows), over a
// connection of its own.
func (b *Balancer) readyz(ctx context.Context, s *server, pool *x509.CertPool) error {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return b.dialer.DialContext(ctx, network, s.address)
		},
		TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: b.opts.ServerName, MinVersion: tls.VersionTLS12},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+s.address+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/readyz: %s", resp.Status)
	}
	return nil
}

// trackedConn is a connection the Balancer can close when its server
// fails.
type trackedConn struct {
	net.Conn
	server *server
	once   sync.Once
}

func (s *server) track(conn net.Conn) net.Conn {
	c := &trackedConn{Conn: conn, server: s}
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	return c
}

// Close closes the connection and forgets it.
func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.server.mu.Lock()
		delete(c.server.conns, c)
		c.server.mu.Unlock()
	})
	return c.Conn.Close()
}

// closeAll closes every connection open to s.
func (s *server) closeAll(log *slog.Logger) {
	s.mu.Lock()
	conns := make([]*trackedConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	if len(conns) > 0 {
		log.Info("closing connections to a failed API server", "server", s.url, "connections", len(conns))
	}
	for _, c := range conns {
		c.Close()
	}
}
