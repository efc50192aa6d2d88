package nodelifecycle

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	coordlisters "k8s.io/client-go/listers/coordination/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"

	"github.com/peapod/peapod/internal/controller/ctrlutil"
)

// LeaseNamespace holds the nodes' heartbeat Leases.
const LeaseNamespace = v1.NamespaceNodeLease

// Options configure a Controller. The zero value is usable.
type Options struct {
	// NodeMonitorGracePeriod is how long a node may go without a heartbeat
	// before it is Unknown. Default 40s.
	NodeMonitorGracePeriod time.Duration
	// DefaultTolerationSeconds is the toleration of not-ready/unreachable
	// NoExecute taints for pods that declare none. Default 300.
	DefaultTolerationSeconds int64
	// Clock times heartbeats, taints and evictions. Default: real.
	Clock clock.WithTicker
	// Logger receives the controller's logs. Default slog.Default().
	Logger *slog.Logger
	// Recorder receives NodeNotReady and TaintManagerEviction events.
	Recorder record.EventRecorder
}

// Controller monitors nodes and evicts pods. Create it with New before
// the informer factory starts; it is safe for concurrent use.
type Controller struct {
	client   kubernetes.Interface
	opts     Options
	nodes    corelisters.NodeLister
	leases   coordlisters.LeaseLister
	pods     corelisters.PodLister
	podIdx   cache.Indexer
	synced   []cache.InformerSynced
	nodeQ    ctrlutil.Queue
	podQ     ctrlutil.Queue
	log      *slog.Logger
	recorder record.EventRecorder

	mu     sync.Mutex
	probes map[string]*probe
}

// probe is the last heartbeat seen from a node, timed by our clock.
type probe struct {
	leaseRenew string             // lease spec.renewTime as seen
	heartbeat  string             // Ready lastHeartbeatTime as seen
	observed   time.Time          // our clock when either last changed
	saved      []v1.NodeCondition // conditions before we marked the node Unknown
}

const nodeNameIndex = "nodelifecycle-spec.nodeName"

// New returns a Controller registering its informers (nodes, leases, pods
// with a node-name index) with factory. The caller starts factory after New.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, opts Options) (*Controller, error) {
	if opts.NodeMonitorGracePeriod <= 0 {
		opts.NodeMonitorGracePeriod = 40 * time.Second
	}
	if opts.DefaultTolerationSeconds <= 0 {
		opts.DefaultTolerationSeconds = 300
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Recorder == nil {
		opts.Recorder = &record.FakeRecorder{}
	}
	nodeInf := factory.Core().V1().Nodes()
	leaseInf := factory.Coordination().V1().Leases()
	podInf := factory.Core().V1().Pods()
	c := &Controller{
		client:   client,
		opts:     opts,
		nodes:    nodeInf.Lister(),
		leases:   leaseInf.Lister(),
		pods:     podInf.Lister(),
		podIdx:   podInf.Informer().GetIndexer(),
		nodeQ:    ctrlutil.NewQueue("nodelifecycle-nodes", opts.Clock),
		podQ:     ctrlutil.NewQueue("nodelifecycle-evictions", opts.Clock),
		log:      opts.Logger.With("controller", "nodelifecycle"),
		recorder: opts.Recorder,
		probes:   map[string]*probe{},
	}
	if _, ok := podInf.Informer().GetIndexer().GetIndexers()[nodeNameIndex]; !ok {
		if err := podInf.Informer().AddIndexers(cache.Indexers{nodeNameIndex: func(o any) ([]string, error) {
			if p, ok := o.(*v1.Pod); ok && p.Spec.NodeName != "" {
				return []string{p.Spec.NodeName}, nil
			}
			return nil, nil
		}}); err != nil {
			return nil, fmt.Errorf("index pods by node: %w", err)
		}
	}
	nodeKey := func(o any) {
		if n, ok := ctrlutil.Unwrap(o).(*v1.Node); ok {
			c.nodeQ.Add(n.Name)
			c.enqueuePodsOn(n.Name)
		}
	}
	leaseKey := func(o any) {
		if l, ok := ctrlutil.Unwrap(o).(*coordinationv1.Lease); ok && l.Namespace == LeaseNamespace {
			c.nodeQ.Add(l.Name)
		}
	}
	podKey := func(o any) {
		if p, ok := ctrlutil.Unwrap(o).(*v1.Pod); ok && p.Spec.NodeName != "" {
			c.podQ.Add(p.Namespace + "/" + p.Name)
		}
	}
	if err := ctrlutil.OnChange(nodeInf.Informer(), "node", nodeKey); err != nil {
		return nil, err
	}
	if err := ctrlutil.OnChange(leaseInf.Informer(), "lease", leaseKey); err != nil {
		return nil, err
	}
	if err := ctrlutil.OnChange(podInf.Informer(), "pod", podKey); err != nil {
		return nil, err
	}
	c.synced = []cache.InformerSynced{nodeInf.Informer().HasSynced, leaseInf.Informer().HasSynced, podInf.Informer().HasSynced}
	return c, nil
}

// Run waits for the informers to sync, then runs workers for node
// monitoring and for evictions until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) error {
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		c.nodeQ.ShutDown()
		c.podQ.ShutDown()
		return nil
	}
	c.log.Info("controller started", "workers", workers, "gracePeriod", c.opts.NodeMonitorGracePeriod)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); ctrlutil.RunWorkers(ctx, c.nodeQ, workers, c.log, c.syncNode) }()
	go func() { defer wg.Done(); ctrlutil.RunWorkers(ctx, c.podQ, workers, c.log, c.syncPod) }()
	wg.Wait()
	return nil
}

func (c *Controller) enqueuePodsOn(node string) {
	pods, _ := c.podIdx.ByIndex(nodeNameIndex, node)
	for _, o := range pods {
		p := o.(*v1.Pod)
		c.podQ.Add(p.Namespace + "/" + p.Name)
	}
}
