package scheduler

import (
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
)

// affinityTerm is a parsed pod (anti-)affinity term.
type affinityTerm struct {
	namespaces  map[string]bool
	nsSelector  labels.Selector // nil: match by namespaces only
	selector    labels.Selector
	topologyKey string
	weight      int32
}

// affinityTerms parses required terms of pod. A term whose selectors do not
// parse matches no pod, so a required affinity built on it cannot be met.
func affinityTerms(pod *v1.Pod, terms []v1.PodAffinityTerm) []affinityTerm {
	out := make([]affinityTerm, 0, len(terms))
	for i := range terms {
		out = append(out, newAffinityTerm(pod, &terms[i], 0))
	}
	return out
}

// weightedTerms parses preferred terms of pod.
func weightedTerms(pod *v1.Pod, terms []v1.WeightedPodAffinityTerm) []affinityTerm {
	out := make([]affinityTerm, 0, len(terms))
	for i := range terms {
		out = append(out, newAffinityTerm(pod, &terms[i].PodAffinityTerm, terms[i].Weight))
	}
	return out
}

// newAffinityTerm follows Kubernetes: with neither namespaces nor a
// namespaceSelector the term covers the pod's own namespace; a nil
// labelSelector matches nothing, an empty one everything.
func newAffinityTerm(pod *v1.Pod, t *v1.PodAffinityTerm, weight int32) affinityTerm {
	at := affinityTerm{topologyKey: t.TopologyKey, weight: weight, namespaces: map[string]bool{}}
	sel, err := metav1.LabelSelectorAsSelector(t.LabelSelector)
	if err != nil {
		sel = labels.Nothing()
	}
	at.selector = sel
	if len(t.Namespaces) == 0 && t.NamespaceSelector == nil {
		at.namespaces[pod.Namespace] = true
	}
	for _, ns := range t.Namespaces {
		at.namespaces[ns] = true
	}
	if t.NamespaceSelector != nil {
		nsSel, err := metav1.LabelSelectorAsSelector(t.NamespaceSelector)
		if err != nil {
			nsSel = labels.Nothing()
		}
		at.nsSelector = nsSel
	}
	return at
}

// matches reports whether p is selected by the term.
func (t *affinityTerm) matches(p *v1.Pod, nsLabels map[string]map[string]string) bool {
	if !t.namespaces[p.Namespace] && (t.nsSelector == nil || !t.nsSelector.Matches(labels.Set(nsLabels[p.Namespace]))) {
		return false
	}
	return t.selector.Matches(labels.Set(p.Labels))
}

// matchesAll reports whether p is selected by every term (and there is at
// least one).
func matchesAll(terms []affinityTerm, p *v1.Pod, nsLabels map[string]map[string]string) bool {
	if len(terms) == 0 {
		return false
	}
	for i := range terms {
		if !terms[i].matches(p, nsLabels) {
			return false
		}
	}
	return true
}

// topologyPair is one topology domain: a node label key and value.
type topologyPair struct{ key, value string }

// nodeAffinity is the pod's node placement as kube-scheduler's NodeAffinity
// plugin parses it, with Kubernetes' own matcher (component-helpers): the
// nodeSelector and required node affinity (a node must satisfy the
// nodeSelector and at least one term; a term with neither expressions nor
// fields matches no node), and the preferred terms with their weights.
type nodeAffinity struct {
	required  nodeaffinity.RequiredNodeAffinity
	preferred *nodeaffinity.PreferredSchedulingTerms // nil: none, or a term did not parse
}

func newNodeAffinity(pod *v1.Pod) nodeAffinity {
	na := nodeAffinity{required: nodeaffinity.GetRequiredNodeAffinity(pod)}
	if a := pod.Spec.Affinity; a != nil && a.NodeAffinity != nil && len(a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution) > 0 {
		// As kube-scheduler: preferred terms that do not parse score nothing.
		na.preferred, _ = nodeaffinity.NewPreferredSchedulingTerms(a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution)
	}
	return na
}

// matches reports whether node satisfies the nodeSelector and the required
// node affinity; as in kube-scheduler, a term that does not parse matches
// nothing.
func (na nodeAffinity) matches(node *v1.Node) bool {
	ok, _ := na.required.Match(node)
	return ok
}
