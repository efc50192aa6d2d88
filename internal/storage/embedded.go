package storage

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	etcd "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Embedded is a single-member etcd running inside this process.
//
// It serves clients on one unix socket, <dir>/etcd.sock, over TLS, and
// asks every client for a certificate signed by the etcd CA: a process
// must both reach the socket (root only: the directory is 0700 and
// containers do not see it) and hold the client key (0600, beside the CA)
// to read or write the state. It has no TCP port: nothing on the node's
// network, a hostNetwork pod included, can reach it. It has no peer
// listener either: a lone member has no peers, and etcd's embed accepts an
// empty peer listener list (the member still records a peer URL in its
// membership, which nothing dials while it is alone).
type Embedded struct {
	etcd   *embed.Etcd
	store  *Etcd
	socket string
	dir    string
	quota  int64
}

// EmbeddedSocketName is the file name of the client socket in the etcd
// directory. etcd's clients take a unix socket's file name as the TLS
// server name, so the member's serving certificate must name it.
const EmbeddedSocketName = "etcd.sock"

// EmbeddedTLS are the PEM files the embedded etcd serves and connects
// with. All are required.
type EmbeddedTLS struct {
	// CAFile is the etcd CA: the member accepts only client certificates
	// it signed, and the client checks the member's certificate against it.
	CAFile string
	// ServerCertFile and ServerKeyFile are the member's serving
	// certificate (valid for EmbeddedSocketName) and key.
	ServerCertFile, ServerKeyFile string
	// ClientCertFile and ClientKeyFile are the API server's client
	// certificate and key.
	ClientCertFile, ClientKeyFile string
}

func (t EmbeddedTLS) check() error {
	for _, f := range []struct{ name, path string }{
		{"CAFile", t.CAFile}, {"ServerCertFile", t.ServerCertFile}, {"ServerKeyFile", t.ServerKeyFile},
		{"ClientCertFile", t.ClientCertFile}, {"ClientKeyFile", t.ClientKeyFile},
	} {
		if f.path == "" {
			return fmt.Errorf("embedded etcd: TLS.%s is required: the embedded etcd serves only over TLS with client certificates", f.name)
		}
	}
	return nil
}

// EmbeddedOptions tunes StartEmbedded.
type EmbeddedOptions struct {
	// TLS secures the client socket; required.
	TLS EmbeddedTLS
	// CompactionRetention is the periodic auto-compaction window; 0 means 5m.
	CompactionRetention time.Duration
	// QuotaBackendBytes is the database's space quota (etcd's
	// --quota-backend-bytes): past it etcd raises NOSPACE and refuses
	// writes until Maintain recovers. 0 is DefaultQuotaBackendBytes.
	QuotaBackendBytes int64
}

// maxUnixPath is the longest socket path Linux accepts (sun_path holds
// 108 bytes with the terminating NUL).
const maxUnixPath = 107

