package nodelifecycle

import (
	"context"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// Tolerates reports whether toleration t matches taint (key, value with
// Equal or any with Exists, effect or all effects). Pure.
func Tolerates(t v1.Toleration, taint v1.Taint) bool {
	if t.Effect != "" && t.Effect != taint.Effect {
		return false
	}
	if t.Key != "" && t.Key != taint.Key {
		return false
	}
	switch t.Operator {
	case v1.TolerationOpExists:
		return true
	case "", v1.TolerationOpEqual:
		return t.Key != "" && t.Value == taint.Value
	}
	return false
}

// EvictionTime returns when pod p must leave a node with taints: each
// NoExecute taint not tolerated evicts at its timeAdded (not-ready and
// unreachable taints instead get defaultSeconds, as the
// DefaultTolerationSeconds admission plugin would have added); tolerated
// ones evict timeAdded + the smallest tolerationSeconds among the matching
// tolerations, or never when one has none. ok is false when p may stay
// forever. A taint without timeAdded counts from now. Pure.
func EvictionTime(p *v1.Pod, taints []v1.Taint, defaultSeconds int64, now time.Time) (at time.Time, ok bool) {
	for _, taint := range taints {
		if taint.Effect != v1.TaintEffectNoExecute {
			continue
		}
		added := now
		if taint.TimeAdded != nil {
			added = taint.TimeAdded.Time
		}
		var seconds *int64
		forever, matched := false, false
		for _, tol := range p.Spec.Tolerations {
			if !Tolerates(tol, taint) {
				continue
			}
			matched = true
			if tol.TolerationSeconds == nil {
				forever = true
				break
			}
			if seconds == nil || *tol.TolerationSeconds < *seconds {
				s := max(*tol.TolerationSeconds, 0)
				seconds = &s
			}
		}
		if forever {
			continue
		}
		if !matched {
			s := int64(0)
			if taint.Key == v1.TaintNodeNotReady || taint.Key == v1.TaintNodeUnreachable {
				s = defaultSeconds
			}
			seconds = &s
		}
		t := added.Add(time.Duration(*seconds) * time.Second)
		if !ok || t.Before(at) {
			at, ok = t, true
		}
	}
	return at, ok
}

// syncPod deletes a pod whose NoExecute toleration ran out, or schedules
// itself for that moment.
func (c *Controller) syncPod(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	p, err := c.pods.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if p.Spec.NodeName == "" || p.DeletionTimestamp != nil || p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed {
		return nil
	}
	node, err := c.nodes.Get(p.Spec.NodeName)
	if err != nil {
		return nil // node gone: its pods are the pod GC's business
	}
	now := c.opts.Clock.Now()
	at, ok := EvictionTime(p, node.Spec.Taints, c.opts.DefaultTolerationSeconds, now)
	if !ok {
		return nil
	}
	if at.After(now) {
		c.podQ.AddAfter(key, at.Sub(now))
		return nil
	}
	uid := p.UID
	err = c.client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("evict pod %s from node %s: %w", key, p.Spec.NodeName, err)
	}
	c.log.Info("evicted pod from tainted node", "pod", key, "node", p.Spec.NodeName)
	c.recorder.Eventf(p, v1.EventTypeNormal, "TaintManagerEviction", "Marking for deletion Pod %s", key)
	return nil
}
