package storage

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
)

// TestReadSeesWhatWatchDelivered: once a watch has delivered a revision,
// reads show it. A component acting on a watch event must not be told by
// a read that the object is missing or older: the scheduler, told of a new
// pod, binds it at once, and a bind answered "not found" drops the pod for
// good. etcd notifies watchers of a revision just before its reads see it,
// which the embedded store's serializable reads must make up for. Writers
// run in parallel and every event is read back at once, so the window
// between the two is hit often: before the fix, about one run in three
// of this test failed on a 2-CPU machine.
func TestReadSeesWhatWatchDelivered(t *testing.T) {
	stores(t, func(t *testing.T, s Store) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		start, err := s.CurrentRevision(ctx)
		if err != nil {
			t.Fatal(err)
		}
		events, err := s.Watch(ctx, "/rw/", start)
		if err != nil {
			t.Fatal(err)
		}
		const writers, perWriter = 4, 500
		var wg sync.WaitGroup
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < perWriter; i++ {
					if _, err := s.Create(ctx, fmt.Sprintf("/rw/%d-%d", w, i), []byte("v")); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		defer wg.Wait()
		var stale []string
		for n := 0; n < writers*perWriter; n++ {
			ev := <-events
			if ev.Err != nil {
				t.Fatal(ev.Err)
			}
			kv, err := s.Get(ctx, ev.KV.Key)
			switch {
			case errors.Is(err, ErrNotFound):
				stale = append(stale, fmt.Sprintf("get %s (watched at %d): not found", ev.KV.Key, ev.KV.Revision))
			case err != nil:
				t.Fatal(err)
			case kv.Revision < ev.KV.Revision:
				stale = append(stale, fmt.Sprintf("get %s: revision %d, watched %d", ev.KV.Key, kv.Revision, ev.KV.Revision))
			}
			// A list shows it too, and a list at exactly that revision
			// (a client's resourceVersionMatch=Exact) is served.
			l, err := s.List(ctx, "/rw/", ListOptions{Limit: 1})
			if err != nil {
				t.Fatal(err)
			}
			if l.Revision < ev.KV.Revision {
				stale = append(stale, fmt.Sprintf("list at %d, watched %d", l.Revision, ev.KV.Revision))
			}
			if _, err := s.List(ctx, "/rw/", ListOptions{Limit: 1, Revision: ev.KV.Revision}); err != nil {
				stale = append(stale, fmt.Sprintf("list at watched revision %d: %v", ev.KV.Revision, err))
			}
		}
		if len(stale) > 0 {
			t.Errorf("%d reads older than what the watch had delivered, e.g. %q", len(stale), stale[:min(3, len(stale))])
		}
	})
}
