package nodenet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/peapod/peapod/internal/controller/ctrlutil"
)

// ResyncPeriod is how often Run reconciles the kernel with the Nodes even
// when no Node changed, and re-ensures the forward rules, so that routes,
// FDB entries or rules someone removed by hand come back.
const ResyncPeriod = 30 * time.Second

// Queue keys of Run's single worker: everything is one reconciliation of
// the whole peer set, so events coalesce.
const (
	keySync    = "sync"
	keyPublish = "publish"
	keyHeal    = "heal"
)

// Run keeps this node's pod network between nodes in step with the Nodes
// until ctx ends: it publishes the annotations Setup returned on this
// node's Node (a merge patch; republished if someone changes them), and
// on every Node add, update of a podCIDR or annotation, and delete it
// recomputes the peers (PeersFromNodes) and calls Sync, so a node that
// joins or leaves is reflected at once. The first Sync runs from the full
// list once the informer has synced, removing whatever is stale from
// before a restart. Every ResyncPeriod it reconciles again and re-ensures
// the forward rules. Failures are retried with Kubernetes' controller
// back-off. Node objects that cannot be peers are logged with the reason,
// once per change. n must have been Setup. Run returns ctx's error, or
// ErrClosed as soon as it finds n closed.
func Run(ctx context.Context, client kubernetes.Interface, n *Network) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	local, ok := n.Local()
	if !ok {
		return errors.New("nodenet: Run called before Setup")
	}
	self := n.s.NodeName
	log := n.log.With("node", self)

	factory := informers.NewSharedInformerFactory(client, 0)
	nodes := factory.Core().V1().Nodes()
	informer, lister := nodes.Informer(), nodes.Lister()
	q := ctrlutil.NewQueue("nodenet", nil)
	checkPublished := func(obj any) {
		if node, ok := ctrlutil.Unwrap(obj).(*corev1.Node); ok && node.Name == self && !published(node, local.Annotations) {
			q.Add(keyPublish)
		}
	}
	_, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { q.Add(keySync); checkPublished(obj) },
		UpdateFunc: func(old, cur any) {
			o, ok1 := old.(*corev1.Node)
			c, ok2 := cur.(*corev1.Node)
			if !ok1 || !ok2 || peerRelevantChange(o, c) {
				q.Add(keySync)
			}
			checkPublished(cur)
		},
		DeleteFunc: func(any) { q.Add(keySync) },
	})
	if err != nil {
		return fmt.Errorf("watch nodes: %w", err)
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	q.Add(keyPublish)
	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		q.ShutDown()
		return ctx.Err()
	}
	q.Add(keySync)
	go func() {
		t := time.NewTicker(ResyncPeriod)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				q.Add(keyHeal)
			}
		}
	}()

	var lastRejected, lastRefused string
	sync := func(ctx context.Context) error {
		all, err := lister.List(labels.Everything())
		if err != nil {
			return err
		}
		peers, rejected := PeersFromNodes(all, n.Self())
		if s := fmt.Sprint(rejected); s != lastRejected {
			lastRejected = s
			for _, r := range rejected {
				log.Warn("node is not a usable peer", "peer", r.Node, "reason", r.Reason)
			}
		}
		refused, err := n.Sync(ctx, peers)
		if s := fmt.Sprint(refused); s != lastRefused {
			lastRefused = s
			for _, r := range refused {
				log.Warn("peer refused", "peer", r.Peer.Name, "reason", r.Reason)
			}
		}
		return err
	}
	var closed bool
	ctrlutil.RunWorkers(ctx, q, 1, log, func(ctx context.Context, key string) error {
		err := func() error {
			switch key {
			case keyPublish:
				return publish(ctx, client, self, local.Annotations)
			case keyHeal:
				if err := n.EnsureForwarding(ctx); err != nil {
					return err
				}
			}
			return sync(ctx)
		}()
		if errors.Is(err, ErrClosed) {
			closed = true
			cancel()
		}
		return err
	})
	if closed {
		return ErrClosed
	}
	return ctx.Err()
}

// Local returns what Setup returned, and whether Setup has run.
func (n *Network) Local() (Local, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.local == nil {
		return Local{}, false
	}
	return *n.local, true
}

// Publish writes the annotations Setup returned (backend-type, public-ip
// and, for vxlan, vtep-mac) on this node's Node with one merge patch, so
// that a caller can have its peers route to this node before it runs any
// pod (the agent publishes before its runtime starts, so a node is never
// Ready without them). Run publishes them too, and again whenever someone
// changes them: nodenet alone owns the network.peapod.io annotations.
func Publish(ctx context.Context, client kubernetes.Interface, n *Network) error {
	local, ok := n.Local()
	if !ok {
		return errors.New("nodenet: Publish called before Setup")
	}
	return publish(ctx, client, n.s.NodeName, local.Annotations)
}

// publish merges ann into node's annotations.
func publish(ctx context.Context, client kubernetes.Interface, node string, ann map[string]string) error {
	if len(ann) == 0 {
		return nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": ann}})
	if err != nil {
		return err
	}
	if _, err := client.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("publish the pod network annotations on node %s: %w", node, err)
	}
	return nil
}

// published reports whether node carries every annotation in ann.
func published(node *corev1.Node, ann map[string]string) bool {
	for k, v := range ann {
		if node.Annotations[k] != v {
			return false
		}
	}
	return true
}

// peerRelevantChange reports whether a Node update changes what it means
// as a peer (its podCIDR or the network annotations); status heartbeats
// do not.
func peerRelevantChange(old, cur *corev1.Node) bool {
	if old.Spec.PodCIDR != cur.Spec.PodCIDR || !slices.Equal(old.Spec.PodCIDRs, cur.Spec.PodCIDRs) {
		return true
	}
	return !maps.EqualFunc(networkAnnotations(old), networkAnnotations(cur), func(a, b string) bool { return a == b })
}

func networkAnnotations(node *corev1.Node) map[string]string {
	out := map[string]string{}
	for k, v := range node.Annotations {
		if strings.HasPrefix(k, "network.peapod.io/") {
			out[k] = v
		}
	}
	return out
}
