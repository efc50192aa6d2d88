package statefulset

import (
	"context"
	"fmt"
	"sort"
	"time"

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

// sync reconciles the StatefulSet named key.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	cached, err := c.sets.StatefulSets(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	set := cached.DeepCopy()
	sel, err := metav1.LabelSelectorAsSelector(set.Spec.Selector)
	if err != nil || sel.Empty() {
		return nil // invalid; the API server rejects these
	}
	all, err := c.pods.Pods(ns).List(labels.Everything())
	if err != nil {
		return err
	}
	cl := &ctrlutil.Claimer{
		Owner: set, GVK: kind, Selector: sel,
		Patch: func(ctx context.Context, ns, name string, data []byte) error {
			_, err := c.client.CoreV1().Pods(ns).Patch(ctx, name, types.StrategicMergePatchType, data, metav1.PatchOptions{})
			return err
		},
		CanAdopt: func(ctx context.Context) error {
			fresh, err := c.client.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if fresh.UID != set.UID || fresh.DeletionTimestamp != nil {
				return fmt.Errorf("statefulset %s is gone or being deleted", key)
			}
			return nil
		},
	}
	var members []*v1.Pod
	for _, p := range all {
		if parent, ord := ParentAndOrdinal(p.Name); parent == set.Name && ord >= 0 {
			members = append(members, p)
		}
	}
	pods, err := ctrlutil.Claim(ctx, cl, members)
	if err != nil {
		return err
	}
	st, err := c.update(ctx, set, pods)
	if serr := c.writeStatus(ctx, set, st); serr != nil && err == nil {
		err = serr
	}
	return err
}

// revisions returns set's current and update revision names and the
// templates to create pods at each.
func (c *Controller) revisions(set *appsv1.StatefulSet) (current, update string, currentT, updateT *v1.PodTemplateSpec) {
	update = RevisionName(set, &set.Spec.Template)
	current = set.Status.CurrentRevision
	if current == "" {
		current = update
	}
	currentT = c.remember(update, &set.Spec.Template, current)
	if currentT == nil {
		currentT = &set.Spec.Template // forgotten: see the package doc
	}
	return current, update, currentT, &set.Spec.Template
}

// update does one round of Kubernetes' StatefulSet update: replace failed
// pods, create missing ordinals, delete condemned ones from the highest,
// then roll pods to the update revision; monotonic (OrderedReady) rounds
// stop at the first pod that is not Running and Ready. It returns the
// status to write.
func (c *Controller) update(ctx context.Context, set *appsv1.StatefulSet, pods []*v1.Pod) (appsv1.StatefulSetStatus, error) {
	current, update, currentT, updateT := c.revisions(set)
	replicasN := 1
	if set.Spec.Replicas != nil {
		replicasN = int(*set.Spec.Replicas)
	}
	start := startOrdinal(set)
	monotonic := set.Spec.PodManagementPolicy != appsv1.ParallelPodManagement
	partition := 0
	rolling := set.Spec.UpdateStrategy.Type != appsv1.OnDeleteStatefulSetStrategyType
	if rolling && set.Spec.UpdateStrategy.RollingUpdate != nil && set.Spec.UpdateStrategy.RollingUpdate.Partition != nil {
		partition = int(*set.Spec.UpdateStrategy.RollingUpdate.Partition)
	}
	replicas := make([]*v1.Pod, replicasN)
	var condemned []*v1.Pod
	for _, p := range pods {
		_, ord := ParentAndOrdinal(p.Name)
		if ord >= start && ord < start+replicasN {
			replicas[ord-start] = p
		} else {
			condemned = append(condemned, p)
		}
	}
	sort.Slice(condemned, func(i, j int) bool {
		_, a := ParentAndOrdinal(condemned[i].Name)
		_, b := ParentAndOrdinal(condemned[j].Name)
		return a > b
	})
	st := c.status(set, pods, current, update)
	if set.DeletionTimestamp != nil {
		return st, nil
	}

	for i, p := range replicas {
		ord := start + i
		if p != nil && ctrlutil.IsPodTerminal(p) && p.DeletionTimestamp == nil {
			// A failed pod keeps its identity: delete it and create it anew.
			if err := c.deletePod(ctx, set, p); err != nil {
				return st, err
			}
			replicas[i] = nil
			if monotonic {
				return st, nil
			}
			continue
		}
		if p == nil {
			rev, t := update, updateT
			if rolling && current != update && ord < partition {
				rev, t = current, currentT
			}
			if err := c.createClaims(ctx, set, ord); err != nil {
				return st, err
			}
			if err := c.createPod(ctx, set, newPod(set, t, rev, ord)); err != nil {
				return st, err
			}
			if monotonic {
				return st, nil
			}
			continue
		}
		if p.DeletionTimestamp == nil {
			if err := c.updateClaimOwners(ctx, set, p, ord, false); err != nil {
				return st, err
			}
		}
		if p.DeletionTimestamp != nil && monotonic {
			return st, nil // wait for it to go before going on
		}
		if !runningAndReady(p) && monotonic {
			return st, nil
		}
	}
	for _, p := range condemned {
		if p.DeletionTimestamp != nil {
			if monotonic {
				return st, nil
			}
			continue
		}
		// whenScaled Delete: the claims go with the pod, so own them by it first.
		_, ord := ParentAndOrdinal(p.Name)
		if err := c.updateClaimOwners(ctx, set, p, ord, true); err != nil {
			return st, err
		}
		if err := c.deletePod(ctx, set, p); err != nil {
			return st, err
		}
		if monotonic {
			return st, nil
		}
	}
	if !rolling {
		return st, nil
	}
	// RollingUpdate: highest ordinal first, down to the partition, one pod
	// at a time, each waiting for the rest to be healthy.
	for i := len(replicas) - 1; i >= 0; i-- {
		p := replicas[i]
		if start+i < partition {
			break
		}
		if p == nil || p.DeletionTimestamp != nil {
			return st, nil
		}
		if p.Labels[RevisionLabel] != update {
			return st, c.deletePod(ctx, set, p)
		}
		if !runningAndReady(p) {
			return st, nil
		}
	}
	return st, nil
}

