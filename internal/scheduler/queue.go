package scheduler

import (
	"sync"
	"time"

	"k8s.io/client-go/util/workqueue"
)

// schedulingQueue holds pending pods by namespace/name key: an active,
// rate-limited work queue, and the pods parked as unschedulable until a
// cluster change might help them. It never polls: parked pods move back
// only through moveAll.
type schedulingQueue struct {
	active workqueue.TypedRateLimitingInterface[string]

	mu            sync.Mutex
	unschedulable map[string]parked
	moves         cycle // bumped by moveAll
}

// cycle counts the moves of parked pods: all of them, and those for a
// bound pod that appeared or changed its labels.
type cycle struct{ all, podChanged uint64 }

// parked is an unschedulable pod's note: whether, besides node changes and
// pods going away, a bound pod appearing or changing its labels (or a
// namespace its labels) could help it. That is so for pods with required
// pod affinity or anti-affinity or DoNotSchedule topology spread
// constraints, whose own selectors count the pods already placed.
type parked struct {
	wantsPodChanges bool
}

func newSchedulingQueue(initialBackoff, maxBackoff time.Duration) *schedulingQueue {
	return &schedulingQueue{
		active: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](initialBackoff, maxBackoff),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "scheduler"},
		),
		unschedulable: map[string]parked{},
	}
}

// add queues a new or changed pod at once.
func (q *schedulingQueue) add(key string) {
	q.mu.Lock()
	delete(q.unschedulable, key)
	q.mu.Unlock()
	q.active.Add(key)
}

// isParked reports whether key waits as unschedulable.
func (q *schedulingQueue) isParked(key string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	_, ok := q.unschedulable[key]
	return ok
}

// pop blocks for the next pod; cycle is the move cycle at that moment, to
// hand back to park. ok is false once the queue is shut down.
func (q *schedulingQueue) pop() (key string, c cycle, ok bool) {
	key, shutdown := q.active.Get()
	if shutdown {
		return "", cycle{}, false
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return key, q.moves, true
}

// done must follow every successful pop.
func (q *schedulingQueue) done(key string) { q.active.Done(key) }

// succeeded resets the pod's backoff.
func (q *schedulingQueue) succeeded(key string) { q.active.Forget(key) }

// retry queues the pod again after its backoff.
func (q *schedulingQueue) retry(key string) { q.active.AddRateLimited(key) }

// park sets an unschedulable pod aside until the cluster changes. If it
// already changed since the pod was popped (cycle), the pod is retried
// after its backoff instead, so no change is missed.
func (q *schedulingQueue) park(key string, c cycle, p parked) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.moves.all != c.all || (p.wantsPodChanges && q.moves.podChanged != c.podChanged) {
		q.active.AddRateLimited(key)
		return
	}
	q.unschedulable[key] = p
}

// moveAll queues every parked pod again (after its backoff): something
// changed that may let it fit. With podChangedOnly (a bound pod appeared
// or changed its labels), only pods whose own pod selectors could now be
// satisfied move.
func (q *schedulingQueue) moveAll(podChangedOnly bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if podChangedOnly {
		q.moves.podChanged++
	} else {
		q.moves.all++
	}
	for key, p := range q.unschedulable {
		if podChangedOnly && !p.wantsPodChanges {
			continue
		}
		delete(q.unschedulable, key)
		q.active.AddRateLimited(key)
	}
}

// remove forgets a deleted pod. A copy still in the active queue is
// dropped when popped, since the pod is gone from the informer.
func (q *schedulingQueue) remove(key string) {
	q.mu.Lock()
	delete(q.unschedulable, key)
	q.mu.Unlock()
	q.active.Forget(key)
}

func (q *schedulingQueue) shutDown() { q.active.ShutDown() }
