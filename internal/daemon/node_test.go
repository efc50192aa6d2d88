package daemon

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/peapod/peapod/internal/clusternetwork"
)

func TestNodePodCIDR(t *testing.T) {
	settings := clusternetwork.Defaults()
	node := func(podCIDR string) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Spec: corev1.NodeSpec{PodCIDR: podCIDR}}
	}
	for _, tc := range []struct {
		name, podCIDR, flag string
		want                string // the range, or an error's substring
	}{
		{"no flag", "10.42.3.0/24", "", "10.42.3.0/24"},
		{"flag agrees", "10.42.3.0/24", "10.42.3.0/24", "10.42.3.0/24"},
		{"flag in other notation", "10.42.3.0/24", "10.42.3.7/24", "10.42.3.0/24"},
		{"flag disagrees", "10.42.3.0/24", "10.9.0.0/24",
			"--pod-cidr 10.9.0.0/24 disagrees with node n1's podCIDR 10.42.3.0/24, which the server gave it from the cluster range 10.42.0.0/16"},
		{"flag of another size", "10.42.3.0/24", "10.42.3.0/25", "--pod-cidr 10.42.3.0/25 disagrees"},
		{"flag garbage", "10.42.3.0/24", "x", `--pod-cidr "x": not a CIDR`},
		{"outside the cluster", "10.88.0.0/16", "", "node n1's podCIDR 10.88.0.0/16 is not a range of the cluster range 10.42.0.0/16"},
		{"larger than the cluster", "10.0.0.0/8", "", "is not a range of the cluster range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := nodePodCIDR(node(tc.podCIDR), tc.flag, settings)
			if err != nil {
				if !strings.Contains(err.Error(), tc.want) {
					t.Errorf("nodePodCIDR = %v, want %q", err, tc.want)
				}
				return
			}
			if got.String() != tc.want {
				t.Errorf("nodePodCIDR = %s, want %s", got, tc.want)
			}
		})
	}
}
