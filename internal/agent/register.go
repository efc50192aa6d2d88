package agent

import (
	"context"
	"fmt"
	"log/slog"
	goruntime "runtime"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"k8s.io/client-go/util/retry"
)

// Registration is what a node says about itself in its Node object's
// metadata. A node never writes spec.podCIDR: the server's node IPAM
// controller does.
type Registration struct {
	NodeName string
	// Annotations are set on the Node (others on it are left alone), e.g.
	// the node's address and network backend for its peers.
	Annotations map[string]string
}

// RegisterNode creates this node's Node, or, when it exists (a node that
// registers again), sets its labels and annotations, keeping everything
// else: its podCIDR above all. It may be called before the node's runtime
// exists; Agent.Run calls it again.
func RegisterNode(ctx context.Context, client kubernetes.Interface, reg Registration) error {
	labels := map[string]string{
		corev1.LabelHostname:   reg.NodeName,
		corev1.LabelOSStable:   goruntime.GOOS,
		corev1.LabelArchStable: goruntime.GOARCH,
	}
	nodes := client.CoreV1().Nodes()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: reg.NodeName, Labels: labels, Annotations: reg.Annotations}}
	if _, err := nodes.Create(ctx, node, metav1.CreateOptions{}); err == nil {
		return nil
	} else if !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("register node %s: %w", reg.NodeName, err)
	}
	// The node IPAM controller may write the Node meanwhile: retry on a
	// conflict with the newer object.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		existing, err := nodes.Get(ctx, reg.NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		updated := existing.DeepCopy()
		if updated.Labels == nil {
			updated.Labels = map[string]string{}
		}
		for k, v := range labels {
			updated.Labels[k] = v
		}
		if len(reg.Annotations) > 0 && updated.Annotations == nil {
			updated.Annotations = map[string]string{}
		}
		for k, v := range reg.Annotations {
			updated.Annotations[k] = v
		}
		_, err = nodes.Update(ctx, updated, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("update node %s: %w", reg.NodeName, err)
	}
	return nil
}

// WaitForPodCIDR returns the node's Node once the server has given it a
// podCIDR, watching for it (and saying so in log) until then. It returns
// when ctx ends.
func WaitForPodCIDR(ctx context.Context, client kubernetes.Interface, name string, log *slog.Logger) (*corev1.Node, error) {
	nodes := client.CoreV1().Nodes()
	node, err := nodes.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get node %s: %w", name, err)
	}
	if node.Spec.PodCIDR != "" {
		return node, nil
	}
	log.Info("waiting for the server to give this node its podCIDR", "node", name)
	selector := fields.OneTermEqualSelector("metadata.name", name).String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = selector
			return nodes.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = selector
			return nodes.Watch(ctx, o)
		},
	}
	// What the list found decides first: a node deleted (or given its
	// range) before the watch began sends no event.
	var found *corev1.Node
	precondition := func(store cache.Store) (bool, error) {
		obj, exists, err := store.GetByKey(name)
		if err != nil {
			return false, err
		}
		if !exists {
			return false, fmt.Errorf("node %s was deleted while it waited for its podCIDR", name)
		}
		found = obj.(*corev1.Node)
		return found.Spec.PodCIDR != "", nil
	}
	// The wrapper tells the reflector whether client can stream a
	// watch-list (a fake clientset cannot).
	ev, err := watchtools.UntilWithSync(ctx, cache.ToListWatcherWithWatchListSemantics(lw, client), &corev1.Node{}, precondition,
		func(ev watch.Event) (bool, error) {
			n, ok := ev.Object.(*corev1.Node)
			if !ok {
				return false, nil
			}
			if ev.Type == watch.Deleted {
				return false, fmt.Errorf("node %s was deleted while it waited for its podCIDR", name)
			}
			return n.Spec.PodCIDR != "", nil
		})
	if err != nil {
		return nil, fmt.Errorf("wait for the podCIDR of node %s: %w", name, err)
	}
	if ev == nil {
		return found, nil
	}
	return ev.Object.(*corev1.Node), nil
}
