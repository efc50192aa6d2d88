package job

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/peapod/peapod/internal/controller/ctrlutil"
)

// sync reconciles the Job under key (or an orphan pod's finalizer).
func (c *Controller) sync(ctx context.Context, key string) error {
	if podKey, ok := isOrphanKey(key); ok {
		return c.syncOrphan(ctx, podKey)
	}
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	cached, err := c.jobs.Jobs(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.forget(key)
		return c.releaseOrphans(ctx, ns, name, "")
	}
	if err != nil {
		return err
	}
	if m := cached.Spec.ManagedBy; m != nil && *m != batchv1.JobControllerName {
		return nil // another controller's Job
	}
	job := cached.DeepCopy()
	if err := c.releaseOrphans(ctx, ns, name, job.UID); err != nil {
		return err
	}
	pods, err := c.claimPods(ctx, job)
	if err != nil {
		return err
	}
	if finishedCondition(job) != nil {
		return c.syncFinished(ctx, key, job, pods)
	}
	return c.syncJob(ctx, key, job, pods)
}

// claimPods returns the pods job controls, adopting matching orphans.
func (c *Controller) claimPods(ctx context.Context, job *batchv1.Job) ([]*v1.Pod, error) {
	sel, err := metav1.LabelSelectorAsSelector(job.Spec.Selector)
	if err != nil {
		return nil, nil // validation refuses such Jobs; nothing to own
	}
	all, err := c.pods.Pods(job.Namespace).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	var candidates []*v1.Pod
	for _, p := range all {
		if sel.Matches(labels.Set(p.Labels)) || ownerKey(p) == job.Namespace+"/"+job.Name {
			candidates = append(candidates, p)
		}
	}
	cl := &ctrlutil.Claimer{
		Owner: job, GVK: kind, Selector: sel,
		Patch: func(ctx context.Context, ns, name string, data []byte) error {
			_, err := c.client.CoreV1().Pods(ns).Patch(ctx, name, types.StrategicMergePatchType, data, metav1.PatchOptions{})
			return err
		},
		CanAdopt: func(ctx context.Context) error {
			fresh, err := c.client.BatchV1().Jobs(job.Namespace).Get(ctx, job.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if fresh.UID != job.UID || fresh.DeletionTimestamp != nil {
				return fmt.Errorf("job %s/%s is gone or being deleted", job.Namespace, job.Name)
			}
			return nil
		},
	}
	return ctrlutil.Claim(ctx, cl, candidates)
}

// jobRun is one sync's view of a Job and its pods.
type jobRun struct {
	key  string
	job  *batchv1.Job
	pods []*v1.Pod
	now  time.Time
	// removing are pods whose finalizer removal is in flight.
	removing map[types.UID]bool
	// succeededIx are an Indexed Job's succeeded indexes, counted or not.
	succeededIx map[int32]bool
	// target is the condition the Job is heading for, nil while running.
	target *batchv1.JobCondition
	// terminating counts pods being deleted that have not finished.
	terminating int32
}

// syncJob is one pass of the Job controller over a Job that has not
// finished; see the package documentation for the order of things.
func (c *Controller) syncJob(ctx context.Context, key string, job *batchv1.Job, pods []*v1.Pod) error {
	r := &jobRun{key: key, job: job, pods: pods, now: c.clock.Now(), removing: c.pendingRemovals(key)}
	orig := job.Status.DeepCopy()
	satisfied := c.expectations.Satisfied(key)

	var active []*v1.Pod
	for _, p := range pods {
		if isActive(p) {
			active = append(active, p)
		} else if isTerminating(p) {
			r.terminating++
		}
	}
	unc := uncounted(job)
	newSucc, newFail := r.newlyFinished(unc)
	succeeded := job.Status.Succeeded + int32(len(unc.Succeeded)+len(newSucc))
	failed := job.Status.Failed + int32(len(unc.Failed))
	for _, p := range newFail {
		if matchPodFailurePolicy(job, p).count {
			failed++
		}
	}
	completions := valueOr(job.Spec.Completions, 0)
	if indexed(job) {
		r.succeededIx = parseIndexes(job.Status.CompletedIndexes, completions)
		for _, p := range newSucc {
			if ix := podIndex(p); ix != unknownIndex && ix < completions {
				r.succeededIx[ix] = true
			}
		}
		succeeded = int32(len(r.succeededIx))
	}
	if job.Status.StartTime == nil && !suspended(job) {
		now := metav1.NewTime(r.now)
		job.Status.StartTime = &now
	}

	switch {
	case hasCondition(job, batchv1.JobFailureTarget) != nil:
		ft := hasCondition(job, batchv1.JobFailureTarget)
		r.target = newCondition(batchv1.JobFailed, ft.Reason, ft.Message, r.now)
	case hasCondition(job, batchv1.JobSuccessCriteriaMet) != nil:
		sc := hasCondition(job, batchv1.JobSuccessCriteriaMet)
		r.target = newCondition(batchv1.JobComplete, sc.Reason, sc.Message, r.now)
	}
	if r.target == nil {
		if msg := failJobMessage(job, pods); msg != nil {
			r.target = newCondition(batchv1.JobFailureTarget, batchv1.JobReasonPodFailurePolicy, *msg, r.now)
		} else if failed > valueOr(job.Spec.BackoffLimit, 6) || pastBackoffLimitOnFailure(job, pods) {
			r.target = newCondition(batchv1.JobFailureTarget, batchv1.JobReasonBackoffLimitExceeded, msgBackoffLimit, r.now)
		} else if past, left := pastActiveDeadline(job, r.now); past {
			r.target = newCondition(batchv1.JobFailureTarget, batchv1.JobReasonDeadlineExceeded, msgDeadline, r.now)
		} else if left > 0 {
			c.queue.AddAfter(key, left)
		}
	}
	if r.target == nil && r.succeededIx != nil {
		if msg, ok := successPolicyMet(job, r.succeededIx); ok {
			r.target = newCondition(batchv1.JobSuccessCriteriaMet, batchv1.JobReasonSuccessPolicy, msg, r.now)
		}
	}

	var errs []error
	nActive := int32(len(active))
	if r.target != nil {
		deleted, err := c.deletePods(ctx, r, active)
		errs = append(errs, err)
		if int(deleted) != len(active) || !satisfied {
			r.target = nil // wait for the deletions to be seen
		}
		nActive -= deleted
	} else {
		managed := false
		if satisfied && job.DeletionTimestamp == nil {
			var err error
			nActive, err = c.manageJob(ctx, r, active, succeeded)
			errs = append(errs, err)
			managed = true
		}
		var complete bool
		if job.Spec.Completions == nil {
			complete = succeeded > 0 && nActive == 0
		} else {
			complete = succeeded >= completions && nActive == 0
		}
		switch {
		case complete:
			r.target = newCondition(batchv1.JobSuccessCriteriaMet, batchv1.JobReasonCompletionsReached, msgCompletions, r.now)
		case managed && suspended(job):
			if setCondition(job, batchv1.JobSuspended, v1.ConditionTrue, "JobSuspended", "Job suspended", r.now) {
				c.recorder.Event(job, v1.EventTypeNormal, "Suspended", "Job suspended")
			}
		case managed:
			if setCondition(job, batchv1.JobSuspended, v1.ConditionFalse, "JobResumed", "Job resumed", r.now) {
				c.recorder.Event(job, v1.EventTypeNormal, "Resumed", "Job resumed")
				// activeDeadlineSeconds counts continuous activity.
				now := metav1.NewTime(r.now)
				job.Status.StartTime = &now
			}
		}
	}
	job.Status.Active = nActive
	var ready int32
	for _, p := range active {
		if p.DeletionTimestamp == nil && ctrlutil.IsPodReady(p) {
			ready++
		}
	}
	job.Status.Ready = &ready
	job.Status.Terminating = &r.terminating
	errs = append(errs, c.track(ctx, r, orig, newSucc, newFail))
	return errors.Join(errs...)
}

// newlyFinished returns the finished pods not yet recorded anywhere:
// they still have the finalizer, are in neither uncounted list, and no
// finalizer removal is in flight for them.
func (r *jobRun) newlyFinished(unc *batchv1.UncountedTerminatedPods) (succ, fail []*v1.Pod) {
	for _, p := range r.pods {
		if !hasFinalizer(p) || r.removing[p.UID] || slices.Contains(unc.Succeeded, p.UID) || slices.Contains(unc.Failed, p.UID) {
			continue
		}
		switch {
		case p.Status.Phase == v1.PodSucceeded:
			succ = append(succ, p)
		case isPodFailed(p, r.job):
			fail = append(fail, p)
		}
	}
	return succ, fail
}

// track persists what this sync learned, in the order that makes every
// completion count exactly once: finished pods into
// uncountedTerminatedPods (and completedIndexes), their finalizers
// removed, then into the counters; then the Job's conditions.
func (c *Controller) track(ctx context.Context, r *jobRun, orig *batchv1.JobStatus, newSucc, newFail []*v1.Pod) error {
	job := r.job
	unc := uncounted(job)
	var toRemove []*v1.Pod
	for _, p := range newSucc {
		if !indexed(job) {
			unc.Succeeded = append(unc.Succeeded, p.UID)
		}
		toRemove = append(toRemove, p)
	}
	for _, p := range newFail {
		if matchPodFailurePolicy(job, p).count {
			unc.Failed = append(unc.Failed, p.UID)
		}
		toRemove = append(toRemove, p)
	}
	failing := r.target != nil && (r.target.Type == batchv1.JobFailed || r.target.Type == batchv1.JobFailureTarget)
	for _, p := range r.pods {
		if !hasFinalizer(p) || r.removing[p.UID] || p.Status.Phase == v1.PodSucceeded || isPodFailed(p, job) {
			continue
		}
		// A pod still running when the Job finishes (its deletion was
		// just issued) or is deleted: a failing Job counts it as failed.
		if r.target != nil || job.DeletionTimestamp != nil {
			if failing && !slices.Contains(unc.Failed, p.UID) {
				unc.Failed = append(unc.Failed, p.UID)
			}
			toRemove = append(toRemove, p)
		}
	}
	// Pods recorded by an earlier sync whose finalizer removal did not
	// happen (a crash, a failed patch).
	for _, p := range r.pods {
		if hasFinalizer(p) && !r.removing[p.UID] && (slices.Contains(unc.Succeeded, p.UID) || slices.Contains(unc.Failed, p.UID)) && !slices.Contains(toRemove, p) {
			toRemove = append(toRemove, p)
		}
	}
	if r.succeededIx != nil {
		job.Status.CompletedIndexes = formatIndexes(r.succeededIx)
		job.Status.Succeeded = int32(len(r.succeededIx))
	}
	job.Status.UncountedTerminatedPods = unc
	if len(toRemove) > 0 && !apiequality.Semantic.DeepEqual(orig.UncountedTerminatedPods, unc) ||
		orig.CompletedIndexes != job.Status.CompletedIndexes {
		if err := c.updateStatus(ctx, job); err != nil {
			return err
		}
	}

	removeErr := c.removeFinalizers(ctx, r, toRemove)
	withFinalizer := map[types.UID]bool{}
	for _, p := range r.pods {
		if hasFinalizer(p) && !r.removing[p.UID] {
			withFinalizer[p.UID] = true
		}
	}
	for u := range r.removing {
		// In flight from an earlier sync: not gone until seen gone, unless
		// this sync removed it.
		if !slices.ContainsFunc(toRemove, func(p *v1.Pod) bool { return p.UID == u }) {
			withFinalizer[u] = true
		}
	}
	for _, p := range toRemove {
		if c.isRemoving(r.key, p.UID) {
			delete(withFinalizer, p.UID)
		}
	}
	keep := unc.Succeeded[:0:0]
	for _, u := range unc.Succeeded {
		if withFinalizer[u] {
			keep = append(keep, u)
		} else {
			job.Status.Succeeded++
		}
	}
	unc.Succeeded = keep
	keep = unc.Failed[:0:0]
	for _, u := range unc.Failed {
		if withFinalizer[u] {
			keep = append(keep, u)
		} else {
			job.Status.Failed++
		}
	}
	unc.Failed = keep

	c.finish(r, unc)
	if !apiequality.Semantic.DeepEqual(orig, &job.Status) {
		if err := c.updateStatus(ctx, job); err != nil {
			return errors.Join(removeErr, err)
		}
	}
	return removeErr
}

// finish writes the condition the Job is heading for, once every pod is
// counted: the interim FailureTarget/SuccessCriteriaMet at once, the
// terminal Failed/Complete only when no pod is terminating any more.
func (c *Controller) finish(r *jobRun, unc *batchv1.UncountedTerminatedPods) {
	job, t := r.job, r.target
	if t == nil || len(unc.Succeeded)+len(unc.Failed) > 0 {
		return
	}
	switch t.Type {
	case batchv1.JobFailureTarget, batchv1.JobSuccessCriteriaMet:
		setCondition(job, t.Type, v1.ConditionTrue, t.Reason, t.Message, r.now)
		c.queue.Add(r.key) // on to the terminal condition
		return
	}
	if r.terminating > 0 {
		return
	}
	for _, p := range r.pods {
		if hasFinalizer(p) && !c.isRemoving(r.key, p.UID) {
			return
		}
	}
	if !setCondition(job, t.Type, v1.ConditionTrue, t.Reason, t.Message, r.now) {
		return
	}
	if t.Type == batchv1.JobComplete {
		now := metav1.NewTime(r.now)
		job.Status.CompletionTime = &now
		c.recorder.Event(job, v1.EventTypeNormal, "Completed", "Job completed")
	} else {
		c.recorder.Event(job, v1.EventTypeWarning, t.Reason, t.Message)
	}
}

func (c *Controller) isRemoving(key string, uid types.UID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.removing[key][uid]
}

// updateStatus writes job's status (with its resourceVersion, so a stale
// Job is a conflict, never an overwrite) and keeps the result in job.
func (c *Controller) updateStatus(ctx context.Context, job *batchv1.Job) error {
	out, err := c.client.BatchV1().Jobs(job.Namespace).UpdateStatus(ctx, job, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("update status of job %s/%s: %w", job.Namespace, job.Name, err)
	}
	job.ResourceVersion = out.ResourceVersion
	return nil
}

// uncounted returns a copy of the Job's uncountedTerminatedPods.
func uncounted(job *batchv1.Job) *batchv1.UncountedTerminatedPods {
	if job.Status.UncountedTerminatedPods == nil {
		return &batchv1.UncountedTerminatedPods{}
	}
	return job.Status.UncountedTerminatedPods.DeepCopy()
}

// finishedCondition returns the Job's true Complete or Failed condition.
func finishedCondition(job *batchv1.Job) *batchv1.JobCondition {
	if c := hasCondition(job, batchv1.JobComplete); c != nil {
		return c
	}
	return hasCondition(job, batchv1.JobFailed)
}

// hasCondition returns the Job's condition of type t when it is True.
func hasCondition(job *batchv1.Job, t batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range job.Status.Conditions {
		if c := &job.Status.Conditions[i]; c.Type == t && c.Status == v1.ConditionTrue {
			return c
		}
	}
	return nil
}

func newCondition(t batchv1.JobConditionType, reason, msg string, now time.Time) *batchv1.JobCondition {
	return &batchv1.JobCondition{Type: t, Status: v1.ConditionTrue, Reason: reason, Message: msg,
		LastProbeTime: metav1.NewTime(now), LastTransitionTime: metav1.NewTime(now)}
}

// setCondition sets a condition's status, reason and message, adding it
// when missing (a False Suspended condition is not added to a Job that
// never had one). It reports whether anything changed.
func setCondition(job *batchv1.Job, t batchv1.JobConditionType, status v1.ConditionStatus, reason, msg string, now time.Time) bool {
	for i := range job.Status.Conditions {
		c := &job.Status.Conditions[i]
		if c.Type != t {
			continue
		}
		if c.Status == status && c.Reason == reason && c.Message == msg {
			return false
		}
		c.Status, c.Reason, c.Message = status, reason, msg
		c.LastProbeTime, c.LastTransitionTime = metav1.NewTime(now), metav1.NewTime(now)
		return true
	}
	if status == v1.ConditionFalse {
		return false
	}
	job.Status.Conditions = append(job.Status.Conditions, *newCondition(t, reason, msg, now))
	return true
}
