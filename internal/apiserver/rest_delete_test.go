package apiserver

import (
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
		{"orphanDependents true", nil, &metav1.DeleteOptions{OrphanDependents: &yes}, []string{orphan}, true},
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
