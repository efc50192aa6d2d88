package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"
)

func compact(t *testing.T, s Store, rev int64) {
	t.Helper()
	switch c := s.(type) {
	case *Memory:
		c.Compact(rev)
	case *Etcd:
		if err := c.Compact(context.Background(), rev); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("cannot compact %T", s)
	}
}

func startEtcd(t *testing.T) (*Embedded, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "pp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	e, err := StartEmbedded(context.Background(), dir, EmbeddedOptions{TLS: writeTestTLS(t, dir)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e, dir
}

// stores runs fn against the memory store and a real embedded etcd.
func stores(t *testing.T, fn func(t *testing.T, s Store)) {
	t.Run("memory", func(t *testing.T) {
		m := NewMemory()
		t.Cleanup(func() { m.Close() })
		fn(t, m)
	})
	t.Run("etcd", func(t *testing.T) {
		e, _ := startEtcd(t)
		fn(t, e.Store())
	})
}

func TestCRUD(t *testing.T) {
	stores(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		if _, err := s.Get(ctx, "/r/a"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("get missing: %v", err)
		}
		r1, err := s.Create(ctx, "/r/a", []byte("1"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Create(ctx, "/r/a", []byte("x")); !errors.Is(err, ErrExists) {
			t.Fatalf("create twice: %v", err)
		}
		kv, err := s.Get(ctx, "/r/a")
		if err != nil || string(kv.Value) != "1" || kv.Revision != r1 {
			t.Fatalf("get: %+v %v", kv, err)
		}
		if _, err := s.Update(ctx, "/r/a", []byte("2"), r1-1); !errors.Is(err, ErrConflict) {
			t.Fatalf("stale update: %v", err)
		}
		if _, err := s.Update(ctx, "/r/missing", []byte("2"), 0); !errors.Is(err, ErrNotFound) {
			t.Fatalf("update missing: %v", err)
		}
		if _, err := s.Update(ctx, "/r/missing", []byte("2"), 5); !errors.Is(err, ErrNotFound) {
			t.Fatalf("update missing with rev: %v", err)
		}
		r2, err := s.Update(ctx, "/r/a", []byte("2"), r1)
		if err != nil || r2 <= r1 {
			t.Fatalf("update: %d %v", r2, err)
		}
		if _, err := s.Delete(ctx, "/r/a", r1); !errors.Is(err, ErrConflict) {
			t.Fatalf("stale delete: %v", err)
		}
		del, err := s.Delete(ctx, "/r/a", r2)
		if err != nil || string(del.Value) != "2" || del.Revision <= r2 {
			t.Fatalf("delete: %+v %v", del, err)
		}
		if _, err := s.Delete(ctx, "/r/a", 0); !errors.Is(err, ErrNotFound) {
			t.Fatalf("delete twice: %v", err)
		}
		cur, err := s.CurrentRevision(ctx)
		if err != nil || cur != del.Revision {
			t.Fatalf("current revision %d, want %d (%v)", cur, del.Revision, err)
		}
	})
}

func TestListPagingAndSnapshot(t *testing.T) {
	stores(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		for i := 0; i < 5; i++ {
			if _, err := s.Create(ctx, fmt.Sprintf("/p/k%d", i), []byte{byte('0' + i)}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Create(ctx, "/pother", []byte("no")); err != nil {
			t.Fatal(err)
		}
		page, err := s.List(ctx, "/p/", ListOptions{Limit: 2})
		if err != nil || len(page.Items) != 2 || !page.More {
			t.Fatalf("page1: %+v %v", page, err)
		}
		snap := page.Revision
		// A write after the first page must not show in the next pages.
		if _, err := s.Create(ctx, "/p/k9", []byte("9")); err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, kv := range page.Items {
			keys = append(keys, kv.Key)
		}
		for page.More {
			page, err = s.List(ctx, "/p/", ListOptions{Limit: 2, Revision: snap, StartKey: keys[len(keys)-1] + "\x00"})
			if err != nil {
				t.Fatal(err)
			}
			for _, kv := range page.Items {
				keys = append(keys, kv.Key)
			}
		}
		if fmt.Sprint(keys) != "[/p/k0 /p/k1 /p/k2 /p/k3 /p/k4]" {
			t.Fatalf("keys %v", keys)
		}
		all, err := s.List(ctx, "/p/", ListOptions{})
		if err != nil || len(all.Items) != 6 {
			t.Fatalf("list all: %d %v", len(all.Items), err)
		}
	})
}

func collect(t *testing.T, ch <-chan Event, n int) []Event {
	t.Helper()
	var out []Event
	timeout := time.After(10 * time.Second)
	for len(out) < n {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("watch closed after %d events", len(out))
			}
			if ev.Err != nil {
				t.Fatalf("watch error: %v", ev.Err)
			}
			out = append(out, ev)
		case <-timeout:
			t.Fatalf("timed out after %d of %d events", len(out), n)
		}
	}
	return out
}

