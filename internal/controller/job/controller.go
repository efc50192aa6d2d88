package job

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"

	"github.com/peapod/peapod/internal/controller/ctrlutil"
)

// kind is the GroupVersionKind of the objects this controller owns pods for.
var kind = batchv1.SchemeGroupVersion.WithKind("Job")

// orphanPrefix marks a queue key naming a pod (not a Job) whose tracking
// finalizer may have to go because no Job owns it any more.
const orphanPrefix = "orphan-pod:"

// Options configure a Controller. The zero value is usable.
type Options struct {
	// Logger receives the controller's logs. Default slog.Default().
	Logger *slog.Logger
	// Recorder receives the Job's events. Default: discarded.
	Recorder record.EventRecorder
	// Clock times deadlines, back-off and TTLs; tests inject a fake one.
	// Default: the real clock.
	Clock clock.WithTicker
	// Backoff and MaxBackoff override the pod-failure back-off
	// (DefaultBackoff, MaxBackoff).
	Backoff, MaxBackoff time.Duration
}

// Controller reconciles Jobs. Create it with New before the informer
// factory starts; it is safe for concurrent use.
type Controller struct {
	client       kubernetes.Interface
	jobs         batchlisters.JobLister
	pods         corelisters.PodLister
	synced       []cache.InformerSynced
	queue        ctrlutil.Queue
	expectations *ctrlutil.Expectations
	clock        clock.WithTicker
	log          *slog.Logger
	recorder     record.EventRecorder
	backoff      time.Duration
	maxBackoff   time.Duration

	mu sync.Mutex
	// removing holds, per Job key, the pods whose tracking finalizer this
	// controller removed but the informer still shows: they are counted
	// already and must not be counted again from a stale cache.
	removing map[string]map[types.UID]bool
}

// New returns a Controller registering its informers (jobs, pods) with
// factory. The caller starts factory after New.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, opts Options) (*Controller, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.Recorder == nil {
		opts.Recorder = &record.FakeRecorder{}
	}
	if opts.Backoff <= 0 {
		opts.Backoff = DefaultBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = MaxBackoff
	}
	jobInf := factory.Batch().V1().Jobs()
	podInf := factory.Core().V1().Pods()
	c := &Controller{
		client:       client,
		jobs:         jobInf.Lister(),
		pods:         podInf.Lister(),
		queue:        ctrlutil.NewQueue("job", opts.Clock),
		expectations: ctrlutil.NewExpectations(opts.Clock),
		clock:        opts.Clock,
		log:          opts.Logger.With("controller", "job"),
		recorder:     opts.Recorder,
		backoff:      opts.Backoff,
		maxBackoff:   opts.MaxBackoff,
		removing:     map[string]map[types.UID]bool{},
	}
	enqueue := ctrlutil.EnqueueKey(c.queue)
	if err := ctrlutil.OnEvents(jobInf.Informer(), "job", enqueue, func(_, n any) { enqueue(n) }, func(o any) {
		if k := ctrlutil.KeyOf(o); k != "" {
			c.expectations.Delete(k)
			c.queue.Add(k)
		}
	}); err != nil {
		return nil, err
	}
	if err := ctrlutil.OnEvents(podInf.Informer(), "pod", c.podAdded, c.podUpdated, c.podDeleted); err != nil {
		return nil, err
	}
	c.synced = []cache.InformerSynced{jobInf.Informer().HasSynced, podInf.Informer().HasSynced}
	return c, nil
}

// Run waits for the informers to sync, then runs workers until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) error {
	ctrlutil.RunWhenSynced(ctx, c.queue, c.synced, workers, c.log, c.sync)
	return nil
}

// ownerKey returns the key of the Job controlling p, or "".
func ownerKey(p *v1.Pod) string {
	if ref := metav1.GetControllerOf(p); ref != nil && ref.Kind == kind.Kind && ref.APIVersion == kind.GroupVersion().String() {
		return p.Namespace + "/" + ref.Name
	}
	return ""
}

func (c *Controller) podAdded(obj any) {
	p, ok := obj.(*v1.Pod)
	if !ok {
		return
	}
	if k := ownerKey(p); k != "" {
		c.expectations.CreationObserved(k)
		c.queue.Add(k)
		return
	}
	c.enqueueOrphan(p)
}

func (c *Controller) podUpdated(oldObj, newObj any) {
	p, ok := newObj.(*v1.Pod)
	if !ok {
		return
	}
	if !hasFinalizer(p) {
		c.removed(ownerKey(p), p.UID)
	}
	if old, ok := oldObj.(*v1.Pod); ok {
		if k := ownerKey(old); k != "" && k != ownerKey(p) {
			c.queue.Add(k)
		}
	}
	if k := ownerKey(p); k != "" {
		if p.DeletionTimestamp != nil {
			// A deletion is observed when it starts: the pod keeps its
			// finalizer until this controller counted it.
			c.expectations.DeletionObserved(k, p.UID)
		}
		c.queue.Add(k)
		return
	}
	c.enqueueOrphan(p)
}

func (c *Controller) podDeleted(obj any) {
	p, ok := ctrlutil.Unwrap(obj).(*v1.Pod)
	if !ok {
		return
	}
	if k := ownerKey(p); k != "" {
		c.expectations.DeletionObserved(k, p.UID)
		c.removed(k, p.UID)
		c.queue.Add(k)
	}
}

// enqueueOrphan queues a pod without a controlling Job: a Job whose
// selector matches may adopt it; one with the tracking finalizer and no
// such Job gets the finalizer removed.
func (c *Controller) enqueueOrphan(p *v1.Pod) {
	matched := false
	jobs, _ := c.jobs.Jobs(p.Namespace).List(labels.Everything())
	for _, j := range jobs {
		sel, err := metav1.LabelSelectorAsSelector(j.Spec.Selector)
		if err == nil && !sel.Empty() && sel.Matches(labels.Set(p.Labels)) {
			c.queue.Add(p.Namespace + "/" + j.Name)
			matched = true
		}
	}
	if !matched && hasFinalizer(p) {
		c.queue.Add(orphanPrefix + p.Namespace + "/" + p.Name)
	}
}

// removing records that uid's finalizer removal was issued for key.
func (c *Controller) expectRemoval(key string, uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.removing[key] == nil {
		c.removing[key] = map[types.UID]bool{}
	}
	c.removing[key][uid] = true
}

// removed forgets a pending removal: the informer shows the pod without
// the finalizer, or gone.
func (c *Controller) removed(key string, uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m := c.removing[key]; m != nil {
		delete(m, uid)
		if len(m) == 0 {
			delete(c.removing, key)
		}
	}
}

// pendingRemovals returns a copy of key's pending finalizer removals.
func (c *Controller) pendingRemovals(key string) map[types.UID]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[types.UID]bool, len(c.removing[key]))
	for u := range c.removing[key] {
		out[u] = true
	}
	return out
}

func (c *Controller) forget(key string) {
	c.expectations.Delete(key)
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.removing, key)
}

func isOrphanKey(key string) (string, bool) { return strings.CutPrefix(key, orphanPrefix) }
