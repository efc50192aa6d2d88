package nodeipam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/peapod/peapod/internal/controller/ctrlutil"
)

// ReasonCIDRNotAvailable is the reason of the event a Node gets when the
// cluster range has no free node range left, as Kubernetes names it.
const ReasonCIDRNotAvailable = "CIDRNotAvailable"

// Options configure a Controller.
type Options struct {
	// ClusterCIDR is the IPv4 range node ranges are cut from.
	ClusterCIDR netip.Prefix
	// NodeCIDRMaskSize is the prefix length of each node range.
	NodeCIDRMaskSize int
	// Logger receives the controller's logs. Default slog.Default().
	Logger *slog.Logger
	// Recorder receives CIDRNotAvailable events.
	Recorder record.EventRecorder
}

// holder is the Node a range was given to (or found on).
type holder struct {
	uid    types.UID
	prefix netip.Prefix
}

// Controller allocates node ranges. Create it with New before the informer
// factory starts; it is safe for concurrent use.
type Controller struct {
	client   kubernetes.Interface
	nodes    corelisters.NodeLister
	synced   cache.InformerSynced
	queue    ctrlutil.Queue
	log      *slog.Logger
	recorder record.EventRecorder

	mu  sync.Mutex
	set *CIDRSet
	// held maps a Node name to the range it holds or was given and whose
	// write may not be visible yet.
	held map[string]holder
	// waiting holds the Nodes left without a range because none was free.
	waiting map[string]bool
}

// New returns a Controller registering its Node informer with factory.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, opts Options) (*Controller, error) {
	set, err := NewCIDRSet(opts.ClusterCIDR, opts.NodeCIDRMaskSize)
	if err != nil {
		return nil, fmt.Errorf("node IPAM: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Recorder == nil {
		opts.Recorder = &record.FakeRecorder{}
	}
	inf := factory.Core().V1().Nodes()
	c := &Controller{
		client:   client,
		nodes:    inf.Lister(),
		synced:   inf.Informer().HasSynced,
		queue:    ctrlutil.NewQueue("nodeipam", nil),
		log:      opts.Logger.With("controller", "nodeipam"),
		recorder: opts.Recorder,
		set:      set,
		held:     map[string]holder{},
		waiting:  map[string]bool{},
	}
	enqueue := func(obj any) {
		if n, ok := ctrlutil.Unwrap(obj).(*corev1.Node); ok {
			c.queue.Add(n.Name)
		}
	}
	if err := ctrlutil.OnChange(inf.Informer(), "node IPAM", enqueue); err != nil {
		return nil, err
	}
	return c, nil
}

// Run waits for the Node informer, occupies the ranges Nodes hold, then
// allocates with workers goroutines until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) error {
	if !ctrlutil.WaitForSync(ctx, c.queue, c.synced) {
		return nil
	}
	if err := c.occupyExisting(); err != nil {
		c.queue.ShutDown()
		return err
	}
	c.log.Info("controller started", "clusterCIDR", c.set.cluster, "nodeRanges", c.set.Size(), "inUse", c.set.InUse())
	ctrlutil.RunWorkers(ctx, c.queue, workers, c.log, c.sync)
	return nil
}

// occupyExisting marks the ranges the Nodes hold as used, before any Node
// is given one, then resumes the rotation past the highest.
func (c *Controller) occupyExisting() error {
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range nodes {
		if p, ok := c.podCIDROf(n); ok {
			c.occupyLocked(n, p)
		}
	}
	c.set.ResumeAfterOccupied()
	return nil
}

// sync brings one Node's range in line: release it if the Node is gone,
// record it if the Node holds one, else give the Node one.
func (c *Controller) sync(ctx context.Context, name string) error {
	node, err := c.nodes.Get(name)
	if apierrors.IsNotFound(err) {
		c.release(name)
		return nil
	}
	if err != nil {
		return err
	}
	if p, ok := c.podCIDROf(node); ok {
		c.mu.Lock()
		c.occupyLocked(node, p)
		c.mu.Unlock()
		return nil
	}
	if node.Spec.PodCIDR != "" || len(node.Spec.PodCIDRs) > 0 {
		return nil // a range we cannot use; podCIDROf said why
	}
	if node.DeletionTimestamp != nil {
		return nil
	}
	p, err := c.reserve(node)
	if errors.Is(err, ErrFull) {
		c.log.Warn("no node range left for node", "node", name, "clusterCIDR", c.set.cluster)
		c.recorder.Eventf(nodeRef(node), corev1.EventTypeWarning, ReasonCIDRNotAvailable, "Node %s status is now: %s", name, ReasonCIDRNotAvailable)
		return nil // retried when a range is released
	}
	if err != nil {
		return err
	}
	if err := c.patchPodCIDR(ctx, name, p); err != nil {
		if apierrors.IsNotFound(err) {
			c.release(name)
			return nil
		}
		// Kept reserved for this Node: the write may have gone through
		// (the next sync then finds it), or is retried with the same range.
		return fmt.Errorf("set podCIDR %s on node %s: %w", p, name, err)
	}
	c.log.Info("set node podCIDR", "node", name, "podCIDR", p)
	return nil
}

