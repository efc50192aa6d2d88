package apiserver

import (
	"fmt"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// podCIDRImmutable is Kubernetes' message for a changed node range.
const podCIDRImmutable = `node updates may not change podCIDR except from "" to valid`

// nodeStrategy keeps a Node's podCIDR and podCIDRs one field, as the
// Kubernetes API does, and makes them write-once: the node IPAM controller
// sets them, and nothing may change them after.
var nodeStrategy = Strategy{
	PrepareForCreate: func(obj runtime.Object) { syncPodCIDRs(obj.(*corev1.Node)) },
	PrepareForUpdate: func(obj, _ runtime.Object) { syncPodCIDRs(obj.(*corev1.Node)) },
	Validate:         func(obj runtime.Object) field.ErrorList { return ValidateNode(obj.(*corev1.Node)) },
	ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
		return ValidateNodeUpdate(obj.(*corev1.Node), old.(*corev1.Node))
	},
}

// syncPodCIDRs fills whichever of podCIDR and podCIDRs[0] a client left
// out from the other, as Kubernetes' v1 conversion does.
func syncPodCIDRs(n *corev1.Node) {
	switch {
	case len(n.Spec.PodCIDRs) == 0 && n.Spec.PodCIDR != "":
		n.Spec.PodCIDRs = []string{n.Spec.PodCIDR}
	case n.Spec.PodCIDR == "" && len(n.Spec.PodCIDRs) > 0:
		n.Spec.PodCIDR = n.Spec.PodCIDRs[0]
	}
}

// ValidateNode checks a Node's pod ranges: valid CIDRs, at most one per
// IP family, and podCIDR equal to podCIDRs[0].
func ValidateNode(n *corev1.Node) field.ErrorList {
	var errs field.ErrorList
	spec := field.NewPath("spec")
	families := map[bool]bool{}
	for i, c := range n.Spec.PodCIDRs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			errs = append(errs, field.Invalid(spec.Child("podCIDRs").Index(i), c, "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"))
			continue
		}
		if families[p.Addr().Is4()] {
			errs = append(errs, field.Invalid(spec.Child("podCIDRs"), n.Spec.PodCIDRs, "may specify no more than one CIDR for each IP family"))
		}
		families[p.Addr().Is4()] = true
	}
	if len(n.Spec.PodCIDRs) > 2 {
		errs = append(errs, field.TooMany(spec.Child("podCIDRs"), len(n.Spec.PodCIDRs), 2))
	}
	if len(n.Spec.PodCIDRs) > 0 && n.Spec.PodCIDR != n.Spec.PodCIDRs[0] {
		errs = append(errs, field.Invalid(spec.Child("podCIDR"), n.Spec.PodCIDR, fmt.Sprintf("must equal spec.podCIDRs[0] (%s)", n.Spec.PodCIDRs[0])))
	}
	return errs
}

// ValidateNodeUpdate is ValidateNode plus Kubernetes' rule that a node's
// range may go from empty to valid once and never change after.
func ValidateNodeUpdate(n, old *corev1.Node) field.ErrorList {
	errs := ValidateNode(n)
	if (old.Spec.PodCIDR != "" || len(old.Spec.PodCIDRs) > 0) &&
		(n.Spec.PodCIDR != old.Spec.PodCIDR || !slices.Equal(n.Spec.PodCIDRs, old.Spec.PodCIDRs)) {
		errs = append(errs, field.Forbidden(field.NewPath("spec", "podCIDRs"), podCIDRImmutable))
	}
	return errs
}
