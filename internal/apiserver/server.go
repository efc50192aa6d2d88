// Package apiserver is peapod's Kubernetes-compatible API server: HTTPS
// with client-certificate and bearer-token authentication, discovery,
// and a generic REST handler (get, list, watch, create, update, patch,
// delete, deletecollection; JSON, YAML and protobuf; server-side tables)
// driven by a per-resource registration table, on top of
// internal/storage (etcd).
//
// Usage:
//
//  1. Fill a Config (DataDir at least) and call New: it creates or reuses
//     the PKI in <data-dir>/pki (the etcd CA and the encryption key
//     included), opens storage (embedded etcd in <data-dir>/etcd unless
//     EtcdServers is set) and builds the handler.
//  2. Call Serve(ctx) (or Run(ctx, cfg) for both steps): it listens, seeds
//     the system namespaces, writes <data-dir>/admin.kubeconfig, closes
//     Ready() and serves until ctx is cancelled, then shuts down.
//  3. In-process clients (the node agent) wait on Ready() and use
//     Kubeconfig() / Addr().
//
// To add a kind, append a Resource to builtinResources (resources.go): a
// GVR, kind, new/newList funcs, a Strategy (defaulting, validation), a
// table convertor and field-selector attributes.
//
// Security: clients authenticate with certificates signed by the cluster
// CA (CN user, O groups), bootstrap tokens (token.go), service-account
// tokens (serviceaccount_token.go, issued through the TokenRequest API) or
// a static token file. Unless Config.Authorizer is set, system:masters may
// do anything, nodes (system:node:<name>) what NodeAuthorizer and
// NodeTokenRequestAuthorizer allow, and service accounts what
// ServiceAccountAuthorizer allows. Nodes join
// with a bootstrap token through JoinNode (node_credentials.go); pods/log,
// exec, attach and portforward are proxied to the pod's node (proxy.go).
//
// The state: the embedded etcd is reached only over TLS with a client
// certificate from its own CA (pki_etcd.go), on a unix socket; an external
// one with the --etcd-* files. Secrets (or whatever an
// EncryptionConfiguration names) are encrypted before they are stored
// (encryption.go, internal/storage/encryption).
package apiserver

import (
	"context"
	"crypto"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/peapod/peapod/internal/storage"
	"github.com/peapod/peapod/internal/storage/encryption"
)

// Config configures the API server. Zero values get the documented
// defaults.
type Config struct {
	// DataDir holds pki/, etcd/ and admin.kubeconfig. Default /var/lib/peapod.
	DataDir string
	// Listen is the HTTPS address. Default 127.0.0.1:6443; port 0 picks one.
	Listen string
	// EtcdServers selects an external etcd cluster instead of the embedded one.
	EtcdServers []string
	// EtcdCompactionInterval is how often the external etcd's history is
	// compacted (kube-apiserver's --etcd-compaction-interval); default 5m.
	EtcdCompactionInterval time.Duration
	// EtcdCAFile, EtcdCertFile and EtcdKeyFile secure the external etcd
	// connection (kube-apiserver's --etcd-cafile, --etcd-certfile,
	// --etcd-keyfile). The embedded etcd uses the server's own etcd PKI.
	EtcdCAFile, EtcdCertFile, EtcdKeyFile string
	// EtcdQuotaBackendBytes is the embedded etcd's space quota (etcd's
	// --quota-backend-bytes); 0 is etcd's default, 2 GiB.
	EtcdQuotaBackendBytes int64
	// EtcdMaintenanceInterval is how often the embedded etcd's size and
	// alarms are checked (defragmentation, NOSPACE recovery); 0 is 1m.
	EtcdMaintenanceInterval time.Duration
	// EncryptionProviderConfig is an apiserver.config.k8s.io/v1
	// EncryptionConfiguration file (kube-apiserver's
	// --encryption-provider-config). Empty: <data-dir>/pki/encryption-config.yaml,
	// written with a fresh key on first start, encrypts Secrets.
	EncryptionProviderConfig string
	// TokenFile is an optional static token file (token,user,uid,"groups").
	TokenFile string
	// AdvertiseAddress is the IPv4 address pods reach this server at, the
	// kubernetes Service's endpoint (kube-apiserver's --advertise-address).
	// Default: Listen's address when it is a specific routable one, else
	// the address of the interface holding the default route. The server
	// must be reachable there: with a loopback Listen it is not.
	AdvertiseAddress string
	// ExtraSANs are added to the serving certificate.
	ExtraSANs []string
	// Authorizer decides access; nil allows system:masters everything and
	// nodes what NodeAuthorizer allows.
	Authorizer Authorizer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// BookmarkInterval between watch bookmarks; default 1m.
	BookmarkInterval time.Duration
	// ServiceCIDR is the IPv4 range Service ClusterIPs come from; default
	// 10.96.0.0/12 (its first address is the kubernetes Service's).
	// NodePortRange defaults to 30000-32767.
	ServiceCIDR, NodePortRange string
	// ReservedServiceIPs are ClusterIPs of the server's own Services (the
	// cluster DNS's, --cluster-dns): dynamic allocation never hands them
	// out, so only a Service asking for one by its address gets it.
	ReservedServiceIPs []string
	// AutomountServiceAccountTokens turns on the ServiceAccount admission's
	// kube-api-access-* volume for new pods (admission_serviceaccount.go).
	// Off by default until the node agent serves projected
	// serviceAccountToken and configMap sources.
	AutomountServiceAccountTokens bool
	// DefaultTolerationSeconds is the tolerationSeconds of the
	// not-ready/unreachable NoExecute tolerations new pods get unless they
	// tolerate those taints already (kube-apiserver's
	// --default-not-ready-toleration-seconds and
	// --default-unreachable-toleration-seconds). Default 300.
	DefaultTolerationSeconds int64
	// EventTTL is how long an Event is kept after its last write
	// (kube-apiserver's --event-ttl); the store deletes it then. Default 1h.
	EventTTL time.Duration
}

