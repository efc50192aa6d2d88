package scheduler

import (
	"errors"
	"fmt"
	"testing"

	v1 "k8s.io/api/core/v1"
)

func TestFitErrorMessage(t *testing.T) {
	never := v1.PreemptNever
	tests := []struct {
		name  string
		pod   *v1.Pod
		nodes map[string]*status
		want  string
	}{
		{
			name: "the example from Kubernetes' docs",
			pod:  mkPod("p"),
			nodes: map[string]*status{
				"a": {reasons: []string{"Insufficient cpu"}, unresolvable: true},
				"b": {reasons: []string{reasonNodeAffinity}, unresolvable: true},
				"c": {reasons: []string{reasonNodeAffinity}, unresolvable: true},
			},
			want: "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.",
		},
		{
			name: "several reasons on one node, mixed preemption outcomes",
			pod:  mkPod("p"),
			nodes: map[string]*status{
				"a": {reasons: []string{"Insufficient cpu", "Insufficient memory"}},
				"b": {reasons: []string{"Insufficient memory"}},
				"c": {reasons: []string{reasonUnschedulable}, unresolvable: true},
			},
			want: "0/3 nodes are available: 1 Insufficient cpu, 1 node(s) were unschedulable, 2 Insufficient memory. preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod.",
		},
		{
			name:  "preemptionPolicy Never",
			pod:   mkPod("p", func(p *v1.Pod) { p.Spec.PreemptionPolicy = &never }),
			nodes: map[string]*status{"a": {reasons: []string{"Insufficient cpu"}}},
			want:  "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never.",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fe := newFitError(tc.pod, len(tc.nodes))
			for n, s := range tc.nodes {
				fe.add(n, s)
			}
			if got := fe.Error(); got != tc.want {
				t.Fatalf("\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestFitErrorSortsAsStrings: Kubernetes sorts "count reason" strings, so
// "10 …" comes before "2 …"; so must we.
func TestFitErrorSortsAsStrings(t *testing.T) {
	var nodes []*v1.Node
	for i := 0; i < 10; i++ {
		nodes = append(nodes, mkNode(fmt.Sprintf("small%d", i), "1", "1Gi"))
	}
	nodes = append(nodes, mkNode("cordoned-a", "8", "8Gi", cordoned()), mkNode("cordoned-b", "8", "8Gi", cordoned()))
	_, err := Schedule(mkPod("p", req("2", "")), NewSnapshot(nodes, nil))
	want := "0/12 nodes are available: 10 Insufficient cpu, 2 node(s) were unschedulable. preemption: 0/12 nodes are available: 12 Preemption is not helpful for scheduling."
	var fe *FitError
	if !errors.As(err, &fe) || err.Error() != want {
		t.Fatalf("\n got %v\nwant %q", err, want)
	}
	if len(fe.Reasons) != 12 || fe.Reasons["cordoned-a"][0] != reasonUnschedulable {
		t.Fatalf("Reasons = %v", fe.Reasons)
	}
}
