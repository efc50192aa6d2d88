package nodelifecycle

import (
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func secs(n int64) *int64 { return &n }

func TestTolerates(t *testing.T) {
	taint := v1.Taint{Key: "k", Value: "v", Effect: v1.TaintEffectNoExecute}
	for _, tc := range []struct {
		tol  v1.Toleration
		want bool
	}{
		{v1.Toleration{Key: "k", Value: "v", Effect: v1.TaintEffectNoExecute}, true},
		{v1.Toleration{Key: "k", Operator: v1.TolerationOpEqual, Value: "v"}, true},
		{v1.Toleration{Key: "k", Value: "x"}, false},
		{v1.Toleration{Key: "k", Operator: v1.TolerationOpExists}, true},
		{v1.Toleration{Operator: v1.TolerationOpExists}, true},
		{v1.Toleration{Key: "k", Operator: v1.TolerationOpExists, Effect: v1.TaintEffectNoSchedule}, false},
		{v1.Toleration{Key: "other", Operator: v1.TolerationOpExists}, false},
	} {
		if got := Tolerates(tc.tol, taint); got != tc.want {
			t.Errorf("%+v: got %v", tc.tol, got)
		}
	}
}

func TestEvictionTime(t *testing.T) {
	now := time.Unix(1000, 0)
	added := metav1.NewTime(now.Add(-10 * time.Second))
	unreach := []v1.Taint{
		{Key: v1.TaintNodeUnreachable, Effect: v1.TaintEffectNoSchedule},
		{Key: v1.TaintNodeUnreachable, Effect: v1.TaintEffectNoExecute, TimeAdded: &added},
	}
	pod := func(tols ...v1.Toleration) *v1.Pod { return &v1.Pod{Spec: v1.PodSpec{Tolerations: tols}} }
	exists := func(key string, s *int64) v1.Toleration {
		return v1.Toleration{Key: key, Operator: v1.TolerationOpExists, Effect: v1.TaintEffectNoExecute, TolerationSeconds: s}
	}
	for _, tc := range []struct {
		name   string
		p      *v1.Pod
		taints []v1.Taint
		wantOK bool
		want   time.Time
	}{
		{"no taints", pod(), nil, false, time.Time{}},
		{"NoSchedule only", pod(), unreach[:1], false, time.Time{}},
		{"default toleration", pod(), unreach, true, added.Add(300 * time.Second)},
		{"own toleration", pod(exists(v1.TaintNodeUnreachable, secs(60))), unreach, true, added.Add(60 * time.Second)},
		{"smallest of two", pod(exists(v1.TaintNodeUnreachable, secs(60)), exists("", secs(20))), unreach, true, added.Add(20 * time.Second)},
		{"forever", pod(exists(v1.TaintNodeUnreachable, nil)), unreach, false, time.Time{}},
		{"foreign taint untolerated", pod(), []v1.Taint{{Key: "x", Effect: v1.TaintEffectNoExecute, TimeAdded: &added}}, true, added.Time},
		{"no timeAdded counts from now", pod(exists(v1.TaintNodeUnreachable, secs(5))),
			[]v1.Taint{{Key: v1.TaintNodeUnreachable, Effect: v1.TaintEffectNoExecute}}, true, now.Add(5 * time.Second)},
	} {
		at, ok := EvictionTime(tc.p, tc.taints, 300, now)
		if ok != tc.wantOK || (ok && !at.Equal(tc.want)) {
			t.Errorf("%s: got %v %v, want %v %v", tc.name, at, ok, tc.want, tc.wantOK)
		}
	}
}

func TestDesiredTaints(t *testing.T) {
	now := time.Unix(1000, 0)
	other := v1.Taint{Key: "dedicated", Value: "x", Effect: v1.TaintEffectNoSchedule}
	cond := func(s v1.ConditionStatus) *v1.NodeCondition { return &v1.NodeCondition{Type: v1.NodeReady, Status: s} }
	keys := func(ts []v1.Taint) map[string]bool {
		m := map[string]bool{}
		for _, t := range ts {
			m[t.Key+":"+string(t.Effect)] = true
			if t.Effect == v1.TaintEffectNoExecute && t.TimeAdded == nil {
				m["missing timeAdded"] = true
			}
		}
		return m
	}
	got := keys(DesiredTaints([]v1.Taint{other}, cond(v1.ConditionUnknown), now))
	if len(got) != 3 || !got["dedicated:NoSchedule"] || !got[v1.TaintNodeUnreachable+":NoExecute"] || !got[v1.TaintNodeUnreachable+":NoSchedule"] {
		t.Errorf("unknown: %v", got)
	}
	got = keys(DesiredTaints(DesiredTaints(nil, cond(v1.ConditionUnknown), now), cond(v1.ConditionFalse), now))
	if len(got) != 2 || !got[v1.TaintNodeNotReady+":NoExecute"] || !got[v1.TaintNodeNotReady+":NoSchedule"] {
		t.Errorf("false after unknown: %v", got)
	}
	got = keys(DesiredTaints(append(DesiredTaints(nil, cond(v1.ConditionFalse), now), other), cond(v1.ConditionTrue), now))
	if len(got) != 1 || !got["dedicated:NoSchedule"] {
		t.Errorf("true: %v", got)
	}
	// timeAdded of an existing taint is kept.
	first := DesiredTaints(nil, cond(v1.ConditionUnknown), now)
	again := DesiredTaints(first, cond(v1.ConditionUnknown), now.Add(time.Hour))
	for _, t2 := range again {
		if t2.Effect == v1.TaintEffectNoExecute && !t2.TimeAdded.Time.Equal(now) {
			t.Errorf("timeAdded moved to %v", t2.TimeAdded)
		}
	}
}
