package daemonset

import (
	"context"
	"errors"
	"fmt"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/peapod/peapod/internal/controller/ctrlutil"
)

// sync reconciles the DaemonSet named key (Kubernetes' syncDaemonSet).
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	cached, err := c.sets.DaemonSets(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.exp.Delete(key)
		return nil
	}
	if err != nil {
		return err
	}
	ds := cached.DeepCopy()
	sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil || sel.Empty() {
		c.recorder.Eventf(ds, v1.EventTypeWarning, "SelectingAll", "This daemon set is selecting all pods. A non-empty selector is required.")
		return nil
	}
	// A DaemonSet being deleted may have lost its history to the
	// garbage collector already: its status cannot be trusted.
	if ds.DeletionTimestamp != nil {
		return nil
	}
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		return err
	}
	cur, old, err := c.history(ctx, ds, sel)
	if err != nil {
		return fmt.Errorf("revisions of daemonset %s: %w", key, err)
	}
	hash := cur.Labels[HashLabel]

	if !c.exp.Satisfied(key) {
		// Only the counts: this round has not acted on the spec.
		return c.writeStatus(ctx, ds, sel, nodes, hash, false)
	}
	err = c.update(ctx, key, ds, sel, nodes, hash, old)
	if serr := c.writeStatus(ctx, ds, sel, nodes, hash, true); serr != nil && err == nil {
		err = serr
	}
	return err
}

