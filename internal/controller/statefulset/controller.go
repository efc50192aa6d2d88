package statefulset

import (
	"context"
	"log/slog"
	"sync"

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

// Options configure a Controller. The zero value is usable.
type Options struct {
	// Logger receives the controller's logs. Default slog.Default().
	Logger *slog.Logger
	// Recorder receives SuccessfulCreate/SuccessfulDelete events.
	Recorder record.EventRecorder
	// Clock times availability (minReadySeconds). Default: real.
	Clock clock.WithTicker
}

// Controller reconciles StatefulSets. Create it with New before the
// informer factory starts; it is safe for concurrent use.
type Controller struct {
	client   kubernetes.Interface
	sets     appslisters.StatefulSetLister
	pods     corelisters.PodLister
	claims   corelisters.PersistentVolumeClaimLister
	synced   []cache.InformerSynced
	queue    ctrlutil.Queue
	clock    clock.WithTicker
	log      *slog.Logger
	recorder record.EventRecorder

	mu        sync.Mutex
	templates map[string]*v1.PodTemplateSpec // revision name → template seen
}

// New returns a Controller registering its informers (statefulsets, pods)
// with factory. The caller starts factory after New.
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
	setInf := factory.Apps().V1().StatefulSets()
	podInf := factory.Core().V1().Pods()
	claimInf := factory.Core().V1().PersistentVolumeClaims()
	c := &Controller{
		client:    client,
		sets:      setInf.Lister(),
		pods:      podInf.Lister(),
		claims:    claimInf.Lister(),
		queue:     ctrlutil.NewQueue("statefulset", opts.Clock),
		clock:     opts.Clock,
		log:       opts.Logger.With("controller", "statefulset"),
		recorder:  opts.Recorder,
		templates: map[string]*v1.PodTemplateSpec{},
	}
	if err := ctrlutil.OnChange(setInf.Informer(), "statefulset", ctrlutil.EnqueueKey(c.queue)); err != nil {
		return nil, err
	}
	if err := ctrlutil.OnEvents(podInf.Informer(), "pod",
		c.podChanged, func(o, n any) { c.podChanged(o); c.podChanged(n) }, c.podChanged); err != nil {
		return nil, err
	}
	c.synced = []cache.InformerSynced{setInf.Informer().HasSynced, podInf.Informer().HasSynced, claimInf.Informer().HasSynced}
	return c, nil
}

// Run waits for the informers to sync, then runs workers until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) error {
	ctrlutil.RunWhenSynced(ctx, c.queue, c.synced, workers, c.log, c.sync)
	return nil
}

// podChanged enqueues the StatefulSet controlling a pod, or for an orphan
// every StatefulSet whose selector matches it.
func (c *Controller) podChanged(obj any) {
	p, ok := ctrlutil.Unwrap(obj).(*v1.Pod)
	if !ok {
		return
	}
	if ref := metav1.GetControllerOf(p); ref != nil {
		if ref.Kind == kind.Kind {
			c.queue.Add(p.Namespace + "/" + ref.Name)
		}
		return
	}
	sets, _ := c.sets.StatefulSets(p.Namespace).List(labels.Everything())
	for _, s := range sets {
		sel, err := metav1.LabelSelectorAsSelector(s.Spec.Selector)
		if err == nil && !sel.Empty() && sel.Matches(labels.Set(p.Labels)) {
			c.queue.Add(p.Namespace + "/" + s.Name)
		}
	}
}

// remember records template under revision and returns the template known
// for want (nil when unknown).
func (c *Controller) remember(revision string, template *v1.PodTemplateSpec, want string) *v1.PodTemplateSpec {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.templates[revision]; !ok {
		c.templates[revision] = template.DeepCopy()
	}
	return c.templates[want]
}
