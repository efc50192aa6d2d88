package daemonset

import (
	"fmt"
	"strconv"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	v1helper "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
)

// Labels on every daemon pod, as Kubernetes sets them.
const (
	// HashLabel names the ControllerRevision hash the pod was made from.
	HashLabel = appsv1.DefaultDaemonSetUniqueLabelKey // controller-revision-hash
	// GenerationLabel is the DaemonSet's template generation at the pod's
	// creation.
	GenerationLabel = "pod-template-generation"
)

var kind = appsv1.SchemeGroupVersion.WithKind("DaemonSet")

// daemonTolerations are the tolerations Kubernetes adds to every daemon
// pod (util.AddOrUpdateDaemonPodTolerations): a daemon keeps running on a
// node that is not ready or unreachable and is placed on nodes under
// resource pressure or cordoned.
var daemonTolerations = []v1.Toleration{
	{Key: v1.TaintNodeNotReady, Operator: v1.TolerationOpExists, Effect: v1.TaintEffectNoExecute},
	{Key: v1.TaintNodeUnreachable, Operator: v1.TolerationOpExists, Effect: v1.TaintEffectNoExecute},
	{Key: v1.TaintNodeDiskPressure, Operator: v1.TolerationOpExists, Effect: v1.TaintEffectNoSchedule},
	{Key: v1.TaintNodeMemoryPressure, Operator: v1.TolerationOpExists, Effect: v1.TaintEffectNoSchedule},
	{Key: v1.TaintNodePIDPressure, Operator: v1.TolerationOpExists, Effect: v1.TaintEffectNoSchedule},
	{Key: v1.TaintNodeUnschedulable, Operator: v1.TolerationOpExists, Effect: v1.TaintEffectNoSchedule},
}

// AddDaemonTolerations adds the daemon tolerations to spec (and
// network-unavailable for hostNetwork pods), replacing a toleration of the
// same key, operator, value and effect. Pure apart from spec; idempotent.
func AddDaemonTolerations(spec *v1.PodSpec) {
	add := daemonTolerations
	if spec.HostNetwork {
		add = append(add[:len(add):len(add)], v1.Toleration{Key: v1.TaintNodeNetworkUnavailable, Operator: v1.TolerationOpExists, Effect: v1.TaintEffectNoSchedule})
	}
	for _, t := range add {
		found := false
		for i := range spec.Tolerations {
			if spec.Tolerations[i].MatchToleration(&t) {
				spec.Tolerations[i] = t
				found = true
				break
			}
		}
		if !found {
			spec.Tolerations = append(spec.Tolerations, t)
		}
	}
}

// newPod is ds's pod for node as the placement checks see it: the
// template with the daemon tolerations, bound to node.
func newPod(ds *appsv1.DaemonSet, node string) *v1.Pod {
	p := &v1.Pod{Spec: *ds.Spec.Template.Spec.DeepCopy(), ObjectMeta: *ds.Spec.Template.ObjectMeta.DeepCopy()}
	p.Namespace = ds.Namespace
	p.Spec.NodeName = node
	AddDaemonTolerations(&p.Spec)
	return p
}

// ShouldRun reports whether ds wants a pod on node (shouldRun) and whether
// a pod already there may stay (shouldContinueRunning): Kubernetes'
// NodeShouldRunDaemonPod. Pure.
func ShouldRun(node *v1.Node, ds *appsv1.DaemonSet) (shouldRun, shouldContinueRunning bool) {
	if n := ds.Spec.Template.Spec.NodeName; n != "" && n != node.Name {
		return false, false
	}
	pod := newPod(ds, node.Name)
	// A parse error counts as no match, as in Kubernetes.
	if fits, _ := nodeaffinity.GetRequiredNodeAffinity(pod).Match(node); !fits {
		return false, false
	}
	taints := node.Spec.Taints
	if _, untolerated := v1helper.FindMatchingUntoleratedTaint(logr.Discard(), taints, pod.Spec.Tolerations, func(t *v1.Taint) bool {
		return t.Effect == v1.TaintEffectNoExecute || t.Effect == v1.TaintEffectNoSchedule
	}, false); !untolerated {
		return true, true
	}
	_, untoleratedNoExecute := v1helper.FindMatchingUntoleratedTaint(logr.Discard(), taints, pod.Spec.Tolerations, func(t *v1.Taint) bool {
		return t.Effect == v1.TaintEffectNoExecute
	}, false)
	return false, !untoleratedNoExecute
}

// PinToNode returns affinity with its required node affinity replaced by
// the one term `metadata.name In [node]`, so the scheduler can bind the
// pod only there (Kubernetes' ReplaceDaemonSetPodNodeNameNodeAffinity).
// Preferred terms and pod (anti-)affinity are kept. affinity may be nil
// and is modified in place.
func PinToNode(affinity *v1.Affinity, node string) *v1.Affinity {
	sel := &v1.NodeSelector{NodeSelectorTerms: []v1.NodeSelectorTerm{{
		MatchFields: []v1.NodeSelectorRequirement{{Key: metav1.ObjectNameField, Operator: v1.NodeSelectorOpIn, Values: []string{node}}},
	}}}
	if affinity == nil {
		affinity = &v1.Affinity{}
	}
	if affinity.NodeAffinity == nil {
		affinity.NodeAffinity = &v1.NodeAffinity{}
	}
	affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution = sel
	return affinity
}

// TargetNode returns the node a daemon pod is for: its nodeName once
// bound, else the node its pinning affinity names. Pure.
func TargetNode(p *v1.Pod) (string, error) {
	if p.Spec.NodeName != "" {
		return p.Spec.NodeName, nil
	}
	if a := p.Spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		for _, t := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
			for _, r := range t.MatchFields {
				if r.Key == metav1.ObjectNameField && r.Operator == v1.NodeSelectorOpIn && len(r.Values) == 1 {
					return r.Values[0], nil
				}
			}
		}
	}
	return "", fmt.Errorf("no node name found for pod %s/%s", p.Namespace, p.Name)
}

// templateGeneration is ds's template generation annotation, nil when
// absent or unreadable.
func templateGeneration(ds *appsv1.DaemonSet) *int64 {
	s, ok := ds.Annotations[appsv1.DeprecatedTemplateGeneration]
	if !ok {
		return nil
	}
	g, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return nil
	}
	return &g
}

// IsPodUpdated reports whether p runs ds's current template: its hash
// label is hash, or its generation label is ds's template generation.
// Pure.
func IsPodUpdated(p *v1.Pod, hash string, generation *int64) bool {
	if hash != "" && p.Labels[HashLabel] == hash {
		return true
	}
	return generation != nil && p.Labels[GenerationLabel] == strconv.FormatInt(*generation, 10)
}

// podTemplate is the template pods of ds are made from at hash: the
// daemon tolerations and both labels added.
func podTemplate(ds *appsv1.DaemonSet, hash string) *v1.PodTemplateSpec {
	t := ds.Spec.Template.DeepCopy()
	AddDaemonTolerations(&t.Spec)
	if t.Labels == nil {
		t.Labels = map[string]string{}
	}
	if g := templateGeneration(ds); g != nil {
		t.Labels[GenerationLabel] = strconv.FormatInt(*g, 10)
	}
	if hash != "" {
		t.Labels[HashLabel] = hash
	}
	return t
}
