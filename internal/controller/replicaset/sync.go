package replicaset

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/peapod/peapod/internal/controller/ctrlutil"
)

// sync reconciles the set named key ("namespace/name").
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	s, err := c.kind.get(ns, name)
	if apierrors.IsNotFound(err) {
		c.exp.Delete(key)
		return nil
	}
	if err != nil {
		return err
	}
	satisfied := c.exp.Satisfied(key)
	all, err := c.pods.Pods(ns).List(labels.Everything())
	if err != nil {
		return err
	}
	var active []*v1.Pod
	for _, p := range all {
		if ctrlutil.IsPodActive(p) {
			active = append(active, p)
		}
	}
	claimer := &ctrlutil.Claimer{
		Owner: s.obj, GVK: c.kind.gvk(), Selector: s.selector,
		Patch: func(ctx context.Context, ns, name string, data []byte) error {
			_, err := c.client.CoreV1().Pods(ns).Patch(ctx, name, types.StrategicMergePatchType, data, metav1.PatchOptions{})
			return err
		},
		CanAdopt: func(ctx context.Context) error {
			fresh, err := c.kind.getLive(ctx, ns, name)
			if err != nil {
				return err
			}
			if fresh.GetUID() != s.obj.GetUID() {
				return fmt.Errorf("original %s %s is gone: got uid %s, wanted %s", c.kind.gvk().Kind, key, fresh.GetUID(), s.obj.GetUID())
			}
			if fresh.GetDeletionTimestamp() != nil {
				return fmt.Errorf("%s %s is being deleted", c.kind.gvk().Kind, key)
			}
			return nil
		},
	}
	pods, err := ctrlutil.Claim(ctx, claimer, active)
	if err != nil {
		return err
	}
	var manageErr error
	if satisfied && s.obj.GetDeletionTimestamp() == nil {
		manageErr = c.manage(ctx, key, s, pods)
	}
	st := calculateStatus(s, pods, manageErr, c.clock.Now())
	if err := c.writeStatus(ctx, s, st); err != nil {
		return errors.Join(manageErr, err)
	}
	// Pods that are Ready but not yet available need a later look.
	if manageErr == nil && s.minReadySeconds > 0 && st.ReadyReplicas == s.replicas && st.AvailableReplicas != s.replicas {
		var wait time.Duration
		for _, p := range pods {
			if d := ctrlutil.AvailableIn(p, s.minReadySeconds, c.clock.Now()); d > 0 && (wait == 0 || d < wait) {
				wait = d
			}
		}
		if wait > 0 {
			c.queue.AddAfter(key, wait)
		}
	}
	return manageErr
}

// manage creates or deletes pods so that len(pods) approaches s.replicas.
func (c *Controller) manage(ctx context.Context, key string, s *set, pods []*v1.Pod) error {
	diff := len(pods) - int(s.replicas)
	kind := c.kind.gvk().Kind
	switch {
	case diff < 0:
		n := min(-diff, BurstReplicas)
		c.exp.ExpectCreations(key, n)
		ref := ctrlutil.NewControllerRef(s.obj, c.kind.gvk())
		ok, err := ctrlutil.SlowStartBatch(n, ctrlutil.SlowStartInitialBatchSize, func() error {
			pod := ctrlutil.PodFromTemplate(s.template, s.obj.GetNamespace(), s.obj.GetName()+"-", ref)
			created, err := c.client.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
			if err != nil {
				c.exp.CreationObserved(key) // never to be observed
				c.recorder.Eventf(s.obj.(runtimeObject), v1.EventTypeWarning, "FailedCreate", "Error creating: %v", err)
				return err
			}
			c.recorder.Eventf(s.obj.(runtimeObject), v1.EventTypeNormal, "SuccessfulCreate", "Created pod: %s", created.Name)
			return nil
		})
		// Creates never attempted will never be observed either.
		for range n - ok - boolInt(err != nil) {
			c.exp.CreationObserved(key)
		}
		if err != nil {
			return fmt.Errorf("create pods for %s %s: %w", kind, key, err)
		}
	case diff > 0:
		n := min(diff, BurstReplicas)
		victims := append([]*v1.Pod(nil), pods...)
		ctrlutil.SortForDeletion(victims)
		victims = victims[:n]
		uids := make([]types.UID, len(victims))
		for i, p := range victims {
			uids[i] = p.UID
		}
		c.exp.ExpectDeletions(key, uids...)
		var wg sync.WaitGroup
		errs := make([]error, len(victims))
		for i, p := range victims {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
				if err != nil {
					c.exp.DeletionObserved(key, p.UID)
					if !apierrors.IsNotFound(err) {
						c.recorder.Eventf(s.obj.(runtimeObject), v1.EventTypeWarning, "FailedDelete", "Error deleting: %v", err)
						errs[i] = err
					}
					return
				}
				c.recorder.Eventf(s.obj.(runtimeObject), v1.EventTypeNormal, "SuccessfulDelete", "Deleted pod: %s", p.Name)
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("delete pods of %s %s: %w", kind, key, err)
		}
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// writeStatus updates the status subresource when st differs.
func (c *Controller) writeStatus(ctx context.Context, s *set, st statusT) error {
	if statusEqual(s.status, st) {
		return nil
	}
	if err := c.kind.updateStatus(ctx, s, st); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("update status of %s %s/%s: %w", c.kind.gvk().Kind, s.obj.GetNamespace(), s.obj.GetName(), err)
	}
	return nil
}
