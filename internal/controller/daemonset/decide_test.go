package daemonset

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

var now = time.Unix(10000, 0)

func newDS(mods ...func(*appsv1.DaemonSet)) *appsv1.DaemonSet {
	one, zero := intstr.FromInt32(1), intstr.FromInt32(0)
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "agent", Namespace: "default", UID: "ds-uid",
			Annotations: map[string]string{appsv1.DeprecatedTemplateGeneration: "1"}},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "agent"}},
			Template: v1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "agent"}},
				Spec:       v1.PodSpec{Containers: []v1.Container{{Name: "c", Image: "busybox:1"}}},
			},
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxUnavailable: &one, MaxSurge: &zero}},
		},
	}
	for _, m := range mods {
		m(ds)
	}
	return ds
}

func surge(n string) func(*appsv1.DaemonSet) {
	return func(ds *appsv1.DaemonSet) {
		s, z := intstr.Parse(n), intstr.FromInt32(0)
		ds.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateDaemonSet{MaxSurge: &s, MaxUnavailable: &z}
	}
}

func unavailable(n string) func(*appsv1.DaemonSet) {
	return func(ds *appsv1.DaemonSet) {
		u := intstr.Parse(n)
		ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = &u
	}
}

func node(name string, mods ...func(*v1.Node)) *v1.Node {
	n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{v1.LabelHostname: name}}}
	for _, m := range mods {
		m(n)
	}
	return n
}

func labelled(k, v string) func(*v1.Node) { return func(n *v1.Node) { n.Labels[k] = v } }

func tainted(key string, effect v1.TaintEffect) func(*v1.Node) {
	return func(n *v1.Node) { n.Spec.Taints = append(n.Spec.Taints, v1.Taint{Key: key, Effect: effect}) }
}

// dpod is a daemon pod on node at hash, created at sec.
func dpod(name, node, hash string, sec int64, mods ...func(*v1.Pod)) *v1.Pod {
	p := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", CreationTimestamp: metav1.Unix(sec, 0),
			Labels: map[string]string{"app": "agent", HashLabel: hash}},
		Spec: v1.PodSpec{NodeName: node},
	}
	for _, m := range mods {
		m(p)
	}
	return p
}

func readyPod(p *v1.Pod) {
	p.Status.Phase = v1.PodRunning
	p.Status.Conditions = []v1.PodCondition{{Type: v1.PodReady, Status: v1.ConditionTrue, LastTransitionTime: metav1.Unix(1, 0)}}
}

func phase(ph v1.PodPhase) func(*v1.Pod) { return func(p *v1.Pod) { p.Status.Phase = ph } }

func terminating(p *v1.Pod) { t := metav1.Unix(5, 0); p.DeletionTimestamp = &t }

