package ctrlutil

import (
	"context"
	"log/slog"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
)

// Queue is the rate-limited work queue of object keys every controller uses.
type Queue = workqueue.TypedRateLimitingInterface[string]

// NewQueue returns a Queue with Kubernetes' default controller rate limiter
// (per-item exponential 5ms..1000s and an overall 10 qps/100 burst bucket),
// its delays timed by clk (nil = real clock).
func NewQueue(name string, clk clock.WithTicker) Queue {
	if clk == nil {
		clk = clock.RealClock{}
	}
	return workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: name, Clock: clk},
	)
}

// KeyOf returns obj's "namespace/name" key, tombstones included, or "".
func KeyOf(obj any) string {
	k, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		return ""
	}
	return k
}

// Unwrap returns obj without a DeletedFinalStateUnknown tombstone.
func Unwrap(obj any) any {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		return t.Obj
	}
	return obj
}

// WaitForSync waits until every informer in synced has synced and reports
// true; when ctx ends first it shuts q down (so nothing waits on it) and
// reports false.
func WaitForSync(ctx context.Context, q Queue, synced ...cache.InformerSynced) bool {
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		q.ShutDown()
		return false
	}
	return true
}

// RunWhenSynced is the body of a controller's Run: it waits for synced
// (see WaitForSync), then runs workers on q with syncFn until ctx ends
// (see RunWorkers). Controllers with work between the two call those
// themselves.
func RunWhenSynced(ctx context.Context, q Queue, synced []cache.InformerSynced, workers int, log *slog.Logger, syncFn func(context.Context, string) error) {
	if !WaitForSync(ctx, q, synced...) {
		return
	}
	log.Info("controller started", "workers", workers)
	RunWorkers(ctx, q, workers, log, syncFn)
}

// RunWorkers runs n goroutines that take keys from q and call sync, until
// ctx is cancelled; then it shuts q down and waits for them. A sync error
// requeues the key rate-limited (conflicts quietly, others logged); success
// forgets its failure history.
func RunWorkers(ctx context.Context, q Queue, n int, log *slog.Logger, syncFn func(context.Context, string) error) {
	var wg sync.WaitGroup
	for range max(n, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for processNext(ctx, q, log, syncFn) {
			}
		}()
	}
	<-ctx.Done()
	q.ShutDown()
	wg.Wait()
}

func processNext(ctx context.Context, q Queue, log *slog.Logger, syncFn func(context.Context, string) error) bool {
	key, quit := q.Get()
	if quit {
		return false
	}
	defer q.Done(key)
	if err := syncFn(ctx, key); err != nil {
		if ctx.Err() != nil {
			return true
		}
		if !apierrors.IsConflict(err) {
			log.Warn("sync failed, requeued", "key", key, "err", err)
		}
		q.AddRateLimited(key)
		return true
	}
	q.Forget(key)
	return true
}
