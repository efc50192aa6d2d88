package nodelifecycle

import (
	"context"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition reasons and messages, as Kubernetes'.
const (
	ReasonNodeStatusUnknown      = "NodeStatusUnknown"
	MessageNodeStatusUnknown     = "Kubelet stopped posting node status."
	ReasonNodeStatusNeverUpdated = "NodeStatusNeverUpdated"
	MessageNodeNeverUpdated      = "Kubelet never posted node status."
)

// monitored are the conditions a silent node can no longer vouch for.
var monitored = []v1.NodeConditionType{v1.NodeReady, v1.NodeMemoryPressure, v1.NodeDiskPressure, v1.NodePIDPressure}

func condition(n *v1.Node, t v1.NodeConditionType) *v1.NodeCondition {
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == t {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}

// observe updates name's probe from the lease and the Ready heartbeat and
// returns when the last heartbeat was seen, plus the conditions saved when
// the node was marked Unknown (nil if none).
func (c *Controller) observe(n *v1.Node, now time.Time) (time.Time, []v1.NodeCondition) {
	renew := ""
	if l, err := c.leases.Leases(LeaseNamespace).Get(n.Name); err == nil && l.Spec.RenewTime != nil {
		// At the wire's precision, so a round trip is not a heartbeat.
		renew = l.Spec.RenewTime.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano)
	}
	hb := ""
	if r := condition(n, v1.NodeReady); r != nil {
		hb = r.LastHeartbeatTime.UTC().Format(time.RFC3339)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.probes[n.Name]
	if p == nil {
		p = &probe{leaseRenew: renew, heartbeat: hb, observed: now}
		c.probes[n.Name] = p
	}
	if renew != p.leaseRenew || hb != p.heartbeat {
		p.leaseRenew, p.heartbeat, p.observed = renew, hb, now
	}
	return p.observed, p.saved
}

// syncNode marks a silent node Unknown (and its pods not Ready), restores
// a node whose heartbeat resumed, keeps its not-ready/unreachable taints in
// line with Ready, and schedules the next look at its grace deadline.
func (c *Controller) syncNode(ctx context.Context, name string) error {
	cached, err := c.nodes.Get(name)
	if apierrors.IsNotFound(err) {
		c.mu.Lock()
		delete(c.probes, name)
		c.mu.Unlock()
		return nil
	}
	if err != nil {
		return err
	}
	n := cached.DeepCopy()
	now := c.opts.Clock.Now()
	seen, saved := c.observe(n, now)
	grace := c.opts.NodeMonitorGracePeriod
	ready := condition(n, v1.NodeReady)
	switch {
	case now.Sub(seen) > grace:
		if ready == nil || ready.Status != v1.ConditionUnknown {
			c.setProbeSaved(name, n.Status.Conditions)
			markUnknown(n, now)
			if n, err = c.client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
				return fmt.Errorf("mark node %s unknown: %w", name, err)
			}
			c.log.Info("node stopped posting status", "node", name, "lastHeartbeatSeen", seen)
			c.recorder.Eventf(&v1.ObjectReference{Kind: "Node", Name: name, UID: n.UID}, v1.EventTypeNormal, "NodeNotReady", "Node %s status is now: NodeNotReady", name)
		}
	default:
		c.nodeQ.AddAfter(name, seen.Add(grace).Sub(now)+time.Millisecond)
		if ready != nil && ready.Status == v1.ConditionUnknown && ready.Reason == ReasonNodeStatusUnknown && saved != nil {
			restore(n, saved, now)
			if n, err = c.client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
				return fmt.Errorf("restore conditions of node %s: %w", name, err)
			}
			c.setProbeSaved(name, nil)
			c.log.Info("node heartbeat resumed", "node", name)
		}
	}
	if err := c.reconcileTaints(ctx, n, now); err != nil {
		return err
	}
	if r := condition(n, v1.NodeReady); r != nil && r.Status == v1.ConditionUnknown {
		return c.markPodsNotReady(ctx, name, now)
	}
	return nil
}

func (c *Controller) setProbeSaved(name string, conds []v1.NodeCondition) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.probes[name]; p != nil {
		p.saved = nil
		for _, cd := range conds {
			p.saved = append(p.saved, *cd.DeepCopy())
		}
	}
}

