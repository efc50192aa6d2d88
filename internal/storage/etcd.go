package storage

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	etcd "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// EtcdConfig selects an etcd cluster.
type EtcdConfig struct {
	// Endpoints are the client URLs, e.g. https://127.0.0.1:2379.
	Endpoints []string
	// CAFile, CertFile and KeyFile enable TLS (CAFile alone: server
	// verification only).
	CAFile, CertFile, KeyFile string
	// DialTimeout bounds the initial connection; 0 means 10s.
	DialTimeout time.Duration
}

// Etcd is a Store on an etcd v3 cluster.
type Etcd struct {
	client *etcd.Client
	owned  bool // Close closes client
	// serializable reads the member's own state instead of confirming
	// leadership through raft first (a ReadIndex round). Only for a
	// single-member cluster, the embedded one, whose every client goes
	// through this Store: the member answers a write after applying it,
	// so the writer and whoever it tells see it. A watcher is the
	// exception: etcd notifies watchers of a revision just before reads
	// see it (watchableStoreTxnWrite.End), so a serializable read that
	// comes back older than revealed is read again linearizably (see read).
	serializable bool
	// revealed is the highest revision the watches of this Store have
	// handed out, raised before each event is passed on.
	revealed  atomic.Int64
	closeOnce sync.Once
	// leases serve WithTTL writes.
	leases *leases
}

var _ Store = (*Etcd)(nil)

// NewEtcd connects to the cluster in cfg and checks it answers.
func NewEtcd(ctx context.Context, cfg EtcdConfig) (*Etcd, error) {
	var tlsCfg *tls.Config
	if cfg.CAFile != "" || cfg.CertFile != "" {
		info := transport.TLSInfo{TrustedCAFile: cfg.CAFile, CertFile: cfg.CertFile, KeyFile: cfg.KeyFile}
		c, err := info.ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("etcd client tls: %w", err)
		}
		tlsCfg = c
	}
	timeout := cfg.DialTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	cli, err := etcd.New(etcd.Config{
		Endpoints:   cfg.Endpoints,
		TLS:         tlsCfg,
		DialTimeout: timeout,
		Context:     ctx,
		Logger:      quietLogger(),
	})
	if err != nil {
		return nil, fmt.Errorf("connect etcd %v: %w", cfg.Endpoints, err)
	}
	s := &Etcd{client: cli, owned: true, leases: newLeases(cli)}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := s.CurrentRevision(cctx); err != nil {
		cli.Close()
		return nil, fmt.Errorf("connect etcd %v: %w", cfg.Endpoints, err)
	}
	return s, nil
}

// NewEtcdFromClient wraps an existing client; Close leaves it open.
func NewEtcdFromClient(c *etcd.Client) *Etcd { return &Etcd{client: c, leases: newLeases(c)} }

// Client returns the underlying etcd client (for compaction in tests and
// maintenance).
func (s *Etcd) Client() *etcd.Client { return s.client }

// RequestTimeout bounds each request to etcd (watches excepted). A
// request normally takes milliseconds; one that has not been answered in
// this time meets an etcd without quorum or out of reach, and its caller
// gets ErrUnavailable, the API a prompt 503, rather than a request that
// hangs as long as the outage (10s covers a leader election).
const RequestTimeout = 10 * time.Second

// bounded gives one request its RequestTimeout.
func bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, RequestTimeout, ErrUnavailable)
}

// unavailable marks err as ErrUnavailable when it came from ctx's own
// RequestTimeout, not from the caller giving up.
func unavailable(ctx context.Context, err error) error {
	if err != nil && errors.Is(context.Cause(ctx), ErrUnavailable) {
		return fmt.Errorf("%w: no answer within %s (%v)", ErrUnavailable, RequestTimeout, err)
	}
	return err
}

func mapErr(op, key string, err error) error {
	if errors.Is(err, rpctypes.ErrCompacted) || errors.Is(err, rpctypes.ErrGRPCCompacted) {
		return fmt.Errorf("%s %s: %w", op, key, ErrCompacted)
	}
	if errors.Is(err, rpctypes.ErrRequestTooLarge) || errors.Is(err, rpctypes.ErrGRPCRequestTooLarge) || sendTooLarge(err) {
		return fmt.Errorf("%s %s: %w (%v)", op, key, ErrTooLarge, err)
	}
	return fmt.Errorf("%s %s: %w", op, key, err)
}

