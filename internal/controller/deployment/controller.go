package deployment

import (
	"context"
	"log/slog"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"

	"github.com/peapod/peapod/internal/controller/ctrlutil"
)

var deploymentKind = appsv1.SchemeGroupVersion.WithKind("Deployment")

// Options configure a Controller. The zero value is usable.
type Options struct {
	// Logger receives the controller's logs. Default slog.Default().
	Logger *slog.Logger
	// Recorder receives ScalingReplicaSet events. Default: none.
	Recorder record.EventRecorder
	// Clock times conditions and the progress deadline. Default: real.
	Clock clock.WithTicker
}

// Controller reconciles Deployments. Create it with New before the
// informer factory starts; it is safe for concurrent use.
type Controller struct {
	client   kubernetes.Interface
	dLister  appslisters.DeploymentLister
	rsLister appslisters.ReplicaSetLister
	pods     corelisters.PodLister
	synced   []cache.InformerSynced
	queue    ctrlutil.Queue
	clock    clock.WithTicker
	log      *slog.Logger
	recorder record.EventRecorder
}

// New returns a Controller registering its informers (deployments,
// replicasets, pods) with factory. The caller starts factory after New.
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
	dInf := factory.Apps().V1().Deployments()
	rsInf := factory.Apps().V1().ReplicaSets()
	podInf := factory.Core().V1().Pods()
	c := &Controller{
		client:   client,
		dLister:  dInf.Lister(),
		rsLister: rsInf.Lister(),
		pods:     podInf.Lister(),
		queue:    ctrlutil.NewQueue("deployment", opts.Clock),
		clock:    opts.Clock,
		log:      opts.Logger.With("controller", "deployment"),
		recorder: opts.Recorder,
	}
	if err := ctrlutil.OnChange(dInf.Informer(), "deployment", ctrlutil.EnqueueKey(c.queue)); err != nil {
		return nil, err
	}
	if err := ctrlutil.OnEvents(rsInf.Informer(), "replicaset",
		c.rsChanged, func(o, n any) { c.rsChanged(o); c.rsChanged(n) }, c.rsChanged); err != nil {
		return nil, err
	}
	if err := ctrlutil.OnEvents(podInf.Informer(), "pod", nil, nil, c.podDeleted); err != nil {
		return nil, err
	}
	c.synced = []cache.InformerSynced{dInf.Informer().HasSynced, rsInf.Informer().HasSynced, podInf.Informer().HasSynced}
	return c, nil
}

// Run waits for the informers to sync, then runs workers until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) error {
	ctrlutil.RunWhenSynced(ctx, c.queue, c.synced, workers, c.log, c.sync)
	return nil
}

// rsChanged enqueues the Deployment owning rs, or for an orphan every
// Deployment whose selector matches it.
func (c *Controller) rsChanged(obj any) {
	rs, ok := ctrlutil.Unwrap(obj).(*appsv1.ReplicaSet)
	if !ok {
		return
	}
	if ref := metav1.GetControllerOf(rs); ref != nil {
		if ref.Kind == deploymentKind.Kind {
			c.queue.Add(rs.Namespace + "/" + ref.Name)
		}
		return
	}
	ds, _ := c.dLister.Deployments(rs.Namespace).List(labels.Everything())
	for _, d := range ds {
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err == nil && !sel.Empty() && sel.Matches(labels.Set(rs.Labels)) {
			c.queue.Add(d.Namespace + "/" + d.Name)
		}
	}
}

// podDeleted wakes a Recreate Deployment waiting for its old pods to go.
func (c *Controller) podDeleted(obj any) {
	p, ok := ctrlutil.Unwrap(obj).(*v1.Pod)
	if !ok {
		return
	}
	ref := metav1.GetControllerOf(p)
	if ref == nil || ref.Kind != "ReplicaSet" {
		return
	}
	rs, err := c.rsLister.ReplicaSets(p.Namespace).Get(ref.Name)
	if err != nil || rs.UID != ref.UID {
		return
	}
	if dref := metav1.GetControllerOf(rs); dref != nil && dref.Kind == deploymentKind.Kind {
		if d, err := c.dLister.Deployments(p.Namespace).Get(dref.Name); err == nil && d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
			c.queue.Add(d.Namespace + "/" + d.Name)
		}
	}
}
