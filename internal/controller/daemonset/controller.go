package daemonset

import (
	"context"
	"log/slog"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/utils/clock"

	"github.com/peapod/peapod/internal/controller/ctrlutil"
)

// BurstReplicas caps the pods one sync creates or deletes, as Kubernetes'.
const BurstReplicas = 250

// Options configure a Controller. The zero value is usable.
type Options struct {
	// Logger receives the controller's logs. Default slog.Default().
	Logger *slog.Logger
	// Recorder receives the DaemonSet's events (SuccessfulCreate,
	// FailedDaemonPod, ...).
	Recorder record.EventRecorder
	// Clock times availability (minReadySeconds), expectations and the
	// failed-pod back-off. Default: real.
	Clock clock.WithTicker
}

// Controller reconciles DaemonSets. Create it with New before the
// informer factory starts; it is safe for concurrent use.
type Controller struct {
	client    kubernetes.Interface
	sets      appslisters.DaemonSetLister
	revisions appslisters.ControllerRevisionLister
	pods      corelisters.PodLister
	nodes     corelisters.NodeLister
	synced    []cache.InformerSynced
	queue     ctrlutil.Queue
	exp       *ctrlutil.Expectations
	clock     clock.WithTicker
	log       *slog.Logger
	recorder  record.EventRecorder
	// failed backs off the replacement of failed pods per DaemonSet,
	// generation and node, so a node whose agent rejects the pod is not
	// hammered.
	failed *flowcontrol.Backoff
}

// New returns a Controller registering its informers (daemonsets,
// controllerrevisions, pods, nodes) with factory. The caller starts
// factory after New.
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
	setInf := factory.Apps().V1().DaemonSets()
	revInf := factory.Apps().V1().ControllerRevisions()
	podInf := factory.Core().V1().Pods()
	nodeInf := factory.Core().V1().Nodes()
	backoff := flowcontrol.NewBackOff(time.Second, 15*time.Minute)
	backoff.Clock = opts.Clock
	c := &Controller{
		client:    client,
		sets:      setInf.Lister(),
		revisions: revInf.Lister(),
		pods:      podInf.Lister(),
		nodes:     nodeInf.Lister(),
		queue:     ctrlutil.NewQueue("daemonset", opts.Clock),
		exp:       ctrlutil.NewExpectations(opts.Clock),
		clock:     opts.Clock,
		log:       opts.Logger.With("controller", "daemonset"),
		recorder:  opts.Recorder,
		failed:    backoff,
	}
	enqueue := ctrlutil.EnqueueKey(c.queue)
	setDeleted := func(o any) {
		if k := ctrlutil.KeyOf(o); k != "" {
			c.exp.Delete(k)
			c.queue.Add(k)
		}
	}
	if err := ctrlutil.OnEvents(setInf.Informer(), "daemonset", enqueue, func(_, n any) { enqueue(n) }, setDeleted); err != nil {
		return nil, err
	}
	if err := ctrlutil.OnChange(revInf.Informer(), "controllerrevision", c.revisionChanged); err != nil {
		return nil, err
	}
	if err := ctrlutil.OnEvents(podInf.Informer(), "pod", c.addPod, c.updatePod, c.deletePod); err != nil {
		return nil, err
	}
	if err := ctrlutil.OnEvents(nodeInf.Informer(), "node", c.nodeAdded, c.nodeUpdated, c.nodeDeleted); err != nil {
		return nil, err
	}
	c.synced = []cache.InformerSynced{setInf.Informer().HasSynced, revInf.Informer().HasSynced, podInf.Informer().HasSynced, nodeInf.Informer().HasSynced}
	return c, nil
}

// Run waits for the informers to sync, then runs workers until ctx ends.
// Every minute it forgets back-off entries that have expired, as
// Kubernetes' BackoffGCInterval does, so DaemonSets and nodes that are
// gone leave nothing behind.
func (c *Controller) Run(ctx context.Context, workers int) error {
	tick := c.clock.NewTicker(time.Minute)
	gcDone := make(chan struct{})
	defer func() { tick.Stop(); <-gcDone }()
	go func() {
		defer close(gcDone)
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C():
				c.failed.GC()
			}
		}
	}()
	ctrlutil.RunWhenSynced(ctx, c.queue, c.synced, workers, c.log, c.sync)
	return nil
}

