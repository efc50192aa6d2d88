package apiserver

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func schedPod(mut func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default", Labels: map[string]string{"app": "web", "hash": "h1"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
	DefaultPod(p)
	if mut != nil {
		mut(p)
	}
	return p
}

func errStrings(p *corev1.Pod) []string {
	var out []string
	for _, e := range ValidatePod(p) {
		out = append(out, e.Error())
	}
	return out
}

// TestValidatePodScheduling checks the scheduling fields' validation
// against Kubernetes' messages, each naming its field.
func TestValidatePodScheduling(t *testing.T) {
	appSel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	nodeTerm := func(reqs ...corev1.NodeSelectorRequirement) corev1.NodeSelectorTerm {
		return corev1.NodeSelectorTerm{MatchExpressions: reqs}
	}
	required := func(terms ...corev1.NodeSelectorTerm) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: terms}}}
		}
	}
	podAffinity := func(t corev1.PodAffinityTerm) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			p.Spec.Affinity = &corev1.Affinity{PodAffinity: &corev1.PodAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{t}}}
		}
	}
	spread := func(cs ...corev1.TopologySpreadConstraint) func(*corev1.Pod) {
		return func(p *corev1.Pod) { p.Spec.TopologySpreadConstraints = cs }
	}
	const reqPath = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
	const podTermPath = "spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0]"
	tests := []struct {
		name string
		mut  func(*corev1.Pod)
		want []string
	}{
		{"valid node affinity", required(nodeTerm(corev1.NodeSelectorRequirement{Key: "disk", Operator: corev1.NodeSelectorOpIn, Values: []string{"ssd"}})), nil},
		{"no terms", required(), []string{reqPath + ".nodeSelectorTerms: Required value: must have at least one node selector term"}},
		{"bad operator", required(nodeTerm(corev1.NodeSelectorRequirement{Key: "disk", Operator: "Equals", Values: []string{"ssd"}})),
			[]string{reqPath + `.nodeSelectorTerms[0].matchExpressions[0].operator: Invalid value: "Equals": not a valid selector operator`}},
		{"In without values", required(nodeTerm(corev1.NodeSelectorRequirement{Key: "disk", Operator: corev1.NodeSelectorOpIn})),
			[]string{reqPath + ".nodeSelectorTerms[0].matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"}},
		{"Exists with values", required(nodeTerm(corev1.NodeSelectorRequirement{Key: "disk", Operator: corev1.NodeSelectorOpExists, Values: []string{"x"}})),
			[]string{reqPath + ".nodeSelectorTerms[0].matchExpressions[0].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"}},
		{"Gt with two values", required(nodeTerm(corev1.NodeSelectorRequirement{Key: "cores", Operator: corev1.NodeSelectorOpGt, Values: []string{"1", "2"}})),
			[]string{reqPath + ".nodeSelectorTerms[0].matchExpressions[0].values: Required value: must be specified single value when `operator` is 'Lt' or 'Gt'"}},
		{"bad key", required(nodeTerm(corev1.NodeSelectorRequirement{Key: "bad key", Operator: corev1.NodeSelectorOpExists})),
			[]string{reqPath + `.nodeSelectorTerms[0].matchExpressions[0].key: Invalid value: "bad key": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`}},
		{"bad field key", func(p *corev1.Pod) {
			required(corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{{Key: "spec.x", Operator: corev1.NodeSelectorOpIn, Values: []string{"a"}}}})(p)
		}, []string{reqPath + `.nodeSelectorTerms[0].matchFields[0].key: Invalid value: "spec.x": not a valid field selector key`}},
		{"preferred weight", func(p *corev1.Pod) {
			p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{
				{Weight: 0, Preference: nodeTerm(corev1.NodeSelectorRequirement{Key: "a", Operator: corev1.NodeSelectorOpExists})}}}}
		}, []string{"spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight: Invalid value: 0: must be in the range 1-100"}},
		{"empty topologyKey", podAffinity(corev1.PodAffinityTerm{LabelSelector: appSel}),
			[]string{podTermPath + ".topologyKey: Required value: can not be empty", podTermPath + `.topologyKey: Invalid value: "": name part must be non-empty`,
				podTermPath + `.topologyKey: Invalid value: "": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`}},
		{"bad selector operator", podAffinity(corev1.PodAffinityTerm{TopologyKey: "zone",
			LabelSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Is", Values: []string{"x"}}}}}),
			[]string{podTermPath + `.labelSelector.matchExpressions[0].operator: Invalid value: "Is": not a valid selector operator`}},
		{"In selector without values", podAffinity(corev1.PodAffinityTerm{TopologyKey: "zone",
			LabelSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpIn}}}}),
			[]string{podTermPath + ".labelSelector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"}},
		{"bad namespace", podAffinity(corev1.PodAffinityTerm{TopologyKey: "zone", LabelSelector: appSel, Namespaces: []string{"Bad_NS"}}),
			[]string{podTermPath + `.namespace: Invalid value: "Bad_NS": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`}},
		{"matchLabelKeys without selector", podAffinity(corev1.PodAffinityTerm{TopologyKey: "zone", MatchLabelKeys: []string{"hash"}}),
			[]string{podTermPath + ".matchLabelKeys: Forbidden: must not be specified when labelSelector is not set"}},
		{"key in both lists", podAffinity(corev1.PodAffinityTerm{TopologyKey: "zone", LabelSelector: appSel, MatchLabelKeys: []string{"x"}, MismatchLabelKeys: []string{"x"}}),
			[]string{podTermPath + `.matchLabelKeys[0]: Invalid value: "x": exists in both matchLabelKeys and mismatchLabelKeys`}},
		{"preferred pod affinity weight", func(p *corev1.Pod) {
			p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{
				{Weight: 101, PodAffinityTerm: corev1.PodAffinityTerm{TopologyKey: "zone", LabelSelector: appSel}}}}}
		}, []string{"spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight: Invalid value: 101: must be in the range 1-100"}},
		{"valid spread", spread(corev1.TopologySpreadConstraint{MaxSkew: 1, TopologyKey: "zone", WhenUnsatisfiable: corev1.DoNotSchedule, LabelSelector: appSel, MinDomains: ptr.To(int32(2))}), nil},
		{"spread maxSkew 0", spread(corev1.TopologySpreadConstraint{MaxSkew: 0, TopologyKey: "zone", WhenUnsatisfiable: corev1.DoNotSchedule}),
			[]string{"spec.topologySpreadConstraints[0].maxSkew: Invalid value: 0: must be greater than zero"}},
		{"spread empty key", spread(corev1.TopologySpreadConstraint{MaxSkew: 1, WhenUnsatisfiable: corev1.DoNotSchedule}),
			[]string{"spec.topologySpreadConstraints[0].topologyKey: Required value: can not be empty"}},
		{"spread bad action", spread(corev1.TopologySpreadConstraint{MaxSkew: 1, TopologyKey: "zone", WhenUnsatisfiable: "Sometimes"}),
			[]string{`spec.topologySpreadConstraints[0].whenUnsatisfiable: Unsupported value: "Sometimes": supported values: "DoNotSchedule", "ScheduleAnyway"`}},
		{"spread duplicate", spread(
			corev1.TopologySpreadConstraint{MaxSkew: 1, TopologyKey: "zone", WhenUnsatisfiable: corev1.DoNotSchedule},
			corev1.TopologySpreadConstraint{MaxSkew: 2, TopologyKey: "zone", WhenUnsatisfiable: corev1.DoNotSchedule}),
			[]string{`spec.topologySpreadConstraints[0].{topologyKey, whenUnsatisfiable}: Duplicate value: "{zone, DoNotSchedule}"`}},
		{"minDomains with ScheduleAnyway", spread(corev1.TopologySpreadConstraint{MaxSkew: 1, TopologyKey: "zone", WhenUnsatisfiable: corev1.ScheduleAnyway, MinDomains: ptr.To(int32(0))}),
			[]string{"spec.topologySpreadConstraints[0].minDomains: Invalid value: 0: must be greater than zero",
				"spec.topologySpreadConstraints[0].minDomains: Invalid value: 0: can only use minDomains if whenUnsatisfiable=DoNotSchedule, not ScheduleAnyway"}},
		{"bad inclusion policy", spread(corev1.TopologySpreadConstraint{MaxSkew: 1, TopologyKey: "zone", WhenUnsatisfiable: corev1.DoNotSchedule,
			NodeTaintsPolicy: ptr.To(corev1.NodeInclusionPolicy("Maybe"))}),
			[]string{`spec.topologySpreadConstraints[0].nodeTaintsPolicy: Unsupported value: "Maybe": supported values: "Honor", "Ignore"`}},
		{"spread key in selector and matchLabelKeys", func(p *corev1.Pod) {
			spread(corev1.TopologySpreadConstraint{MaxSkew: 1, TopologyKey: "zone", WhenUnsatisfiable: corev1.DoNotSchedule,
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"hash": "h1"}}, MatchLabelKeys: []string{"hash"}})(p)
			prepareSchedulingOnCreate(p)
		}, []string{`spec.topologySpreadConstraints[0].matchLabelKeys[0]: Invalid value: "hash": exists in both matchLabelKeys and labelSelector`}},
		{"gate name", func(p *corev1.Pod) {
			p.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "example.com/ok"}, {Name: "not ok"}}
		},
			[]string{`spec.schedulingGates[1]: Invalid value: "not ok": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`}},
		{"duplicate gate", func(p *corev1.Pod) { p.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "g"}, {Name: "g"}} },
			[]string{`spec.schedulingGates[1]: Duplicate value: "g"`}},
		{"nodeName with gates", func(p *corev1.Pod) {
			p.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "g"}}
			p.Spec.NodeName = "n1"
		}, []string{"spec.nodeName: Forbidden: cannot be set until all schedulingGates have been cleared"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := errStrings(schedPod(tc.mut))
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("errors\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestPrepareSchedulingOnCreate: gates give PodScheduled=False
// SchedulingGated; matchLabelKeys and mismatchLabelKeys become selector
// requirements with the pod's own values, keys the pod lacks are skipped.
func TestPrepareSchedulingOnCreate(t *testing.T) {
	p := schedPod(func(p *corev1.Pod) {
		p.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "g"}}
		p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
			TopologyKey: "zone", LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			MatchLabelKeys: []string{"hash", "absent"}, MismatchLabelKeys: []string{"app"},
		}}}}
		p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: "zone", WhenUnsatisfiable: corev1.DoNotSchedule,
			LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}, MatchLabelKeys: []string{"hash"}}}
	})
	prepareSchedulingOnCreate(p)
	if len(p.Status.Conditions) != 1 {
		t.Fatalf("conditions %+v", p.Status.Conditions)
	}
	c := p.Status.Conditions[0]
	if c.Type != corev1.PodScheduled || c.Status != corev1.ConditionFalse || c.Reason != corev1.PodReasonSchedulingGated || c.Message != schedulingGatedMessage {
		t.Fatalf("condition %+v", c)
	}
	term := p.Spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution[0]
	if got := fmt.Sprint(term.LabelSelector.MatchExpressions); got != "[{hash In [h1]} {app NotIn [web]}]" {
		t.Fatalf("affinity selector expressions %s", got)
	}
	if got := fmt.Sprint(p.Spec.TopologySpreadConstraints[0].LabelSelector.MatchExpressions); got != "[{hash In [h1]}]" {
		t.Fatalf("spread selector expressions %s", got)
	}
	if errs := ValidatePod(p); len(errs) != 0 {
		t.Fatalf("merged pod invalid: %v", errs)
	}
}

