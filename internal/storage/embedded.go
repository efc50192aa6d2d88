package storage

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	etcd "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Embedded is a single-member etcd running inside this process. Its client
// and peer listeners bind 127.0.0.1 on random free ports only.
type Embedded struct {
	etcd  *embed.Etcd
	store *Etcd
}

// EmbeddedOptions tunes StartEmbedded.
type EmbeddedOptions struct {
	// CompactionRetention is the periodic auto-compaction window; 0 means 5m.
	CompactionRetention time.Duration
}

// StartEmbedded starts etcd with its data in dir (created 0700 if needed)
// and returns once it serves. Stop it with Close.
func StartEmbedded(ctx context.Context, dir string, opts EmbeddedOptions) (_ *Embedded, retErr error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create etcd dir: %w", err)
	}
	retention := opts.CompactionRetention
	if retention == 0 {
		retention = 5 * time.Minute
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		e, err := startEmbeddedOnce(ctx, dir, retention)
		if err == nil {
			return e, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func startEmbeddedOnce(ctx context.Context, dir string, retention time.Duration) (_ *Embedded, retErr error) {
	cport, err := freePort()
	if err != nil {
		return nil, err
	}
	pport, err := freePort()
	if err != nil {
		return nil, err
	}
	curl := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", cport)}
	purl := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", pport)}
	cfg := embed.NewConfig()
	cfg.Name = "peapod"
	cfg.Dir = filepath.Join(dir, "data")
	cfg.ListenClientUrls = []url.URL{curl}
	cfg.AdvertiseClientUrls = []url.URL{curl}
	cfg.ListenPeerUrls = []url.URL{purl}
	cfg.AdvertisePeerUrls = []url.URL{purl}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
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
		return nil, fmt.Errorf("start embedded etcd: not ready after 60s")
	case <-ctx.Done():
		return nil, fmt.Errorf("start embedded etcd: %w", ctx.Err())
	}
	cli, err := etcd.New(etcd.Config{
		Endpoints:   []string{curl.String()},
		DialTimeout: 10 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("connect embedded etcd: %w", err)
	}
	// One member, ours, reached only through this Store: serializable
	// reads, made up to date by Etcd.read when a watch is ahead of them.
	return &Embedded{etcd: e, store: &Etcd{client: cli, owned: true, serializable: true}}, nil
}

// Store returns the Store backed by this etcd; it stays valid until Close.
func (e *Embedded) Store() *Etcd { return e.store }

// Endpoint returns the client URL.
func (e *Embedded) Endpoint() string { return e.etcd.Config().ListenClientUrls[0].String() }

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

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func quietLogger() *zap.Logger { return zap.NewNop() }