// Server is a configured API server. Create it with New.
type Server struct {
	cfg      Config
	api      *api
	handler  http.Handler
	front    *front
	pki      *PKI
	store    storage.Store
	embedded *storage.Embedded
	// compactor compacts an external etcd (nil for the embedded one).
	compactor *storage.Etcd
	listener  net.Listener
	ready     chan struct{}
	isReady   atomic.Bool
	log       *slog.Logger
}

// New prepares a server: PKI, storage, handler and listener. On error
// everything acquired is released. Call Serve to start serving.
func New(ctx context.Context, cfg Config) (_ *Server, retErr error) {
	if cfg.DataDir == "" {
		cfg.DataDir = "/var/lib/peapod"
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:6443"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, ready: make(chan struct{}), log: cfg.Logger.With("component", "apiserver")}
	defer func() {
		if retErr != nil {
			s.close()
		}
	}()
	host, _, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("parse listen address %q: %w", cfg.Listen, err)
	}
	advertise, err := advertisedEndpoint(cfg.AdvertiseAddress, cfg.Listen)
	if err != nil {
		return nil, err
	}
	// In-cluster clients connect to the kubernetes Service's ClusterIP and
	// names, and to the advertised address.
	sans := append(append(DefaultServingNames(), "kubernetes.default.svc.cluster.local"), cfg.ExtraSANs...)
	if r, err := parseIPRange(serviceCIDROrDefault(cfg.ServiceCIDR)); err == nil {
		sans = append(sans, r.ip(0))
	}
	if advertise.ip != "" {
		sans = append(sans, advertise.ip)
	}
	if host != "" && host != "0.0.0.0" && host != "::" {
		sans = append(sans, host)
	}
	sans = append(sans, nodeAddresses()...)
	if s.pki, err = LoadOrCreatePKI(filepath.Join(cfg.DataDir, "pki"), dedupe(sans)); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	if err := checkEtcdFlags(cfg); err != nil {
		return nil, err
	}
	encryptionCfg, err := loadEncryption(cfg.EncryptionProviderConfig, s.pki.Dir)
	if err != nil {
		return nil, err
	}
	if len(cfg.EtcdServers) > 0 {
		st, err := storage.NewEtcd(ctx, storage.EtcdConfig{Endpoints: cfg.EtcdServers,
			CAFile: cfg.EtcdCAFile, CertFile: cfg.EtcdCertFile, KeyFile: cfg.EtcdKeyFile})
		if err != nil {
			return nil, err
		}
		// An external etcd keeps all history until someone compacts it:
		// the API servers do, as kube-apiserver does.
		s.store, s.compactor = st, st
	} else {
		etcdTLS, err := LoadOrCreateEtcdPKI(s.pki.Dir)
		if err != nil {
			return nil, fmt.Errorf("pki: %w", err)
		}
		e, err := storage.StartEmbedded(ctx, filepath.Join(cfg.DataDir, "etcd"), storage.EmbeddedOptions{TLS: etcdTLS,
			QuotaBackendBytes: cfg.EtcdQuotaBackendBytes})
		if err != nil {
			return nil, err
		}
		s.embedded, s.store = e, e.Store()
	}
	saKey, err := LoadOrCreateServiceAccountKey(filepath.Join(cfg.DataDir, "pki"))
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	saTokens, err := NewServiceAccountTokens(saKey, "", nil)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	if err := s.checkSharedPKI(ctx, saKey, encryptionCfg); err != nil {
		return nil, err
	}
	// Bootstrap tokens and service-account JWTs come before the static
	// token file, which refuses every token it does not know.
	var bootstrap BootstrapTokenAuthenticator
	saAuthn := &ServiceAccountTokenAuthenticator{Tokens: saTokens}
	authn := Authenticators{CertAuthenticator{Roots: s.pki.Pool}, &bootstrap, saAuthn}
	if cfg.TokenFile != "" {
		t, err := LoadTokenFile(cfg.TokenFile)
		if err != nil {
			return nil, err
		}
		authn = append(authn, t)
	}
	if s.listener, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	advertise.port = int32(s.listener.Addr().(*net.TCPAddr).Port)
	if advertise.ip == "" {
		s.log.Warn("no address for pods to reach the API server at: the kubernetes Service has no endpoints; set --advertise-address")
	} else if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		s.log.Warn("the API server listens on loopback only, so pods cannot reach it through the kubernetes Service; listen on 0.0.0.0 or the advertised address",
			"listen", cfg.Listen, "advertise", advertise.ip)
	}
	s.api = newAPI(apiOptions{Store: s.store, Authn: authn, Authz: cfg.Authorizer, Logger: s.log,
		BookmarkInterval: cfg.BookmarkInterval, ServerAddress: s.Addr(), Advertise: advertise, CAPEM: s.pki.CAPEM,
		ServiceCIDR: cfg.ServiceCIDR, NodePortRange: cfg.NodePortRange, ReservedServiceIPs: cfg.ReservedServiceIPs,
		EventTTL: cfg.EventTTL})
	s.api.ready = s.isReady.Load
	if cfg.Authorizer == nil {
		s.api.authz = Union{MastersAuthorizer{}, NodeAuthorizer{Graph: newAPIGraph(s.api)},
			NodeTokenRequestAuthorizer{}, ServiceAccountAuthorizer{}}
	}
	saAuthn.Objects = apiObjects{s.api}
	enableServiceAccountTokens(s.api, saTokens)
	if cfg.AutomountServiceAccountTokens {
		enableServiceAccountAdmission(s.api)
	}
	if cfg.DefaultTolerationSeconds > 0 {
		enableDefaultTolerationSeconds(s.api, cfg.DefaultTolerationSeconds)
	}
	if err := s.api.encryptAtRest(encryptionCfg); err != nil {
		return nil, err
	}
	secrets := s.api.resourceFor("", "v1", "secrets")
	bootstrap.Lookup = func(ctx context.Context, id string) (*corev1.Secret, error) {
		obj, _, err := s.api.getObject(ctx, secrets, metav1.NamespaceSystem, BootstrapTokenSecretPrefix+id)
		if err != nil {
			return nil, err
		}
		sec, ok := obj.(*corev1.Secret)
		if !ok {
			return nil, fmt.Errorf("stored secret is a %T", obj)
		}
		return sec, nil
	}
	np := newNodeProxy(s.api, s.pki)
	s.front = &front{api: s.api, pki: s.pki, proxy: np, resources: newResourceProxy(s.api, np)}
	s.handler = s.api.recoverPanics(s.front)
	return s, nil
}

