package storage

import (
	"context"
	"fmt"
	"sync"
	"time"

	etcd "go.etcd.io/etcd/client/v3"
)

// WriteOption adjusts one Create or Update.
type WriteOption func(*writeOptions)

type writeOptions struct {
	ttl time.Duration
}

// WithTTL makes the store delete the key about ttl after this write, as
// kube-apiserver's --event-ttl does for Events: in etcd with a lease, so
// the deletion is an ordinary delete that watches see. The key lives at
// least ttl and at most a twentieth longer (leases are shared, see
// leases). A later write without WithTTL keeps the key until deleted.
func WithTTL(ttl time.Duration) WriteOption {
	return func(o *writeOptions) { o.ttl = ttl }
}

func collectWriteOptions(opts []WriteOption) writeOptions {
	var o writeOptions
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// leases hands out etcd leases for TTL writes. One lease per write would
// be one more raft entry per Event and millions of leases on a busy
// cluster; as kube-apiserver's leaseManager does, a lease granted for ttl
// plus a reuse window (5 % of ttl) serves every write of that ttl during
// the window, so each key lives between ttl and ttl plus the window.
type leases struct {
	client *etcd.Client
	now    func() time.Time

	mu      sync.Mutex
	current map[time.Duration]grantedLease
}

type grantedLease struct {
	id       etcd.LeaseID
	reuseEnd time.Time
}

func newLeases(client *etcd.Client) *leases {
	return &leases{client: client, now: time.Now, current: map[time.Duration]grantedLease{}}
}

// reuseWindow is how long a lease keeps serving new writes of its ttl.
func reuseWindow(ttl time.Duration) time.Duration {
	return ttl / 20
}

// lease returns a lease under which a key lives at least ttl.
func (l *leases) lease(ctx context.Context, ttl time.Duration) (etcd.LeaseID, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if g, ok := l.current[ttl]; ok && now.Before(g.reuseEnd) {
		return g.id, nil
	}
	window := reuseWindow(ttl)
	seconds := int64((ttl + window + time.Second - 1) / time.Second)
	resp, err := l.client.Grant(ctx, seconds)
	if err != nil {
		return 0, fmt.Errorf("grant lease of %ds: %w", seconds, err)
	}
	l.current[ttl] = grantedLease{id: resp.ID, reuseEnd: now.Add(window)}
	return resp.ID, nil
}

// putOptions are the etcd options of a write with opts.
func (l *leases) putOptions(ctx context.Context, opts writeOptions) ([]etcd.OpOption, error) {
	if opts.ttl <= 0 {
		return nil, nil
	}
	id, err := l.lease(ctx, opts.ttl)
	if err != nil {
		return nil, err
	}
	return []etcd.OpOption{etcd.WithLease(id)}, nil
}

// memoryExpiry deletes the in-memory store's TTL keys when they expire.
type memoryExpiry struct {
	timers map[string]*time.Timer
}

// schedule (re)arms key's expiry for the write at rev, or disarms it when
// ttl is 0. Called with the store's lock held.
func (m *Memory) scheduleExpiryLocked(key string, rev int64, ttl time.Duration) {
	if t, ok := m.expiry.timers[key]; ok {
		t.Stop()
		delete(m.expiry.timers, key)
	}
	if ttl <= 0 || m.closed {
		return
	}
	if m.expiry.timers == nil {
		m.expiry.timers = map[string]*time.Timer{}
	}
	m.expiry.timers[key] = time.AfterFunc(ttl, func() { m.expire(key, rev) })
}

// expire deletes key if the write at rev is still its latest.
func (m *Memory) expire(key string, rev int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	kv, ok := m.data[key]
	if !ok || kv.Revision != rev || m.closed {
		return
	}
	delete(m.expiry.timers, key)
	m.deleteLocked(key, kv)
}
