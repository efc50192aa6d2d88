package encryption

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/peapod/peapod/internal/storage"
)

func encryptedStore(t *testing.T, providers ...string) (*Store, *storage.Memory) {
	t.Helper()
	mem := storage.NewMemory()
	t.Cleanup(func() { mem.Close() })
	return NewStore(mem, map[string]Transformer{"/registry/secrets/": transformer(t, providers...)}), mem
}

func nextEvent(t *testing.T, ch <-chan storage.Event) storage.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("watch closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event in 10s")
	}
	return storage.Event{}
}

func TestStoreEncryptsCoveredKeys(t *testing.T) {
	ctx := context.Background()
	s, mem := encryptedStore(t, aesgcmP("k1", 32, 1), identityP)
	w, err := s.Watch(ctx, "/registry/secrets/", 0)
	if err != nil {
		t.Fatal(err)
	}
	key := "/registry/secrets/default/db"
	rev, err := s.Create(ctx, key, []byte("password=hunter2"))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := mem.Get(ctx, key)
	if !bytes.HasPrefix(raw.Value, []byte("k8s:enc:aesgcm:v1:k1:")) || bytes.Contains(raw.Value, []byte("hunter2")) {
		t.Fatalf("stored in the clear: %q", raw.Value)
	}
	kv, err := s.Get(ctx, key)
	if err != nil || string(kv.Value) != "password=hunter2" || kv.Revision != rev || kv.Stale {
		t.Fatalf("get: %+v %v", kv, err)
	}
	if ev := nextEvent(t, w); ev.Type != storage.EventPut || !ev.Created || string(ev.KV.Value) != "password=hunter2" {
		t.Fatalf("watch create: %+v", ev)
	}
	if _, err := s.Update(ctx, key, []byte("password=swordfish"), rev); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, w); string(ev.KV.Value) != "password=swordfish" || string(ev.Prev.Value) != "password=hunter2" {
		t.Fatalf("watch update: %+v", ev)
	}
	l, err := s.List(ctx, "/registry/secrets/", storage.ListOptions{})
	if err != nil || len(l.Items) != 1 || string(l.Items[0].Value) != "password=swordfish" {
		t.Fatalf("list: %+v %v", l, err)
	}
	del, err := s.Delete(ctx, key, 0)
	if err != nil || string(del.Value) != "password=swordfish" {
		t.Fatalf("delete: %+v %v", del, err)
	}
	if ev := nextEvent(t, w); ev.Type != storage.EventDelete || string(ev.KV.Value) != "password=swordfish" {
		t.Fatalf("watch delete: %+v", ev)
	}

	// Keys of other resources pass through untouched.
	if _, err := s.Create(ctx, "/registry/configmaps/default/c", []byte("plain")); err != nil {
		t.Fatal(err)
	}
	if raw, _ := mem.Get(ctx, "/registry/configmaps/default/c"); string(raw.Value) != "plain" {
		t.Fatalf("a configmap was transformed: %q", raw.Value)
	}
}

func TestStoreStaleAndUnreadable(t *testing.T) {
	ctx := context.Background()
	s, mem := encryptedStore(t, aesgcmP("k1", 32, 1), identityP)
	// Written before encryption: readable, stale.
	if _, err := mem.Create(ctx, "/registry/secrets/default/old", []byte("plain")); err != nil {
		t.Fatal(err)
	}
	if kv, err := s.Get(ctx, "/registry/secrets/default/old"); err != nil || !kv.Stale || string(kv.Value) != "plain" {
		t.Fatalf("pre-encryption value: %+v %v", kv, err)
	}
	// Sealed by a key this store does not have: Get, List and Watch fail
	// naming the key; Delete still removes it.
	sealed, err := transformer(t, aesgcmP("gone", 32, 2)).TransformToStorage([]byte("v"), "/registry/secrets/default/lost")
	if err != nil {
		t.Fatal(err)
	}
	now, err := s.CurrentRevision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.Watch(ctx, "/registry/secrets/", now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mem.Create(ctx, "/registry/secrets/default/lost", sealed); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "/registry/secrets/default/lost"); !errors.Is(err, ErrEncrypted) {
		t.Fatalf("get with a missing key: %v", err)
	}
	if _, err := s.List(ctx, "/registry/secrets/", storage.ListOptions{}); !errors.Is(err, ErrEncrypted) || !strings.Contains(err.Error(), ":gone:") {
		t.Fatalf("list with a missing key: %v", err)
	}
	if ev := nextEvent(t, w); !errors.Is(ev.Err, ErrEncrypted) {
		t.Fatalf("watch with a missing key: %+v", ev)
	}
	if _, ok := <-w; ok {
		t.Fatal("the watch went on after its error")
	}
	if _, err := s.Delete(ctx, "/registry/secrets/default/lost", 0); !errors.Is(err, ErrEncrypted) {
		t.Fatalf("delete with a missing key: %v", err)
	}
	if _, err := mem.Get(ctx, "/registry/secrets/default/lost"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("not deleted: %v", err)
	}
	// An encrypted value where no rule applies is refused, not handed on.
	if _, err := mem.Create(ctx, "/registry/configmaps/default/odd", sealed); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "/registry/configmaps/default/odd"); !errors.Is(err, ErrEncrypted) || !strings.Contains(err.Error(), "does not cover") {
		t.Fatalf("encrypted value of an unencrypted resource: %v", err)
	}
}

func TestStoreWatchStopsWithContext(t *testing.T) {
	s, _ := encryptedStore(t, aesgcmP("k1", 32, 1))
	ctx, cancel := context.WithCancel(context.Background())
	w, err := s.Watch(ctx, "/registry/", 0)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	for range w {
	}
}
