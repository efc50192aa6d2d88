package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
)

// DefaultSchedulerName is the spec.schedulerName a pod names (or leaves
// empty) to be scheduled by this scheduler unless Options say otherwise.
const DefaultSchedulerName = v1.DefaultSchedulerName

// Options configure a Scheduler. The zero value is usable.
type Options struct {
	// SchedulerName is the spec.schedulerName of the pods to schedule (pods
	// with an empty schedulerName count as the default scheduler's).
	// Default "default-scheduler".
	SchedulerName string
	// BindWorkers bounds concurrent bind calls. Default 16.
	BindWorkers int
	// InitialBackoff and MaxBackoff bound the per-pod exponential backoff
	// before an unschedulable or failed pod is retried. Defaults 1s and 10s,
	// as Kubernetes'.
	InitialBackoff, MaxBackoff time.Duration
	// AssumedPodTTL is how long a successfully bound pod stays assumed
	// without the informer reporting it bound (it was deleted first).
	// Default 30s.
	AssumedPodTTL time.Duration
	// Logger receives the scheduler's logs. Default slog.Default().
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.SchedulerName == "" {
		o.SchedulerName = DefaultSchedulerName
	}
	if o.BindWorkers <= 0 {
		o.BindWorkers = 16
	}
	if o.InitialBackoff <= 0 {
		o.InitialBackoff = time.Second
	}
	if o.MaxBackoff < o.InitialBackoff {
		o.MaxBackoff = max(10*time.Second, o.InitialBackoff)
	}
	if o.AssumedPodTTL <= 0 {
		o.AssumedPodTTL = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Scheduler binds pending pods to nodes through the API, like Kubernetes'
// default scheduler: informers feed a cache and a queue, one goroutine
// decides pod by pod with Schedule, binds run concurrently through the
// pods/binding subresource, and a pod that fits nowhere gets
// PodScheduled=False and a FailedScheduling event, then waits until a node
// or pod change could help it.
type Scheduler struct {
	client kubernetes.Interface
	opts   Options
	log    *slog.Logger

	cache *cache
	queue *schedulingQueue

	pending  corelisters.PodLister
	volumes  volumeListers
	recorder record.EventRecorder

	ready   chan struct{}
	runOnce sync.Once
	binds   sync.WaitGroup
	bindSem chan struct{}
}

// New returns a Scheduler for client; nothing happens until Run.
func New(client kubernetes.Interface, opts Options) *Scheduler {
	opts.setDefaults()
	return &Scheduler{
		client:  client,
		opts:    opts,
		log:     opts.Logger.With("component", "scheduler"),
		cache:   newCache(),
		queue:   newSchedulingQueue(opts.InitialBackoff, opts.MaxBackoff),
		ready:   make(chan struct{}),
		bindSem: make(chan struct{}, opts.BindWorkers),
	}
}

// Ready is closed once Run's informers have synced and scheduling started.
func (s *Scheduler) Ready() <-chan struct{} { return s.ready }

// Run schedules until ctx is cancelled, then stops its informers, waits for
// binds in flight and returns nil. A Scheduler runs once; a second Run
// returns an error at once.
func (s *Scheduler) Run(ctx context.Context) error {
	started := false
	s.runOnce.Do(func() { started = true })
	if !started {
		return errors.New("scheduler: Run called twice")
	}
	broadcaster := record.NewBroadcaster() // not ctx: events of binds finishing after cancel still go out
	defer broadcaster.Shutdown()
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: s.client.CoreV1().Events("")})
	s.recorder = broadcaster.NewRecorder(scheme.Scheme, v1.EventSource{Component: s.opts.SchedulerName})

	clusterFactory := informers.NewSharedInformerFactory(s.client, 0)
	pendingFactory := informers.NewSharedInformerFactoryWithOptions(s.client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = "spec.nodeName=" }))
	assignedFactory := informers.NewSharedInformerFactoryWithOptions(s.client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = "spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed"
		}))
	defer func() {
		s.queue.shutDown()
		clusterFactory.Shutdown()
		pendingFactory.Shutdown()
		assignedFactory.Shutdown()
		s.binds.Wait()
		s.cache.stop()
	}()

	nodes := clusterFactory.Core().V1().Nodes().Informer()
	namespaces := clusterFactory.Core().V1().Namespaces().Informer()
	workloads := Workloads{
		Services:               clusterFactory.Core().V1().Services().Lister(),
		ReplicationControllers: clusterFactory.Core().V1().ReplicationControllers().Lister(),
		ReplicaSets:            clusterFactory.Apps().V1().ReplicaSets().Lister(),
		StatefulSets:           clusterFactory.Apps().V1().StatefulSets().Lister(),
	}
	claims := clusterFactory.Core().V1().PersistentVolumeClaims().Informer()
	pvs := clusterFactory.Core().V1().PersistentVolumes().Informer()
	s.volumes = volumeListers{
		claims:  clusterFactory.Core().V1().PersistentVolumeClaims().Lister(),
		volumes: clusterFactory.Core().V1().PersistentVolumes().Lister(),
		classes: clusterFactory.Storage().V1().StorageClasses().Lister(),
	}
	pending := pendingFactory.Core().V1().Pods()
	assigned := assignedFactory.Core().V1().Pods().Informer()
	s.pending = pending.Lister()
	for _, reg := range []struct {
		inf toolscache.SharedIndexInformer
		h   toolscache.ResourceEventHandler
	}{
		{nodes, s.nodeHandler()},
		{namespaces, s.namespaceHandler()},
		{pending.Informer(), s.pendingHandler()},
		{assigned, s.assignedHandler()},
		{claims, s.volumeHandler()},
		{pvs, s.volumeHandler()},
	} {
		if _, err := reg.inf.AddEventHandler(reg.h); err != nil {
			return err
		}
	}
	clusterFactory.Start(ctx.Done())
	pendingFactory.Start(ctx.Done())
	assignedFactory.Start(ctx.Done())
	if !toolscache.WaitForCacheSync(ctx.Done(), nodes.HasSynced, namespaces.HasSynced, pending.Informer().HasSynced, assigned.HasSynced) {
		return nil // ctx was cancelled
	}
	for typ, synced := range clusterFactory.WaitForCacheSync(ctx.Done()) {
		if !synced {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("scheduler: informer for %v did not sync", typ)
		}
	}
	s.cache.setSpreadSelector(workloads.DefaultSpreadSelector)
	close(s.ready)
	s.log.Info("scheduler started", "schedulerName", s.opts.SchedulerName)

	done := make(chan struct{})
	go func() {
		defer close(done)
		for s.scheduleOne(ctx) {
		}
	}()
	<-ctx.Done()
	s.queue.shutDown()
	<-done
	return nil
}

