package job

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"

	batchv1 "k8s.io/api/batch/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/peapod/peapod/internal/controller/ctrlutil"
)

// maxPodsPerSync bounds the creates and deletes of one sync, as
// Kubernetes' MaxPodCreateDeletePerSync.
const maxPodsPerSync = 500

// manageJob creates or deletes pods towards the number that should run
// and returns the number active afterwards. A suspended Job has none.
func (c *Controller) manageJob(ctx context.Context, r *jobRun, active []*v1.Pod, succeeded int32) (int32, error) {
	job := r.job
	n := int32(len(active))
	if suspended(job) {
		deleted, err := c.deletePods(ctx, r, active)
		return n - deleted, err
	}
	var terminating int32
	if onlyReplaceFailed(job) {
		terminating = r.terminating
	}
	want := wantActive(job, succeeded, n)
	extra := extraPods(job, active, r.succeededIx)
	if rm := int(n + terminating - want); rm > len(extra) {
		rest := make([]*v1.Pod, 0, len(active))
		for _, p := range active {
			if !containsPod(extra, p) {
				rest = append(rest, p)
			}
		}
		ctrlutil.SortForDeletion(rest)
		extra = append(extra, rest[:min(len(rest), rm-len(extra))]...)
	}
	if len(extra) > 0 {
		extra = extra[:min(len(extra), maxPodsPerSync)]
		deleted, err := c.deletePods(ctx, r, extra)
		return n - deleted, err
	}
	if n+terminating >= want {
		return n, nil
	}
	if left := backoffRemaining(job, r.pods, r.now, c.backoff, c.maxBackoff); left > 0 {
		c.queue.AddAfter(r.key, left)
		return n, nil
	}
	diff := int(min(want-n-terminating, maxPodsPerSync))
	var indexes []int32
	if indexed(job) {
		busy := map[int32]bool{}
		for _, p := range r.pods {
			if isActive(p) || (onlyReplaceFailed(job) && isTerminating(p)) {
				busy[podIndex(p)] = true
			}
		}
		indexes = pendingIndexes(valueOr(job.Spec.Completions, 0), r.succeededIx, busy, diff)
		diff = len(indexes)
	}
	if diff == 0 {
		return n, nil
	}
	c.expectations.ExpectCreations(r.key, diff)
	var mu sync.Mutex
	next := 0
	created, err := ctrlutil.SlowStartBatch(diff, ctrlutil.SlowStartInitialBatchSize, func() error {
		ix := unknownIndex
		if indexes != nil {
			mu.Lock()
			ix = indexes[next]
			next++
			mu.Unlock()
		}
		pod := newPod(job, ix)
		out, err := c.client.CoreV1().Pods(job.Namespace).Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			c.expectations.CreationObserved(r.key)
			if apierrors.IsAlreadyExists(err) || apierrors.HasStatusCause(err, v1.NamespaceTerminatingCause) {
				return nil // nothing to do, or nothing can be done
			}
			c.recorder.Eventf(job, v1.EventTypeWarning, "FailedCreate", "Error creating: %v", err)
			return err
		}
		c.recorder.Eventf(job, v1.EventTypeNormal, "SuccessfulCreate", "Created pod: %v", out.Name)
		return nil
	})
	if skipped := diff - created; err != nil && skipped > 0 {
		// The batches not started will never be observed.
		for range skipped - 1 {
			c.expectations.CreationObserved(r.key)
		}
	}
	return n + int32(created), err
}

// extraPods returns an Indexed Job's active pods that must go whatever
// the counts: an index that is invalid, out of range or already
// succeeded, and all but one pod of an index that has several.
func extraPods(job *batchv1.Job, active []*v1.Pod, succeeded map[int32]bool) []*v1.Pod {
	if !indexed(job) {
		return nil
	}
	completions := valueOr(job.Spec.Completions, 0)
	byIndex := map[int32][]*v1.Pod{}
	var out []*v1.Pod
	for _, p := range active {
		ix := podIndex(p)
		if ix == unknownIndex || ix >= completions || succeeded[ix] {
			out = append(out, p)
			continue
		}
		byIndex[ix] = append(byIndex[ix], p)
	}
	for _, ps := range byIndex {
		if len(ps) > 1 {
			// Keep the one most advanced: delete the others first.
			ctrlutil.SortForDeletion(ps)
			out = append(out, ps[:len(ps)-1]...)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return ctrlutil.DeletionLess(out[i], out[j]) })
	return out
}

