package replicaset

import (
	"context"
	"log/slog"
	"time"

	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"

	"github.com/peapod/peapod/internal/controller/ctrlutil"
)

// BurstReplicas bounds the creates or deletes of one sync, as Kubernetes'.
const BurstReplicas = 500

// Options configure a Controller. The zero value is usable.
type Options struct {
	// Logger receives the controller's logs. Default slog.Default().
	Logger *slog.Logger
	// Recorder receives SuccessfulCreate/SuccessfulDelete/FailedCreate
	// events. Default: none.
	Recorder record.EventRecorder
	// Clock times availability (minReadySeconds) and expectations.
	// Default: the real clock.
	Clock clock.WithTicker
}

// Controller reconciles one Kind. Create it with New before the informer
// factory starts; it is safe for concurrent use.
type Controller struct {
	client   kubernetes.Interface
	kind     adapter
	pods     corelisters.PodLister
	synced   []cache.InformerSynced
	queue    ctrlutil.Queue
	exp      *ctrlutil.Expectations
	clock    clock.WithTicker
	log      *slog.Logger
	recorder record.EventRecorder
}

// New returns a Controller for kind, registering its informers (pods and
// the kind) with factory. The caller starts factory after New.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, kind Kind, opts Options) (*Controller, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.Recorder == nil {
		opts.Recorder = &record.FakeRecorder{} // nil channel: events dropped
	}
	var a adapter = rsAdapter{client, factory}
	if kind == KindReplicationController {
		a = rcAdapter{client, factory}
	}
	name := map[Kind]string{KindReplicaSet: "replicaset", KindReplicationController: "replicationcontroller"}[kind]
	c := &Controller{
		client:   client,
		kind:     a,
		queue:    ctrlutil.NewQueue(name, opts.Clock),
		exp:      ctrlutil.NewExpectations(opts.Clock),
		clock:    opts.Clock,
		log:      opts.Logger.With("controller", name),
		recorder: opts.Recorder,
	}
	podInf := factory.Core().V1().Pods()
	c.pods = podInf.Lister()
	setInf := a.informer()
	enqueue := ctrlutil.EnqueueKey(c.queue)
	setDeleted := func(o any) {
		if k := ctrlutil.KeyOf(o); k != "" {
			c.exp.Delete(k)
			c.queue.Add(k)
		}
	}
	if err := ctrlutil.OnEvents(setInf, name, enqueue, func(_, n any) { enqueue(n) }, setDeleted); err != nil {
		return nil, err
	}
	if err := ctrlutil.OnEvents(podInf.Informer(), "pod", c.addPod, c.updatePod, c.deletePod); err != nil {
		return nil, err
	}
	c.synced = []cache.InformerSynced{setInf.HasSynced, podInf.Informer().HasSynced}
	return c, nil
}

// Run waits for the informers to sync, then runs workers until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) error {
	ctrlutil.RunWhenSynced(ctx, c.queue, c.synced, workers, c.log, c.sync)
	return nil
}

// resolve returns the key of the set ref names, if it is ours and alive.
func (c *Controller) resolve(ns string, ref *metav1.OwnerReference) string {
	if ref == nil || ref.Kind != c.kind.gvk().Kind {
		return ""
	}
	s, err := c.kind.get(ns, ref.Name)
	if err != nil || s.obj.GetUID() != ref.UID {
		return ""
	}
	return ns + "/" + ref.Name
}

// setsFor returns the keys of sets whose selector matches an orphan pod.
func (c *Controller) setsFor(p *v1.Pod) []string {
	sets, _ := c.kind.list(p.Namespace)
	var keys []string
	for _, s := range sets {
		if s.selector.Matches(labels.Set(p.Labels)) {
			keys = append(keys, p.Namespace+"/"+s.obj.GetName())
		}
	}
	return keys
}

func (c *Controller) addPod(obj any) {
	p := obj.(*v1.Pod)
	if p.DeletionTimestamp != nil {
		c.deletePod(p)
		return
	}
	if ref := metav1.GetControllerOf(p); ref != nil {
		if k := c.resolve(p.Namespace, ref); k != "" {
			c.exp.CreationObserved(k)
			c.queue.Add(k)
		}
		return
	}
	for _, k := range c.setsFor(p) {
		c.queue.Add(k)
	}
}

func (c *Controller) updatePod(oldObj, newObj any) {
	old, cur := oldObj.(*v1.Pod), newObj.(*v1.Pod)
	if cur.ResourceVersion == old.ResourceVersion && cur.ResourceVersion != "" {
		return // periodic resync
	}
	labelsChanged := !apiequality.Semantic.DeepEqual(old.Labels, cur.Labels)
	if cur.DeletionTimestamp != nil && old.DeletionTimestamp == nil {
		// Graceful deletion started: count it as observed now so a
		// replacement is created without waiting for the grace period.
		c.deletePod(cur)
		if labelsChanged {
			c.deletePod(old)
		}
		return
	}
	curRef, oldRef := metav1.GetControllerOf(cur), metav1.GetControllerOf(old)
	if !apiequality.Semantic.DeepEqual(curRef, oldRef) {
		if k := c.resolve(old.Namespace, oldRef); k != "" {
			c.queue.Add(k)
		}
	}
	if curRef != nil {
		k := c.resolve(cur.Namespace, curRef)
		if k == "" {
			return
		}
		c.queue.Add(k)
		if s, err := c.kind.get(cur.Namespace, curRef.Name); err == nil && s.minReadySeconds > 0 &&
			!ctrlutil.IsPodReady(old) && ctrlutil.IsPodReady(cur) {
			c.queue.AddAfter(k, time.Duration(s.minReadySeconds)*time.Second+time.Second)
		}
		return
	}
	if labelsChanged || !apiequality.Semantic.DeepEqual(curRef, oldRef) {
		for _, k := range c.setsFor(cur) {
			c.queue.Add(k)
		}
	}
}

func (c *Controller) deletePod(obj any) {
	p, ok := ctrlutil.Unwrap(obj).(*v1.Pod)
	if !ok {
		return
	}
	k := c.resolve(p.Namespace, metav1.GetControllerOf(p))
	if k == "" {
		return
	}
	c.exp.DeletionObserved(k, p.UID)
	c.queue.Add(k)
}