func TestShouldRun(t *testing.T) {
	for _, tc := range []struct {
		name           string
		ds             *appsv1.DaemonSet
		node           *v1.Node
		run, continue_ bool
	}{
		{"plain node", newDS(), node("a"), true, true},
		{"nodeSelector matches", newDS(func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.NodeSelector = map[string]string{"disk": "ssd"} }),
			node("a", labelled("disk", "ssd")), true, true},
		{"nodeSelector does not match", newDS(func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.NodeSelector = map[string]string{"disk": "ssd"} }),
			node("a"), false, false},
		{"required affinity does not match", newDS(func(ds *appsv1.DaemonSet) {
			ds.Spec.Template.Spec.Affinity = &v1.Affinity{NodeAffinity: &v1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &v1.NodeSelector{
				NodeSelectorTerms: []v1.NodeSelectorTerm{{MatchExpressions: []v1.NodeSelectorRequirement{{Key: "zone", Operator: v1.NodeSelectorOpIn, Values: []string{"z1"}}}}}}}}
		}), node("a", labelled("zone", "z2")), false, false},
		{"template nodeName elsewhere", newDS(func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.NodeName = "b" }), node("a"), false, false},
		{"untolerated NoSchedule: no new pod, the running one stays", newDS(), node("a", tainted("dedicated", v1.TaintEffectNoSchedule)), false, true},
		{"untolerated NoExecute: the pod goes", newDS(), node("a", tainted("dedicated", v1.TaintEffectNoExecute)), false, false},
		{"tolerated taint", newDS(func(ds *appsv1.DaemonSet) {
			ds.Spec.Template.Spec.Tolerations = []v1.Toleration{{Key: "dedicated", Operator: v1.TolerationOpExists}}
		}), node("a", tainted("dedicated", v1.TaintEffectNoExecute)), true, true},
		{"daemon tolerations: unreachable and not-ready", newDS(), node("a", tainted(v1.TaintNodeUnreachable, v1.TaintEffectNoExecute), tainted(v1.TaintNodeNotReady, v1.TaintEffectNoExecute)), true, true},
		{"not-ready NoSchedule keeps new pods off", newDS(), node("a", tainted(v1.TaintNodeNotReady, v1.TaintEffectNoSchedule)), false, true},
		{"daemon tolerations: cordoned, pressure", newDS(), node("a", tainted(v1.TaintNodeUnschedulable, v1.TaintEffectNoSchedule), tainted(v1.TaintNodeDiskPressure, v1.TaintEffectNoSchedule),
			tainted(v1.TaintNodeMemoryPressure, v1.TaintEffectNoSchedule), tainted(v1.TaintNodePIDPressure, v1.TaintEffectNoSchedule)), true, true},
		{"network-unavailable only for hostNetwork", newDS(), node("a", tainted(v1.TaintNodeNetworkUnavailable, v1.TaintEffectNoSchedule)), false, true},
		{"hostNetwork tolerates network-unavailable", newDS(func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.HostNetwork = true }),
			node("a", tainted(v1.TaintNodeNetworkUnavailable, v1.TaintEffectNoSchedule)), true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run, cont := ShouldRun(tc.node, tc.ds)
			if run != tc.run || cont != tc.continue_ {
				t.Errorf("ShouldRun = %v, %v; want %v, %v", run, cont, tc.run, tc.continue_)
			}
		})
	}
}

func TestPinToNodeAndTargetNode(t *testing.T) {
	keep := &v1.PreferredSchedulingTerm{Weight: 5, Preference: v1.NodeSelectorTerm{MatchExpressions: []v1.NodeSelectorRequirement{{Key: "k", Operator: v1.NodeSelectorOpExists}}}}
	a := &v1.Affinity{NodeAffinity: &v1.NodeAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution:  &v1.NodeSelector{NodeSelectorTerms: []v1.NodeSelectorTerm{{MatchExpressions: []v1.NodeSelectorRequirement{{Key: "zone", Operator: v1.NodeSelectorOpExists}}}}},
		PreferredDuringSchedulingIgnoredDuringExecution: []v1.PreferredSchedulingTerm{*keep},
	}}
	a = PinToNode(a, "n2")
	terms := a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	if len(terms) != 1 || len(terms[0].MatchExpressions) != 0 || len(terms[0].MatchFields) != 1 ||
		terms[0].MatchFields[0].Key != "metadata.name" || terms[0].MatchFields[0].Values[0] != "n2" {
		t.Fatalf("pinned terms %+v", terms)
	}
	if len(a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 1 {
		t.Error("preferred terms dropped")
	}
	p := &v1.Pod{Spec: v1.PodSpec{Affinity: PinToNode(nil, "n3")}}
	if n, err := TargetNode(p); n != "n3" || err != nil {
		t.Errorf("unbound pod targets %q, %v", n, err)
	}
	p.Spec.NodeName = "n4"
	if n, _ := TargetNode(p); n != "n4" {
		t.Errorf("bound pod targets %q", n)
	}
	if _, err := TargetNode(&v1.Pod{}); err == nil {
		t.Error("pod without node: no error")
	}
}

func TestAddDaemonTolerationsIdempotent(t *testing.T) {
	s := &v1.PodSpec{Tolerations: []v1.Toleration{{Key: "own", Operator: v1.TolerationOpExists}}}
	AddDaemonTolerations(s)
	AddDaemonTolerations(s)
	if len(s.Tolerations) != 1+len(daemonTolerations) {
		t.Fatalf("%d tolerations: %+v", len(s.Tolerations), s.Tolerations)
	}
}

func names(pods []*v1.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Name)
	}
	sort.Strings(out)
	return out
}