func TestWatchResume(t *testing.T) {
	stores(t, func(t *testing.T, s Store) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		start, _ := s.CurrentRevision(ctx)
		w1, err := s.Watch(ctx, "/w/", start)
		if err != nil {
			t.Fatal(err)
		}
		r1, _ := s.Create(ctx, "/w/a", []byte("1"))
		s.Create(ctx, "/x/ignored", []byte("x"))
		r2, _ := s.Update(ctx, "/w/a", []byte("2"), r1)
		evs := collect(t, w1, 2)
		if evs[0].Type != EventPut || !evs[0].Created || evs[0].KV.Revision != r1 {
			t.Fatalf("ev0 %+v", evs[0])
		}
		if evs[1].KV.Revision != r2 || string(evs[1].Prev.Value) != "1" || evs[1].Created {
			t.Fatalf("ev1 %+v", evs[1])
		}
		// Resume after the first event: the second comes again, then new ones, nothing twice.
		w2, _ := s.Watch(ctx, "/w/", r1)
		r3, _ := s.Create(ctx, "/w/b", []byte("b"))
		d, _ := s.Delete(ctx, "/w/a", 0)
		evs = collect(t, w2, 3)
		got := []int64{evs[0].KV.Revision, evs[1].KV.Revision, evs[2].KV.Revision}
		if fmt.Sprint(got) != fmt.Sprint([]int64{r2, r3, d.Revision}) {
			t.Fatalf("resumed revisions %v", got)
		}
		if evs[2].Type != EventDelete || string(evs[2].KV.Value) != "2" {
			t.Fatalf("delete event %+v", evs[2])
		}
		select {
		case ev := <-w2:
			t.Fatalf("extra event %+v", ev)
		case <-time.After(200 * time.Millisecond):
		}
	})
}

func TestWatchCompacted(t *testing.T) {
	stores(t, func(t *testing.T, s Store) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		r1, _ := s.Create(ctx, "/c/a", []byte("1"))
		r2, _ := s.Update(ctx, "/c/a", []byte("2"), 0)
		r3, _ := s.Update(ctx, "/c/a", []byte("3"), 0)
		compact(t, s, r3)
		w, err := s.Watch(ctx, "/c/", r1)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case ev := <-w:
			if !errors.Is(ev.Err, ErrCompacted) {
				t.Fatalf("want ErrCompacted, got %+v", ev)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no compaction error")
		}
		if _, err := s.List(ctx, "/c/", ListOptions{Revision: r1}); !errors.Is(err, ErrCompacted) {
			t.Fatalf("list at compacted rev: %v", err)
		}
		// Watching from just before the compaction point is fine.
		w2, _ := s.Watch(ctx, "/c/", r2)
		if evs := collect(t, w2, 1); string(evs[0].KV.Value) != "3" {
			t.Fatalf("after compaction: %+v", evs[0])
		}
	})
}