// claimer adopts and releases ds's objects (pods, revisions) through
// patch, rechecking ds uncached before the first adoption.
func (c *Controller) claimer(ds *appsv1.DaemonSet, sel labels.Selector, patch func(ctx context.Context, ns, name string, data []byte) error) *ctrlutil.Claimer {
	return &ctrlutil.Claimer{
		Owner: ds, GVK: kind, Selector: sel, Patch: patch,
		CanAdopt: func(ctx context.Context) error {
			fresh, err := c.client.AppsV1().DaemonSets(ds.Namespace).Get(ctx, ds.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if fresh.UID != ds.UID || fresh.DeletionTimestamp != nil {
				return fmt.Errorf("daemonset %s/%s is gone or being deleted", ds.Namespace, ds.Name)
			}
			return nil
		},
	}
}

// podsByNode claims ds's pods and groups them by the node they are for.
func (c *Controller) podsByNode(ctx context.Context, ds *appsv1.DaemonSet, sel labels.Selector) (map[string][]*v1.Pod, error) {
	all, err := c.pods.Pods(ds.Namespace).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	pods, err := ctrlutil.Claim(ctx, c.claimer(ds, sel, func(ctx context.Context, ns, name string, data []byte) error {
		_, err := c.client.CoreV1().Pods(ns).Patch(ctx, name, types.StrategicMergePatchType, data, metav1.PatchOptions{})
		return err
	}), all)
	if err != nil {
		return nil, err
	}
	byNode := map[string][]*v1.Pod{}
	for _, p := range pods {
		n, err := TargetNode(p)
		if err != nil {
			continue
		}
		byNode[n] = append(byNode[n], p)
	}
	return byNode, nil
}

// update runs manage, then a rolling update round once the manage
// round's writes are observed, then trims the history.
func (c *Controller) update(ctx context.Context, key string, ds *appsv1.DaemonSet, sel labels.Selector, nodes []*v1.Node, hash string, old []*appsv1.ControllerRevision) error {
	byNode, err := c.podsByNode(ctx, ds, sel)
	if err != nil {
		return err
	}
	if err := c.manage(ctx, key, ds, nodes, byNode, hash); err != nil {
		return err
	}
	if c.exp.Satisfied(key) && ds.Spec.UpdateStrategy.Type == appsv1.RollingUpdateDaemonSetStrategyType {
		deletes, creates := rollingUpdate(ds, nodes, byNode, hash, c.clock.Now())
		if err := c.syncNodes(ctx, key, ds, deletes, creates, hash); err != nil {
			return err
		}
	}
	return c.cleanupHistory(ctx, ds, byNode, old)
}

// manage creates the pods nodes lack and deletes those that must go
// (Kubernetes' manage).
func (c *Controller) manage(ctx context.Context, key string, ds *appsv1.DaemonSet, nodes []*v1.Node, byNode map[string][]*v1.Pod, hash string) error {
	now := c.clock.Now()
	var creates, deletes []string
	exists := map[string]bool{}
	for _, n := range nodes {
		exists[n.Name] = true
		plan := planNode(ds, n, byNode[n.Name], hash, now)
		if plan.create {
			creates = append(creates, n.Name)
		}
		for _, p := range plan.delete {
			if p.Status.Phase == v1.PodSucceeded {
				c.recorder.Eventf(ds, v1.EventTypeNormal, "SucceededDaemonPod", "Found succeeded daemon pod %s/%s on node %s, will try to delete it", p.Namespace, p.Name, n.Name)
			}
			deletes = append(deletes, p.Name)
		}
		for _, p := range plan.failed {
			bk := fmt.Sprintf("%s/%d/%s", ds.UID, ds.Status.ObservedGeneration, n.Name)
			if c.failed.IsInBackOffSinceUpdate(bk, now) {
				c.queue.AddAfter(key, c.failed.Get(bk))
				continue
			}
			c.failed.Next(bk, now)
			c.recorder.Eventf(ds, v1.EventTypeWarning, "FailedDaemonPod", "Found failed daemon pod %s/%s on node %s, will try to kill it", p.Namespace, p.Name, n.Name)
			deletes = append(deletes, p.Name)
		}
	}
	// An unscheduled pod pinned to a node that is gone will never be
	// bound, and the pod garbage collector only takes bound ones.
	for n, pods := range byNode {
		if exists[n] {
			continue
		}
		for _, p := range pods {
			if p.Spec.NodeName == "" && p.DeletionTimestamp == nil {
				deletes = append(deletes, p.Name)
			}
		}
	}
	return c.syncNodes(ctx, key, ds, deletes, creates, hash)
}

// syncNodes deletes the named pods and creates one pod for each node,
// at most BurstReplicas of each, creates in slow-start batches, under
// expectations.
func (c *Controller) syncNodes(ctx context.Context, key string, ds *appsv1.DaemonSet, deletes, creates []string, hash string) error {
	creates = creates[:min(len(creates), BurstReplicas)]
	deletes = deletes[:min(len(deletes), BurstReplicas)]
	if len(creates) == 0 && len(deletes) == 0 {
		return nil
	}
	var victims []*v1.Pod
	for _, name := range deletes {
		p, err := c.pods.Pods(ds.Namespace).Get(name)
		if err != nil {
			continue
		}
		victims = append(victims, p)
	}
	uids := make([]types.UID, len(victims))
	for i, p := range victims {
		uids[i] = p.UID
	}
	c.exp.ExpectCreations(key, len(creates))
	c.exp.ExpectDeletions(key, uids...)

	var errs []error
	template := podTemplate(ds, hash)
	ref := ctrlutil.NewControllerRef(ds, kind)
	var next sync.Mutex
	i := 0
	ok, err := ctrlutil.SlowStartBatch(len(creates), ctrlutil.SlowStartInitialBatchSize, func() error {
		next.Lock()
		node := creates[i]
		i++
		next.Unlock()
		t := template.DeepCopy()
		t.Spec.Affinity = PinToNode(t.Spec.Affinity, node)
		pod := ctrlutil.PodFromTemplate(t, ds.Namespace, ds.Name+"-", ref)
		created, err := c.client.CoreV1().Pods(ds.Namespace).Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			c.exp.CreationObserved(key) // never to be observed
			if apierrors.HasStatusCause(err, v1.NamespaceTerminatingCause) {
				return nil
			}
			c.recorder.Eventf(ds, v1.EventTypeWarning, "FailedCreate", "Error creating: %v", err)
			return fmt.Errorf("create pod for node %s: %w", node, err)
		}
		c.recorder.Eventf(ds, v1.EventTypeNormal, "SuccessfulCreate", "Created pod: %s", created.Name)
		return nil
	})
	// Creates never attempted will never be observed either.
	for range len(creates) - ok - boolInt(err != nil) {
		c.exp.CreationObserved(key)
	}
	if err != nil {
		errs = append(errs, err)
	}

	var wg sync.WaitGroup
	delErrs := make([]error, len(victims))
	for i, p := range victims {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
			if err != nil {
				c.exp.DeletionObserved(key, p.UID)
				if !apierrors.IsNotFound(err) {
					c.recorder.Eventf(ds, v1.EventTypeWarning, "FailedDelete", "Error deleting: %v", err)
					delErrs[i] = fmt.Errorf("delete pod %s: %w", p.Name, err)
				}
				return
			}
			c.recorder.Eventf(ds, v1.EventTypeNormal, "SuccessfulDelete", "Deleted pod: %s", p.Name)
		}()
	}
	wg.Wait()
	if err := errors.Join(append(errs, delErrs...)...); err != nil {
		return fmt.Errorf("daemonset %s: %w", key, err)
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// writeStatus counts ds's pods afresh and stores the status when it
// changed; observedGeneration is raised only when this round acted on
// the spec.
func (c *Controller) writeStatus(ctx context.Context, ds *appsv1.DaemonSet, sel labels.Selector, nodes []*v1.Node, hash string, observed bool) error {
	byNode, err := c.podsByNode(ctx, ds, sel)
	if err != nil {
		return err
	}
	st, wait := computeStatus(ds, nodes, byNode, hash, c.clock.Now())
	if observed {
		st.ObservedGeneration = ds.Generation
	}
	if wait > 0 {
		c.queue.AddAfter(ds.Namespace+"/"+ds.Name, wait)
	}
	if apiequality.Semantic.DeepEqual(ds.Status, st) {
		return nil
	}
	ds.Status = st
	if _, err := c.client.AppsV1().DaemonSets(ds.Namespace).UpdateStatus(ctx, ds, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("update status of daemonset %s/%s: %w", ds.Namespace, ds.Name, err)
	}
	return nil
}
