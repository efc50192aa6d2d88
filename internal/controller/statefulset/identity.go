package statefulset

import (
	"regexp"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"

	"github.com/peapod/peapod/internal/controller/ctrlutil"
)

// Labels every StatefulSet pod carries, as Kubernetes'.
const (
	PodNameLabel  = appsv1.StatefulSetPodNameLabel // statefulset.kubernetes.io/pod-name
	PodIndexLabel = appsv1.PodIndexLabel           // apps.kubernetes.io/pod-index
	RevisionLabel = appsv1.ControllerRevisionHashLabelKey
)

var statefulPodRegex = regexp.MustCompile("(.*)-([0-9]+)$")

// ParentAndOrdinal splits a pod name "<set>-<ordinal>"; ordinal is -1 when
// the name has no ordinal suffix. Pure.
func ParentAndOrdinal(name string) (string, int) {
	m := statefulPodRegex.FindStringSubmatch(name)
	if len(m) != 3 {
		return "", -1
	}
	i, err := strconv.ParseInt(m[2], 10, 32)
	if err != nil {
		return "", -1
	}
	return m[1], int(i)
}

// PodName is the name of set's pod with ordinal. Pure.
func PodName(set string, ordinal int) string { return set + "-" + strconv.Itoa(ordinal) }

// RevisionName is set's revision name for its current template. Pure.
func RevisionName(set *appsv1.StatefulSet, template *v1.PodTemplateSpec) string {
	return set.Name + "-" + ctrlutil.HashTemplate(template, set.Status.CollisionCount)
}

// startOrdinal is spec.ordinals.start, or 0.
func startOrdinal(set *appsv1.StatefulSet) int {
	if set.Spec.Ordinals != nil {
		return int(set.Spec.Ordinals.Start)
	}
	return 0
}

// newPod builds set's pod with ordinal from template at revision.
func newPod(set *appsv1.StatefulSet, template *v1.PodTemplateSpec, revision string, ordinal int) *v1.Pod {
	name := PodName(set.Name, ordinal)
	p := ctrlutil.PodFromTemplate(template, set.Namespace, "", ctrlutil.NewControllerRef(set, kind))
	p.Name = name
	if p.Labels == nil {
		p.Labels = map[string]string{}
	}
	p.Labels[PodNameLabel] = name
	p.Labels[PodIndexLabel] = strconv.Itoa(ordinal)
	p.Labels[RevisionLabel] = revision
	p.Spec.Hostname = name
	p.Spec.Subdomain = set.Spec.ServiceName
	return withClaimVolumes(set, p, ordinal)
}

// runningAndReady: phase Running with Ready=True.
func runningAndReady(p *v1.Pod) bool {
	return p.Status.Phase == v1.PodRunning && ctrlutil.IsPodReady(p)
}

var kind = appsv1.SchemeGroupVersion.WithKind("StatefulSet")