func TestPlanNode(t *testing.T) {
	n := node("a")
	for _, tc := range []struct {
		name   string
		ds     *appsv1.DaemonSet
		node   *v1.Node
		pods   []*v1.Pod
		create bool
		delete []string
		failed []string
	}{
		{"missing pod is created", newDS(), n, nil, true, nil, nil},
		{"one pod: nothing", newDS(), n, []*v1.Pod{dpod("p1", "a", "h1", 1)}, false, nil, nil},
		{"extra pods: the oldest stays", newDS(), n, []*v1.Pod{dpod("p2", "a", "h1", 2), dpod("p1", "a", "h1", 1), dpod("p3", "a", "h1", 3)}, false, []string{"p2", "p3"}, nil},
		{"failed pod goes (with back-off)", newDS(), n, []*v1.Pod{dpod("p1", "a", "h1", 1, phase(v1.PodFailed))}, false, nil, []string{"p1"}},
		{"succeeded pod goes", newDS(), n, []*v1.Pod{dpod("p1", "a", "h1", 1, phase(v1.PodSucceeded))}, false, []string{"p1"}, nil},
		{"terminating pod: wait", newDS(), n, []*v1.Pod{dpod("p1", "a", "h1", 1, terminating)}, false, nil, nil},
		{"node no longer matches: pod goes", newDS(func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.NodeSelector = map[string]string{"x": "y"} }),
			n, []*v1.Pod{dpod("p1", "a", "h1", 1), dpod("p2", "a", "h1", 2, terminating)}, false, []string{"p1"}, nil},
		{"surge: old and unavailable new both stay", newDS(surge("1")), n, []*v1.Pod{dpod("old", "a", "h0", 1, readyPod), dpod("new", "a", "h1", 2)}, false, nil, nil},
		{"surge: new available, old goes", newDS(surge("1")), n, []*v1.Pod{dpod("old", "a", "h0", 1, readyPod), dpod("new", "a", "h1", 2, readyPod)}, false, []string{"old"}, nil},
		{"surge: old not ready, old goes", newDS(surge("1")), n, []*v1.Pod{dpod("old", "a", "h0", 1), dpod("new", "a", "h1", 2)}, false, []string{"old"}, nil},
		{"surge: a third pod goes", newDS(surge("1")), n, []*v1.Pod{dpod("old", "a", "h0", 1, readyPod), dpod("new", "a", "h1", 2), dpod("new2", "a", "h1", 3)}, false, []string{"new2"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan := planNode(tc.ds, tc.node, tc.pods, "h1", now)
			if plan.create != tc.create || !slices.Equal(names(plan.delete), tc.delete) || !slices.Equal(names(plan.failed), tc.failed) {
				t.Errorf("plan create=%v delete=%v failed=%v; want %v %v %v", plan.create, names(plan.delete), names(plan.failed), tc.create, tc.delete, tc.failed)
			}
		})
	}
}

// cluster builds n nodes with one old ready pod each.
func cluster(n int, hash string) ([]*v1.Node, map[string][]*v1.Pod) {
	var nodes []*v1.Node
	byNode := map[string][]*v1.Pod{}
	for i := range n {
		name := fmt.Sprintf("n%d", i)
		nodes = append(nodes, node(name))
		byNode[name] = []*v1.Pod{dpod("p-"+name, name, hash, 1, readyPod)}
	}
	return nodes, byNode
}

func TestRollingUpdateMaxUnavailable(t *testing.T) {
	nodes, byNode := cluster(4, "old")
	del, cr := rollingUpdate(newDS(), nodes, byNode, "new", now)
	if !slices.Equal(del, []string{"p-n0"}) || cr != nil {
		t.Fatalf("maxUnavailable 1: delete %v create %v, want one old pod", del, cr)
	}
	del, _ = rollingUpdate(newDS(unavailable("50%")), nodes, byNode, "new", now)
	if !slices.Equal(del, []string{"p-n0", "p-n1"}) {
		t.Fatalf("maxUnavailable 50%% of 4: delete %v", del)
	}
	// n0 is being replaced (its new pod not yet ready): no more room.
	byNode["n0"] = []*v1.Pod{dpod("q-n0", "n0", "new", 2)}
	if del, _ = rollingUpdate(newDS(), nodes, byNode, "new", now); len(del) != 0 {
		t.Fatalf("with n0's new pod unavailable: delete %v, want none", del)
	}
	// An old pod that is not available is replaced at no cost.
	byNode["n2"] = []*v1.Pod{dpod("p-n2", "n2", "old", 1)}
	if del, _ = rollingUpdate(newDS(), nodes, byNode, "new", now); !slices.Equal(del, []string{"p-n2"}) {
		t.Fatalf("unavailable old pod: delete %v", del)
	}
	// n0's new pod ready: the next old one goes.
	byNode["n0"] = []*v1.Pod{dpod("q-n0", "n0", "new", 2, readyPod)}
	byNode["n2"] = []*v1.Pod{dpod("p-n2", "n2", "old", 1, readyPod)}
	if del, _ = rollingUpdate(newDS(), nodes, byNode, "new", now); !slices.Equal(del, []string{"p-n1"}) {
		t.Fatalf("after n0: delete %v, want p-n1", del)
	}
	// A node without a pod counts as unavailable.
	delete(byNode, "n3")
	if del, _ = rollingUpdate(newDS(), nodes, byNode, "new", now); len(del) != 0 {
		t.Fatalf("n3 without a pod: delete %v, want none", del)
	}
	// A pod matching by template generation is updated too.
	gen := dpod("g-n3", "n3", "other", 1, readyPod)
	gen.Labels[GenerationLabel] = "1"
	byNode["n3"] = []*v1.Pod{gen}
	if del, _ = rollingUpdate(newDS(), nodes, byNode, "new", now); !slices.Equal(del, []string{"p-n1"}) {
		t.Fatalf("generation-matched pod: delete %v", del)
	}
}

