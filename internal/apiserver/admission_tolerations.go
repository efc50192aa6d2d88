package apiserver

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// enableDefaultTolerationSeconds makes a's pod create path add the
// not-ready/unreachable NoExecute tolerations for secs seconds, before
// DefaultPod's defaulting (which then finds them and adds none for 300 s),
// as Kubernetes' DefaultTolerationSeconds admission plugin does with
// kube-apiserver's --default-*-toleration-seconds.
func enableDefaultTolerationSeconds(a *api, secs int64) {
	res := a.resourceFor("", "v1", "pods")
	prev := res.Strategy.PrepareForCreate
	res.Strategy.PrepareForCreate = func(obj runtime.Object) {
		defaultTolerations(&obj.(*corev1.Pod).Spec, secs)
		if prev != nil {
			prev(obj)
		}
	}
}
