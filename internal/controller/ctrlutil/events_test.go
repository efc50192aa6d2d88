package ctrlutil

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"

	"github.com/peapod/peapod/internal/controller/controllertest"
)

func TestEnqueueKeySkipsKeylessObjects(t *testing.T) {
	q := NewQueue("test", nil)
	defer q.ShutDown()
	enqueue := EnqueueKey(q)
	enqueue(&v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "a"}})
	enqueue(cache.DeletedFinalStateUnknown{Key: "ns/b", Obj: nil})
	enqueue("not an object")
	var got []string
	for q.Len() > 0 {
		k, _ := q.Get()
		got = append(got, k)
		q.Done(k)
	}
	slices.Sort(got)
	if want := []string{"ns/a", "ns/b"}; !slices.Equal(got, want) {
		t.Errorf("queued %v, want %v", got, want)
	}
}

// TestOnChangeSeesEveryEvent checks OnChange hands f the added, the
// updated (new) and the deleted object, and that a stopped informer's
// refusal comes back naming the informer.
func TestOnChangeSeesEveryEvent(t *testing.T) {
	client := fake.NewClientset()
	factory := informers.NewSharedInformerFactory(client, 0)
	inf := factory.Core().V1().ConfigMaps().Informer()
	var mu sync.Mutex
	var seen []string
	if err := OnChange(inf, "configmap", func(o any) {
		cm, ok := Unwrap(o).(*v1.ConfigMap)
		if !ok {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, cm.Name+"="+cm.Data["v"])
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); factory.Shutdown() }()
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		t.Fatal("informer did not sync")
	}
	cms := client.CoreV1().ConfigMaps("ns")
	cm := &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "c"}, Data: map[string]string{"v": "1"}}
	if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitSeen := func(want ...string) {
		t.Helper()
		controllertest.Eventually(t, 5*time.Second, "handler calls", func() error {
			mu.Lock()
			defer mu.Unlock()
			if !slices.Equal(seen, want) {
				return fmt.Errorf("saw %v, want %v", seen, want)
			}
			return nil
		})
	}
	waitSeen("c=1")
	cm.Data["v"] = "2"
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitSeen("c=1", "c=2")
	if err := cms.Delete(ctx, "c", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitSeen("c=1", "c=2", "c=2")

	cancel()
	factory.Shutdown()
	err := OnEvents(inf, "configmap", nil, nil, func(any) {})
	if err == nil || !strings.Contains(err.Error(), "register configmap handler") {
		t.Errorf("registering on a stopped informer: %v, want an error naming the configmap handler", err)
	}
}

func TestRunWhenSyncedShutsTheQueueWhenCtxEndsFirst(t *testing.T) {
	q := NewQueue("test", nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	never := func() bool { return false }
	RunWhenSynced(ctx, q, []cache.InformerSynced{never}, 1, slog.New(slog.DiscardHandler), func(context.Context, string) error {
		t.Error("sync called before the caches synced")
		return nil
	})
	if !q.ShuttingDown() {
		t.Error("queue not shut down")
	}
}

func TestRunWhenSyncedRunsWorkers(t *testing.T) {
	q := NewQueue("test", nil)
	q.Add("ns/a")
	ctx, cancel := context.WithCancel(context.Background())
	synced := func() bool { return true }
	RunWhenSynced(ctx, q, []cache.InformerSynced{synced}, 2, slog.New(slog.DiscardHandler), func(_ context.Context, key string) error {
		if key != "ns/a" {
			t.Errorf("synced %q, want ns/a", key)
		}
		cancel()
		return nil
	})
	if !q.ShuttingDown() {
		t.Error("queue not shut down after ctx ended")
	}
}
