package encryption

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/peapod/peapod/internal/storage"
)

// Store is a storage.Store that encrypts the values under chosen key
// prefixes (one per encrypted resource, "/registry/secrets/") and decrypts
// them on every way out: Get, List, Watch and Delete's returned value.
// Keys under no prefix pass through, except that a value sealed by an
// encrypting provider is refused rather than handed on as if it were an
// object. It is safe for concurrent use.
type Store struct {
	inner storage.Store
	rules []rule // longest prefix first
}

type rule struct {
	prefix string
	t      Transformer
}

var _ storage.Store = (*Store)(nil)

// NewStore wraps inner, encrypting each key under a prefix of byPrefix
// with that prefix's Transformer (the longest matching prefix wins).
func NewStore(inner storage.Store, byPrefix map[string]Transformer) *Store {
	s := &Store{inner: inner}
	for p, t := range byPrefix {
		s.rules = append(s.rules, rule{prefix: p, t: t})
	}
	sort.Slice(s.rules, func(i, j int) bool {
		if len(s.rules[i].prefix) != len(s.rules[j].prefix) {
			return len(s.rules[i].prefix) > len(s.rules[j].prefix)
		}
		return s.rules[i].prefix < s.rules[j].prefix
	})
	return s
}

func (s *Store) transformerFor(key string) Transformer {
	for _, r := range s.rules {
		if strings.HasPrefix(key, r.prefix) {
			return r.t
		}
	}
	return nil
}

// touches reports whether some key under prefix may be encrypted.
func (s *Store) touches(prefix string) bool {
	for _, r := range s.rules {
		if strings.HasPrefix(r.prefix, prefix) || strings.HasPrefix(prefix, r.prefix) {
			return true
		}
	}
	return false
}

func (s *Store) toStorage(key string, value []byte) ([]byte, error) {
	if t := s.transformerFor(key); t != nil {
		return t.TransformToStorage(value, key)
	}
	return value, nil
}

// fromStorage opens kv's value in place and sets kv.Stale.
func (s *Store) fromStorage(kv storage.KV) (storage.KV, error) {
	if len(kv.Value) == 0 {
		return kv, nil
	}
	t := s.transformerFor(kv.Key)
	if t == nil {
		if bytes.HasPrefix(kv.Value, []byte(encryptedPrefix)) {
			return storage.KV{}, fmt.Errorf("read %s: %w (its value starts %q), and the encryption configuration does not cover this resource",
				kv.Key, ErrEncrypted, keyPrefixOf(kv.Value))
		}
		return kv, nil
	}
	data, stale, err := t.TransformFromStorage(kv.Value, kv.Key)
	if err != nil {
		return storage.KV{}, err
	}
	kv.Value, kv.Stale = data, stale
	return kv, nil
}

// Get implements storage.Store.
func (s *Store) Get(ctx context.Context, key string) (storage.KV, error) {
	kv, err := s.inner.Get(ctx, key)
	if err != nil {
		return kv, err
	}
	return s.fromStorage(kv)
}

// List implements storage.Store.
func (s *Store) List(ctx context.Context, prefix string, opts storage.ListOptions) (storage.ListResult, error) {
	res, err := s.inner.List(ctx, prefix, opts)
	if err != nil {
		return res, err
	}
	for i, kv := range res.Items {
		if res.Items[i], err = s.fromStorage(kv); err != nil {
			return storage.ListResult{}, fmt.Errorf("list %s: %w", prefix, err)
		}
	}
	return res, nil
}

// Create implements storage.Store.
func (s *Store) Create(ctx context.Context, key string, value []byte, opts ...storage.WriteOption) (int64, error) {
	stored, err := s.toStorage(key, value)
	if err != nil {
		return 0, err
	}
	return s.inner.Create(ctx, key, stored, opts...)
}

// Update implements storage.Store.
func (s *Store) Update(ctx context.Context, key string, value []byte, expectedRevision int64, opts ...storage.WriteOption) (int64, error) {
	stored, err := s.toStorage(key, value)
	if err != nil {
		return 0, err
	}
	return s.inner.Update(ctx, key, stored, expectedRevision, opts...)
}

// Delete implements storage.Store. The key is deleted even when its last
// value cannot be decrypted; the error then says so.
func (s *Store) Delete(ctx context.Context, key string, expectedRevision int64) (storage.KV, error) {
	kv, err := s.inner.Delete(ctx, key, expectedRevision)
	if err != nil {
		return kv, err
	}
	out, err := s.fromStorage(kv)
	if err != nil {
		return storage.KV{}, fmt.Errorf("deleted, but: %w", err)
	}
	return out, nil
}

// Watch implements storage.Store. A value that cannot be decrypted ends
// the stream with an error event, as any other watch failure does.
// Streams under prefixes no rule touches are the inner store's own.
func (s *Store) Watch(ctx context.Context, prefix string, afterRevision int64) (<-chan storage.Event, error) {
	if !s.touches(prefix) {
		return s.inner.Watch(ctx, prefix, afterRevision)
	}
	wctx, cancel := context.WithCancel(ctx)
	in, err := s.inner.Watch(wctx, prefix, afterRevision)
	if err != nil {
		cancel()
		return nil, err
	}
	out := make(chan storage.Event, cap(in))
	go func() {
		defer close(out)
		// Cancelling also ends the inner stream when we stop early.
		defer cancel()
		for ev := range in {
			if ev.Err == nil {
				var err error
				if ev.KV, err = s.fromStorage(ev.KV); err == nil {
					ev.Prev, err = s.fromStorage(ev.Prev)
				}
				if err != nil {
					ev = storage.Event{Err: fmt.Errorf("watch %s: %w", prefix, err)}
				}
			}
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			}
			if ev.Err != nil {
				return
			}
		}
	}()
	return out, nil
}

// CurrentRevision implements storage.Store.
func (s *Store) CurrentRevision(ctx context.Context) (int64, error) {
	return s.inner.CurrentRevision(ctx)
}

// Close implements storage.Store; it closes the inner store.
func (s *Store) Close() error { return s.inner.Close() }
