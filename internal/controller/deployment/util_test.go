package deployment

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestResolveFenceposts(t *testing.T) {
	i, p := intstr.FromInt32, intstr.FromString
	for _, tc := range []struct {
		surge, unavail intstr.IntOrString
		desired        int32
		wantS, wantU   int32
	}{
		{p("25%"), p("25%"), 10, 3, 2}, // surge rounds up, unavailable down
		{p("25%"), p("25%"), 4, 1, 1},
		{p("25%"), p("25%"), 1, 1, 0},
		{i(0), i(0), 5, 0, 1}, // both zero: unavailable becomes 1
		{i(2), i(1), 3, 2, 1},
		{p("50%"), p("0%"), 3, 2, 0},
		{p("100%"), p("100%"), 3, 3, 3},
	} {
		s, u, err := ResolveFenceposts(&tc.surge, &tc.unavail, tc.desired)
		if err != nil || s != tc.wantS || u != tc.wantU {
			t.Errorf("ResolveFenceposts(%s, %s, %d) = %d, %d, %v; want %d, %d", tc.surge.String(), tc.unavail.String(), tc.desired, s, u, err, tc.wantS, tc.wantU)
		}
	}
	bad := p("abc")
	if _, _, err := ResolveFenceposts(&bad, nil, 3); err == nil {
		t.Error("bad percent accepted")
	}
}

func tmpl(image string) *v1.PodTemplateSpec {
	return &v1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
		Spec:       v1.PodSpec{Containers: []v1.Container{{Name: "c", Image: image}}},
	}
}

func TestComputeHash(t *testing.T) {
	a, b := ComputeHash(tmpl("x:1"), nil), ComputeHash(tmpl("x:1"), nil)
	if a != b || a == "" {
		t.Fatalf("not deterministic: %q %q", a, b)
	}
	if ComputeHash(tmpl("x:2"), nil) == a {
		t.Error("template change kept the hash")
	}
	one := int32(1)
	if ComputeHash(tmpl("x:1"), &one) == a {
		t.Error("collisionCount ignored")
	}
	for _, r := range a {
		if !(r >= 'b' && r <= 'z' || r >= '2' && r <= '9') || r == 'e' || r == 'a' {
			t.Fatalf("hash %q has unsafe rune %q", a, r)
		}
	}
}

func TestEqualIgnoreHash(t *testing.T) {
	a, b := tmpl("x:1"), tmpl("x:1")
	b.Labels[PodTemplateHashLabel] = "abc"
	if !EqualIgnoreHash(a, b) {
		t.Error("hash label not ignored")
	}
	if EqualIgnoreHash(a, tmpl("x:2")) {
		t.Error("different images equal")
	}
}

func rsOf(name string, replicas, availableN int32, created int64) *appsv1.ReplicaSet {
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.Unix(created, 0), Annotations: map[string]string{}},
		Spec:       appsv1.ReplicaSetSpec{Replicas: &replicas},
		Status:     appsv1.ReplicaSetStatus{Replicas: replicas, AvailableReplicas: availableN},
	}
}

func dep(replicas int32, surge, unavail intstr.IntOrString) *appsv1.Deployment {
	return withDefaults(rolling(newDeployment("d", replicas, "x"), surge, unavail))
}

func TestNewRSNewReplicas(t *testing.T) {
	for _, tc := range []struct {
		name       string
		d          *appsv1.Deployment
		oldN, newN int32
		want       int32
	}{
		{"surge 1 from 4 old", dep(4, intstr.FromInt32(1), intstr.FromInt32(1)), 4, 0, 1},
		{"at max total", dep(4, intstr.FromInt32(1), intstr.FromInt32(1)), 4, 1, 1},
		{"old shrunk", dep(4, intstr.FromInt32(1), intstr.FromInt32(1)), 2, 1, 3},
		{"never above replicas", dep(4, intstr.FromInt32(3), intstr.FromInt32(1)), 0, 2, 4},
	} {
		all := []*appsv1.ReplicaSet{rsOf("old", tc.oldN, tc.oldN, 1), rsOf("new", tc.newN, 0, 2)}
		if got := NewRSNewReplicas(tc.d, all, all[1]); got != tc.want {
			t.Errorf("%s: got %d want %d", tc.name, got, tc.want)
		}
	}
	recreate := withDefaults(newDeployment("d", 5, "x"))
	recreate.Spec.Strategy.Type = appsv1.RecreateDeploymentStrategyType
	if got := NewRSNewReplicas(recreate, nil, rsOf("n", 0, 0, 1)); got != 5 {
		t.Errorf("recreate: %d", got)
	}
}

func TestScaleDownPlan(t *testing.T) {
	d := dep(4, intstr.FromInt32(1), intstr.FromInt32(1))
	// 4 available old, new scaled to 1 but not yet available: may drop 1.
	old, newRS := rsOf("old", 4, 4, 1), rsOf("new", 1, 0, 2)
	plan := ScaleDownPlan(d, []*appsv1.ReplicaSet{old, newRS}, []*appsv1.ReplicaSet{old}, newRS)
	if plan[old] != 3 || len(plan) != 1 {
		t.Fatalf("plan %v, want old→3", plan)
	}
	// Old set with 2 unavailable replicas: they go first, at no cost.
	old = rsOf("old", 4, 2, 1)
	newRS = rsOf("new", 1, 1, 2)
	plan = ScaleDownPlan(d, []*appsv1.ReplicaSet{old, newRS}, []*appsv1.ReplicaSet{old}, newRS)
	if plan[old] != 2 {
		t.Fatalf("plan %v, want old→2 (unhealthy removed)", plan)
	}
	// Not enough available: nothing.
	old, newRS = rsOf("old", 3, 3, 1), rsOf("new", 1, 0, 2)
	plan = ScaleDownPlan(d, []*appsv1.ReplicaSet{old, newRS}, []*appsv1.ReplicaSet{old}, newRS)
	if len(plan) != 0 {
		t.Fatalf("plan %v, want none", plan)
	}
}

func TestProportionalSizes(t *testing.T) {
	// A rollout in flight (old 8, new 5 of a 10-replica deployment with
	// surge 3) scaled to 20: the 10 extra (+surge) split 8:5.
	d := dep(20, intstr.FromInt32(3), intstr.FromInt32(2))
	d.Status.Replicas = 13
	old, newRS := rsOf("old", 8, 8, 1), rsOf("new", 5, 0, 2)
	old.Annotations[MaxReplicasAnnotation] = "13"
	newRS.Annotations[MaxReplicasAnnotation] = "13"
	all := []*appsv1.ReplicaSet{old, newRS}
	sizes := ProportionalSizes(d, all)
	got := map[string]int32{}
	for i, rs := range all {
		got[rs.Name] = sizes[i]
	}
	if got["old"]+got["new"] != 23 || got["old"] != 14 || got["new"] != 9 {
		t.Fatalf("sizes %v, want old 14 new 9 (total 23)", got)
	}
	// Scaled to zero: everything goes.
	z := dep(0, intstr.FromInt32(1), intstr.FromInt32(1))
	sizes = ProportionalSizes(z, []*appsv1.ReplicaSet{rsOf("a", 3, 3, 1), rsOf("b", 2, 0, 2)})
	if sizes[0] != 0 || sizes[1] != 0 {
		t.Fatalf("scale to 0: %v", sizes)
	}
}
