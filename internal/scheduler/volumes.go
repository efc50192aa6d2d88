package scheduler

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	corelisters "k8s.io/client-go/listers/core/v1"
	storagelisters "k8s.io/client-go/listers/storage/v1"
)

// AnnSelectedNode is the claim annotation by which the scheduler tells the
// PV controller where the first pod of a WaitForFirstConsumer claim goes.
const AnnSelectedNode = "volume.kubernetes.io/selected-node"

// volumeBindTimeout bounds how long a bind waits for its claims to be
// bound, kube-scheduler's bindTimeoutSeconds (600 s) shortened: a claim
// not provisioned by then sends the pod back to the queue.
const volumeBindTimeout = 2 * time.Minute

// volumeListers read what kube-scheduler's VolumeBinding plugin reads.
type volumeListers struct {
	claims  corelisters.PersistentVolumeClaimLister
	volumes corelisters.PersistentVolumeLister
	classes storagelisters.StorageClassLister
}

// VolumePlan is what VolumeBinding decides for a pod before the filters:
// Pod is the pod to filter (its required node affinity narrowed by its
// bound volumes' node affinity) and Delayed the claims of
// WaitForFirstConsumer classes to bind on the chosen node. Unschedulable,
// when set, is why the pod fits nowhere whatever the node.
type VolumePlan struct {
	Pod           *v1.Pod
	Delayed       []*v1.PersistentVolumeClaim
	Unschedulable string
}

// PlanVolumes is VolumeBinding's PreFilter, with Kubernetes' reasons: a
// missing or deleting claim, or an unbound claim of a class that binds
// immediately, makes the pod unschedulable; a bound claim's volume node
// affinity joins the pod's required node affinity (so a local volume
// takes its pods to its node). Pure.
func PlanVolumes(pod *v1.Pod, claim func(ns, name string) (*v1.PersistentVolumeClaim, error),
	volume func(name string) (*v1.PersistentVolume, error), class func(name string) (*storagev1.StorageClass, error)) VolumePlan {
	plan := VolumePlan{Pod: pod}
	var terms []*v1.NodeSelector
	for _, v := range pod.Spec.Volumes {
		if v.PersistentVolumeClaim == nil {
			continue
		}
		name := v.PersistentVolumeClaim.ClaimName
		c, err := claim(pod.Namespace, name)
		if err != nil {
			plan.Unschedulable = fmt.Sprintf("persistentvolumeclaim %q not found", name)
			return plan
		}
		if c.DeletionTimestamp != nil {
			plan.Unschedulable = fmt.Sprintf("persistentvolumeclaim %q is being deleted", name)
			return plan
		}
		if c.Spec.VolumeName == "" {
			var sc *storagev1.StorageClass
			if c.Spec.StorageClassName != nil && *c.Spec.StorageClassName != "" {
				sc, _ = class(*c.Spec.StorageClassName)
			}
			if sc == nil || sc.VolumeBindingMode == nil || *sc.VolumeBindingMode != storagev1.VolumeBindingWaitForFirstConsumer {
				plan.Unschedulable = "pod has unbound immediate PersistentVolumeClaims"
				return plan
			}
			plan.Delayed = append(plan.Delayed, c)
			if n := c.Annotations[AnnSelectedNode]; n != "" {
				// Another pod's bind chose the node already: the claim is
				// being provisioned there, so this pod goes there too.
				terms = append(terms, &v1.NodeSelector{NodeSelectorTerms: []v1.NodeSelectorTerm{{MatchExpressions: []v1.NodeSelectorRequirement{
					{Key: v1.LabelHostname, Operator: v1.NodeSelectorOpIn, Values: []string{n}}}}}})
			}
			continue
		}
		pv, err := volume(c.Spec.VolumeName)
		if err != nil {
			plan.Unschedulable = fmt.Sprintf("persistentvolume %q not found", c.Spec.VolumeName)
			return plan
		}
		if na := pv.Spec.NodeAffinity; na != nil && na.Required != nil {
			terms = append(terms, na.Required)
		}
	}
	if len(terms) > 0 {
		p := pod.DeepCopy()
		for _, t := range terms {
			andNodeSelector(p, t)
		}
		plan.Pod = p
	}
	return plan
}

// andNodeSelector narrows p's required node affinity by sel: every pair
// of a term of p and a term of sel becomes one term with both terms'
// requirements (terms are ORed, requirements ANDed).
func andNodeSelector(p *v1.Pod, sel *v1.NodeSelector) {
	if p.Spec.Affinity == nil {
		p.Spec.Affinity = &v1.Affinity{}
	}
	if p.Spec.Affinity.NodeAffinity == nil {
		p.Spec.Affinity.NodeAffinity = &v1.NodeAffinity{}
	}
	na := p.Spec.Affinity.NodeAffinity
	if na.RequiredDuringSchedulingIgnoredDuringExecution == nil || len(na.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms) == 0 {
		na.RequiredDuringSchedulingIgnoredDuringExecution = sel.DeepCopy()
		return
	}
	var out []v1.NodeSelectorTerm
	for _, a := range na.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		for _, b := range sel.NodeSelectorTerms {
			t := *a.DeepCopy()
			t.MatchExpressions = append(t.MatchExpressions, b.MatchExpressions...)
			t.MatchFields = append(t.MatchFields, b.MatchFields...)
			out = append(out, t)
		}
	}
	na.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms = out
}

// plan runs PlanVolumes against the informers' caches.
func (l *volumeListers) plan(pod *v1.Pod) VolumePlan {
	return PlanVolumes(pod,
		func(ns, name string) (*v1.PersistentVolumeClaim, error) {
			return l.claims.PersistentVolumeClaims(ns).Get(name)
		},
		l.volumes.Get, l.classes.Get)
}

// volumeUnschedulable is the FailedScheduling message of a PreFilter
// rejection, as Kubernetes' FitError words it.
func volumeUnschedulable(reason string, nodes int) string {
	return fmt.Sprintf("0/%d nodes are available: %s. preemption: 0/%d nodes are available: %d %s.", nodes, reason, nodes, nodes, preemptionNotHelpful)
}

// bindVolumes is VolumeBinding's PreBind for delayed claims: it writes the
// chosen node on each claim that has none, then waits until the PV
// controller has bound every one (provisioning on that node if it must).
func (s *Scheduler) bindVolumes(ctx context.Context, claims []*v1.PersistentVolumeClaim, node string) error {
	for _, c := range claims {
		if c.Annotations[AnnSelectedNode] == node {
			continue
		}
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
			"annotations":     map[string]string{AnnSelectedNode: node},
			"resourceVersion": c.ResourceVersion,
		}})
		if _, err := s.client.CoreV1().PersistentVolumeClaims(c.Namespace).Patch(ctx, c.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			return fmt.Errorf("select node %s for claim %s/%s: %w", node, c.Namespace, c.Name, err)
		}
	}
	// The listers are informer caches: polling them costs no request.
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, volumeBindTimeout, true, func(context.Context) (bool, error) {
		for _, c := range claims {
			cur, err := s.volumes.claims.PersistentVolumeClaims(c.Namespace).Get(c.Name)
			if apierrors.IsNotFound(err) || (err == nil && cur.UID != c.UID) {
				return false, fmt.Errorf("claim %s/%s is gone", c.Namespace, c.Name)
			}
			if err != nil || cur.Spec.VolumeName == "" || cur.Status.Phase != v1.ClaimBound {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("binding volumes: %w", err)
	}
	return nil
}
