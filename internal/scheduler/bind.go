package scheduler

import (
	"context"
	"errors"
	"fmt"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

// scheduleOne takes the next pending pod, decides its node and starts its
// bind. It returns false once the queue is shut down.
func (s *Scheduler) scheduleOne(ctx context.Context) bool {
	key, cyc, ok := s.queue.pop()
	if !ok {
		return false
	}
	defer s.queue.done(key)
	ns, name := splitKey(key)
	pod, err := s.pending.Pods(ns).Get(name)
	if err != nil || pod.Spec.NodeName != "" || pod.DeletionTimestamp != nil || !s.responsible(pod) || gated(pod) {
		s.queue.succeeded(key) // gone, bound, not ours, or gated until its gates are removed
		return true
	}
	if s.cache.isPlaced(pod) {
		return true // bound, or its bind is in flight
	}
	plan := s.volumes.plan(pod)
	if plan.Unschedulable != "" {
		msg := volumeUnschedulable(plan.Unschedulable, s.cache.nodeCount())
		s.queue.park(key, cyc, parked{})
		s.log.Debug("pod unschedulable", "pod", key, "reason", msg)
		s.async(func() { s.recordUnschedulable(ctx, pod, msg) })
		return true
	}
	node, err := s.cache.scheduleAndAssume(plan.Pod)
	if err != nil {
		msg := err.Error()
		var fitErr *FitError
		if !errors.As(err, &fitErr) && !errors.Is(err, ErrNoNodesAvailable) {
			msg = fmt.Sprintf("scheduling pod %s: %v", key, err)
		}
		s.queue.park(key, cyc, parked{wantsPodChanges: selectsPlacedPods(pod)})
		s.log.Debug("pod unschedulable", "pod", key, "reason", msg)
		s.async(func() { s.recordUnschedulable(ctx, pod, msg) })
		return true
	}
	s.async(func() { s.bind(ctx, pod, node, plan.Delayed) })
	return true
}

// gated reports whether the pod still has scheduling gates: the scheduler
// leaves it alone (kube-scheduler's SchedulingGates pre-enqueue check)
// until they are all removed.
func gated(pod *v1.Pod) bool { return len(pod.Spec.SchedulingGates) > 0 }

// selectsPlacedPods reports whether the pod's own required pod affinity,
// anti-affinity or DoNotSchedule topology spread constraints count pods
// already placed, so that a bound pod appearing or relabelled may let it
// fit.
func selectsPlacedPods(pod *v1.Pod) bool {
	for _, c := range pod.Spec.TopologySpreadConstraints {
		if c.WhenUnsatisfiable == v1.DoNotSchedule {
			return true
		}
	}
	a := pod.Spec.Affinity
	if a == nil {
		return false
	}
	return (a.PodAffinity != nil && len(a.PodAffinity.RequiredDuringSchedulingIgnoredDuringExecution) > 0) ||
		(a.PodAntiAffinity != nil && len(a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) > 0)
}

// async runs f on a bind worker, waiting for a free one.
func (s *Scheduler) async(f func()) {
	s.bindSem <- struct{}{}
	s.binds.Add(1)
	go func() {
		defer func() { <-s.bindSem; s.binds.Done() }()
		f()
	}()
}

// bind posts the pod's Binding. On failure the assumption is undone and
// the pod retried after its backoff, unless it is gone or was bound by
// someone else.
func (s *Scheduler) bind(ctx context.Context, pod *v1.Pod, node string, delayed []*v1.PersistentVolumeClaim) {
	key := queueKey(pod)
	binding := &v1.Binding{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
		Target:     v1.ObjectReference{Kind: "Node", Name: node},
	}
	var err error
	if len(delayed) > 0 {
		err = s.bindVolumes(ctx, delayed, node)
	}
	if err == nil {
		err = s.client.CoreV1().Pods(pod.Namespace).Bind(ctx, binding, metav1.CreateOptions{})
	}
	if err != nil {
		s.cache.forget(pod)
		s.queue.moveAll(false) // what it held is free again
		switch {
		case apierrors.IsNotFound(err) || apierrors.IsConflict(err) || ctx.Err() != nil:
			s.queue.succeeded(key)
		default:
			s.log.Warn("bind failed", "pod", key, "node", node, "err", err)
			s.recorder.Eventf(pod, v1.EventTypeWarning, "FailedScheduling", "Binding rejected: %v", err)
			s.queue.retry(key)
		}
		return
	}
	s.cache.finishBinding(pod, s.opts.AssumedPodTTL, func() { s.queue.moveAll(false) })
	s.queue.succeeded(key)
	s.recorder.Eventf(pod, v1.EventTypeNormal, "Scheduled", "Successfully assigned %s/%s to %s", pod.Namespace, pod.Name, node)
}

// recordUnschedulable emits the FailedScheduling event and sets
// PodScheduled=False with reason Unschedulable and msg, unless the pod
// already says exactly that, or has been bound or deleted meanwhile.
func (s *Scheduler) recordUnschedulable(ctx context.Context, pod *v1.Pod, msg string) {
	s.recorder.Event(pod, v1.EventTypeWarning, "FailedScheduling", msg)
	cur := pod
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if cur == nil {
			p, err := s.client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			cur = p
		}
		if cur.Spec.NodeName != "" || cur.UID != pod.UID {
			return nil
		}
		updated := cur.DeepCopy()
		if !setUnschedulable(&updated.Status, msg, cur.Generation) {
			return nil
		}
		_, err := s.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, updated, metav1.UpdateOptions{})
		cur = nil // on conflict, read it again
		return err
	})
	if err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
		s.log.Warn("update PodScheduled condition", "pod", queueKey(pod), "err", err)
	}
}

// setUnschedulable sets the PodScheduled=False condition in st, observed
// at the pod's generation, reporting whether anything changed.
func setUnschedulable(st *v1.PodStatus, msg string, generation int64) bool {
	cond := v1.PodCondition{
		Type:               v1.PodScheduled,
		Status:             v1.ConditionFalse,
		Reason:             v1.PodReasonUnschedulable,
		Message:            msg,
		LastTransitionTime: metav1.Now(),
		ObservedGeneration: generation,
	}
	for i := range st.Conditions {
		c := &st.Conditions[i]
		if c.Type != v1.PodScheduled {
			continue
		}
		if c.Status == cond.Status && c.Reason == cond.Reason && c.Message == cond.Message && c.ObservedGeneration == generation {
			return false
		}
		if c.Status == cond.Status {
			cond.LastTransitionTime = c.LastTransitionTime
		}
		*c = cond
		return true
	}
	st.Conditions = append(st.Conditions, cond)
	return true
}

func splitKey(key string) (namespace, name string) {
	for i := 0; i < len(key); i++ {
		if key[i] == '/' {
			return key[:i], key[i+1:]
		}
	}
	return "", key
}
