package deployment

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
)

func withNew(old []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) []*appsv1.ReplicaSet {
	all := append([]*appsv1.ReplicaSet(nil), old...)
	if newRS != nil {
		all = append(all, newRS)
	}
	return all
}

// rolloutRolling does one step of a RollingUpdate: grow the new
// ReplicaSet within maxSurge, shrink old ones within maxUnavailable, clean
// up history once complete, and write status.
func (c *Controller) rolloutRolling(ctx context.Context, d *appsv1.Deployment, rsList []*appsv1.ReplicaSet) error {
	newRS, old, err := c.rolloutState(ctx, d, rsList, true)
	if err != nil {
		return err
	}
	all := withNew(old, newRS)
	if _, err := c.reconcileNew(ctx, all, newRS, d); err != nil {
		return err
	}
	if _, err := c.reconcileOld(ctx, all, activeRSs(old), newRS, d); err != nil {
		return err
	}
	if complete(d, &d.Status) {
		if err := c.cleanup(ctx, d, old); err != nil {
			return err
		}
	}
	return c.syncRolloutStatus(ctx, d, newRS, old)
}

// reconcileNew scales the new ReplicaSet towards replicas within maxSurge.
func (c *Controller) reconcileNew(ctx context.Context, all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet, d *appsv1.Deployment) (bool, error) {
	if *newRS.Spec.Replicas == *d.Spec.Replicas {
		return false, nil
	}
	n := *d.Spec.Replicas
	if *newRS.Spec.Replicas < n {
		n = NewRSNewReplicas(d, all, newRS)
	}
	if n == *newRS.Spec.Replicas {
		return false, nil
	}
	_, err := c.scaleRS(ctx, newRS, n, d)
	return err == nil, err
}

// reconcileOld scales old ReplicaSets down as far as maxUnavailable
// allows: unhealthy replicas first, then available ones, oldest first.
func (c *Controller) reconcileOld(ctx context.Context, all, old []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet, d *appsv1.Deployment) (bool, error) {
	if replicaCount(old) == 0 {
		return false, nil
	}
	steps := ScaleDownPlan(d, all, old, newRS)
	for rs, n := range steps {
		if _, err := c.scaleRS(ctx, rs, n, d); err != nil {
			return false, err
		}
	}
	return len(steps) > 0, nil
}

// ScaleDownPlan returns the new sizes of the old ReplicaSets for one
// rolling-update step (Kubernetes' reconcileOldReplicaSets): first it
// removes unavailable replicas of old sets (they cost no availability),
// bounded by allPods − minAvailable − unavailable new pods, then available
// ones while more than replicas − maxUnavailable pods stay available, the
// oldest ReplicaSet first. Only changed sets appear. Pure; old is reordered.
func ScaleDownPlan(d *appsv1.Deployment, all, old []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) map[*appsv1.ReplicaSet]int32 {
	plan := map[*appsv1.ReplicaSet]int32{}
	size := func(rs *appsv1.ReplicaSet) int32 {
		if n, ok := plan[rs]; ok {
			return n
		}
		return *rs.Spec.Replicas
	}
	minAvailable := *d.Spec.Replicas - MaxUnavailable(d)
	newUnavailable := int32(0)
	if newRS != nil {
		newUnavailable = *newRS.Spec.Replicas - newRS.Status.AvailableReplicas
	}
	maxScaledDown := replicaCount(all) - minAvailable - newUnavailable
	if maxScaledDown <= 0 {
		return plan
	}
	sortByCreation(old)
	cleaned := int32(0)
	for _, rs := range old {
		if cleaned >= maxScaledDown {
			break
		}
		r := *rs.Spec.Replicas
		if r == 0 || r <= rs.Status.AvailableReplicas {
			continue
		}
		down := min(maxScaledDown-cleaned, r-rs.Status.AvailableReplicas)
		plan[rs] = r - down
		cleaned += down
	}
	// A ReplicaSet just scaled down still reports its old availability
	// until its controller catches up; count at most spec.replicas so a
	// second step on the stale status cannot go below minAvailable.
	availableNow := int32(0)
	for _, rs := range all {
		if rs != nil {
			availableNow += min(rs.Status.AvailableReplicas, size(rs))
		}
	}
	if availableNow <= minAvailable {
		return plan
	}
	total := availableNow - minAvailable
	done := int32(0)
	for _, rs := range old {
		if done >= total {
			break
		}
		r := size(rs)
		if r == 0 {
			continue
		}
		down := min(r, total-done)
		plan[rs] = r - down
		done += down
	}
	return plan
}

// rolloutRecreate scales every old ReplicaSet to 0, waits until their pods
// are gone, then scales the new one up.
func (c *Controller) rolloutRecreate(ctx context.Context, d *appsv1.Deployment, rsList []*appsv1.ReplicaSet) error {
	newRS, old, err := c.rolloutState(ctx, d, rsList, false)
	if err != nil {
		return err
	}
	scaledDown := false
	for _, rs := range activeRSs(old) {
		if _, err := c.scaleRS(ctx, rs, 0, d); err != nil {
			return err
		}
		scaledDown = true
	}
	if scaledDown || c.oldPodsRunning(newRS, old, d) {
		return c.syncRolloutStatus(ctx, d, newRS, old)
	}
	if newRS == nil {
		if newRS, old, err = c.rolloutState(ctx, d, rsList, true); err != nil {
			return err
		}
	}
	if _, err := c.scaleRS(ctx, newRS, *d.Spec.Replicas, d); err != nil {
		return err
	}
	if complete(d, &d.Status) {
		if err := c.cleanup(ctx, d, old); err != nil {
			return err
		}
	}
	return c.syncRolloutStatus(ctx, d, newRS, old)
}

// oldPodsRunning reports whether any pod of an old ReplicaSet is still
// around and not terminal.
func (c *Controller) oldPodsRunning(newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet, d *appsv1.Deployment) bool {
	if statusSum(old, actual) > 0 {
		return true
	}
	oldUIDs := map[types.UID]bool{}
	for _, rs := range old {
		oldUIDs[rs.UID] = true
	}
	pods, _ := c.pods.Pods(d.Namespace).List(labels.Everything())
	for _, p := range pods {
		ref := metav1.GetControllerOf(p)
		if ref == nil || !oldUIDs[ref.UID] || (newRS != nil && ref.UID == newRS.UID) {
			continue
		}
		if p.Status.Phase != v1.PodFailed && p.Status.Phase != v1.PodSucceeded {
			return true
		}
	}
	return false
}
