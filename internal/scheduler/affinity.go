package scheduler

import (
	"strconv"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
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

// matchesNodeSelectorAndAffinity reports whether node satisfies the pod's
// nodeSelector and its required node affinity: every nodeSelector label
// must be present with that value, and at least one nodeSelectorTerm must
// match (an empty term matches nothing).
func matchesNodeSelectorAndAffinity(pod *v1.Pod, node *v1.Node) bool {
	for k, v := range pod.Spec.NodeSelector {
		if lv, ok := node.Labels[k]; !ok || lv != v {
			return false
		}
	}
	a := pod.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return true
	}
	for i := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		if nodeMatchesTerm(&a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[i], node) {
			return true
		}
	}
	return false
}

// nodeMatchesTerm reports whether node satisfies every expression and field
// of term; a term with neither matches no node.
func nodeMatchesTerm(term *v1.NodeSelectorTerm, node *v1.Node) bool {
	if len(term.MatchExpressions) == 0 && len(term.MatchFields) == 0 {
		return false
	}
	for i := range term.MatchExpressions {
		r := &term.MatchExpressions[i]
		v, ok := node.Labels[r.Key]
		if !requirementHolds(r.Operator, r.Values, v, ok) {
			return false
		}
	}
	for i := range term.MatchFields {
		r := &term.MatchFields[i]
		if r.Key != "metadata.name" {
			return false
		}
		if !requirementHolds(r.Operator, r.Values, node.Name, true) {
			return false
		}
	}
	return true
}

// requirementHolds evaluates one node selector requirement against a value
// v (present or not).
func requirementHolds(op v1.NodeSelectorOperator, values []string, v string, present bool) bool {
	switch op {
	case v1.NodeSelectorOpIn:
		return present && contains(values, v)
	case v1.NodeSelectorOpNotIn:
		return !present || !contains(values, v)
	case v1.NodeSelectorOpExists:
		return present
	case v1.NodeSelectorOpDoesNotExist:
		return !present
	case v1.NodeSelectorOpGt, v1.NodeSelectorOpLt:
		if !present || len(values) != 1 {
			return false
		}
		have, err1 := strconv.ParseInt(v, 10, 64)
		want, err2 := strconv.ParseInt(values[0], 10, 64)
		if err1 != nil || err2 != nil {
			return false
		}
		if op == v1.NodeSelectorOpGt {
			return have > want
		}
		return have < want
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
