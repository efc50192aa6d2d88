package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	listersnodev1 "k8s.io/client-go/listers/node/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/flowcontrol"

	"github.com/peapod/peapod/internal/agent/probe"
	"github.com/peapod/peapod/internal/runtime"
)

// Config is what an agent needs beyond its runtime.
type Config struct {
	// NodeName is the Node this agent registers and runs the pods of.
	NodeName string
	// Annotations are set on the Node at registration. The pod network's
	// network.peapod.io/ annotations are not among them: internal/nodenet
	// owns those.
	Annotations map[string]string
	// ResyncPeriod bounds how long a pod may go without a sync, as a safety
	// net under the event-driven syncs (container exits, pause deaths, probe
	// flips, API updates and back-off ends all wake a pod's worker). It is
	// jittered by up to 10%; the default is 5 minutes, so idle pods cost
	// next to nothing.
	ResyncPeriod time.Duration
	// LeaseDuration is how long the node's Lease is valid; it is renewed
	// every LeaseDuration/4.
	LeaseDuration time.Duration
	// StorageDir is where this node's local-path volumes are
	// (<data-dir>/storage); released ones are removed from it. Empty: the
	// agent removes none.
	StorageDir string
	// DaemonPort is the port of the agent's log/exec server, published in the Node.
	DaemonPort int32
	Logger     *slog.Logger
}

// Agent makes the pods bound to its node real and keeps their status true.
type Agent struct {
	cfg    Config
	client kubernetes.Interface
	rt     *runtime.Runtime
	log    *slog.Logger
	events record.EventRecorder
	probes *probe.Manager
	nodeIP string
	// node holds what the node-status loop remembers between reports; only
	// that loop (and registerNode before it starts) touches it.
	node    nodeReport
	classes listersnodev1.RuntimeClassLister
	// backoff holds the crash-loop and image-pull back-offs, keyed by pod
	// UID and container name.
	backoff *flowcontrol.Backoff

	mu      sync.Mutex
	workers map[types.UID]*podWorker
	// podStore is the informer's view of the pods bound to this node,
	// set once Run has synced it (under mu).
	podStore cache.Store
	wg       sync.WaitGroup
}

// New makes an agent for the node whose runtime is rt.
func New(client kubernetes.Interface, rt *runtime.Runtime, cfg Config) *Agent {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ResyncPeriod == 0 {
		cfg.ResyncPeriod = 5 * time.Minute
	}
	if cfg.LeaseDuration == 0 {
		cfg.LeaseDuration = 40 * time.Second
	}
	a := &Agent{
		cfg:     cfg,
		client:  client,
		rt:      rt,
		log:     cfg.Logger.With("node", cfg.NodeName),
		workers: map[types.UID]*podWorker{},
		backoff: newBackoff(),
	}
	a.probes = probe.NewManager(a.onProbeChange, probe.WithUnhealthy(a.onUnhealthy))
	return a
}

// Run registers the node, then runs the pods bound to it until ctx ends.
// The pods keep running when it returns: stopping the agent is not
// stopping the node.
func (a *Agent) Run(ctx context.Context) error {
	// One address for the node, the runtime's: what the Node reports as
	// its InternalIP is what containers read as status.hostIP and what a
	// hostNetwork pod's IP is.
	a.nodeIP = a.rt.NodeIP()

	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: a.client.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	a.events = broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kubelet", Host: a.cfg.NodeName})

	if err := a.registerNode(ctx); err != nil {
		return err
	}
	a.wg.Add(2)
	go func() { defer a.wg.Done(); a.renewLease(ctx) }()
	go func() { defer a.wg.Done(); a.reportNodeStatus(ctx) }()

	factory := informers.NewSharedInformerFactoryWithOptions(a.client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", a.cfg.NodeName).String()
		}))
	podInformer := factory.Core().V1().Pods().Informer()
	classFactory := informers.NewSharedInformerFactory(a.client, 0)
	a.classes = classFactory.Node().V1().RuntimeClasses().Lister()
	classInformer := classFactory.Node().V1().RuntimeClasses().Informer()
	volumeInformer := classFactory.Core().V1().PersistentVolumes().Informer()
	if err := a.watchLocalVolumes(ctx, volumeInformer); err != nil {
		return err
	}

	if _, err := podInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { a.dispatch(ctx, obj.(*corev1.Pod)) },
		UpdateFunc: func(_, obj any) { a.dispatch(ctx, obj.(*corev1.Pod)) },
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if pod, ok := obj.(*corev1.Pod); ok {
				a.forget(ctx, pod.UID)
			}
		},
	}); err != nil {
		return fmt.Errorf("watch pods: %w", err)
	}
	factory.Start(ctx.Done())
	classFactory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), podInformer.HasSynced, classInformer.HasSynced) {
		return ctx.Err()
	}
	a.mu.Lock()
	a.podStore = podInformer.GetStore()
	a.mu.Unlock()
	// Everything on disk whose pod the API no longer has is an orphan:
	// deleted while the agent was down.
	if err := a.removeOrphans(ctx, podInformer.GetStore()); err != nil {
		a.log.Error("remove orphaned sandboxes", "err", err)
	}
	a.log.Info("node agent running", "ip", a.nodeIP)
	<-ctx.Done()
	a.probes.Stop()
	a.stopWorkers()
	a.wg.Wait()
	return nil
}

// Pods returns the pods bound to this node as the agent last saw them in
// the API, as the kubelet's /pods lists them; none until Run has synced.
// The pods are the informer's: callers must not modify them. Safe for
// concurrent use.
func (a *Agent) Pods() []*corev1.Pod {
	a.mu.Lock()
	store := a.podStore
	a.mu.Unlock()
	if store == nil {
		return nil
	}
	var pods []*corev1.Pod
	for _, obj := range store.List() {
		if p, ok := obj.(*corev1.Pod); ok {
			pods = append(pods, p)
		}
	}
	return pods
}

// removeOrphans tears down sandboxes whose pods are gone from the API.
func (a *Agent) removeOrphans(ctx context.Context, pods cache.Store) error {
	live := map[types.UID]bool{}
	for _, obj := range pods.List() {
		live[obj.(*corev1.Pod).UID] = true
	}
	sandboxes, err := a.rt.ListSandboxes(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, sb := range sandboxes {
		if live[types.UID(sb.PodUID)] {
			continue
		}
		a.log.Info("removing orphaned sandbox", "sandbox", sb.ID, "pod", sb.PodNamespace+"/"+sb.PodName)
		if err := a.rt.RemovePodSandbox(ctx, sb.ID, 0); err != nil {
			errs = append(errs, err)
		}
		if err := a.rt.RemovePodLogs(&corev1.Pod{}); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