// TestValidateSchedulingUpdate: gates may only be removed; a gated pod
// may gain nodeSelector entries and node affinity requirements, nothing
// else.
func TestValidateSchedulingUpdate(t *testing.T) {
	gated := func(mut func(*corev1.Pod)) *corev1.Pod {
		return schedPod(func(p *corev1.Pod) {
			p.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "a"}, {Name: "b"}}
			p.Spec.NodeSelector = map[string]string{"pool": "x"}
			p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "k", Operator: corev1.NodeSelectorOpExists}}}}}}}
			if mut != nil {
				mut(p)
			}
		})
	}
	addReq := func(p *corev1.Pod) {
		t := &p.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0]
		t.MatchExpressions = append(t.MatchExpressions, corev1.NodeSelectorRequirement{Key: "k2", Operator: corev1.NodeSelectorOpExists})
	}
	tests := []struct {
		name     string
		old, cur *corev1.Pod
		want     string // substring of the joined errors; "" for none
	}{
		{"remove one gate", gated(nil), gated(func(p *corev1.Pod) { p.Spec.SchedulingGates = p.Spec.SchedulingGates[1:] }), ""},
		{"remove every gate", gated(nil), gated(func(p *corev1.Pod) { p.Spec.SchedulingGates = nil }), ""},
		{"add a gate", gated(nil), gated(func(p *corev1.Pod) {
			p.Spec.SchedulingGates = append(p.Spec.SchedulingGates, corev1.PodSchedulingGate{Name: "c"})
		}),
			"spec.schedulingGates[2].name: Forbidden: only deletion is allowed, but found new scheduling gate 'c'"},
		{"gate added to an ungated pod", schedPod(nil), schedPod(func(p *corev1.Pod) { p.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "x"}} }),
			"spec.schedulingGates[0].name: Forbidden: only deletion is allowed, but found new scheduling gate 'x'"},
		{"gated: nodeSelector addition", gated(nil), gated(func(p *corev1.Pod) { p.Spec.NodeSelector["zone"] = "a" }), ""},
		{"gated: nodeSelector change", gated(nil), gated(func(p *corev1.Pod) { p.Spec.NodeSelector["pool"] = "y" }),
			"only additions to spec.nodeSelector are allowed (no mutations or deletions)"},
		{"gated: node affinity requirement added", gated(nil), gated(addReq), ""},
		{"gated: node affinity term added", gated(nil), gated(func(p *corev1.Pod) {
			na := p.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution
			na.NodeSelectorTerms = append(na.NodeSelectorTerms, corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "z", Operator: corev1.NodeSelectorOpExists}}})
		}), "no additions/deletions to non-empty NodeSelectorTerms list are allowed"},
		{"ungated: nodeSelector addition refused", schedPod(nil), schedPod(func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"a": "b"} }),
			"spec: Forbidden: pod updates may not change fields other than"},
		{"gated: pod affinity still immutable", gated(nil), gated(func(p *corev1.Pod) {
			p.Spec.Affinity.PodAffinity = &corev1.PodAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{TopologyKey: "zone",
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}}}}}
		}), "spec: Forbidden: pod updates may not change fields other than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var msgs []string
			for _, e := range ValidatePodUpdate(tc.cur, tc.old) {
				msgs = append(msgs, e.Error())
			}
			got := strings.Join(msgs, "\n")
			switch {
			case tc.want == "" && got != "":
				t.Fatalf("unexpected errors:\n%s", got)
			case tc.want != "" && !strings.Contains(got, tc.want):
				t.Fatalf("errors\n%s\nwant one containing %q", got, tc.want)
			}
		})
	}
}

// TestPreserveObservedGeneration: a status write that leaves
// observedGeneration unset keeps the old values, one that sets it wins.
func TestPreserveObservedGeneration(t *testing.T) {
	old := &corev1.Pod{Status: corev1.PodStatus{ObservedGeneration: 3, Conditions: []corev1.PodCondition{
		{Type: corev1.PodReady, ObservedGeneration: 3}, {Type: corev1.PodScheduled, ObservedGeneration: 1}}}}
	cur := &corev1.Pod{Status: corev1.PodStatus{Conditions: []corev1.PodCondition{
		{Type: corev1.PodScheduled}, {Type: corev1.PodReady, ObservedGeneration: 4}, {Type: corev1.ContainersReady}}}}
	preserveObservedGeneration(cur, old)
	if cur.Status.ObservedGeneration != 3 {
		t.Fatalf("status observedGeneration %d, want 3", cur.Status.ObservedGeneration)
	}
	got := fmt.Sprint(cur.Status.Conditions[0].ObservedGeneration, cur.Status.Conditions[1].ObservedGeneration, cur.Status.Conditions[2].ObservedGeneration)
	if got != "1 4 0" {
		t.Fatalf("condition generations %s, want 1 4 0", got)
	}
}