// DefaultServingNames are the names every API server's serving
// certificate carries, besides its own addresses: loopback, and the
// in-cluster names of the kubernetes Service. Clients that balance
// between several servers check kubernetes.default.svc on all of them.
func DefaultServingNames() []string {
	return []string{"127.0.0.1", "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"}
}

// checkSharedPKI refuses to serve a cluster whose other servers have
// another CA, service-account key or encryption keys (cluster_identity.go),
// before anything is written or served.
func (s *Server) checkSharedPKI(ctx context.Context, saKey crypto.Signer, enc *encryption.Config) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	mine, err := identityOf(s.pki.CAPEM, saKey)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := checkClusterIdentity(ctx, s.store, mine, s.pki.Dir); err != nil {
		return err
	}
	source := s.cfg.EncryptionProviderConfig
	if source == "" {
		source = filepath.Join(s.pki.Dir, EncryptionConfigFile)
	}
	return checkEncryption(ctx, s.store, enc.For(schema.GroupResource{Resource: "secrets"}), source, s.pki.Dir)
}

// checkEtcdFlags refuses etcd TLS settings that cannot do what they say.
func checkEtcdFlags(cfg Config) error {
	if (cfg.EtcdCertFile == "") != (cfg.EtcdKeyFile == "") {
		return errors.New("--etcd-certfile and --etcd-keyfile go together: give both or neither")
	}
	if len(cfg.EtcdServers) == 0 && (cfg.EtcdCAFile != "" || cfg.EtcdCertFile != "") {
		return errors.New("--etcd-cafile, --etcd-certfile and --etcd-keyfile need --etcd-servers: the embedded etcd uses the server's own etcd PKI")
	}
	return nil
}