// responsible reports whether this scheduler should place p.
func (s *Scheduler) responsible(p *v1.Pod) bool {
	name := p.Spec.SchedulerName
	return name == s.opts.SchedulerName || (name == "" && s.opts.SchedulerName == DefaultSchedulerName)
}

func queueKey(p *v1.Pod) string { return p.Namespace + "/" + p.Name }

// podOf unwraps informer objects, tombstones included.
func podOf(obj any) *v1.Pod {
	if t, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	p, _ := obj.(*v1.Pod)
	return p
}

func (s *Scheduler) pendingHandler() toolscache.ResourceEventHandler {
	return toolscache.FilteringResourceEventHandler{
		FilterFunc: func(obj any) bool {
			p := podOf(obj)
			// A gated pod is not queued; removing its last gate turns the
			// update into an add.
			return p != nil && p.Spec.NodeName == "" && s.responsible(p) && !gated(p)
		},
		Handler: toolscache.ResourceEventHandlerFuncs{
			AddFunc: func(obj any) { s.queue.add(queueKey(podOf(obj))) },
			UpdateFunc: func(oldObj, newObj any) {
				oldPod, newPod := podOf(oldObj), podOf(newObj)
				key := queueKey(newPod)
				// A parked pod whose status alone changed (our own
				// PodScheduled condition, say) waits on.
				if s.queue.isParked(key) && apiequality.Semantic.DeepEqual(oldPod.Spec, newPod.Spec) &&
					apiequality.Semantic.DeepEqual(oldPod.Labels, newPod.Labels) && newPod.DeletionTimestamp == nil {
					return
				}
				s.queue.add(key)
			},
			DeleteFunc: func(obj any) { s.queue.remove(queueKey(podOf(obj))) },
		},
	}
}