func containsPod(ps []*v1.Pod, p *v1.Pod) bool {
	for _, q := range ps {
		if q.UID == p.UID {
			return true
		}
	}
	return false
}

// newPod builds a Job's pod: the template, owned by the Job, with the
// tracking finalizer; an Indexed Job's pod also carries its index
// (annotation, label, hostname <job>-<index>, JOB_COMPLETION_INDEX).
func newPod(job *batchv1.Job, ix int32) *v1.Pod {
	t := job.Spec.Template.DeepCopy()
	if !containsString(t.Finalizers, trackingFinalizer) {
		t.Finalizers = append(t.Finalizers, trackingFinalizer)
	}
	generateName := job.Name + "-"
	if ix != unknownIndex {
		s := strconv.Itoa(int(ix))
		if t.Annotations == nil {
			t.Annotations = map[string]string{}
		}
		t.Annotations[batchv1.JobCompletionIndexAnnotation] = s
		if t.Labels == nil {
			t.Labels = map[string]string{}
		}
		t.Labels[batchv1.JobCompletionIndexAnnotation] = s
		t.Spec.Hostname = fmt.Sprintf("%s-%d", job.Name, ix)
		addIndexEnv(t.Spec.InitContainers)
		addIndexEnv(t.Spec.Containers)
		suffix := "-" + s + "-"
		generateName = job.Name + suffix
		if max := validation.DNS1123SubdomainMaxLength - 5; len(generateName) > max {
			generateName = job.Name[:max-len(suffix)] + suffix
		}
	}
	return ctrlutil.PodFromTemplate(t, job.Namespace, generateName, ctrlutil.NewControllerRef(job, kind))
}

// addIndexEnv gives each container JOB_COMPLETION_INDEX from the pod's
// index annotation, unless it sets the variable itself.
func addIndexEnv(cs []v1.Container) {
	for i := range cs {
		has := false
		for _, e := range cs[i].Env {
			has = has || e.Name == completionIndexEnv
		}
		if !has {
			cs[i].Env = append(cs[i].Env, v1.EnvVar{Name: completionIndexEnv, ValueFrom: &v1.EnvVarSource{
				FieldRef: &v1.ObjectFieldSelector{FieldPath: fmt.Sprintf("metadata.annotations['%s']", batchv1.JobCompletionIndexAnnotation)},
			}})
		}
	}
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// deletePods deletes pods (their finalizers stay until the Job counted
// them) and returns how many deletions were issued or found done.
func (c *Controller) deletePods(ctx context.Context, r *jobRun, pods []*v1.Pod) (int32, error) {
	if len(pods) == 0 {
		return 0, nil
	}
	uids := make([]types.UID, len(pods))
	for i, p := range pods {
		uids[i] = p.UID
	}
	c.expectations.ExpectDeletions(r.key, uids...)
	var mu sync.Mutex
	var deleted int32
	var errs []error
	var wg sync.WaitGroup
	for _, p := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				deleted++
				c.recorder.Eventf(r.job, v1.EventTypeNormal, "SuccessfulDelete", "Deleted pod: %v", p.Name)
			case apierrors.IsNotFound(err):
				deleted++
				c.expectations.DeletionObserved(r.key, p.UID)
			default:
				c.expectations.DeletionObserved(r.key, p.UID)
				c.recorder.Eventf(r.job, v1.EventTypeWarning, "FailedDelete", "Error deleting: %v", err)
				errs = append(errs, fmt.Errorf("delete pod %s/%s: %w", p.Namespace, p.Name, err))
			}
		}()
	}
	wg.Wait()
	return deleted, errors.Join(errs...)
}

// removeFinalizerPatch removes the tracking finalizer and nothing else.
var removeFinalizerPatch = func() []byte {
	b, _ := json.Marshal(map[string]any{"metadata": map[string]any{"$deleteFromPrimitiveList/finalizers": []string{trackingFinalizer}}})
	return b
}()