func TestEmbeddedRestartKeepsData(t *testing.T) {
	dir, err := os.MkdirTemp("", "pp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ctx := context.Background()
	tlsFiles := writeTestTLS(t, dir)
	e, err := StartEmbedded(ctx, dir, EmbeddedOptions{TLS: tlsFiles})
	if err != nil {
		t.Fatal(err)
	}
	rev, err := e.Store().Create(ctx, "/registry/pods/default/a", []byte("pod"))
	if err != nil {
		t.Fatal(err)
	}
	e.Close()
	e.Close() // idempotent
	e2, err := StartEmbedded(ctx, dir, EmbeddedOptions{TLS: tlsFiles})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e2.Close() })
	kv, err := e2.Store().Get(ctx, "/registry/pods/default/a")
	if err != nil || kv.Revision != rev || string(kv.Value) != "pod" {
		t.Fatalf("after restart: %+v %v (want rev %d)", kv, err, rev)
	}
}

// A write over the store's request limit is ErrTooLarge, whether etcd's
// server refuses it (under the client's 2 MiB send limit) or its client
// does (over it), and nothing is stored.
func TestTooLargeWrite(t *testing.T) {
	stores(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		for _, size := range []int{MaxRequestBytes + 1024, 3 << 20} {
			big := make([]byte, size)
			if _, err := s.Create(ctx, "/r/big", big); !errors.Is(err, ErrTooLarge) {
				t.Fatalf("create of %d bytes: %v, want ErrTooLarge", size, err)
			}
			if _, err := s.Get(ctx, "/r/big"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("refused create stored something: %v", err)
			}
			rev, err := s.Create(ctx, "/r/small", []byte("1"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Update(ctx, "/r/small", big, rev); !errors.Is(err, ErrTooLarge) {
				t.Fatalf("update to %d bytes: %v, want ErrTooLarge", size, err)
			}
			if kv, err := s.Get(ctx, "/r/small"); err != nil || string(kv.Value) != "1" {
				t.Fatalf("refused update changed the value: %q %v", kv.Value, err)
			}
			if _, err := s.Delete(ctx, "/r/small", 0); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// A key written WithTTL is deleted by the store once the TTL passes, as a
// delete watches see; one rewritten without it stays. The stay is checked
// once a key written at the same time with the same TTL is gone, so the
// test waits for a condition, not for a guessed time.
func TestWriteWithTTL(t *testing.T) {
	stores(t, func(t *testing.T, s Store) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		const ttl = 2 * time.Second
		start, err := s.CurrentRevision(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Create(ctx, "/ttl/expires", []byte("1"), WithTTL(ttl)); err != nil {
			t.Fatal(err)
		}
		rev, err := s.Create(ctx, "/ttl/kept", []byte("1"), WithTTL(ttl))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Update(ctx, "/ttl/kept", []byte("2"), rev); err != nil {
			t.Fatal(err)
		}
		rev, err = s.Create(ctx, "/ttl/refreshed", []byte("1"), WithTTL(ttl))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Update(ctx, "/ttl/refreshed", []byte("2"), rev, WithTTL(ttl)); err != nil {
			t.Fatal(err)
		}
		if kv, err := s.Get(ctx, "/ttl/expires"); err != nil || string(kv.Value) != "1" {
			t.Fatalf("TTL key before its expiry: %q %v", kv.Value, err)
		}
		events, err := s.Watch(ctx, "/ttl/", start)
		if err != nil {
			t.Fatal(err)
		}
		deleted := map[string]bool{}
		for !deleted["/ttl/expires"] || !deleted["/ttl/refreshed"] {
			select {
			case ev, ok := <-events:
				if !ok || ev.Err != nil {
					t.Fatalf("watch ended: %v", ev.Err)
				}
				if ev.Type == EventDelete {
					deleted[ev.KV.Key] = true
				}
			case <-ctx.Done():
				t.Fatalf("TTL keys not deleted within 30s (deleted: %v)", deleted)
			}
		}
		if deleted["/ttl/kept"] {
			t.Fatal("a key rewritten without a TTL was deleted")
		}
		if kv, err := s.Get(ctx, "/ttl/kept"); err != nil || string(kv.Value) != "2" {
			t.Fatalf("key rewritten without a TTL: %q %v", kv.Value, err)
		}
		if _, err := s.Get(ctx, "/ttl/expires"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("expired key still readable: %v", err)
		}
	})
}
