package apiserver

import (
	"maps"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/peapod/peapod/internal/storage"
)

func TestGCFinalizers(t *testing.T) {
	pol := func(p metav1.DeletionPropagation) *metav1.DeleteOptions {
		return &metav1.DeleteOptions{PropagationPolicy: &p}
	}
	yes, no := true, false
	const orphan, fg = metav1.FinalizerOrphanDependents, metav1.FinalizerDeleteDependents
	for _, tc := range []struct {
		name    string
		fins    []string
		opts    *metav1.DeleteOptions
		want    []string
		changed bool
	}{
		{"default is background", nil, &metav1.DeleteOptions{}, nil, false},
		{"background", []string{"x"}, pol(metav1.DeletePropagationBackground), []string{"x"}, false},
		{"foreground", []string{"x"}, pol(metav1.DeletePropagationForeground), []string{"x", fg}, true},
		{"orphan", nil, pol(metav1.DeletePropagationOrphan), []string{orphan}, true},
		//lint:ignore SA1019 the deprecated field is still honoured
		{"orphanDependents true", nil, &metav1.DeleteOptions{OrphanDependents: &yes}, []string{orphan}, true},
		//lint:ignore SA1019 as above
		{"orphanDependents false drops orphan", []string{orphan}, &metav1.DeleteOptions{OrphanDependents: &no}, []string{}, true},
		{"background drops foreground", []string{fg, "x"}, pol(metav1.DeletePropagationBackground), []string{"x"}, true},
		{"foreground replaces orphan", []string{orphan}, pol(metav1.DeletePropagationForeground), []string{fg}, true},
		{"no policy keeps earlier foreground", []string{fg}, &metav1.DeleteOptions{}, []string{fg}, false},
		{"same foreground again", []string{fg}, pol(metav1.DeletePropagationForeground), []string{fg}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, changed := gcFinalizers(tc.fins, tc.opts)
			if changed != tc.changed || (changed && !slices.Equal(got, tc.want)) || (!changed && !slices.Equal(got, tc.fins)) {
				t.Errorf("gcFinalizers(%v) = %v, %v; want %v, %v", tc.fins, got, changed, tc.want, tc.changed)
			}
		})
	}
}

func TestDefaultTolerationSecondsAdmission(t *testing.T) {
	a := newAPI(apiOptions{Store: storage.NewMemory()})
	enableDefaultTolerationSeconds(a, 7)
	prep := a.resourceFor("", "v1", "pods").Strategy.PrepareForCreate
	own := int64(60)
	for _, tc := range []struct {
		name string
		in   []corev1.Toleration
		want map[string]int64
	}{
		{"none", nil, map[string]int64{corev1.TaintNodeNotReady: 7, corev1.TaintNodeUnreachable: 7}},
		{"own unreachable kept", []corev1.Toleration{{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists,
			Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &own}}, map[string]int64{corev1.TaintNodeNotReady: 7, corev1.TaintNodeUnreachable: 60}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := &corev1.Pod{Spec: corev1.PodSpec{Tolerations: tc.in, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
			prep(pod)
			got := map[string]int64{}
			for _, tol := range pod.Spec.Tolerations {
				got[tol.Key] = *tol.TolerationSeconds
			}
			if !maps.Equal(got, tc.want) {
				t.Errorf("tolerations %v, want %v", got, tc.want)
			}
		})
	}
}