func (c *Controller) createPod(ctx context.Context, set *appsv1.StatefulSet, p *v1.Pod) error {
	_, err := c.client.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil // the cache is behind; the next event brings it
	}
	if err != nil {
		c.recorder.Eventf(set, v1.EventTypeWarning, "FailedCreate", "create Pod %s in StatefulSet %s failed error: %v", p.Name, set.Name, err)
		return fmt.Errorf("create pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	c.recorder.Eventf(set, v1.EventTypeNormal, "SuccessfulCreate", "create Pod %s in StatefulSet %s successful", p.Name, set.Name)
	return nil
}

func (c *Controller) deletePod(ctx context.Context, set *appsv1.StatefulSet, p *v1.Pod) error {
	err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		c.recorder.Eventf(set, v1.EventTypeWarning, "FailedDelete", "delete Pod %s in StatefulSet %s failed error: %v", p.Name, set.Name, err)
		return fmt.Errorf("delete pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	c.recorder.Eventf(set, v1.EventTypeNormal, "SuccessfulDelete", "delete Pod %s in StatefulSet %s successful", p.Name, set.Name)
	return nil
}

// status counts set's pods; once every replica is updated and ready the
// update revision becomes current.
func (c *Controller) status(set *appsv1.StatefulSet, pods []*v1.Pod, current, update string) appsv1.StatefulSetStatus {
	st := *set.Status.DeepCopy()
	st.ObservedGeneration = set.Generation
	st.Replicas, st.ReadyReplicas, st.AvailableReplicas, st.CurrentReplicas, st.UpdatedReplicas = 0, 0, 0, 0, 0
	st.CurrentRevision, st.UpdateRevision = current, update
	now := c.clock.Now()
	var wait time.Duration
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		st.Replicas++
		if runningAndReady(p) {
			st.ReadyReplicas++
			if ctrlutil.IsPodAvailable(p, set.Spec.MinReadySeconds, now) {
				st.AvailableReplicas++
			} else if d := ctrlutil.AvailableIn(p, set.Spec.MinReadySeconds, now); d > 0 && (wait == 0 || d < wait) {
				wait = d
			}
		}
		switch p.Labels[RevisionLabel] {
		case current:
			st.CurrentReplicas++
		}
		if p.Labels[RevisionLabel] == update {
			st.UpdatedReplicas++
		}
	}
	if wait > 0 {
		c.queue.AddAfter(set.Namespace+"/"+set.Name, wait)
	}
	replicas := int32(1)
	if set.Spec.Replicas != nil {
		replicas = *set.Spec.Replicas
	}
	if st.CurrentRevision != st.UpdateRevision && st.UpdatedReplicas == replicas && st.ReadyReplicas == replicas && st.Replicas == replicas {
		st.CurrentRevision = st.UpdateRevision
		st.CurrentReplicas = st.UpdatedReplicas
	}
	return st
}

func (c *Controller) writeStatus(ctx context.Context, set *appsv1.StatefulSet, st appsv1.StatefulSetStatus) error {
	if apiequality.Semantic.DeepEqual(set.Status, st) {
		return nil
	}
	set.Status = st
	if _, err := c.client.AppsV1().StatefulSets(set.Namespace).UpdateStatus(ctx, set, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("update status of statefulset %s/%s: %w", set.Namespace, set.Name, err)
	}
	return nil
}
