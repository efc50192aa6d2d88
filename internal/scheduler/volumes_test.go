package scheduler

import (
	"fmt"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// TestPlanVolumes is VolumeBinding's PreFilter: reasons for claims that
// cannot be used, WaitForFirstConsumer claims left for the bind, and a
// bound local volume taking its pod to its node.
func TestPlanVolumes(t *testing.T) {
	wffc, imm := storagev1.VolumeBindingWaitForFirstConsumer, storagev1.VolumeBindingImmediate
	classes := map[string]*storagev1.StorageClass{
		"local-path": {ObjectMeta: metav1.ObjectMeta{Name: "local-path"}, VolumeBindingMode: &wffc},
		"fast":       {ObjectMeta: metav1.ObjectMeta{Name: "fast"}, VolumeBindingMode: &imm},
	}
	cls := func(n string) *string { return &n }
	now := metav1.Now()
	claims := map[string]*v1.PersistentVolumeClaim{
		"bound": {ObjectMeta: metav1.ObjectMeta{Name: "bound"}, Spec: v1.PersistentVolumeClaimSpec{VolumeName: "pv-n2"}},
		"wait":  {ObjectMeta: metav1.ObjectMeta{Name: "wait"}, Spec: v1.PersistentVolumeClaimSpec{StorageClassName: cls("local-path")}},
		"chosen": {ObjectMeta: metav1.ObjectMeta{Name: "chosen", Annotations: map[string]string{AnnSelectedNode: "n1"}},
			Spec: v1.PersistentVolumeClaimSpec{StorageClassName: cls("local-path")}},
		"now":      {ObjectMeta: metav1.ObjectMeta{Name: "now"}, Spec: v1.PersistentVolumeClaimSpec{StorageClassName: cls("fast")}},
		"deleting": {ObjectMeta: metav1.ObjectMeta{Name: "deleting", DeletionTimestamp: &now}},
		"lost":     {ObjectMeta: metav1.ObjectMeta{Name: "lost"}, Spec: v1.PersistentVolumeClaimSpec{VolumeName: "gone"}},
	}
	volumes := map[string]*v1.PersistentVolume{
		"pv-n2": {ObjectMeta: metav1.ObjectMeta{Name: "pv-n2"}, Spec: v1.PersistentVolumeSpec{NodeAffinity: &v1.VolumeNodeAffinity{
			Required: &v1.NodeSelector{NodeSelectorTerms: []v1.NodeSelectorTerm{{MatchExpressions: []v1.NodeSelectorRequirement{
				{Key: v1.LabelHostname, Operator: v1.NodeSelectorOpIn, Values: []string{"n2"}}}}}}}}},
	}
	nf := func(r string) error { return apierrors.NewNotFound(schema.GroupResource{Resource: r}, "") }
	volume := func(name string) (*v1.PersistentVolume, error) {
		if v, ok := volumes[name]; ok {
			return v, nil
		}
		return nil, nf("persistentvolumes")
	}
	class := func(name string) (*storagev1.StorageClass, error) {
		if c, ok := classes[name]; ok {
			return c, nil
		}
		return nil, nf("storageclasses")
	}
	podWith := func(claims ...string) *v1.Pod {
		p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}}
		for i, c := range claims {
			p.Spec.Volumes = append(p.Spec.Volumes, v1.Volume{Name: fmt.Sprint("v", i),
				VolumeSource: v1.VolumeSource{PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: c}}})
		}
		return p
	}
	for claim, want := range map[string]string{
		"missing":  `persistentvolumeclaim "missing" not found`,
		"deleting": `persistentvolumeclaim "deleting" is being deleted`,
		"now":      "pod has unbound immediate PersistentVolumeClaims",
		"lost":     `persistentvolume "gone" not found`,
	} {
		if got := PlanVolumes(podWith(claim), claimsGetter(claims), volume, class).Unschedulable; got != want {
			t.Errorf("claim %s: %q, want %q", claim, got, want)
		}
	}
	plan := PlanVolumes(podWith("wait", "bound"), claimsGetter(claims), volume, class)
	if plan.Unschedulable != "" || len(plan.Delayed) != 1 || plan.Delayed[0].Name != "wait" {
		t.Fatalf("plan %+v", plan)
	}
	// The bound volume's node affinity joins the pod's own.
	snap := &Snapshot{Nodes: []*NodeInfo{NewNodeInfo(mkNode("n1", "4", "4Gi")), NewNodeInfo(mkNode("n2", "4", "4Gi"))}}
	node, err := Schedule(plan.Pod, snap)
	if err != nil || node != "n2" {
		t.Fatalf("scheduled to %q, %v; want n2", node, err)
	}
	pinnedElsewhere := plan.Pod.DeepCopy()
	pinnedElsewhere.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0].MatchExpressions = nil
	pinnedElsewhere.Spec.NodeSelector = map[string]string{v1.LabelHostname: "n1"}
	own := PlanVolumes(pinnedElsewhere, claimsGetter(claims), volume, class).Pod
	if _, err := Schedule(own, snap); err == nil || !strings.Contains(err.Error(), "0/2 nodes are available") {
		t.Fatalf("a pod whose node selector and volume disagree was scheduled: %v", err)
	}
	// A delayed claim another pod's bind has given a node takes this pod there.
	for _, want := range []string{"n1", "n2"} {
		claims["chosen"].Annotations[AnnSelectedNode] = want
		if node, err := Schedule(PlanVolumes(podWith("chosen"), claimsGetter(claims), volume, class).Pod, snap); err != nil || node != want {
			t.Fatalf("pod of a claim selected for %s scheduled to %q, %v", want, node, err)
		}
	}
	if msg := volumeUnschedulable("pod has unbound immediate PersistentVolumeClaims", 1); msg !=
		"0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling." {
		t.Errorf("message %q", msg)
	}
}

func claimsGetter(claims map[string]*v1.PersistentVolumeClaim) func(string, string) (*v1.PersistentVolumeClaim, error) {
	return func(_, name string) (*v1.PersistentVolumeClaim, error) {
		if c, ok := claims[name]; ok {
			return c, nil
		}
		return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "persistentvolumeclaims"}, name)
	}
}