// reserve returns the range reserved for node by an earlier sync whose
// write is not visible yet, or the next free one.
func (c *Controller) reserve(node *corev1.Node) (netip.Prefix, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h, ok := c.held[node.Name]; ok {
		if h.uid == node.UID {
			return h.prefix, nil
		}
		// A new Node of the same name: the old one's range goes back
		// behind the never-used ones, as if its delete had been seen.
		c.releaseLocked(node.Name)
	}
	p, err := c.set.AllocateNext()
	if err != nil {
		c.waiting[node.Name] = true
		return netip.Prefix{}, err
	}
	delete(c.waiting, node.Name)
	c.held[node.Name] = holder{uid: node.UID, prefix: p}
	return p, nil
}

// occupyLocked records that node holds p. A Node whose range changed (a
// new Node of the same name, given its range by someone else) gives its
// old one back.
func (c *Controller) occupyLocked(node *corev1.Node, p netip.Prefix) {
	if h, ok := c.held[node.Name]; ok {
		if h.prefix == p {
			c.held[node.Name] = holder{uid: node.UID, prefix: p}
			return
		}
		c.releaseLocked(node.Name)
	}
	if err := c.set.Occupy(p); err != nil {
		c.log.Warn("node holds a podCIDR outside the cluster range; it is left alone", "node", node.Name, "podCIDR", p, "err", err)
		return
	}
	for other, h := range c.held {
		if other != node.Name && h.prefix.Overlaps(p) {
			c.log.Warn("nodes hold overlapping podCIDRs", "node", node.Name, "podCIDR", p, "other", other, "otherPodCIDR", h.prefix)
		}
	}
	delete(c.waiting, node.Name)
	c.held[node.Name] = holder{uid: node.UID, prefix: p}
}

// release gives back the range of a Node that is gone.
func (c *Controller) release(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.waiting, name)
	c.releaseLocked(name)
}

// releaseLocked frees name's range unless another Node holds it too, and
// wakes the Nodes waiting for one.
func (c *Controller) releaseLocked(name string) {
	h, ok := c.held[name]
	if !ok {
		return
	}
	delete(c.held, name)
	for _, other := range c.held {
		if other.prefix.Overlaps(h.prefix) {
			return
		}
	}
	if err := c.set.Release(h.prefix); err != nil {
		c.log.Warn("release node range", "node", name, "podCIDR", h.prefix, "err", err)
		return
	}
	c.log.Info("released node podCIDR", "node", name, "podCIDR", h.prefix)
	for w := range c.waiting {
		c.queue.Add(w)
	}
}

// podCIDROf returns the range node holds (podCIDRs[0], else podCIDR)
// when it lies in the cluster range; a range that does not parse or lies
// outside is logged and reported as none.
func (c *Controller) podCIDROf(node *corev1.Node) (netip.Prefix, bool) {
	s := node.Spec.PodCIDR
	if len(node.Spec.PodCIDRs) > 0 {
		s = node.Spec.PodCIDRs[0]
	}
	if s == "" {
		return netip.Prefix{}, false
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		c.log.Warn("node holds a podCIDR that does not parse; it is left alone", "node", node.Name, "podCIDR", s)
		return netip.Prefix{}, false
	}
	p = p.Masked()
	if !c.set.Contains(p) {
		c.log.Warn("node holds a podCIDR outside the cluster range; it is left alone", "node", node.Name, "podCIDR", p, "clusterCIDR", c.set.cluster)
		return netip.Prefix{}, false
	}
	return p, true
}

// patchPodCIDR writes spec.podCIDR and spec.podCIDRs as kube-controller-
// manager does, with a strategic merge patch that touches nothing else.
func (c *Controller) patchPodCIDR(ctx context.Context, name string, p netip.Prefix) error {
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{
		"podCIDR": p.String(), "podCIDRs": []string{p.String()},
	}})
	if err != nil {
		return err
	}
	_, err = c.client.CoreV1().Nodes().Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
	return err
}

func nodeRef(n *corev1.Node) *corev1.ObjectReference {
	return &corev1.ObjectReference{APIVersion: "v1", Kind: "Node", Name: n.Name, UID: n.UID}
}