// Run creates a server from cfg and serves until ctx is cancelled.
func Run(ctx context.Context, cfg Config) error {
	s, err := New(ctx, cfg)
	if err != nil {
		return err
	}
	return s.Serve(ctx)
}

// Serve bootstraps the system namespaces, writes the admin kubeconfig,
// closes Ready() and serves HTTPS until ctx is cancelled. It then shuts
// down gracefully and releases storage. Serve may be called once.
func (s *Server) Serve(ctx context.Context) error {
	defer s.close()
	bctx, cancel := context.WithTimeout(ctx, time.Minute)
	err := s.api.bootstrap(bctx)
	cancel()
	if err != nil {
		return err
	}
	if err := WriteKubeconfig(s.Kubeconfig(), "https://"+s.Addr(), s.pki.CAPEM, s.pki.AdminCertPEM, s.pki.AdminKeyPEM); err != nil {
		return err
	}
	srv := &http.Server{
		Handler: s.handler,
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{s.pki.Server},
			ClientAuth:   tls.VerifyClientCertIfGiven,
			ClientCAs:    s.pki.Pool,
			MinVersion:   tls.VersionTLS12,
			NextProtos:   []string{"h2", "http/1.1"},
		},
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(s.listener, "", "") }()
	// Background work every server does, safe with several on one etcd;
	// it ends before the store closes.
	bctx, bcancel := context.WithCancel(ctx)
	var background sync.WaitGroup
	defer func() {
		bcancel()
		background.Wait()
		// A server that stops takes its address out of the kubernetes
		// Service, as kube-apiserver does, before its storage closes.
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.api.reconcileKubernetesEndpoints(rctx, false); err != nil {
			s.log.Warn("remove this server from the kubernetes Service", "err", err)
		}
	}()
	background.Go(func() { s.api.runServiceRepairs(bctx, s.api.repairs, repairInterval) })
	background.Go(func() { s.api.runKubernetesEndpoints(bctx) })
	if s.compactor != nil {
		background.Go(func() { s.compactor.RunCompactor(bctx, s.cfg.EtcdCompactionInterval, s.log) })
	}
	if s.embedded != nil {
		background.Go(func() {
			s.embedded.Maintain(bctx, storage.MaintainOptions{Interval: s.cfg.EtcdMaintenanceInterval, Log: s.log,
				Report: func(st storage.DBStatus) { s.api.reportEtcdStatus(bctx, s.embedded.Dir(), st) }})
		})
	}
	s.isReady.Store(true)
	close(s.ready)
	s.log.Info("serving", "address", s.Addr(), "kubeconfig", s.Kubeconfig())
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Ready is closed once the server answers requests.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr is the address the server listens on (with the real port).
func (s *Server) Addr() string {
	addr := s.listener.Addr().(*net.TCPAddr)
	host := addr.IP.String()
	if addr.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, fmt.Sprint(addr.Port))
}

// Kubeconfig is the path of the admin kubeconfig.
func (s *Server) Kubeconfig() string { return filepath.Join(s.cfg.DataDir, "admin.kubeconfig") }

// PKI returns the cluster's certificate authority and credentials.
func (s *Server) PKI() *PKI { return s.pki }

// Handler returns the HTTP handler (for in-process use and tests).
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) close() {
	if s.listener != nil {
		s.listener.Close()
	}
	if s.embedded != nil {
		s.embedded.Close()
	} else if s.store != nil {
		s.store.Close()
	}
}

// nodeAddresses lists this host's unicast IPs for the serving certificate.
func nodeAddresses() []string {
	var out []string
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLinkLocalUnicast() {
			out = append(out, ipn.IP.String())
		}
	}
	if h, err := os.Hostname(); err == nil && h != "" && !strings.Contains(h, "_") {
		out = append(out, h)
	}
	return out
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
