package apiserver

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/peapod/peapod/internal/storage"
)

// Events expire the event TTL after their last write, through either
// Events API, as kube-apiserver's --event-ttl makes etcd do; other kinds
// never do. The test waits for the store's delete, not for a guessed time.
func TestEventsExpire(t *testing.T) {
	mem := storage.NewMemory()
	defer mem.Close()
	a := newAPI(apiOptions{Store: mem, BookmarkInterval: time.Minute, EventTTL: time.Second,
		Authn: NewTokenAuthenticator(map[string]User{adminToken: {Name: "admin", Groups: []string{"system:masters"}}})})
	if err := a.bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start, _ := mem.CurrentRevision(ctx)

	const ns = "/api/v1/namespaces/default"
	for _, c := range []struct{ path, body string }{
		{ns + "/events", `{"apiVersion":"v1","kind":"Event","metadata":{"name":"e1"},"involvedObject":{"kind":"Pod","name":"p","namespace":"default"},"reason":"R","message":"m","type":"Normal"}`},
		{"/apis/events.k8s.io/v1/namespaces/default/events", `{"apiVersion":"events.k8s.io/v1","kind":"Event","metadata":{"name":"e2"},"eventTime":"2026-12-07T10:00:00.000000Z","reportingController":"c","reportingInstance":"i","action":"A","reason":"R","regarding":{"kind":"Pod","name":"p","namespace":"default"},"type":"Normal"}`},
		{ns + "/configmaps", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"stays"}}`},
	} {
		if r := do(t, srv, "POST", c.path, "application/json", c.body); r.code != 201 {
			t.Fatalf("create %s: %d %s", c.path, r.code, r.body)
		}
	}
	// An update refreshes the TTL, as kube-apiserver's TTLFunc does.
	if r := do(t, srv, "PATCH", ns+"/events/e1", "application/merge-patch+json", `{"count":2}`); r.code != 200 {
		t.Fatalf("patch event: %d %s", r.code, r.body)
	}
	events, err := mem.Watch(ctx, "/registry/", start)
	if err != nil {
		t.Fatal(err)
	}
	gone := map[string]bool{}
	for len(gone) < 2 {
		select {
		case ev := <-events:
			if ev.Err != nil {
				t.Fatal(ev.Err)
			}
			if ev.Type == storage.EventDelete {
				gone[ev.KV.Key] = true
			}
		case <-ctx.Done():
			t.Fatalf("events not expired within 30s; deleted: %v", gone)
		}
	}
	for k := range gone {
		if k != "/registry/events/default/e1" && k != "/registry/events/default/e2" {
			t.Fatalf("deleted %s, want only the two events (deleted: %v)", k, gone)
		}
	}
	if r := do(t, srv, "GET", ns+"/events/e1", "", ""); r.code != 404 {
		t.Fatalf("expired event still served: %d", r.code)
	}
	if r := do(t, srv, "GET", ns+"/configmaps/stays", "", ""); r.code != 200 {
		t.Fatalf("configmap after the events expired: %d %s", r.code, r.body)
	}
}
