package podgc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"

	"github.com/peapod/peapod/internal/controller/ctrlutil"
)

// DefaultQuarantine is how long a node must be missing before its pods
// are collected (kube-controller-manager's quarantineTime).
const DefaultQuarantine = 40 * time.Second

// nodeNameIndex indexes pods by spec.nodeName.
const nodeNameIndex = "podgc-node-name"

// Options configure a Controller. The zero value is usable.
type Options struct {
	// Quarantine: default DefaultQuarantine.
	Quarantine time.Duration
	// Logger receives the controller's logs. Default slog.Default().
	Logger *slog.Logger
	// Clock times the quarantine. Default: real.
	Clock clock.WithTicker
}

// Controller collects the pods of deleted nodes. Create it with New
// before the informer factory starts; it is safe for concurrent use. Its
// queue holds node names.
type Controller struct {
	client     kubernetes.Interface
	nodes      corelisters.NodeLister
	podIndex   cache.Indexer
	synced     []cache.InformerSynced
	queue      ctrlutil.Queue
	quarantine time.Duration
	log        *slog.Logger
}

// New returns a Controller registering its informers (pods, nodes) with
// factory. The caller starts factory after New.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, opts Options) (*Controller, error) {
	if opts.Quarantine <= 0 {
		opts.Quarantine = DefaultQuarantine
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	podInf := factory.Core().V1().Pods().Informer()
	nodeInf := factory.Core().V1().Nodes()
	if err := podInf.AddIndexers(cache.Indexers{nodeNameIndex: func(obj any) ([]string, error) {
		if p, ok := obj.(*v1.Pod); ok && p.Spec.NodeName != "" {
			return []string{p.Spec.NodeName}, nil
		}
		return nil, nil
	}}); err != nil {
		return nil, fmt.Errorf("add pod node index: %w", err)
	}
	c := &Controller{
		client:     client,
		nodes:      nodeInf.Lister(),
		podIndex:   podInf.GetIndexer(),
		queue:      ctrlutil.NewQueue("podgc", opts.Clock),
		quarantine: opts.Quarantine,
		log:        opts.Logger.With("controller", "podgc"),
	}
	if err := ctrlutil.OnEvents(podInf, "pod", c.podSeen, func(_, n any) { c.podSeen(n) }, nil); err != nil {
		return nil, err
	}
	if err := ctrlutil.OnEvents(nodeInf.Informer(), "node", nil, nil, func(obj any) {
		if k := ctrlutil.KeyOf(obj); k != "" {
			c.queue.AddAfter(k, c.quarantine)
		}
	}); err != nil {
		return nil, err
	}
	c.synced = []cache.InformerSynced{podInf.HasSynced, nodeInf.Informer().HasSynced}
	return c, nil
}

// Run waits for the informers to sync, then runs workers until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) error {
	ctrlutil.RunWhenSynced(ctx, c.queue, c.synced, workers, c.log, c.sync)
	return nil
}

// podSeen puts a pod's node in quarantine when the node is unknown.
func (c *Controller) podSeen(obj any) {
	p, ok := obj.(*v1.Pod)
	if !ok || p.Spec.NodeName == "" {
		return
	}
	if _, err := c.nodes.Get(p.Spec.NodeName); apierrors.IsNotFound(err) {
		c.queue.AddAfter(p.Spec.NodeName, c.quarantine)
	}
}

// sync collects the pods of node name if the node is still gone.
func (c *Controller) sync(ctx context.Context, name string) error {
	if _, err := c.nodes.Get(name); err == nil {
		return nil
	}
	objs, err := c.podIndex.ByIndex(nodeNameIndex, name)
	if err != nil || len(objs) == 0 {
		return err
	}
	if _, err := c.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		return err // back (nil), or unknown: retried
	}
	var errs []error
	for _, o := range objs {
		p := o.(*v1.Pod)
		c.log.Info("deleting pod of a node that no longer exists", "pod", p.Namespace+"/"+p.Name, "node", name)
		if err := c.collect(ctx, p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// collect marks p Failed with the DisruptionTarget condition, unless it
// is terminal already, and deletes it at once.
func (c *Controller) collect(ctx context.Context, p *v1.Pod) error {
	if p.Status.Phase != v1.PodSucceeded && p.Status.Phase != v1.PodFailed {
		patch, _ := json.Marshal(map[string]any{
			"metadata": map[string]any{"uid": p.UID},
			"status": map[string]any{
				"phase": v1.PodFailed,
				"conditions": []v1.PodCondition{{Type: v1.DisruptionTarget, Status: v1.ConditionTrue, Reason: "DeletionByPodGC",
					Message: "PodGC: node no longer exists", LastTransitionTime: metav1.Now()}},
			},
		})
		_, err := c.client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("mark pod %s/%s failed: %w", p.Namespace, p.Name, err)
		}
	}
	zero := int64(0)
	err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &p.UID}})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	return nil
}
