package scheduler

import (
	"fmt"
	"testing"

	v1 "k8s.io/api/core/v1"
)

func TestScheduleScores(t *testing.T) {
	zone := "topology.kubernetes.io/zone"
	tests := []struct {
		name     string
		nodes    []*v1.Node
		existing []*v1.Pod
		pod      *v1.Pod
		want     string
	}{
		{
			name:     "least allocated",
			nodes:    []*v1.Node{mkNode("n1", "4", "4Gi"), mkNode("n2", "4", "4Gi")},
			existing: []*v1.Pod{mkPod("a", req("2", "2Gi"), on("n1"))},
			pod:      mkPod("p", req("100m", "100Mi")),
			want:     "n2",
		},
		{
			name:  "preferred node affinity beats free room",
			nodes: []*v1.Node{mkNode("n1", "8", "8Gi"), mkNode("n2", "2", "2Gi", nodeLabel("disk", "ssd"))},
			pod: mkPod("p", affinity(&v1.Affinity{NodeAffinity: &v1.NodeAffinity{
				PreferredDuringSchedulingIgnoredDuringExecution: []v1.PreferredSchedulingTerm{{Weight: 10, Preference: nodeReq("disk", v1.NodeSelectorOpIn, "ssd")}},
			}})),
			want: "n2",
		},
		{
			name:  "heavier preferred term wins",
			nodes: []*v1.Node{mkNode("n1", "2", "2Gi", nodeLabel("a", "1")), mkNode("n2", "2", "2Gi", nodeLabel("b", "1"))},
			pod: mkPod("p", affinity(&v1.Affinity{NodeAffinity: &v1.NodeAffinity{
				PreferredDuringSchedulingIgnoredDuringExecution: []v1.PreferredSchedulingTerm{
					{Weight: 10, Preference: nodeReq("a", v1.NodeSelectorOpExists)},
					{Weight: 50, Preference: nodeReq("b", v1.NodeSelectorOpExists)},
				},
			}})),
			want: "n2",
		},
		{
			name:     "preferred pod affinity",
			nodes:    []*v1.Node{mkNode("n1", "8", "8Gi", nodeLabel(zone, "z1")), mkNode("n2", "2", "2Gi", nodeLabel(zone, "z2"))},
			existing: []*v1.Pod{mkPod("db", label("app", "db"), on("n2"))},
			pod: mkPod("p", affinity(&v1.Affinity{PodAffinity: &v1.PodAffinity{
				PreferredDuringSchedulingIgnoredDuringExecution: []v1.WeightedPodAffinityTerm{{Weight: 100, PodAffinityTerm: podTerm("db", zone)}},
			}})),
			want: "n2",
		},
		{
			name:     "preferred pod anti-affinity",
			nodes:    []*v1.Node{mkNode("n1", "8", "8Gi", nodeLabel(zone, "z1")), mkNode("n2", "2", "2Gi", nodeLabel(zone, "z2"))},
			existing: []*v1.Pod{mkPod("web", label("app", "web"), on("n1"))},
			pod: mkPod("p", affinity(&v1.Affinity{PodAntiAffinity: &v1.PodAntiAffinity{
				PreferredDuringSchedulingIgnoredDuringExecution: []v1.WeightedPodAffinityTerm{{Weight: 100, PodAffinityTerm: podTerm("web", zone)}},
			}})),
			want: "n2",
		},
		{
			name:  "existing pod's preferred affinity draws the pod",
			nodes: []*v1.Node{mkNode("n1", "8", "8Gi", nodeLabel(zone, "z1")), mkNode("n2", "2", "2Gi", nodeLabel(zone, "z2"))},
			existing: []*v1.Pod{mkPod("cache", on("n2"), affinity(&v1.Affinity{PodAffinity: &v1.PodAffinity{
				PreferredDuringSchedulingIgnoredDuringExecution: []v1.WeightedPodAffinityTerm{{Weight: 100, PodAffinityTerm: podTerm("web", zone)}},
			}}))},
			pod:  mkPod("p", label("app", "web")),
			want: "n2",
		},
		{
			name:  "PreferNoSchedule taint avoided",
			nodes: []*v1.Node{mkNode("n1", "8", "8Gi", taint("spot", "", v1.TaintEffectPreferNoSchedule)), mkNode("n2", "2", "2Gi")},
			pod:   mkPod("p"),
			want:  "n2",
		},
		{
			name:  "PreferNoSchedule tolerated",
			nodes: []*v1.Node{mkNode("n1", "8", "8Gi", taint("spot", "", v1.TaintEffectPreferNoSchedule)), mkNode("n2", "2", "2Gi")},
			pod:   mkPod("p", tolerate(v1.Toleration{Key: "spot", Operator: v1.TolerationOpExists})),
			want:  "n1",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Schedule(tc.pod, NewSnapshot(tc.nodes, tc.existing))
			if err != nil || got != tc.want {
				t.Fatalf("Schedule = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestScaleToMax(t *testing.T) {
	tests := []struct {
		raw     []int64
		reverse bool
		want    []int64
	}{
		{[]int64{0, 5, 10}, false, []int64{0, 50, 100}},
		{[]int64{0, 5, 10}, true, []int64{100, 50, 0}},
		{[]int64{0, 0}, false, []int64{0, 0}},
		{[]int64{0, 0}, true, []int64{100, 100}},
	}
	for _, tc := range tests {
		got := scaleToMax(append([]int64(nil), tc.raw...), tc.reverse)
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("scaleToMax(%v, %v) = %v, want %v", tc.raw, tc.reverse, got, tc.want)
		}
	}
}

// TestTieBreak: equal nodes are chosen deterministically for one pod, yet
// different pods land on different nodes.
func TestTieBreak(t *testing.T) {
	var nodes []*v1.Node
	for i := 0; i < 10; i++ {
		nodes = append(nodes, mkNode(fmt.Sprintf("n%d", i), "4", "4Gi"))
	}
	snap := NewSnapshot(nodes, nil)
	first, _ := Schedule(mkPod("p"), snap)
	for i := 0; i < 5; i++ {
		if again, _ := Schedule(mkPod("p"), snap); again != first {
			t.Fatalf("same pod went to %s then %s", first, again)
		}
	}
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		n, err := Schedule(mkPod(fmt.Sprintf("p%d", i)), snap)
		if err != nil {
			t.Fatal(err)
		}
		seen[n] = true
	}
	if len(seen) < 5 {
		t.Fatalf("100 pods on 10 equal nodes used only %d nodes", len(seen))
	}
}
