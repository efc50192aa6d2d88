package endpointslice

import (
	"context"
	"errors"
	"log/slog"
	"reflect"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"

	"github.com/peapod/peapod/internal/controller/ctrlutil"
	"github.com/peapod/peapod/internal/controller/endpointutil"
)

// Options configure a Controller. The zero value is usable.
type Options struct {
	// MaxEndpointsPerSlice bounds a slice; default MaxEndpointsPerSlice.
	MaxEndpointsPerSlice int
	// Logger receives the controller's logs. Default slog.Default().
	Logger *slog.Logger
	// Clock times the work queue's back-off. Default: the real clock.
	Clock clock.WithTicker
}

// Controller keeps the EndpointSlices of Services with selectors. Create
// it with New before the informer factory starts; it is safe for
// concurrent use.
type Controller struct {
	client   kubernetes.Interface
	services corelisters.ServiceLister
	pods     corelisters.PodLister
	nodes    corelisters.NodeLister
	slices   discoverylisters.EndpointSliceLister
	synced   []cache.InformerSynced
	queue    ctrlutil.Queue
	tracker  *endpointutil.SliceTracker
	max      int
	log      *slog.Logger
}

// errStaleCache makes a sync wait for the informer to catch up with the
// controller's own writes.
var errStaleCache = errors.New("the EndpointSlice informer has not yet seen this controller's last writes")

// New returns a Controller registered with factory's Service, Pod, Node
// and EndpointSlice informers. The caller starts factory after New.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, opts Options) (*Controller, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxEndpointsPerSlice <= 0 {
		opts.MaxEndpointsPerSlice = MaxEndpointsPerSlice
	}
	svcInf := factory.Core().V1().Services()
	podInf := factory.Core().V1().Pods()
	nodeInf := factory.Core().V1().Nodes()
	sliceInf := factory.Discovery().V1().EndpointSlices()
	c := &Controller{
		client:   client,
		services: svcInf.Lister(),
		pods:     podInf.Lister(),
		nodes:    nodeInf.Lister(),
		slices:   sliceInf.Lister(),
		queue:    ctrlutil.NewQueue("endpointslice", opts.Clock),
		tracker:  endpointutil.NewSliceTracker(),
		max:      opts.MaxEndpointsPerSlice,
		log:      opts.Logger.With("controller", "endpointslice"),
	}
	if err := ctrlutil.OnChange(svcInf.Informer(), "service", ctrlutil.EnqueueKey(c.queue)); err != nil {
		return nil, err
	}
	podChanged := func(o any) { c.enqueuePodServices(nil, o) }
	if err := ctrlutil.OnEvents(podInf.Informer(), "pod", podChanged, c.enqueuePodServices, podChanged); err != nil {
		return nil, err
	}
	if err := ctrlutil.OnEvents(sliceInf.Informer(), "endpointslice", c.onSlice, c.onSliceUpdate, c.onSliceDelete); err != nil {
		return nil, err
	}
	c.synced = []cache.InformerSynced{svcInf.Informer().HasSynced, podInf.Informer().HasSynced,
		nodeInf.Informer().HasSynced, sliceInf.Informer().HasSynced}
	return c, nil
}

// Run waits for the informers to sync, then runs workers until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) error {
	ctrlutil.RunWhenSynced(ctx, c.queue, c.synced, workers, c.log, c.sync)
	return nil
}

// enqueuePodServices queues the Services selecting the pod before or
// after a change that can alter its endpoint.
func (c *Controller) enqueuePodServices(oldObj, newObj any) {
	pod, ok := ctrlutil.Unwrap(newObj).(*corev1.Pod)
	if !ok {
		return
	}
	var old *corev1.Pod
	if oldObj != nil {
		old, _ = ctrlutil.Unwrap(oldObj).(*corev1.Pod)
		if old != nil && !endpointRelevantChange(old, pod) {
			return
		}
	}
	for _, k := range endpointutil.PodServiceKeys(c.services, old, pod) {
		c.queue.Add(k)
	}
}

