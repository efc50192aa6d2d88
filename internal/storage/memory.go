package storage

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Memory is an in-memory Store with the same semantics as the etcd one,
// including history and compaction, for tests that do not need etcd.
type Memory struct {
	mu        sync.Mutex
	rev       int64
	compacted int64
	data      map[string]KV
	history   []Event       // every event, in revision order
	changed   chan struct{} // closed and replaced on each write
	closed    bool
	expiry    memoryExpiry // WithTTL keys' timers
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory Store at revision 1.
func NewMemory() *Memory {
	return &Memory{rev: 1, data: map[string]KV{}, changed: make(chan struct{})}
}

func (m *Memory) notifyLocked(ev Event) {
	m.history = append(m.history, ev)
	close(m.changed)
	m.changed = make(chan struct{})
}

// Get implements Store.
func (m *Memory) Get(_ context.Context, key string) (KV, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	kv, ok := m.data[key]
	if !ok {
		return KV{}, fmt.Errorf("get %s: %w", key, ErrNotFound)
	}
	return copyKV(kv), nil
}

// List implements Store. A past Revision is served from the history.
func (m *Memory) List(_ context.Context, prefix string, opts ListOptions) (ListResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rev := m.rev
	view := m.data
	if opts.Revision != 0 && opts.Revision < m.rev {
		if opts.Revision < m.compacted {
			return ListResult{}, fmt.Errorf("list %s at %d: %w", prefix, opts.Revision, ErrCompacted)
		}
		rev = opts.Revision
		view = m.snapshotLocked(rev)
	}
	var keys []string
	for k := range view {
		if strings.HasPrefix(k, prefix) && k >= opts.StartKey {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	res := ListResult{Revision: rev}
	for i, k := range keys {
		if opts.Limit > 0 && int64(i) >= opts.Limit {
			res.More = true
			break
		}
		res.Items = append(res.Items, copyKV(view[k]))
	}
	return res, nil
}

// snapshotLocked rebuilds the key space at rev by undoing later events.
func (m *Memory) snapshotLocked(rev int64) map[string]KV {
	view := make(map[string]KV, len(m.data))
	for k, v := range m.data {
		view[k] = v
	}
	for i := len(m.history) - 1; i >= 0 && m.history[i].KV.Revision > rev; i-- {
		ev := m.history[i]
		if ev.Prev.Value == nil {
			delete(view, ev.KV.Key)
		} else {
			view[ev.KV.Key] = ev.Prev
		}
	}
	return view
}

// Create implements Store.
func (m *Memory) Create(_ context.Context, key string, value []byte, opts ...WriteOption) (int64, error) {
	if err := checkSize("create", key, value); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.data[key]; ok {
		return 0, fmt.Errorf("create %s: %w", key, ErrExists)
	}
	m.rev++
	kv := KV{Key: key, Value: append([]byte(nil), value...), Revision: m.rev}
	m.data[key] = kv
	m.notifyLocked(Event{Type: EventPut, KV: kv, Prev: KV{Key: key}, Created: true})
	m.scheduleExpiryLocked(key, m.rev, collectWriteOptions(opts).ttl)
	return m.rev, nil
}

// Update implements Store.
func (m *Memory) Update(_ context.Context, key string, value []byte, expected int64, opts ...WriteOption) (int64, error) {
	if err := checkSize("update", key, value); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old, ok := m.data[key]
	if !ok {
		return 0, fmt.Errorf("update %s: %w", key, ErrNotFound)
	}
	if expected != 0 && old.Revision != expected {
		return 0, fmt.Errorf("update %s at %d (is %d): %w", key, expected, old.Revision, ErrConflict)
	}
	m.rev++
	kv := KV{Key: key, Value: append([]byte(nil), value...), Revision: m.rev}
	m.data[key] = kv
	m.notifyLocked(Event{Type: EventPut, KV: kv, Prev: old})
	m.scheduleExpiryLocked(key, m.rev, collectWriteOptions(opts).ttl)
	return m.rev, nil
}

// Delete implements Store.
func (m *Memory) Delete(_ context.Context, key string, expected int64) (KV, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old, ok := m.data[key]
	if !ok {
		return KV{}, fmt.Errorf("delete %s: %w", key, ErrNotFound)
	}
	if expected != 0 && old.Revision != expected {
		return KV{}, fmt.Errorf("delete %s at %d (is %d): %w", key, expected, old.Revision, ErrConflict)
	}
	m.scheduleExpiryLocked(key, 0, 0)
	return copyKV(m.deleteLocked(key, old)), nil
}

// deleteLocked removes key, whose value is old, as a new revision.
func (m *Memory) deleteLocked(key string, old KV) KV {
	m.rev++
	delete(m.data, key)
	gone := KV{Key: key, Value: old.Value, Revision: m.rev}
	m.notifyLocked(Event{Type: EventDelete, KV: gone, Prev: old})
	return gone
}

// Compact drops the history before rev, as etcd does: lists at a revision
// below rev and watches that need an event below rev get ErrCompacted.
func (m *Memory) Compact(rev int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := sort.Search(len(m.history), func(i int) bool { return m.history[i].KV.Revision >= rev })
	m.history = append([]Event(nil), m.history[i:]...)
	if rev > m.compacted {
		m.compacted = rev
	}
}

// Watch implements Store.
func (m *Memory) Watch(ctx context.Context, prefix string, after int64) (<-chan Event, error) {
	ch := make(chan Event, 100)
	go func() {
		defer close(ch)
		next := after
		for {
			m.mu.Lock()
			if next+1 < m.compacted {
				m.mu.Unlock()
				select {
				case ch <- Event{Err: fmt.Errorf("watch %s from %d: %w", prefix, after, ErrCompacted)}:
				case <-ctx.Done():
				}
				return
			}
			var batch []Event
			for _, ev := range m.history {
				if ev.KV.Revision > next && strings.HasPrefix(ev.KV.Key, prefix) {
					batch = append(batch, ev)
				}
			}
			if n := len(m.history); n > 0 && m.history[n-1].KV.Revision > next {
				next = m.history[n-1].KV.Revision
			}
			wait, closed := m.changed, m.closed
			m.mu.Unlock()
			for _, ev := range batch {
				select {
				case ch <- ev:
				case <-ctx.Done():
					return
				}
			}
			if closed {
				return
			}
			select {
			case <-wait:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch, nil
}

// CurrentRevision implements Store.
func (m *Memory) CurrentRevision(context.Context) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rev, nil
}

// Close implements Store; watches end.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.closed {
		m.closed = true
		for _, t := range m.expiry.timers {
			t.Stop()
		}
		m.expiry.timers = nil
		close(m.changed)
		m.changed = make(chan struct{})
	}
	return nil
}

func copyKV(kv KV) KV {
	kv.Value = append([]byte(nil), kv.Value...)
	return kv
}

// checkSize refuses what the embedded etcd would: a write whose key and
// value pass MaxRequestBytes.
func checkSize(op, key string, value []byte) error {
	if len(key)+len(value) > MaxRequestBytes {
		return fmt.Errorf("%s %s (%d bytes): %w", op, key, len(key)+len(value), ErrTooLarge)
	}
	return nil
}
