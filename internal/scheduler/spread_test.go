package scheduler

import (
	"errors"
	"fmt"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
)

const zoneKey = v1.LabelTopologyZone

// spread adds a topology spread constraint selecting app=<app>.
func spread(maxSkew int32, key string, when v1.UnsatisfiableConstraintAction, app string, opts ...func(*v1.TopologySpreadConstraint)) podOpt {
	return func(p *v1.Pod) {
		c := v1.TopologySpreadConstraint{
			MaxSkew: maxSkew, TopologyKey: key, WhenUnsatisfiable: when,
			LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}},
		}
		for _, o := range opts {
			o(&c)
		}
		p.Spec.TopologySpreadConstraints = append(p.Spec.TopologySpreadConstraints, c)
	}
}

func minDomains(n int32) func(*v1.TopologySpreadConstraint) {
	return func(c *v1.TopologySpreadConstraint) { c.MinDomains = &n }
}

func affinityPolicy(p v1.NodeInclusionPolicy) func(*v1.TopologySpreadConstraint) {
	return func(c *v1.TopologySpreadConstraint) { c.NodeAffinityPolicy = &p }
}

func taintsPolicy(p v1.NodeInclusionPolicy) func(*v1.TopologySpreadConstraint) {
	return func(c *v1.TopologySpreadConstraint) { c.NodeTaintsPolicy = &p }
}

// placed returns n pods labelled app=<app> bound to node.
func placed(app, node string, n int) []*v1.Pod {
	var out []*v1.Pod
	for i := 0; i < n; i++ {
		out = append(out, mkPod(fmt.Sprintf("%s-%s-%d", app, node, i), label("app", app), on(node)))
	}
	return out
}

