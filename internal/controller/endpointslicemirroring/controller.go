package endpointslicemirroring

import (
	"context"
	"log/slog"

	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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
	// Logger receives the controller's logs. Default slog.Default().
	Logger *slog.Logger
	// Clock times the work queue's back-off. Default: the real clock.
	Clock clock.WithTicker
}

// Controller mirrors Endpoints into EndpointSlices. Create it with New
// before the informer factory starts; it is safe for concurrent use.
type Controller struct {
	client    kubernetes.Interface
	services  corelisters.ServiceLister
	endpoints corelisters.EndpointsLister
	slices    discoverylisters.EndpointSliceLister
	synced    []cache.InformerSynced
	queue     ctrlutil.Queue
	tracker   *endpointutil.SliceTracker
	log       *slog.Logger
}

// New returns a Controller registered with factory's Service, Endpoints
// and EndpointSlice informers. The caller starts factory after New.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, opts Options) (*Controller, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	svcInf := factory.Core().V1().Services()
	epInf := factory.Core().V1().Endpoints()
	sliceInf := factory.Discovery().V1().EndpointSlices()
	c := &Controller{
		client:    client,
		services:  svcInf.Lister(),
		endpoints: epInf.Lister(),
		slices:    sliceInf.Lister(),
		queue:     ctrlutil.NewQueue("endpointslicemirroring", opts.Clock),
		tracker:   endpointutil.NewSliceTracker(),
		log:       opts.Logger.With("controller", "endpointslicemirroring"),
	}
	enqueue := ctrlutil.EnqueueKey(c.queue)
	if err := ctrlutil.OnChange(svcInf.Informer(), "service", enqueue); err != nil {
		return nil, err
	}
	if err := ctrlutil.OnChange(epInf.Informer(), "endpoints", enqueue); err != nil {
		return nil, err
	}
	if err := ctrlutil.OnEvents(sliceInf.Informer(), "endpointslice",
		c.onSlice, func(_, n any) { c.onSlice(n) }, c.onSliceDelete); err != nil {
		return nil, err
	}
	c.synced = []cache.InformerSynced{svcInf.Informer().HasSynced, epInf.Informer().HasSynced, sliceInf.Informer().HasSynced}
	return c, nil
}

// Run waits for the informers to sync, then runs workers until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) error {
	ctrlutil.RunWhenSynced(ctx, c.queue, c.synced, workers, c.log, c.sync)
	return nil
}

func (c *Controller) onSlice(obj any) {
	if s, ok := endpointutil.ManagedSlice(obj, ControllerName); ok && c.tracker.ShouldSync(s) {
		c.queue.Add(endpointutil.ServiceKey(s))
	}
}

func (c *Controller) onSliceDelete(obj any) {
	if s, ok := endpointutil.ManagedSlice(obj, ControllerName); ok && c.tracker.Deleted(s) {
		c.queue.Add(endpointutil.ServiceKey(s))
	}
}

// sync mirrors Endpoints key (named as its Service).
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	nn := types.NamespacedName{Namespace: ns, Name: name}
	existing, stale, err := endpointutil.LiveSlices(c.slices, c.tracker, nn, ControllerName)
	if err != nil {
		return err
	}
	if stale {
		c.queue.AddAfter(key, endpointutil.StaleRetry)
		return nil
	}
	eps, err := c.endpoints.Endpoints(ns).Get(name)
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	svc, serr := c.services.Services(ns).Get(name)
	if serr != nil && !apierrors.IsNotFound(serr) {
		return serr
	}
	if eps == nil || svc == nil || svc.Spec.Selector != nil || eps.Labels[discoveryv1.LabelSkipMirror] == "true" {
		if eps == nil {
			c.tracker.DeleteService(nn)
		}
		return c.apply(ctx, ns, name, plan{remove: existing})
	}
	p := reconcile(eps, existing)
	if p.skipped > 0 {
		c.log.Warn("addresses of Endpoints not mirrored (not IP addresses, or more than the mirroring limit)",
			"endpoints", key, "skipped", p.skipped, "limit", MaxEndpointsPerSubset)
	}
	return c.apply(ctx, ns, name, p)
}

func (c *Controller) apply(ctx context.Context, ns, name string, p plan) error {
	return endpointutil.WriteSlices(ctx, c.client.DiscoveryV1().EndpointSlices(ns), c.tracker,
		"mirrored Endpoints "+ns+"/"+name, p.create, p.update, p.remove)
}
