package scheduler

import (
	"errors"
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

const (
	noVictims  = " preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
	notHelpful = " preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
)

func TestScheduleFilters(t *testing.T) {
	restartAlways := v1.ContainerRestartPolicyAlways
	zone := "topology.kubernetes.io/zone"
	host := "kubernetes.io/hostname"
	tests := []struct {
		name     string
		nodes    []*v1.Node
		existing []*v1.Pod
		pod      *v1.Pod
		want     string // node; "" when it must fail
		wantMsg  string // the FailedScheduling message when it fails
		wantIn   []string
	}{
		{name: "fits", nodes: []*v1.Node{mkNode("n1", "1", "1Gi")}, pod: mkPod("p", req("500m", "100Mi")), want: "n1"},
		{
			name:     "NodeResourcesFit cpu used by bound pods",
			nodes:    []*v1.Node{mkNode("n1", "1", "1Gi")},
			existing: []*v1.Pod{mkPod("a", req("600m", ""), on("n1"))},
			pod:      mkPod("p", req("500m", "")),
			wantMsg:  "0/1 nodes are available: 1 Insufficient cpu." + noVictims,
		},
		{
			name:     "terminated pods free their requests",
			nodes:    []*v1.Node{mkNode("n1", "1", "1Gi")},
			existing: []*v1.Pod{mkPod("a", req("600m", ""), on("n1"), phase(v1.PodSucceeded)), mkPod("b", req("600m", ""), on("n1"), phase(v1.PodFailed))},
			pod:      mkPod("p", req("500m", "")),
			want:     "n1",
		},
		{
			name:    "request above allocatable is unresolvable",
			nodes:   []*v1.Node{mkNode("n1", "1", "1Gi")},
			pod:     mkPod("p", req("2", "2Gi")),
			wantMsg: "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory." + notHelpful,
		},
		{
			name:     "too many pods",
			nodes:    []*v1.Node{mkNode("n1", "1", "1Gi", maxPods("1"))},
			existing: []*v1.Pod{mkPod("a", on("n1"))},
			pod:      mkPod("p"),
			wantMsg:  "0/1 nodes are available: 1 Too many pods." + noVictims,
		},
		{
			name:  "init container max counts",
			nodes: []*v1.Node{mkNode("n1", "1", "1Gi")},
			pod: mkPod("p", req("500m", ""), func(p *v1.Pod) {
				p.Spec.InitContainers = []v1.Container{{Name: "i", Resources: v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("1500m")}}}}
			}),
			wantMsg: "0/1 nodes are available: 1 Insufficient cpu." + notHelpful,
		},
		{
			name:  "sidecar adds to the app containers",
			nodes: []*v1.Node{mkNode("n1", "1", "1Gi")},
			pod: mkPod("p", req("600m", ""), func(p *v1.Pod) {
				p.Spec.InitContainers = []v1.Container{{Name: "s", RestartPolicy: &restartAlways, Resources: v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("500m")}}}}
			}),
			wantMsg: "0/1 nodes are available: 1 Insufficient cpu." + notHelpful,
		},
		{
			name:  "overhead counts",
			nodes: []*v1.Node{mkNode("n1", "1", "1Gi")},
			pod: mkPod("p", req("900m", ""), func(p *v1.Pod) {
				p.Spec.Overhead = v1.ResourceList{v1.ResourceCPU: resource.MustParse("200m")}
			}),
			wantMsg: "0/1 nodes are available: 1 Insufficient cpu." + notHelpful,
		},
		{
			name:  "spec.nodeName is honoured without filtering",
			nodes: []*v1.Node{mkNode("n1", "1", "1Gi")},
			pod:   mkPod("p", req("8", ""), on("elsewhere")),
			want:  "elsewhere",
		},
		{
			name:    "NodeUnschedulable",
			nodes:   []*v1.Node{mkNode("n1", "1", "1Gi", cordoned())},
			pod:     mkPod("p"),
			wantMsg: "0/1 nodes are available: 1 node(s) were unschedulable." + notHelpful,
		},
		{
			name:  "NodeUnschedulable tolerated",
			nodes: []*v1.Node{mkNode("n1", "1", "1Gi", cordoned())},
			pod:   mkPod("p", tolerate(v1.Toleration{Key: taintUnschedulable, Operator: v1.TolerationOpExists, Effect: v1.TaintEffectNoSchedule})),
			want:  "n1",
		},
		{
			name:    "TaintToleration NoSchedule",
			nodes:   []*v1.Node{mkNode("n1", "1", "1Gi", taint("dedicated", "gpu", v1.TaintEffectNoSchedule))},
			pod:     mkPod("p"),
			wantMsg: "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}." + notHelpful,
		},
		{
			name:    "TaintToleration NoExecute, wrong value tolerated",
			nodes:   []*v1.Node{mkNode("n1", "1", "1Gi", taint("dedicated", "gpu", v1.TaintEffectNoExecute))},
			pod:     mkPod("p", tolerate(v1.Toleration{Key: "dedicated", Value: "db"})),
			wantMsg: "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}." + notHelpful,
		},
		{
			name:  "TaintToleration Equal",
			nodes: []*v1.Node{mkNode("n1", "1", "1Gi", taint("dedicated", "gpu", v1.TaintEffectNoSchedule))},
			pod:   mkPod("p", tolerate(v1.Toleration{Key: "dedicated", Operator: v1.TolerationOpEqual, Value: "gpu", Effect: v1.TaintEffectNoSchedule})),
			want:  "n1",
		},
		{
			name:  "TaintToleration Exists without key tolerates all",
			nodes: []*v1.Node{mkNode("n1", "1", "1Gi", taint("a", "b", v1.TaintEffectNoSchedule), taint("c", "", v1.TaintEffectNoExecute))},
			pod:   mkPod("p", tolerate(v1.Toleration{Operator: v1.TolerationOpExists})),
			want:  "n1",
		},
		{
			name:  "PreferNoSchedule does not filter",
			nodes: []*v1.Node{mkNode("n1", "1", "1Gi", taint("a", "b", v1.TaintEffectPreferNoSchedule))},
			pod:   mkPod("p"),
			want:  "n1",
		},
		{
			name:    "not ready node",
			nodes:   []*v1.Node{mkNode("n1", "1", "1Gi", readiness(v1.ConditionFalse))},
			pod:     mkPod("p"),
			wantMsg: "0/1 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }." + notHelpful,
		},
		{
			name:    "unknown readiness is unreachable",
			nodes:   []*v1.Node{mkNode("n1", "1", "1Gi", readiness(v1.ConditionUnknown))},
			pod:     mkPod("p"),
			wantMsg: "0/1 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }." + notHelpful,
		},
		{
			name:  "not ready tolerated",
			nodes: []*v1.Node{mkNode("n1", "1", "1Gi", readiness(v1.ConditionFalse))},
			pod:   mkPod("p", tolerate(v1.Toleration{Key: taintNotReady, Operator: v1.TolerationOpExists})),
			want:  "n1",
		},
		{
			name:    "nodeSelector",
			nodes:   []*v1.Node{mkNode("n1", "1", "1Gi", nodeLabel("disk", "hdd")), mkNode("n2", "1", "1Gi", nodeLabel("disk", "ssd"))},
			pod:     mkPod("p", selector("disk", "ssd")),
			want:    "n2",
			wantMsg: "",
		},
		{
			name:    "nodeSelector nowhere",
			nodes:   []*v1.Node{mkNode("n1", "1", "1Gi")},
			pod:     mkPod("p", selector("disk", "ssd")),
			wantMsg: "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector." + notHelpful,
		},
		{
			name:  "node affinity In and NotIn",
			nodes: []*v1.Node{mkNode("n1", "1", "1Gi", nodeLabel("zone", "a")), mkNode("n2", "1", "1Gi", nodeLabel("zone", "b")), mkNode("n3", "1", "1Gi", nodeLabel("zone", "c"))},
			pod: mkPod("p", requiredNodeAffinity(v1.NodeSelectorTerm{MatchExpressions: []v1.NodeSelectorRequirement{
				{Key: "zone", Operator: v1.NodeSelectorOpIn, Values: []string{"a", "b"}},
				{Key: "zone", Operator: v1.NodeSelectorOpNotIn, Values: []string{"a"}},
			}})),
			want: "n2",
		},
		{
			name:  "node affinity terms are ORed, Gt and DoesNotExist",
			nodes: []*v1.Node{mkNode("n1", "1", "1Gi", nodeLabel("gen", "3")), mkNode("n2", "1", "1Gi", nodeLabel("gen", "5"), nodeLabel("old", ""))},
			pod: mkPod("p", requiredNodeAffinity(
				nodeReq("gen", v1.NodeSelectorOpGt, "4"),
				nodeReq("missing", v1.NodeSelectorOpExists),
			)),
			want: "n2",
		},
		{
			name:  "node affinity matchFields metadata.name",
			nodes: []*v1.Node{mkNode("n1", "1", "1Gi"), mkNode("n2", "1", "1Gi")},
			pod: mkPod("p", requiredNodeAffinity(v1.NodeSelectorTerm{MatchFields: []v1.NodeSelectorRequirement{
				{Key: "metadata.name", Operator: v1.NodeSelectorOpIn, Values: []string{"n1"}},
			}})),
			want: "n1",
		},
		{
			name:    "empty node selector term matches nothing",
			nodes:   []*v1.Node{mkNode("n1", "1", "1Gi")},
			pod:     mkPod("p", requiredNodeAffinity(v1.NodeSelectorTerm{})),
			wantMsg: "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector." + notHelpful,
		},
		{
			name:     "NodePorts conflict",
			nodes:    []*v1.Node{mkNode("n1", "1", "1Gi")},
			existing: []*v1.Pod{mkPod("a", on("n1"), hostPortOpt(8080, "", ""))},
			pod:      mkPod("p", hostPortOpt(8080, "127.0.0.1", v1.ProtocolTCP)),
			wantMsg:  "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports." + noVictims,
		},
		{
			name:     "NodePorts wildcard against a specific IP",
			nodes:    []*v1.Node{mkNode("n1", "1", "1Gi")},
			existing: []*v1.Pod{mkPod("a", on("n1"), hostPortOpt(8080, "10.0.0.1", ""))},
			pod:      mkPod("p", hostPortOpt(8080, "", "")),
			wantMsg:  "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports." + noVictims,
		},
		{
			name:     "NodePorts other IP, other protocol, other port",
			nodes:    []*v1.Node{mkNode("n1", "1", "1Gi")},
			existing: []*v1.Pod{mkPod("a", on("n1"), hostPortOpt(8080, "10.0.0.1", ""), hostPortOpt(53, "", v1.ProtocolUDP))},
			pod:      mkPod("p", hostPortOpt(8080, "10.0.0.2", ""), hostPortOpt(53, "", v1.ProtocolTCP), hostPortOpt(9090, "", "")),
			want:     "n1",
		},
		{
			name: "pod affinity follows the zone of a matching pod",
			nodes: []*v1.Node{
				mkNode("n1", "1", "1Gi", nodeLabel(zone, "z1")), mkNode("n2", "1", "1Gi", nodeLabel(zone, "z2")), mkNode("n3", "1", "1Gi", nodeLabel(zone, "z2")),
			},
			existing: []*v1.Pod{mkPod("db", on("n3"), label("app", "db"))},
			pod: mkPod("p", affinity(&v1.Affinity{PodAffinity: &v1.PodAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: []v1.PodAffinityTerm{podTerm("db", zone)},
			}})),
			wantIn: []string{"n2", "n3"},
		},
		{
			name:     "pod affinity to a pod in another namespace does not match",
			nodes:    []*v1.Node{mkNode("n1", "1", "1Gi", nodeLabel(zone, "z1"))},
			existing: []*v1.Pod{mkPod("db", on("n1"), label("app", "db"), inNS("other"))},
			pod: mkPod("p", label("app", "web"), affinity(&v1.Affinity{PodAffinity: &v1.PodAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: []v1.PodAffinityTerm{podTerm("db", zone)},
			}})),
			wantMsg: "0/1 nodes are available: 1 node(s) didn't match pod affinity rules." + notHelpful,
		},
		{
			name:  "first pod of a self-affine group may go anywhere with the label",
			nodes: []*v1.Node{mkNode("n1", "1", "1Gi"), mkNode("n2", "1", "1Gi", nodeLabel(zone, "z2"))},
			pod: mkPod("p", label("app", "web"), affinity(&v1.Affinity{PodAffinity: &v1.PodAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: []v1.PodAffinityTerm{podTerm("web", zone)},
			}})),
			want: "n2",
		},
		{
			name:     "pod anti-affinity by hostname",
			nodes:    []*v1.Node{mkNode("n1", "1", "1Gi"), mkNode("n2", "1", "1Gi")},
			existing: []*v1.Pod{mkPod("w1", on("n1"), label("app", "web"))},
			pod: mkPod("p", label("app", "web"), affinity(&v1.Affinity{PodAntiAffinity: &v1.PodAntiAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: []v1.PodAffinityTerm{podTerm("web", host)},
			}})),
			want: "n2",
		},
		{
			name:     "pod anti-affinity everywhere",
			nodes:    []*v1.Node{mkNode("n1", "1", "1Gi")},
			existing: []*v1.Pod{mkPod("w1", on("n1"), label("app", "web"))},
			pod: mkPod("p", label("app", "web"), affinity(&v1.Affinity{PodAntiAffinity: &v1.PodAntiAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: []v1.PodAffinityTerm{podTerm("web", host)},
			}})),
			wantMsg: "0/1 nodes are available: 1 node(s) didn't match pod anti-affinity rules." + noVictims,
		},
		{
			name:  "existing pod's anti-affinity rejects the newcomer",
			nodes: []*v1.Node{mkNode("n1", "1", "1Gi", nodeLabel(zone, "z1")), mkNode("n2", "1", "1Gi", nodeLabel(zone, "z1")), mkNode("n3", "1", "1Gi", nodeLabel(zone, "z2"))},
			existing: []*v1.Pod{mkPod("loner", on("n1"), affinity(&v1.Affinity{PodAntiAffinity: &v1.PodAntiAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: []v1.PodAffinityTerm{podTerm("web", zone)},
			}}))},
			pod:  mkPod("p", label("app", "web")),
			want: "n3",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap := NewSnapshot(tc.nodes, tc.existing)
			got, err := Schedule(tc.pod, snap)
			if tc.wantMsg != "" {
				var fe *FitError
				if !errors.As(err, &fe) {
					t.Fatalf("Schedule = %q, %v; want FitError", got, err)
				}
				if err.Error() != tc.wantMsg {
					t.Fatalf("message\n got %q\nwant %q", err.Error(), tc.wantMsg)
				}
				return
			}
			if err != nil {
				t.Fatalf("Schedule: %v", err)
			}
			if tc.wantIn != nil {
				if !slices.Contains(tc.wantIn, got) {
					t.Fatalf("Schedule = %q, want one of %v", got, tc.wantIn)
				}
				return
			}
			if got != tc.want {
				t.Fatalf("Schedule = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestScheduleNoNodes(t *testing.T) {
	_, err := Schedule(mkPod("p"), NewSnapshot(nil, nil))
	if !errors.Is(err, ErrNoNodesAvailable) || err.Error() != "no nodes available to schedule pods" {
		t.Fatalf("err = %v", err)
	}
}

// TestScheduleCountsAssumedPods: NodeInfo updates are what the cache uses
// to assume pods; adding and removing one changes the fit.
func TestNodeInfoAddRemove(t *testing.T) {
	ni := NewNodeInfo(mkNode("n1", "1", "1Gi"))
	a := mkPod("a", req("600m", "100Mi"), hostPortOpt(80, "", ""))
	ni.AddPod(a)
	ni.AddPod(a) // replacing is idempotent
	snap := &Snapshot{Nodes: []*NodeInfo{ni}}
	if _, err := Schedule(mkPod("p", req("500m", "")), snap); err == nil {
		t.Fatal("fits although a holds 600m of 1")
	}
	if got := ni.Requested(); got.MilliCPU != 600 || got.Memory != 100<<20 {
		t.Fatalf("requested = %+v", got)
	}
	if !ni.RemovePod(a) || ni.RemovePod(a) {
		t.Fatal("RemovePod should report true then false")
	}
	if got := ni.Requested(); got.MilliCPU != 0 || got.Memory != 0 || len(ni.usedPorts) != 0 || len(ni.Pods()) != 0 {
		t.Fatalf("after remove: requested %+v ports %v", got, ni.usedPorts)
	}
	if n, err := Schedule(mkPod("p", req("500m", ""), hostPortOpt(80, "", "")), snap); err != nil || n != "n1" {
		t.Fatalf("Schedule = %q, %v", n, err)
	}
}