func pods(groups ...[]*v1.Pod) []*v1.Pod {
	var out []*v1.Pod
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

// TestPodTopologySpreadFilter checks the DoNotSchedule filter against
// kube-scheduler's rules: skew = domain count + self − global minimum.
func TestPodTopologySpreadFilter(t *testing.T) {
	host := v1.LabelHostname
	three := []*v1.Node{mkNode("n1", "8", "8Gi"), mkNode("n2", "8", "8Gi"), mkNode("n3", "8", "8Gi")}
	terminating := mkPod("gone", label("app", "web"), on("n3"))
	terminating.DeletionTimestamp = &metav1.Time{}
	tests := []struct {
		name     string
		nodes    []*v1.Node
		existing []*v1.Pod
		pod      *v1.Pod
		want     string   // the only node that fits
		wantIn   []string // or any of these
		wantMsg  string   // or this FitError
	}{
		{
			name:     "only the emptiest domain keeps skew 1",
			nodes:    three,
			existing: pods(placed("web", "n1", 2), placed("web", "n2", 2), placed("web", "n3", 1)),
			pod:      mkPod("p", label("app", "web"), spread(1, host, v1.DoNotSchedule, "web")),
			want:     "n3",
		},
		{
			name:     "balanced domains all fit",
			nodes:    three,
			existing: pods(placed("web", "n1", 2), placed("web", "n2", 2), placed("web", "n3", 2)),
			pod:      mkPod("p", label("app", "web"), spread(1, host, v1.DoNotSchedule, "web")),
			wantIn:   []string{"n1", "n2", "n3"},
		},
		{
			name:     "a pod the selector does not match adds no skew",
			nodes:    three,
			existing: pods(placed("web", "n1", 1)),
			pod:      mkPod("p", label("app", "other"), spread(1, host, v1.DoNotSchedule, "web")),
			wantIn:   []string{"n1", "n2", "n3"},
		},
		{
			name:     "other namespaces and terminating pods are not counted",
			nodes:    three,
			existing: pods(placed("web", "n1", 1), placed("web", "n2", 1), []*v1.Pod{mkPod("x", label("app", "web"), on("n3"), inNS("other")), terminating}),
			pod:      mkPod("p", label("app", "web"), spread(1, host, v1.DoNotSchedule, "web")),
			want:     "n3",
		},
		{
			name:  "every domain too full",
			nodes: append(three[:2:2], mkNode("n3", "8", "8Gi", taint("full", "", v1.TaintEffectNoSchedule))),
			// n3 cannot take the pod (taint) yet counts as a domain with 0
			// pods: nodeTaintsPolicy defaults to Ignore.
			existing: pods(placed("web", "n1", 1), placed("web", "n2", 1)),
			pod:      mkPod("p", label("app", "web"), spread(1, host, v1.DoNotSchedule, "web")),
			wantMsg: "0/3 nodes are available: 1 node(s) had untolerated taint {full: }, 2 node(s) didn't match pod topology spread constraints." +
				" preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod.",
		},
		{
			name:     "nodeTaintsPolicy Honor leaves the tainted domain out",
			nodes:    append(three[:2:2], mkNode("n3", "8", "8Gi", taint("full", "", v1.TaintEffectNoSchedule))),
			existing: pods(placed("web", "n1", 1), placed("web", "n2", 1)),
			pod:      mkPod("p", label("app", "web"), spread(1, host, v1.DoNotSchedule, "web", taintsPolicy(v1.NodeInclusionPolicyHonor))),
			wantIn:   []string{"n1", "n2"},
		},
		{
			name:     "nodeAffinityPolicy Honor (default) counts only nodes the pod may use",
			nodes:    []*v1.Node{mkNode("n1", "8", "8Gi", nodeLabel("pool", "a")), mkNode("n2", "8", "8Gi", nodeLabel("pool", "a")), mkNode("n3", "8", "8Gi")},
			existing: pods(placed("web", "n1", 1)),
			pod:      mkPod("p", label("app", "web"), selector("pool", "a"), spread(1, host, v1.DoNotSchedule, "web")),
			want:     "n2",
		},
		{
			name:     "nodeAffinityPolicy Ignore counts every node",
			nodes:    []*v1.Node{mkNode("n1", "8", "8Gi", nodeLabel("pool", "a")), mkNode("n2", "8", "8Gi", nodeLabel("pool", "a")), mkNode("n3", "8", "8Gi")},
			existing: pods(placed("web", "n1", 1), placed("web", "n2", 1)),
			pod:      mkPod("p", label("app", "web"), selector("pool", "a"), spread(1, host, v1.DoNotSchedule, "web", affinityPolicy(v1.NodeInclusionPolicyIgnore))),
			wantMsg: "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 2 node(s) didn't match pod topology spread constraints." +
				" preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod.",
		},
		{
			name:     "minDomains above the domain count makes the minimum 0",
			nodes:    three[:2],
			existing: pods(placed("web", "n1", 1), placed("web", "n2", 1)),
			pod:      mkPod("p", label("app", "web"), spread(1, host, v1.DoNotSchedule, "web", minDomains(3))),
			wantMsg: "0/2 nodes are available: 2 node(s) didn't match pod topology spread constraints." +
				" preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.",
		},
		{
			name:     "minDomains met: the real minimum counts",
			nodes:    three[:2],
			existing: pods(placed("web", "n1", 1), placed("web", "n2", 1)),
			pod:      mkPod("p", label("app", "web"), spread(1, host, v1.DoNotSchedule, "web", minDomains(2))),
			wantIn:   []string{"n1", "n2"},
		},
		{
			name:    "a node without the topology key never fits",
			nodes:   []*v1.Node{mkNode("n1", "8", "8Gi", nodeLabel(zoneKey, "a")), mkNode("n2", "8", "8Gi")},
			pod:     mkPod("p", label("app", "web"), spread(1, zoneKey, v1.DoNotSchedule, "web")),
			want:    "n1",
			wantMsg: "",
		},
		{
			name:  "missing key is unresolvable",
			nodes: []*v1.Node{mkNode("n1", "8", "8Gi")},
			pod:   mkPod("p", label("app", "web"), spread(1, zoneKey, v1.DoNotSchedule, "web")),
			wantMsg: "0/1 nodes are available: 1 node(s) didn't match pod topology spread constraints (missing required label)." +
				notHelpful,
		},
		{
			name: "zones: counts add up over the zone's nodes",
			nodes: []*v1.Node{
				mkNode("a1", "8", "8Gi", nodeLabel(zoneKey, "a")), mkNode("a2", "8", "8Gi", nodeLabel(zoneKey, "a")),
				mkNode("b1", "8", "8Gi", nodeLabel(zoneKey, "b")),
			},
			existing: pods(placed("web", "a1", 1), placed("web", "a2", 1), placed("web", "b1", 1)),
			pod:      mkPod("p", label("app", "web"), spread(1, zoneKey, v1.DoNotSchedule, "web")),
			want:     "b1",
		},
		{
			name:     "ScheduleAnyway never filters",
			nodes:    three,
			existing: pods(placed("web", "n1", 5)),
			pod:      mkPod("p", label("app", "web"), spread(1, host, v1.ScheduleAnyway, "web"), selector(v1.LabelHostname, "n1")),
			want:     "n1",
		},
		{
			name:     "two constraints must both hold",
			nodes:    []*v1.Node{mkNode("a1", "8", "8Gi", nodeLabel(zoneKey, "a")), mkNode("a2", "8", "8Gi", nodeLabel(zoneKey, "a")), mkNode("b1", "8", "8Gi", nodeLabel(zoneKey, "b"))},
			existing: pods(placed("web", "a1", 1), placed("web", "b1", 1)),
			pod:      mkPod("p", label("app", "web"), spread(1, zoneKey, v1.DoNotSchedule, "web"), spread(1, v1.LabelHostname, v1.DoNotSchedule, "web")),
			want:     "a2",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Schedule(tc.pod, NewSnapshot(tc.nodes, tc.existing))
			switch {
			case tc.wantMsg != "":
				var fe *FitError
				if !errors.As(err, &fe) {
					t.Fatalf("Schedule = %q, %v; want FitError", got, err)
				}
				if err.Error() != tc.wantMsg {
					t.Fatalf("message\n got %q\nwant %q", err.Error(), tc.wantMsg)
				}
			case err != nil:
				t.Fatalf("Schedule: %v", err)
			case tc.wantIn != nil:
				ok := false
				for _, n := range tc.wantIn {
					ok = ok || n == got
				}
				if !ok {
					t.Fatalf("Schedule = %q, want one of %v", got, tc.wantIn)
				}
			case got != tc.want:
				t.Fatalf("Schedule = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestPodTopologySpreadFillsEvenly places 6 pods one by one with maxSkew 1
// over 3 nodes: they end 2/2/2 whatever the tie-breaks.
func TestPodTopologySpreadFillsEvenly(t *testing.T) {
	nodes := []*v1.Node{mkNode("n1", "8", "8Gi"), mkNode("n2", "8", "8Gi"), mkNode("n3", "8", "8Gi")}
	var existing []*v1.Pod
	for i := 0; i < 6; i++ {
		p := mkPod(fmt.Sprintf("web-%d", i), label("app", "web"), spread(1, v1.LabelHostname, v1.DoNotSchedule, "web"))
		node, err := Schedule(p, NewSnapshot(nodes, existing))
		if err != nil {
			t.Fatalf("pod %d: %v", i, err)
		}
		p.Spec.NodeName = node
		existing = append(existing, p)
	}
	per := map[string]int{}
	for _, p := range existing {
		per[p.Spec.NodeName]++
	}
	if per["n1"] != 2 || per["n2"] != 2 || per["n3"] != 2 {
		t.Fatalf("placement %v, want 2/2/2", per)
	}
}

// TestPodTopologySpreadScore checks ScheduleAnyway and the system default
// constraints, which only score.
func TestPodTopologySpreadScore(t *testing.T) {
	web := labels.SelectorFromSet(labels.Set{"app": "web"})
	bySelector := func(*v1.Pod) labels.Selector { return web }
	tests := []struct {
		name     string
		nodes    []*v1.Node
		existing []*v1.Pod
		pod      *v1.Pod
		spreadBy func(*v1.Pod) labels.Selector
		want     string
	}{
		{
			name:     "ScheduleAnyway prefers the emptiest domain over free room",
			nodes:    []*v1.Node{mkNode("n1", "16", "16Gi"), mkNode("n2", "2", "2Gi")},
			existing: pods(placed("web", "n1", 1)),
			pod:      mkPod("p", label("app", "web"), spread(1, v1.LabelHostname, v1.ScheduleAnyway, "web")),
			want:     "n2",
		},
		{
			name:     "system default spreading by the owner's selector",
			nodes:    []*v1.Node{mkNode("n1", "16", "16Gi"), mkNode("n2", "4", "4Gi")},
			existing: pods(placed("web", "n1", 2), placed("other", "n2", 2)),
			pod:      mkPod("p", label("app", "web"), ownedBy("rs-1")),
			spreadBy: bySelector,
			want:     "n2",
		},
		{
			name:     "no selector: no default spreading, free room wins",
			nodes:    []*v1.Node{mkNode("n1", "16", "16Gi"), mkNode("n2", "4", "4Gi")},
			existing: pods(placed("web", "n1", 2)),
			pod:      mkPod("p", label("app", "web")),
			spreadBy: func(*v1.Pod) labels.Selector { return labels.Everything() },
			want:     "n1",
		},
		{
			name: "system defaults spread nodes without a zone by hostname",
			nodes: []*v1.Node{
				mkNode("n1", "16", "16Gi"), mkNode("n2", "4", "4Gi"),
			},
			existing: pods(placed("web", "n1", 3)),
			pod:      mkPod("p", label("app", "web")),
			spreadBy: bySelector,
			want:     "n2",
		},
		{
			name: "own constraints: a node missing the key scores nothing",
			nodes: []*v1.Node{
				mkNode("n1", "4", "4Gi", nodeLabel(zoneKey, "a")), mkNode("n2", "16", "16Gi"),
			},
			existing: pods(placed("web", "n1", 3)),
			pod:      mkPod("p", label("app", "web"), spread(1, zoneKey, v1.ScheduleAnyway, "web")),
			want:     "n1",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap := NewSnapshot(tc.nodes, tc.existing)
			snap.SpreadSelector = tc.spreadBy
			got, err := Schedule(tc.pod, snap)
			if err != nil || got != tc.want {
				t.Fatalf("Schedule = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestScorePodTopologySpreadValues pins the normalized scores to
// kube-scheduler's formula: 100 × (max + min − s) / max over
// s = round(Σ count×ln(domains+2) + maxSkew−1).
func TestScorePodTopologySpreadValues(t *testing.T) {
	nodes := []*v1.Node{mkNode("n1", "8", "8Gi"), mkNode("n2", "8", "8Gi"), mkNode("n3", "8", "8Gi")}
	snap := NewSnapshot(nodes, pods(placed("web", "n1", 3), placed("web", "n2", 1)))
	pod := mkPod("p", label("app", "web"), spread(1, v1.LabelHostname, v1.ScheduleAnyway, "web"))
	st := newCycleState(pod, snap)
	got := scorePodTopologySpread(st, snap.Nodes, snap)
	// ln(5) = 1.609: raw 5 (4.83), 2 (1.61), 0 → 100×(5+0−5)/5=0, 100×3/5=60, 100.
	if fmt.Sprint(got) != "[0 60 100]" {
		t.Fatalf("scores = %v, want [0 60 100]", got)
	}
}

// TestDefaultSpreadSelector: services selecting the pod and its
// ReplicaSet, StatefulSet or ReplicationController make up the selector,
// as kube-scheduler's DefaultSelector.
func TestDefaultSpreadSelector(t *testing.T) {
	idx := func(objs ...any) toolscache.Indexer {
		i := toolscache.NewIndexer(toolscache.MetaNamespaceKeyFunc, toolscache.Indexers{toolscache.NamespaceIndex: toolscache.MetaNamespaceIndexFunc})
		for _, o := range objs {
			if err := i.Add(o); err != nil {
				t.Fatal(err)
			}
		}
		return i
	}
	svc := &v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"}, Spec: v1.ServiceSpec{Selector: map[string]string{"app": "web"}}}
	noSel := &v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "headless", Namespace: "default"}}
	otherNS := &v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "other"}, Spec: v1.ServiceSpec{Selector: map[string]string{"tier": "x"}}}
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "rs", Namespace: "default"},
		Spec: appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"pod-template-hash": "abc"}}}}
	rc := &v1.ReplicationController{ObjectMeta: metav1.ObjectMeta{Name: "rc", Namespace: "default"},
		Spec: v1.ReplicationControllerSpec{Selector: map[string]string{"rc": "yes"}}}
	w := Workloads{
		Services:               corelisters.NewServiceLister(idx(svc, noSel, otherNS)),
		ReplicationControllers: corelisters.NewReplicationControllerLister(idx(rc)),
		ReplicaSets:            appslisters.NewReplicaSetLister(idx(rs)),
		StatefulSets:           appslisters.NewStatefulSetLister(idx()),
	}
	owned := func(kind, apiVersion, name string) podOpt {
		return func(p *v1.Pod) {
			yes := true
			p.OwnerReferences = []metav1.OwnerReference{{APIVersion: apiVersion, Kind: kind, Name: name, UID: types.UID(name), Controller: &yes}}
		}
	}
	tests := []struct {
		pod  *v1.Pod
		want string
	}{
		{mkPod("lone"), ""},
		{mkPod("svc", label("app", "web")), "app=web"},
		{mkPod("rs", label("app", "web"), label("pod-template-hash", "abc"), owned("ReplicaSet", "apps/v1", "rs")), "app=web,pod-template-hash=abc"},
		{mkPod("rc", label("rc", "yes"), owned("ReplicationController", "v1", "rc")), "rc=yes"},
		{mkPod("missing-owner", owned("StatefulSet", "apps/v1", "gone")), ""},
	}
	for _, tc := range tests {
		if got := w.DefaultSpreadSelector(tc.pod).String(); got != tc.want {
			t.Errorf("%s: selector %q, want %q", tc.pod.Name, got, tc.want)
		}
	}
}
