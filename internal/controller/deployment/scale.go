package deployment

import (
	"context"
	"fmt"
	"math"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// isScalingEvent reports whether d's replicas differ from the desired
// replicas annotated on an active ReplicaSet (a `kubectl scale`, not a
// template change).
func (c *Controller) isScalingEvent(ctx context.Context, d *appsv1.Deployment, rsList []*appsv1.ReplicaSet) (bool, error) {
	newRS, old, err := c.rolloutState(ctx, d, rsList, false)
	if err != nil {
		return false, err
	}
	for _, rs := range activeRSs(append(old, newRS)) {
		if desired, ok := intAnnotation(rs, DesiredReplicasAnnotation); ok && desired != *d.Spec.Replicas {
			return true, nil
		}
	}
	return false, nil
}

// syncScale handles paused Deployments and scaling events: resize the
// ReplicaSets proportionally, clean up history when paused, write status.
func (c *Controller) syncScale(ctx context.Context, d *appsv1.Deployment, rsList []*appsv1.ReplicaSet) error {
	newRS, old, err := c.rolloutState(ctx, d, rsList, false)
	if err != nil {
		return err
	}
	if err := c.scale(ctx, d, newRS, old); err != nil {
		return err
	}
	if d.Spec.Paused {
		if err := c.cleanup(ctx, d, old); err != nil {
			return err
		}
	}
	return c.syncStatusOnly(ctx, d, newRS, old)
}

// findActiveOrLatest returns the only active ReplicaSet, or the newest
// when none is active, or nil when several are.
func findActiveOrLatest(newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet) *appsv1.ReplicaSet {
	if newRS == nil && len(old) == 0 {
		return nil
	}
	sorted := append([]*appsv1.ReplicaSet(nil), old...)
	sortByCreation(sorted)
	active := activeRSs(append(append([]*appsv1.ReplicaSet(nil), old...), newRS))
	switch len(active) {
	case 0:
		if newRS != nil {
			return newRS
		}
		return sorted[len(sorted)-1]
	case 1:
		return active[0]
	}
	return nil
}

func saturated(d *appsv1.Deployment, rs *appsv1.ReplicaSet) bool {
	if rs == nil {
		return false
	}
	desired, ok := intAnnotation(rs, DesiredReplicasAnnotation)
	return ok && desired == *d.Spec.Replicas && *rs.Spec.Replicas == *d.Spec.Replicas && rs.Status.AvailableReplicas == *d.Spec.Replicas
}

// scale resizes ReplicaSets after a change of d's replicas; with a rollout
// in flight the change is split proportionally (Kubernetes' scale()).
func (c *Controller) scale(ctx context.Context, d *appsv1.Deployment, newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet) error {
	if rs := findActiveOrLatest(newRS, old); rs != nil {
		if *rs.Spec.Replicas == *d.Spec.Replicas {
			return nil
		}
		_, err := c.scaleRS(ctx, rs, *d.Spec.Replicas, d)
		return err
	}
	if saturated(d, newRS) {
		for _, rs := range activeRSs(old) {
			if _, err := c.scaleRS(ctx, rs, 0, d); err != nil {
				return err
			}
		}
		return nil
	}
	if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType {
		return nil
	}
	all := activeRSs(append(append([]*appsv1.ReplicaSet(nil), old...), newRS))
	sizes := ProportionalSizes(d, all)
	for i, rs := range all {
		if _, err := c.scaleRS(ctx, rs, sizes[i], d); err != nil {
			return err
		}
	}
	return nil
}

// ProportionalSizes spreads the difference between replicas+maxSurge and
// the active ReplicaSets' sizes over them in proportion to their size
// (Kubernetes' GetProportion with the max-replicas annotation), the
// leftover going to the largest (newest on ties) when growing or the
// largest (oldest on ties) when shrinking. all is reordered. Pure.
func ProportionalSizes(d *appsv1.Deployment, all []*appsv1.ReplicaSet) []int32 {
	allowed := int32(0)
	if *d.Spec.Replicas > 0 {
		allowed = *d.Spec.Replicas + MaxSurge(d)
	}
	toAdd := allowed - replicaCount(all)
	sort.SliceStable(all, func(i, j int) bool {
		a, b := all[i], all[j]
		if *a.Spec.Replicas != *b.Spec.Replicas {
			return *a.Spec.Replicas > *b.Spec.Replicas
		}
		if toAdd > 0 {
			return b.CreationTimestamp.Before(&a.CreationTimestamp)
		}
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	})
	sizes := make([]int32, len(all))
	added := int32(0)
	for i, rs := range all {
		sizes[i] = *rs.Spec.Replicas
		if toAdd == 0 || *rs.Spec.Replicas == 0 || toAdd == added {
			continue
		}
		var fraction int32
		if *d.Spec.Replicas == 0 {
			fraction = -*rs.Spec.Replicas
		} else {
			annotated, ok := intAnnotation(rs, MaxReplicasAnnotation)
			if !ok || annotated == 0 {
				annotated = d.Status.Replicas
			}
			if annotated == 0 {
				continue
			}
			fraction = int32(math.Round(float64(*rs.Spec.Replicas)*float64(allowed)/float64(annotated))) - *rs.Spec.Replicas
		}
		p := fraction
		if toAdd > 0 {
			p = min(fraction, toAdd-added)
		} else {
			p = max(fraction, toAdd-added)
		}
		sizes[i] += p
		added += p
	}
	if toAdd != 0 && len(all) > 0 {
		sizes[0] = max(sizes[0]+toAdd-added, 0)
	}
	return sizes
}

// scaleRS sets rs's replicas (and the desired/max annotations) and
// returns the updated object.
func (c *Controller) scaleRS(ctx context.Context, rs *appsv1.ReplicaSet, n int32, d *appsv1.Deployment) (*appsv1.ReplicaSet, error) {
	cp := rs.DeepCopy()
	sizeChanged := *rs.Spec.Replicas != n
	annChanged := setReplicasAnnotations(cp, *d.Spec.Replicas, *d.Spec.Replicas+MaxSurge(d))
	if !sizeChanged && !annChanged {
		return rs, nil
	}
	from := *rs.Spec.Replicas
	cp.Spec.Replicas = &n
	updated, err := c.client.AppsV1().ReplicaSets(cp.Namespace).Update(ctx, cp, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("scale replicaset %s/%s to %d: %w", cp.Namespace, cp.Name, n, err)
	}
	if sizeChanged {
		dir := "up"
		if n < from {
			dir = "down"
		}
		c.recorder.Eventf(d, v1.EventTypeNormal, "ScalingReplicaSet", "Scaled %s replica set %s from %d to %d", dir, cp.Name, from, n)
	}
	*rs = *updated
	return rs, nil
}

// cleanup deletes the oldest fully scaled-down ReplicaSets beyond
// revisionHistoryLimit.
func (c *Controller) cleanup(ctx context.Context, d *appsv1.Deployment, old []*appsv1.ReplicaSet) error {
	if d.Spec.RevisionHistoryLimit == nil {
		return nil
	}
	var alive []*appsv1.ReplicaSet
	for _, rs := range old {
		if rs.DeletionTimestamp == nil {
			alive = append(alive, rs)
		}
	}
	diff := len(alive) - int(*d.Spec.RevisionHistoryLimit)
	if diff <= 0 {
		return nil
	}
	sort.SliceStable(alive, func(i, j int) bool {
		ri, rj := Revision(alive[i]), Revision(alive[j])
		if ri != rj {
			return ri < rj
		}
		return alive[i].CreationTimestamp.Before(&alive[j].CreationTimestamp)
	})
	for _, rs := range alive[:diff] {
		if rs.Status.Replicas != 0 || *rs.Spec.Replicas != 0 || rs.Generation > rs.Status.ObservedGeneration {
			continue
		}
		err := c.client.AppsV1().ReplicaSets(rs.Namespace).Delete(ctx, rs.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &rs.UID}})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete old replicaset %s/%s: %w", rs.Namespace, rs.Name, err)
		}
	}
	return nil
}