// endpointRelevantChange reports whether a pod update can change any
// endpoint made from it.
func endpointRelevantChange(old, cur *corev1.Pod) bool {
	if !reflect.DeepEqual(old.Labels, cur.Labels) ||
		(old.DeletionTimestamp == nil) != (cur.DeletionTimestamp == nil) ||
		old.Status.PodIP != cur.Status.PodIP || !reflect.DeepEqual(old.Status.PodIPs, cur.Status.PodIPs) ||
		old.Status.Phase != cur.Status.Phase ||
		endpointutil.IsPodReady(old) != endpointutil.IsPodReady(cur) ||
		old.Spec.NodeName != cur.Spec.NodeName ||
		old.Spec.Hostname != cur.Spec.Hostname || old.Spec.Subdomain != cur.Spec.Subdomain {
		return true
	}
	return !reflect.DeepEqual(containerPorts(old), containerPorts(cur))
}

func containerPorts(p *corev1.Pod) [][]corev1.ContainerPort {
	var out [][]corev1.ContainerPort
	for _, c := range p.Spec.InitContainers {
		out = append(out, c.Ports)
	}
	for _, c := range p.Spec.Containers {
		out = append(out, c.Ports)
	}
	return out
}

// onSlice requeues the Service of a slice someone else changed.
func (c *Controller) onSlice(obj any) {
	if s, ok := endpointutil.ManagedSlice(obj, ControllerName); ok && c.tracker.ShouldSync(s) {
		c.queue.Add(endpointutil.ServiceKey(s))
	}
}

func (c *Controller) onSliceUpdate(oldObj, newObj any) {
	o, _ := ctrlutil.Unwrap(oldObj).(*discoveryv1.EndpointSlice)
	n, _ := ctrlutil.Unwrap(newObj).(*discoveryv1.EndpointSlice)
	if o == nil || n == nil {
		return
	}
	// A slice taken over by (or from) another manager, or moved to
	// another Service, concerns both Services.
	if o.Labels[discoveryv1.LabelManagedBy] != n.Labels[discoveryv1.LabelManagedBy] ||
		o.Labels[discoveryv1.LabelServiceName] != n.Labels[discoveryv1.LabelServiceName] {
		if o.Labels[discoveryv1.LabelServiceName] != "" {
			c.queue.Add(endpointutil.ServiceKey(o))
		}
		if n.Labels[discoveryv1.LabelServiceName] != "" {
			c.queue.Add(endpointutil.ServiceKey(n))
		}
		return
	}
	c.onSlice(n)
}

func (c *Controller) onSliceDelete(obj any) {
	if s, ok := endpointutil.ManagedSlice(obj, ControllerName); ok && c.tracker.Deleted(s) {
		c.queue.Add(endpointutil.ServiceKey(s))
	}
}

// sync reconciles the slices of Service key.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	nn := types.NamespacedName{Namespace: ns, Name: name}
	svc, err := c.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		// The garbage collector removes the slices with their owner.
		c.tracker.DeleteService(nn)
		return nil
	}
	if err != nil {
		return err
	}
	// ExternalName Services get no endpoints; selector-less ones get the
	// slices their users write (or the mirroring controller makes).
	if svc.Spec.Type == corev1.ServiceTypeExternalName || svc.Spec.Selector == nil {
		return nil
	}
	pods, err := c.pods.Pods(ns).List(labels.SelectorFromSet(svc.Spec.Selector))
	if err != nil {
		return err
	}
	existing, stale, err := endpointutil.LiveSlices(c.slices, c.tracker, nn, ControllerName)
	if err != nil {
		return err
	}
	if stale {
		// Not a failure: the informer has not yet delivered this
		// controller's last writes. Look again shortly.
		c.log.Debug("waiting for the informer", "service", key, "reason", errStaleCache)
		c.queue.AddAfter(key, endpointutil.StaleRetry)
		return nil
	}
	p, skipErr := reconcile(reconcileInput{svc: svc, pods: pods, existing: existing, max: c.max,
		node: func(n string) (*corev1.Node, bool) {
			node, err := c.nodes.Get(n)
			return node, err == nil
		}})
	if err := c.apply(ctx, svc, p); err != nil {
		return err
	}
	return skipErr
}

// apply writes a plan: creates (not for a Service being deleted, which
// the garbage collector is emptying), updates, then deletes.
func (c *Controller) apply(ctx context.Context, svc *corev1.Service, p plan) error {
	create := p.create
	if svc.DeletionTimestamp != nil {
		create = nil
	}
	return endpointutil.WriteSlices(ctx, c.client.DiscoveryV1().EndpointSlices(svc.Namespace), c.tracker,
		"Service "+svc.Namespace+"/"+svc.Name, create, p.update, p.remove)
}
