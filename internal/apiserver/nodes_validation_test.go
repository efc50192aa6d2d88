package apiserver

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func nodeWith(podCIDR string, podCIDRs ...string) *corev1.Node {
	return &corev1.Node{Spec: corev1.NodeSpec{PodCIDR: podCIDR, PodCIDRs: podCIDRs}}
}

func TestSyncPodCIDRs(t *testing.T) {
	n := nodeWith("10.42.1.0/24")
	syncPodCIDRs(n)
	if len(n.Spec.PodCIDRs) != 1 || n.Spec.PodCIDRs[0] != "10.42.1.0/24" {
		t.Errorf("podCIDR only: podCIDRs = %q", n.Spec.PodCIDRs)
	}
	n = nodeWith("", "10.42.2.0/24")
	syncPodCIDRs(n)
	if n.Spec.PodCIDR != "10.42.2.0/24" {
		t.Errorf("podCIDRs only: podCIDR = %q", n.Spec.PodCIDR)
	}
	n = nodeWith("")
	syncPodCIDRs(n)
	if n.Spec.PodCIDR != "" || n.Spec.PodCIDRs != nil {
		t.Errorf("no range: %+v", n.Spec)
	}
}

func TestValidateNode(t *testing.T) {
	for _, tc := range []struct {
		name string
		node *corev1.Node
		want string // "" = valid
	}{
		{"none", nodeWith(""), ""},
		{"one", nodeWith("10.42.0.0/24", "10.42.0.0/24"), ""},
		{"dual stack", nodeWith("10.42.0.0/24", "10.42.0.0/24", "fd00::/64"), ""},
		{"garbage", nodeWith("x", "x"), "spec.podCIDRs[0]: Invalid value: \"x\": must be a valid CIDR value"},
		{"two v4", nodeWith("10.42.0.0/24", "10.42.0.0/24", "10.43.0.0/24"), "no more than one CIDR for each IP family"},
		{"disagree", nodeWith("10.42.0.0/24", "10.42.1.0/24"), "spec.podCIDR: Invalid value: \"10.42.0.0/24\": must equal spec.podCIDRs[0] (10.42.1.0/24)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := ValidateNode(tc.node)
			if tc.want == "" {
				if len(errs) > 0 {
					t.Errorf("ValidateNode = %v, want none", errs)
				}
				return
			}
			if !strings.Contains(errs.ToAggregate().Error(), tc.want) {
				t.Errorf("ValidateNode = %v, want %q", errs, tc.want)
			}
		})
	}
}

func TestValidateNodeUpdatePodCIDRIsWriteOnce(t *testing.T) {
	const msg = `spec.podCIDRs: Forbidden: node updates may not change podCIDR except from "" to valid`
	for _, tc := range []struct {
		name     string
		old, new *corev1.Node
		want     string
	}{
		{"empty to valid", nodeWith(""), nodeWith("10.42.0.0/24", "10.42.0.0/24"), ""},
		{"unchanged", nodeWith("10.42.0.0/24", "10.42.0.0/24"), nodeWith("10.42.0.0/24", "10.42.0.0/24"), ""},
		{"changed", nodeWith("10.42.0.0/24", "10.42.0.0/24"), nodeWith("10.42.1.0/24", "10.42.1.0/24"), msg},
		{"cleared", nodeWith("10.42.0.0/24", "10.42.0.0/24"), nodeWith(""), msg},
		{"podCIDR alone changed", nodeWith("10.42.0.0/24", "10.42.0.0/24"), nodeWith("10.42.1.0/24", "10.42.0.0/24"), msg},
		{"second family added", nodeWith("10.42.0.0/24", "10.42.0.0/24"), nodeWith("10.42.0.0/24", "10.42.0.0/24", "fd00::/64"), msg},
		{"empty to garbage", nodeWith(""), nodeWith("bogus", "bogus"), "must be a valid CIDR value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := ValidateNodeUpdate(tc.new, tc.old)
			if tc.want == "" {
				if len(errs) > 0 {
					t.Errorf("ValidateNodeUpdate = %v, want none", errs)
				}
				return
			}
			if !strings.Contains(errs.ToAggregate().Error(), tc.want) {
				t.Errorf("ValidateNodeUpdate = %v, want %q", errs, tc.want)
			}
		})
	}
}
