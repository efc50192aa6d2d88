package statefulset

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/peapod/peapod/internal/controller/controllertest"
)

func withClaimTemplate(s *appsv1.StatefulSet, whenDeleted, whenScaled appsv1.PersistentVolumeClaimRetentionPolicyType) *appsv1.StatefulSet {
	s.UID = "uid-set"
	s.Spec.VolumeClaimTemplates = []v1.PersistentVolumeClaim{{
		ObjectMeta: metav1.ObjectMeta{Name: "data", Labels: map[string]string{"tier": "db"}},
		Spec: v1.PersistentVolumeClaimSpec{AccessModes: []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce},
			Resources: v1.VolumeResourceRequirements{Requests: v1.ResourceList{v1.ResourceStorage: resource.MustParse("1Gi")}}},
	}}
	s.Spec.Template.Spec.Volumes = []v1.Volume{{Name: "data", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}}}
	s.Spec.PersistentVolumeClaimRetentionPolicy = &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{WhenDeleted: whenDeleted, WhenScaled: whenScaled}
	return s
}

// TestClaimIdentity: a pod's claims are named and labelled as
// Kubernetes', replace a template volume of the same name, and are owned
// as the retention policy says.
func TestClaimIdentity(t *testing.T) {
	retain, del := appsv1.RetainPersistentVolumeClaimRetentionPolicyType, appsv1.DeletePersistentVolumeClaimRetentionPolicyType
	set := withClaimTemplate(newSet(2, appsv1.ParallelPodManagement), retain, retain)
	cs := newClaims(set, 1)
	if len(cs) != 1 || cs[0].Name != "data-web-1" || cs[0].Labels["tier"] != "db" || cs[0].Labels["app"] != "web" || len(cs[0].OwnerReferences) != 0 {
		t.Fatalf("claims %+v", cs)
	}
	p := newPod(set, &set.Spec.Template, "rev", 1)
	if len(p.Spec.Volumes) != 1 || p.Spec.Volumes[0].PersistentVolumeClaim == nil || p.Spec.Volumes[0].PersistentVolumeClaim.ClaimName != "data-web-1" {
		t.Fatalf("pod volumes %+v", p.Spec.Volumes)
	}
	if set.Spec.Template.Spec.Volumes[0].EmptyDir == nil {
		t.Fatal("newPod changed the set's template")
	}
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1", UID: "uid-pod"}}
	for _, tc := range []struct {
		whenDeleted, whenScaled appsv1.PersistentVolumeClaimRetentionPolicyType
		condemned               bool
		want                    []string // owner kinds
	}{
		{retain, retain, true, nil},
		{del, retain, false, []string{"StatefulSet"}},
		{retain, del, false, nil},
		{retain, del, true, []string{"Pod"}},
		{del, del, true, []string{"StatefulSet", "Pod"}},
	} {
		s := withClaimTemplate(newSet(2, appsv1.ParallelPodManagement), tc.whenDeleted, tc.whenScaled)
		other := metav1.OwnerReference{Kind: "Other", UID: "uid-other"}
		// Start from the opposite refs, to see unwanted ones removed.
		start := []metav1.OwnerReference{other, {Kind: "StatefulSet", UID: s.UID}, {Kind: "Pod", UID: pod.UID}}
		got := claimOwnerRefs(s, pod, start, tc.condemned)
		var kinds []string
		for _, r := range got[1:] {
			kinds = append(kinds, r.Kind)
		}
		if got[0] != other || fmt.Sprint(kinds) != fmt.Sprint(tc.want) {
			t.Errorf("%s/%s condemned=%v: owners %v, want Other then %v", tc.whenDeleted, tc.whenScaled, tc.condemned, got, tc.want)
		}
	}
}

// TestClaimsBeforePods: the controller creates a pod's claims before the
// pod, keeps existing ones (a recreated pod gets its claim back), and a
// scale-down with whenScaled Delete hands the claim to the pod it deletes.
func TestClaimsBeforePods(t *testing.T) {
	set := withClaimTemplate(newSet(2, appsv1.ParallelPodManagement), appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
		appsv1.DeletePersistentVolumeClaimRetentionPolicyType)
	set.Spec.Template.Finalizers = nil
	existing := &v1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "data-web-0", Namespace: "default", UID: "uid-old",
		Annotations: map[string]string{"kept": "yes"}}}
	client := start(t, set, existing)
	ctx := context.Background()
	waitNames(t, client, "web-0", "web-1")
	for _, n := range []string{"data-web-0", "data-web-1"} {
		c, err := client.CoreV1().PersistentVolumeClaims("default").Get(ctx, n, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("claim %s: %v", n, err)
		}
		if n == "data-web-0" && (c.UID != "uid-old" || c.Annotations["kept"] != "yes") {
			t.Fatalf("the existing claim was replaced: %+v", c.ObjectMeta)
		}
	}
	s, _ := client.AppsV1().StatefulSets("default").Get(ctx, "web", metav1.GetOptions{})
	one := int32(1)
	s.Spec.Replicas = &one
	if _, err := client.AppsV1().StatefulSets("default").Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	controllertest.Eventually(t, 5*time.Second, "web-1's claim owned by web-1", func() error {
		c, err := client.CoreV1().PersistentVolumeClaims("default").Get(ctx, "data-web-1", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(c.OwnerReferences) != 1 || c.OwnerReferences[0].Kind != "Pod" || c.OwnerReferences[0].Name != "web-1" {
			return fmt.Errorf("owners %+v", c.OwnerReferences)
		}
		if _, err := client.CoreV1().Pods("default").Get(ctx, "web-1", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("web-1 not deleted: %v", err)
		}
		return nil
	})
}