func TestRollingUpdateMaxSurge(t *testing.T) {
	nodes, byNode := cluster(3, "old")
	del, cr := rollingUpdate(newDS(surge("1")), nodes, byNode, "new", now)
	if len(del) != 0 || !slices.Equal(cr, []string{"n0"}) {
		t.Fatalf("surge 1: delete %v create %v, want a new pod on n0", del, cr)
	}
	// n0 surged, new pod not available: no more room.
	byNode["n0"] = append(byNode["n0"], dpod("q-n0", "n0", "new", 2))
	if del, cr = rollingUpdate(newDS(surge("1")), nodes, byNode, "new", now); len(del) != 0 || len(cr) != 0 {
		t.Fatalf("while n0's new pod starts: delete %v create %v", del, cr)
	}
	// Available: the old pod on n0 goes, and n1 is surged.
	readyPod(byNode["n0"][1])
	if del, cr = rollingUpdate(newDS(surge("1")), nodes, byNode, "new", now); !slices.Equal(del, []string{"p-n0"}) || !slices.Equal(cr, []string{"n1"}) {
		t.Fatalf("n0's new pod available: delete %v create %v", del, cr)
	}
	// An unavailable old pod gets its new one at once, beyond maxSurge.
	byNode["n2"] = []*v1.Pod{dpod("p-n2", "n2", "old", 1)}
	if _, cr = rollingUpdate(newDS(surge("1")), nodes, byNode, "new", now); !slices.Equal(cr, []string{"n2", "n1"}) {
		t.Fatalf("unavailable old pod on n2: create %v", cr)
	}
}

func TestComputeStatus(t *testing.T) {
	nodes := []*v1.Node{node("a"), node("b"), node("c", labelled("skip", "1")), node("d")}
	ds := newDS(func(ds *appsv1.DaemonSet) {
		ds.Spec.Template.Spec.Affinity = &v1.Affinity{NodeAffinity: &v1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &v1.NodeSelector{
			NodeSelectorTerms: []v1.NodeSelectorTerm{{MatchExpressions: []v1.NodeSelectorRequirement{{Key: "skip", Operator: v1.NodeSelectorOpDoesNotExist}}}}}}}
		ds.Spec.MinReadySeconds = 10
	})
	byNode := map[string][]*v1.Pod{
		"a": {dpod("pa", "a", "new", 1, readyPod)},
		"b": {dpod("pb", "b", "old", 1, func(p *v1.Pod) {
			readyPod(p)
			p.Status.Conditions[0].LastTransitionTime = metav1.NewTime(now.Add(-5 * time.Second))
		})},
		"c": {dpod("pc", "c", "new", 1)},
	}
	st, wait := computeStatus(ds, nodes, byNode, "new", now)
	want := appsv1.DaemonSetStatus{DesiredNumberScheduled: 3, CurrentNumberScheduled: 2, NumberMisscheduled: 1, NumberReady: 2,
		UpdatedNumberScheduled: 1, NumberAvailable: 1, NumberUnavailable: 2}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("status %+v, want %+v", st, want)
	}
	if wait != 6*time.Second {
		t.Errorf("requeue after %v, want 6s (pb available in 5s, plus a second)", wait)
	}
}
