//lint:file-ignore SA1019 this is the legacy Endpoints controller: core/v1 Endpoints is its whole job, as in kube-controller-manager
package endpoints

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
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

// Controller keeps the Endpoints of Services with selectors. Create it
// with New before the informer factory starts; it is safe for concurrent
// use.
type Controller struct {
	client    kubernetes.Interface
	services  corelisters.ServiceLister
	pods      corelisters.PodLister
	endpoints corelisters.EndpointsLister
	synced    []cache.InformerSynced
	queue     ctrlutil.Queue
	log       *slog.Logger
}

// New returns a Controller registered with factory's Service, Pod and
// Endpoints informers. The caller starts factory after New.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, opts Options) (*Controller, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	svcInf := factory.Core().V1().Services()
	podInf := factory.Core().V1().Pods()
	epInf := factory.Core().V1().Endpoints()
	c := &Controller{
		client:    client,
		services:  svcInf.Lister(),
		pods:      podInf.Lister(),
		endpoints: epInf.Lister(),
		queue:     ctrlutil.NewQueue("endpoints", opts.Clock),
		log:       opts.Logger.With("controller", "endpoints"),
	}
	enqueue := ctrlutil.EnqueueKey(c.queue)
	if err := ctrlutil.OnChange(svcInf.Informer(), "service", enqueue); err != nil {
		return nil, err
	}
	podChanged := func(o any) { c.enqueuePodServices(nil, o) }
	if err := ctrlutil.OnEvents(podInf.Informer(), "pod", podChanged, c.enqueuePodServices, podChanged); err != nil {
		return nil, err
	}
	// An Endpoints object of a Service deleted by someone else is made
	// again.
	if err := ctrlutil.OnEvents(epInf.Informer(), "endpoints", nil, nil, enqueue); err != nil {
		return nil, err
	}
	c.synced = []cache.InformerSynced{svcInf.Informer().HasSynced, podInf.Informer().HasSynced, epInf.Informer().HasSynced}
	return c, nil
}

// Run waits for the informers to sync, then runs workers until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) error {
	if !ctrlutil.WaitForSync(ctx, c.queue, c.synced...) {
		return nil
	}
	// Endpoints whose Service went while the controller was away are
	// found by syncing every one once, as Kubernetes' checkLeftoverEndpoints.
	if all, err := c.endpoints.List(labels.Everything()); err == nil {
		enqueue := ctrlutil.EnqueueKey(c.queue)
		for _, e := range all {
			enqueue(e)
		}
	}
	c.log.Info("controller started", "workers", workers)
	ctrlutil.RunWorkers(ctx, c.queue, workers, c.log, c.sync)
	return nil
}

func (c *Controller) enqueuePodServices(oldObj, newObj any) {
	pod, ok := ctrlutil.Unwrap(newObj).(*corev1.Pod)
	if !ok {
		return
	}
	old, _ := ctrlutil.Unwrap(oldObj).(*corev1.Pod) // nil for an add or delete
	for _, k := range endpointutil.PodServiceKeys(c.services, old, pod) {
		c.queue.Add(k)
	}
}

// sync makes the Endpoints of Service key match its pods.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	svc, err := c.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		// The Service is gone: so are its Endpoints (a user-written
		// Endpoints object without a Service included, as Kubernetes).
		if err := c.client.CoreV1().Endpoints(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete Endpoints %s: %w", key, err)
		}
		return nil
	}
	if err != nil {
		return err
	}
	if svc.Spec.Selector == nil || svc.Spec.Type == corev1.ServiceTypeExternalName {
		return nil // the user's Endpoints, or none
	}
	pods, err := c.pods.Pods(ns).List(labels.SelectorFromSet(svc.Spec.Selector))
	if err != nil {
		return err
	}
	subsets, over := truncate(desiredSubsets(svc, pods), MaxAddresses)
	cur, err := c.endpoints.Endpoints(ns).Get(name)
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	want := desiredEndpoints(svc, cur, subsets, over)
	if cur != nil && apiequality.Semantic.DeepEqual(Repack(cur.Subsets), want.Subsets) &&
		reflect.DeepEqual(cur.Labels, want.Labels) && reflect.DeepEqual(cur.Annotations, want.Annotations) {
		return nil
	}
	eps := c.client.CoreV1().Endpoints(ns)
	if cur == nil {
		_, err = eps.Create(ctx, want, metav1.CreateOptions{})
		if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			return nil
		}
	} else {
		_, err = eps.Update(ctx, want, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("write Endpoints %s: %w", key, err)
	}
	return nil
}

// desiredEndpoints is the Endpoints object svc should have, built on cur
// (nil when there is none yet) to keep its metadata. Pure.
func desiredEndpoints(svc *corev1.Service, cur *corev1.Endpoints, subsets []corev1.EndpointSubset, over bool) *corev1.Endpoints {
	var out *corev1.Endpoints
	if cur != nil {
		out = cur.DeepCopy()
	} else {
		out = &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: svc.Name, Namespace: svc.Namespace}}
	}
	out.Subsets = subsets
	l := map[string]string{}
	for k, v := range svc.Labels {
		l[k] = v
	}
	if endpointutil.IsServiceIPSet(svc) {
		delete(l, corev1.IsHeadlessService)
	} else {
		l[corev1.IsHeadlessService] = ""
	}
	// The EndpointSlice controller serves this Service; the mirroring
	// controller must not make slices of these Endpoints too.
	l[discoveryv1.LabelSkipMirror] = "true"
	out.Labels = l
	if over {
		if out.Annotations == nil {
			out.Annotations = map[string]string{}
		}
		out.Annotations[OverCapacityAnnotation] = truncated
	} else {
		delete(out.Annotations, OverCapacityAnnotation)
		if len(out.Annotations) == 0 {
			out.Annotations = nil
		}
	}
	return out
}