// resolve returns the key of the DaemonSet ref names, if it exists.
func (c *Controller) resolve(ns string, ref *metav1.OwnerReference) string {
	if ref == nil || ref.Kind != kind.Kind {
		return ""
	}
	ds, err := c.sets.DaemonSets(ns).Get(ref.Name)
	if err != nil || ds.UID != ref.UID {
		return ""
	}
	return ns + "/" + ds.Name
}

// selecting returns the keys of the DaemonSets whose selector matches
// lbls in ns (for orphans they might adopt).
func (c *Controller) selecting(ns string, lbls map[string]string) []string {
	sets, _ := c.sets.DaemonSets(ns).List(labels.Everything())
	var keys []string
	for _, ds := range sets {
		sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
		if err == nil && !sel.Empty() && sel.Matches(labels.Set(lbls)) {
			keys = append(keys, ns+"/"+ds.Name)
		}
	}
	return keys
}

func (c *Controller) revisionChanged(obj any) {
	r, ok := ctrlutil.Unwrap(obj).(*appsv1.ControllerRevision)
	if !ok {
		return
	}
	if ref := metav1.GetControllerOf(r); ref != nil {
		if k := c.resolve(r.Namespace, ref); k != "" {
			c.queue.Add(k)
		}
		return
	}
	for _, k := range c.selecting(r.Namespace, r.Labels) {
		c.queue.Add(k)
	}
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
	for _, k := range c.selecting(p.Namespace, p.Labels) {
		c.queue.Add(k)
	}
}

func (c *Controller) updatePod(oldObj, newObj any) {
	old, cur := oldObj.(*v1.Pod), newObj.(*v1.Pod)
	if cur.ResourceVersion == old.ResourceVersion && cur.ResourceVersion != "" {
		return // periodic resync
	}
	if cur.DeletionTimestamp != nil && old.DeletionTimestamp == nil {
		// Graceful deletion started: observed now, so a rolling update
		// goes on without waiting for the grace period.
		c.deletePod(cur)
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
		if ds, err := c.sets.DaemonSets(cur.Namespace).Get(curRef.Name); err == nil && ds.Spec.MinReadySeconds > 0 &&
			!ctrlutil.IsPodReady(old) && ctrlutil.IsPodReady(cur) {
			c.queue.AddAfter(k, time.Duration(ds.Spec.MinReadySeconds)*time.Second+time.Second)
		}
		return
	}
	if !apiequality.Semantic.DeepEqual(old.Labels, cur.Labels) || oldRef != nil {
		for _, k := range c.selecting(cur.Namespace, cur.Labels) {
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

// nodeAdded enqueues every DaemonSet that wants a pod on the new node.
func (c *Controller) nodeAdded(obj any) {
	n, ok := obj.(*v1.Node)
	if !ok {
		return
	}
	sets, _ := c.sets.List(labels.Everything())
	for _, ds := range sets {
		if run, _ := ShouldRun(n, ds); run {
			c.queue.Add(ds.Namespace + "/" + ds.Name)
		}
	}
}

// nodeUpdated enqueues the DaemonSets whose decision for the node
// changed (labels, taints, conditions that taint it).
func (c *Controller) nodeUpdated(oldObj, newObj any) {
	old, cur := oldObj.(*v1.Node), newObj.(*v1.Node)
	if apiequality.Semantic.DeepEqual(old.Labels, cur.Labels) && apiequality.Semantic.DeepEqual(old.Spec, cur.Spec) {
		return
	}
	sets, _ := c.sets.List(labels.Everything())
	for _, ds := range sets {
		r1, c1 := ShouldRun(old, ds)
		r2, c2 := ShouldRun(cur, ds)
		if r1 != r2 || c1 != c2 {
			c.queue.Add(ds.Namespace + "/" + ds.Name)
		}
	}
}

// nodeDeleted enqueues every DaemonSet: its desired count may drop.
func (c *Controller) nodeDeleted(any) {
	sets, _ := c.sets.List(labels.Everything())
	for _, ds := range sets {
		c.queue.Add(ds.Namespace + "/" + ds.Name)
	}
}