// sendTooLarge says whether the etcd client refused to send a request over
// its own message limit (2 MiB by default, above the server's 1.5 MiB, so
// the bigger writes never reach the server's ErrRequestTooLarge). gRPC
// marks it ResourceExhausted, which etcd also uses for a full database:
// that one is not the client's fault and stays an error of its own.
func sendTooLarge(err error) bool {
	st, ok := status.FromError(err)
	return ok && st.Code() == codes.ResourceExhausted && !errors.Is(err, rpctypes.ErrGRPCNoSpace) &&
		strings.Contains(st.Message(), "larger than max")
}

// Get implements Store.
func (s *Etcd) Get(ctx context.Context, key string) (KV, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	resp, err := s.read(ctx, key, 0)
	if err != nil {
		return KV{}, mapErr("get", key, unavailable(ctx, err))
	}
	if len(resp.Kvs) == 0 {
		return KV{}, fmt.Errorf("get %s: %w", key, ErrNotFound)
	}
	return fromKV(resp.Kvs[0]), nil
}

// read runs a range read of key with opts. A store with serializable
// reads tries one first and keeps it only if it is at least as new as
// every revision a watch of this store has delivered and as atRev (the
// revision a paged or exact list asks for); otherwise, and on a read of a
// revision the member has not applied yet, it reads linearizably, which
// waits until the member has applied all it committed. So no client is
// told "not found" or shown an older object after a watch showed it the
// newer one (the scheduler binding a pod it was just told of, say).
func (s *Etcd) read(ctx context.Context, key string, atRev int64, opts ...etcd.OpOption) (*etcd.GetResponse, error) {
	if s.serializable {
		floor := max(s.revealed.Load(), atRev)
		resp, err := s.client.Get(ctx, key, append(opts[:len(opts):len(opts)], etcd.WithSerializable())...)
		if err == nil && resp.Header.Revision >= floor {
			return resp, nil
		}
		if err != nil && !errors.Is(err, rpctypes.ErrFutureRev) && !errors.Is(err, rpctypes.ErrGRPCFutureRev) {
			return nil, err
		}
	}
	return s.client.Get(ctx, key, opts...)
}

// reveal records that a watch is about to hand out revision rev.
func (s *Etcd) reveal(rev int64) {
	for {
		cur := s.revealed.Load()
		if rev <= cur || s.revealed.CompareAndSwap(cur, rev) {
			return
		}
	}
}

// List implements Store.
func (s *Etcd) List(ctx context.Context, prefix string, opts ListOptions) (ListResult, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	start := prefix
	if opts.StartKey > prefix {
		start = opts.StartKey
	}
	ops := []etcd.OpOption{etcd.WithRange(etcd.GetPrefixRangeEnd(prefix))}
	if opts.Revision > 0 {
		ops = append(ops, etcd.WithRev(opts.Revision))
	}
	if opts.Limit > 0 {
		ops = append(ops, etcd.WithLimit(opts.Limit))
	}
	resp, err := s.read(ctx, start, opts.Revision, ops...)
	if err != nil {
		return ListResult{}, mapErr("list", prefix, unavailable(ctx, err))
	}
	res := ListResult{Revision: resp.Header.Revision, More: resp.More}
	if opts.Revision > 0 {
		res.Revision = opts.Revision
	}
	res.Items = make([]KV, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		res.Items = append(res.Items, fromKV(kv))
	}
	return res, nil
}

// Create implements Store.
func (s *Etcd) Create(ctx context.Context, key string, value []byte, opts ...WriteOption) (int64, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	put, err := s.leases.putOptions(ctx, collectWriteOptions(opts))
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", key, err)
	}
	resp, err := s.client.Txn(ctx).
		If(etcd.Compare(etcd.CreateRevision(key), "=", 0)).
		Then(etcd.OpPut(key, string(value), put...)).
		Commit()
	if err != nil {
		return 0, mapErr("create", key, unavailable(ctx, err))
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("create %s: %w", key, ErrExists)
	}
	return resp.Header.Revision, nil
}

// Update implements Store.
func (s *Etcd) Update(ctx context.Context, key string, value []byte, expected int64, opts ...WriteOption) (int64, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	put, err := s.leases.putOptions(ctx, collectWriteOptions(opts))
	if err != nil {
		return 0, fmt.Errorf("update %s: %w", key, err)
	}
	cmp := etcd.Compare(etcd.CreateRevision(key), ">", 0)
	if expected != 0 {
		cmp = etcd.Compare(etcd.ModRevision(key), "=", expected)
	}
	resp, err := s.client.Txn(ctx).If(cmp).
		Then(etcd.OpPut(key, string(value), put...)).
		Else(etcd.OpGet(key, etcd.WithKeysOnly())).
		Commit()
	if err != nil {
		return 0, mapErr("update", key, unavailable(ctx, err))
	}
	if !resp.Succeeded {
		if len(resp.Responses) == 0 || len(resp.Responses[0].GetResponseRange().Kvs) == 0 {
			return 0, fmt.Errorf("update %s: %w", key, ErrNotFound)
		}
		return 0, fmt.Errorf("update %s at %d: %w", key, expected, ErrConflict)
	}
	return resp.Header.Revision, nil
}