// StartEmbedded starts etcd with its data in dir (created 0700 if needed;
// a data dir written by an older peapod, whose etcd listened on loopback
// TCP in plain HTTP, is used as it is: only the listeners changed) and
// returns once it serves. Stop it with Close.
func StartEmbedded(ctx context.Context, dir string, opts EmbeddedOptions) (_ *Embedded, retErr error) {
	if err := opts.TLS.check(); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd dir %s: %w", dir, err)
	}
	socket := filepath.Join(abs, EmbeddedSocketName)
	if len(socket) > maxUnixPath {
		return nil, fmt.Errorf("embedded etcd: the socket path %s is %d bytes, longer than the %d a unix socket allows: use a shorter --data-dir", socket, len(socket), maxUnixPath)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("create etcd dir: %w", err)
	}
	// The directory is what keeps other users off the socket; one made by
	// hand or by an older version may be looser.
	if err := os.Chmod(abs, 0o700); err != nil {
		return nil, fmt.Errorf("restrict etcd dir: %w", err)
	}
	retention := opts.CompactionRetention
	if retention == 0 {
		retention = 5 * time.Minute
	}
	curl := url.URL{Scheme: "unixs", Path: socket}
	cfg := embed.NewConfig()
	cfg.Name = "peapod"
	cfg.Dir = filepath.Join(abs, "data")
	cfg.ListenClientUrls = []url.URL{curl}
	cfg.AdvertiseClientUrls = []url.URL{curl}
	cfg.ClientTLSInfo = transport.TLSInfo{
		CertFile:       opts.TLS.ServerCertFile,
		KeyFile:        opts.TLS.ServerKeyFile,
		TrustedCAFile:  opts.TLS.CAFile,
		ClientCertAuth: true,
	}
	cfg.ListenPeerUrls = nil
	// etcd's default peer URL: a name in the member list, never listened
	// on nor dialled while the member is alone.
	cfg.AdvertisePeerUrls = []url.URL{{Scheme: "http", Host: "127.0.0.1:2380"}}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	// The JSON gateway would be one more way in; peapod speaks gRPC.
	cfg.EnableGRPCGateway = false
	cfg.MaxRequestBytes = MaxRequestBytes
	cfg.SnapshotCount = DefaultSnapshotCount
	quota := opts.QuotaBackendBytes
	if quota == 0 {
		quota = DefaultQuotaBackendBytes
	}
	cfg.QuotaBackendBytes = quota
	cfg.AutoCompactionMode = embed.CompactorModePeriodic
	cfg.AutoCompactionRetention = retention.String()
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.LogLevel = "error"

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd in %s: %w", dir, err)
	}
	defer func() {
		if retErr != nil {
			e.Close()
		}
	}()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		return nil, fmt.Errorf("start embedded etcd: %w", err)
	case <-time.After(60 * time.Second):
		return nil, errors.New("start embedded etcd: not ready after 60s")
	case <-ctx.Done():
		return nil, fmt.Errorf("start embedded etcd: %w", ctx.Err())
	}
	tlsCfg, err := transport.TLSInfo{
		CertFile:      opts.TLS.ClientCertFile,
		KeyFile:       opts.TLS.ClientKeyFile,
		TrustedCAFile: opts.TLS.CAFile,
	}.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("embedded etcd client TLS: %w", err)
	}
	cli, err := etcd.New(etcd.Config{
		Endpoints:   []string{curl.String()},
		TLS:         tlsCfg,
		DialTimeout: 10 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("connect embedded etcd: %w", err)
	}
	// One member, ours, reached only through this Store: serializable
	// reads, made up to date by Etcd.read when a watch is ahead of them.
	store := &Etcd{client: cli, owned: true, serializable: true, leases: newLeases(cli)}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := store.CurrentRevision(cctx); err != nil {
		cli.Close()
		return nil, fmt.Errorf("connect embedded etcd over %s: %w", curl.String(), err)
	}
	return &Embedded{etcd: e, store: store, socket: socket, dir: abs, quota: quota}, nil
}

// Store returns the Store backed by this etcd; it stays valid until Close.
func (e *Embedded) Store() *Etcd { return e.store }

// Endpoint returns the client URL, unixs://<dir>/etcd.sock.
func (e *Embedded) Endpoint() string { return "unixs://" + e.socket }

// Dir returns the etcd directory (data, socket and status.json).
func (e *Embedded) Dir() string { return e.dir }

// Socket returns the path of the client socket.
func (e *Embedded) Socket() string { return e.socket }

// Close stops the client and the server. It is idempotent.
func (e *Embedded) Close() error {
	if e.store != nil {
		e.store.Close()
		e.store = nil
	}
	if e.etcd != nil {
		e.etcd.Close()
		<-e.etcd.Server.StopNotify()
		e.etcd = nil
	}
	return nil
}

func quietLogger() *zap.Logger { return zap.NewNop() }