// markUnknown sets the monitored conditions Unknown as Kubernetes does for
// a node that stopped posting status. Pure.
func markUnknown(n *v1.Node, now time.Time) {
	t := metav1.NewTime(now)
	if condition(n, v1.NodeReady) == nil {
		n.Status.Conditions = append(n.Status.Conditions, v1.NodeCondition{
			Type: v1.NodeReady, Status: v1.ConditionUnknown, Reason: ReasonNodeStatusNeverUpdated,
			Message: MessageNodeNeverUpdated, LastHeartbeatTime: t, LastTransitionTime: t,
		})
	}
	for _, ct := range monitored {
		cd := condition(n, ct)
		if cd == nil || cd.Status == v1.ConditionUnknown {
			continue
		}
		cd.Status, cd.Reason, cd.Message, cd.LastTransitionTime = v1.ConditionUnknown, ReasonNodeStatusUnknown, MessageNodeStatusUnknown, t
	}
}

// restore puts back the conditions markUnknown replaced. Pure.
func restore(n *v1.Node, saved []v1.NodeCondition, now time.Time) {
	for _, s := range saved {
		cd := condition(n, s.Type)
		if cd == nil || cd.Reason != ReasonNodeStatusUnknown {
			continue
		}
		hb := cd.LastHeartbeatTime
		*cd = s
		cd.LastHeartbeatTime = hb
		cd.LastTransitionTime = metav1.NewTime(now)
	}
}

// Taints the controller manages.
var (
	unreachable = []v1.Taint{{Key: v1.TaintNodeUnreachable, Effect: v1.TaintEffectNoSchedule}, {Key: v1.TaintNodeUnreachable, Effect: v1.TaintEffectNoExecute}}
	notReady    = []v1.Taint{{Key: v1.TaintNodeNotReady, Effect: v1.TaintEffectNoSchedule}, {Key: v1.TaintNodeNotReady, Effect: v1.TaintEffectNoExecute}}
)

// DesiredTaints returns taints with the not-ready/unreachable taints set
// for the node's Ready condition status (nil = no Ready condition yet);
// existing managed taints keep their timeAdded, new NoExecute ones get now.
// Pure.
func DesiredTaints(taints []v1.Taint, ready *v1.NodeCondition, now time.Time) []v1.Taint {
	var want []v1.Taint
	switch {
	case ready == nil:
	case ready.Status == v1.ConditionUnknown:
		want = unreachable
	case ready.Status == v1.ConditionFalse:
		want = notReady
	}
	managed := func(t v1.Taint) bool { return t.Key == v1.TaintNodeUnreachable || t.Key == v1.TaintNodeNotReady }
	var out []v1.Taint
	for _, t := range taints {
		keep := !managed(t)
		for _, w := range want {
			keep = keep || (t.Key == w.Key && t.Effect == w.Effect)
		}
		if keep {
			out = append(out, t)
		}
	}
	for _, w := range want {
		found := false
		for _, t := range out {
			found = found || (t.Key == w.Key && t.Effect == w.Effect)
		}
		if !found {
			if w.Effect == v1.TaintEffectNoExecute {
				ta := metav1.NewTime(now)
				w.TimeAdded = &ta
			}
			out = append(out, w)
		}
	}
	return out
}

func (c *Controller) reconcileTaints(ctx context.Context, n *v1.Node, now time.Time) error {
	want := DesiredTaints(n.Spec.Taints, condition(n, v1.NodeReady), now)
	if apiequality.Semantic.DeepEqual(want, n.Spec.Taints) || (len(want) == 0 && len(n.Spec.Taints) == 0) {
		return nil
	}
	n.Spec.Taints = want
	if _, err := c.client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update taints of node %s: %w", n.Name, err)
	}
	c.log.Info("node taints updated", "node", n.Name, "taints", len(want))
	return nil
}

// markPodsNotReady sets Ready=False on the pods of an Unknown node.
func (c *Controller) markPodsNotReady(ctx context.Context, node string, now time.Time) error {
	objs, _ := c.podIdx.ByIndex(nodeNameIndex, node)
	for _, o := range objs {
		p := o.(*v1.Pod)
		if p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed {
			continue
		}
		cp := p.DeepCopy()
		changed := false
		for i := range cp.Status.Conditions {
			cd := &cp.Status.Conditions[i]
			if cd.Type == v1.PodReady && cd.Status != v1.ConditionFalse {
				cd.Status, cd.LastTransitionTime = v1.ConditionFalse, metav1.NewTime(now)
				changed = true
			}
		}
		if !changed {
			continue
		}
		if _, err := c.client.CoreV1().Pods(cp.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("mark pod %s/%s not ready: %w", cp.Namespace, cp.Name, err)
		}
	}
	return nil
}