// Delete implements Store.
func (s *Etcd) Delete(ctx context.Context, key string, expected int64) (KV, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	cmp := etcd.Compare(etcd.CreateRevision(key), ">", 0)
	if expected != 0 {
		cmp = etcd.Compare(etcd.ModRevision(key), "=", expected)
	}
	resp, err := s.client.Txn(ctx).If(cmp).
		Then(etcd.OpDelete(key, etcd.WithPrevKV())).
		Else(etcd.OpGet(key, etcd.WithKeysOnly())).
		Commit()
	if err != nil {
		return KV{}, mapErr("delete", key, unavailable(ctx, err))
	}
	if !resp.Succeeded {
		if len(resp.Responses) == 0 || len(resp.Responses[0].GetResponseRange().Kvs) == 0 {
			return KV{}, fmt.Errorf("delete %s: %w", key, ErrNotFound)
		}
		return KV{}, fmt.Errorf("delete %s at %d: %w", key, expected, ErrConflict)
	}
	del := resp.Responses[0].GetResponseDeleteRange()
	if del == nil || len(del.PrevKvs) == 0 {
		return KV{}, fmt.Errorf("delete %s: %w", key, ErrNotFound)
	}
	return KV{Key: key, Value: del.PrevKvs[0].Value, Revision: resp.Header.Revision}, nil
}

// Watch implements Store.
func (s *Etcd) Watch(ctx context.Context, prefix string, after int64) (<-chan Event, error) {
	wctx, cancel := context.WithCancel(etcd.WithRequireLeader(ctx))
	wch := s.client.Watch(wctx, prefix, etcd.WithPrefix(), etcd.WithPrevKV(), etcd.WithRev(after+1))
	out := make(chan Event, 100)
	go func() {
		defer close(out)
		defer cancel()
		send := func(ev Event) bool {
			select {
			case out <- ev:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for resp := range wch {
			if resp.CompactRevision != 0 {
				send(Event{Err: fmt.Errorf("watch %s from %d: %w", prefix, after, ErrCompacted)})
				return
			}
			if err := resp.Err(); err != nil {
				send(Event{Err: mapErr("watch", prefix, err)})
				return
			}
			for _, e := range resp.Events {
				// Reads must not lag what this event tells: raise the
				// floor before anyone can act on it.
				s.reveal(e.Kv.ModRevision)
				ev := Event{KV: fromKV(e.Kv)}
				if e.PrevKv != nil {
					ev.Prev = fromKV(e.PrevKv)
				} else {
					ev.Prev = KV{Key: ev.KV.Key}
				}
				switch e.Type {
				case mvccpb.PUT:
					ev.Type = EventPut
					ev.Created = e.IsCreate()
				case mvccpb.DELETE:
					ev.Type = EventDelete
					ev.KV.Value = ev.Prev.Value
				}
				if !send(ev) {
					return
				}
			}
		}
		if ctx.Err() == nil {
			send(Event{Err: fmt.Errorf("watch %s: channel closed", prefix)})
		}
	}()
	return out, nil
}

// CurrentRevision implements Store.
func (s *Etcd) CurrentRevision(ctx context.Context) (int64, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	resp, err := s.client.Get(ctx, "/registry-revision-probe", etcd.WithCountOnly())
	if err != nil {
		return 0, mapErr("get", "revision", unavailable(ctx, err))
	}
	return resp.Header.Revision, nil
}

// Compact discards history at and before rev.
func (s *Etcd) Compact(ctx context.Context, rev int64) error {
	if _, err := s.client.Compact(ctx, rev, etcd.WithCompactPhysical()); err != nil {
		return mapErr("compact", fmt.Sprint(rev), err)
	}
	return nil
}

// Close implements Store.
func (s *Etcd) Close() error {
	var err error
	s.closeOnce.Do(func() {
		if s.owned {
			err = s.client.Close()
		}
	})
	return err
}

func fromKV(kv *mvccpb.KeyValue) KV {
	return KV{Key: string(kv.Key), Value: kv.Value, Revision: kv.ModRevision}
}