// removeFinalizers removes the tracking finalizer from pods, recording
// each removal as in flight (for r's Job) until the informer shows it.
func (c *Controller) removeFinalizers(ctx context.Context, r *jobRun, pods []*v1.Pod) error {
	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, p := range pods {
		c.expectRemoval(r.key, p.UID)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.removeFinalizer(ctx, p); err != nil {
				c.removed(r.key, p.UID)
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (c *Controller) removeFinalizer(ctx context.Context, p *v1.Pod) error {
	_, err := c.client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.StrategicMergePatchType, removeFinalizerPatch, metav1.PatchOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("remove finalizer of pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	return nil
}

// releaseOrphans removes the tracking finalizer from the pods of a Job
// named name that no longer exists (uid "", or a namesake with another
// uid): nobody will count them, and they must be free to go.
func (c *Controller) releaseOrphans(ctx context.Context, ns, name string, uid types.UID) error {
	pods, err := c.pods.Pods(ns).List(labels.Everything())
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range pods {
		ref := metav1.GetControllerOf(p)
		if ref == nil || ref.Kind != kind.Kind || ref.Name != name || ref.UID == uid || !hasFinalizer(p) {
			continue
		}
		errs = append(errs, c.removeFinalizer(ctx, p))
	}
	return errors.Join(errs...)
}

// syncOrphan removes the tracking finalizer of a pod no Job controls or
// selects (its Job was deleted orphaning it, or it was released).
func (c *Controller) syncOrphan(ctx context.Context, key string) error {
	ns, name, _ := splitKey(key)
	p, err := c.pods.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if !hasFinalizer(p) || ownerKey(p) != "" {
		return nil
	}
	jobs, err := c.jobs.Jobs(ns).List(labels.Everything())
	if err != nil {
		return err
	}
	for _, j := range jobs {
		if sel, err := metav1.LabelSelectorAsSelector(j.Spec.Selector); err == nil && !sel.Empty() && sel.Matches(labels.Set(p.Labels)) && finishedCondition(j) == nil {
			return nil // a running Job may adopt it
		}
	}
	return c.removeFinalizer(ctx, p)
}

func splitKey(key string) (string, string, bool) {
	for i := range key {
		if key[i] == '/' {
			return key[:i], key[i+1:], true
		}
	}
	return "", key, false
}

// syncFinished handles a Job with a Complete or Failed condition: any
// pod still carrying the finalizer is let go, and the Job is deleted
// once ttlSecondsAfterFinished has passed.
func (c *Controller) syncFinished(ctx context.Context, key string, job *batchv1.Job, pods []*v1.Pod) error {
	var left []*v1.Pod
	for _, p := range pods {
		if hasFinalizer(p) {
			left = append(left, p)
		}
	}
	r := &jobRun{key: key, job: job}
	if err := c.removeFinalizers(ctx, r, left); err != nil {
		return err
	}
	return c.expire(ctx, key, job)
}

// expire deletes a finished Job whose ttlSecondsAfterFinished has passed
// (in the foreground, with UID and resourceVersion preconditions, as the
// TTL-after-finished controller does) or requeues it for then.
func (c *Controller) expire(ctx context.Context, key string, job *batchv1.Job) error {
	if job.Spec.TTLSecondsAfterFinished == nil || job.DeletionTimestamp != nil {
		return nil
	}
	fc := finishedCondition(job)
	at := fc.LastTransitionTime.Time
	if job.Status.CompletionTime != nil && fc.Type == batchv1.JobComplete {
		at = job.Status.CompletionTime.Time
	}
	expireAt := at.Add(timeSeconds(*job.Spec.TTLSecondsAfterFinished))
	if now := c.clock.Now(); now.Before(expireAt) {
		c.queue.AddAfter(key, expireAt.Sub(now))
		return nil
	}
	// The TTL may have changed since the cache saw the Job.
	fresh, err := c.client.BatchV1().Jobs(job.Namespace).Get(ctx, job.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if fresh.UID != job.UID || fresh.Spec.TTLSecondsAfterFinished == nil ||
		c.clock.Now().Before(at.Add(timeSeconds(*fresh.Spec.TTLSecondsAfterFinished))) {
		c.queue.Add(key)
		return nil
	}
	fg := metav1.DeletePropagationForeground
	err = c.client.BatchV1().Jobs(job.Namespace).Delete(ctx, job.Name, metav1.DeleteOptions{
		PropagationPolicy: &fg,
		Preconditions:     &metav1.Preconditions{UID: &fresh.UID, ResourceVersion: &fresh.ResourceVersion},
	})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete expired job %s: %w", key, err)
	}
	return nil
}

// completionIndexEnv is the variable an Indexed Job's containers read
// their index from.
const completionIndexEnv = "JOB_COMPLETION_INDEX"