func (s *Scheduler) assignedHandler() toolscache.ResourceEventHandler {
	return toolscache.FilteringResourceEventHandler{
		FilterFunc: func(obj any) bool {
			p := podOf(obj)
			return p != nil && p.Spec.NodeName != ""
		},
		Handler: toolscache.ResourceEventHandlerFuncs{
			AddFunc: func(obj any) {
				p := podOf(obj)
				s.cache.setBoundPod(p)
				s.queue.moveAll(!terminated(p))
			},
			UpdateFunc: func(oldObj, newObj any) {
				oldPod, newPod := podOf(oldObj), podOf(newObj)
				s.cache.setBoundPod(newPod)
				switch {
				case terminated(newPod) && !terminated(oldPod):
					s.queue.moveAll(false)
				case !apiequality.Semantic.DeepEqual(oldPod.Labels, newPod.Labels):
					// Pod (anti-)affinity and spread selectors see it anew.
					s.queue.moveAll(true)
				}
			},
			DeleteFunc: func(obj any) {
				s.cache.removePod(podOf(obj))
				s.queue.moveAll(false)
			},
		},
	}
}

func (s *Scheduler) nodeHandler() toolscache.ResourceEventHandler {
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if n, ok := obj.(*v1.Node); ok {
				s.cache.setNode(n)
				s.queue.moveAll(false)
			}
		},
		UpdateFunc: func(oldObj, newObj any) {
			oldNode, ok1 := oldObj.(*v1.Node)
			newNode, ok2 := newObj.(*v1.Node)
			if !ok1 || !ok2 {
				return
			}
			s.cache.setNode(newNode)
			if nodeChangeMayHelp(oldNode, newNode) {
				s.queue.moveAll(false)
			}
		},
		DeleteFunc: func(obj any) {
			if t, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if n, ok := obj.(*v1.Node); ok {
				s.cache.removeNode(n.Name)
				// A domain gone can raise a topology spread minimum.
				s.queue.moveAll(false)
			}
		},
	}
}

// nodeChangeMayHelp reports whether a node update could let a parked pod
// fit: anything the filters read, but not heartbeats.
func nodeChangeMayHelp(oldNode, newNode *v1.Node) bool {
	if oldNode.Spec.Unschedulable != newNode.Spec.Unschedulable {
		return true
	}
	eq := apiequality.Semantic.DeepEqual
	if !eq(oldNode.Labels, newNode.Labels) || !eq(oldNode.Spec.Taints, newNode.Spec.Taints) ||
		!eq(oldNode.Status.Allocatable, newNode.Status.Allocatable) {
		return true
	}
	ready := func(n *v1.Node) v1.ConditionStatus {
		for _, c := range n.Status.Conditions {
			if c.Type == v1.NodeReady {
				return c.Status
			}
		}
		return ""
	}
	return ready(oldNode) != ready(newNode)
}

// volumeHandler requeues parked pods on any claim or volume change: a
// claim created or bound, or a volume made, may let a pod fit.
func (s *Scheduler) volumeHandler() toolscache.ResourceEventHandler {
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { s.queue.moveAll(false) },
		UpdateFunc: func(any, any) { s.queue.moveAll(false) },
	}
}

func (s *Scheduler) namespaceHandler() toolscache.ResourceEventHandler {
	set := func(obj any) {
		if ns, ok := obj.(*v1.Namespace); ok {
			labels := ns.Labels
			if labels == nil {
				labels = map[string]string{}
			}
			s.cache.setNamespace(ns.Name, labels)
		}
	}
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    set,
		UpdateFunc: func(_, newObj any) { set(newObj); s.queue.moveAll(true) },
		DeleteFunc: func(obj any) {
			if t, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if ns, ok := obj.(*v1.Namespace); ok {
				s.cache.setNamespace(ns.Name, nil)
			}
		},
	}
}
