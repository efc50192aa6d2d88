package spec

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func TestMilliCPU(t *testing.T) {
	for _, tc := range []struct {
		milli  int64
		shares uint64
		quota  int64
	}{
		{0, 2, 0}, {1, 2, 1000}, {5, 5, 1000}, {9, 9, 1000}, {10, 10, 1000}, {100, 102, 10000},
		{250, 256, 25000}, {1000, 1024, 100000}, {1500, 1536, 150000}, {300000, 262144, 30000000},
	} {
		if got := MilliCPUToShares(tc.milli); got != tc.shares {
			t.Errorf("shares(%d) = %d, want %d", tc.milli, got, tc.shares)
		}
		if got := MilliCPUToQuota(tc.milli, CPUPeriod); got != tc.quota {
			t.Errorf("quota(%d) = %d, want %d", tc.milli, got, tc.quota)
		}
	}
}

func TestResources(t *testing.T) {
	q := resource.MustParse
	for _, tc := range []struct {
		name     string
		rr       corev1.ResourceRequirements
		shares   uint64
		quota    int64 // 0 = unset
		mem      int64 // 0 = unset
		wantErr  string
		sentinel error
	}{
		{name: "none", shares: 2},
		{name: "requests only", rr: corev1.ResourceRequirements{Requests: corev1.ResourceList{"cpu": q("500m"), "memory": q("1Gi")}}, shares: 512},
		{name: "limits only", rr: corev1.ResourceRequirements{Limits: corev1.ResourceList{"cpu": q("2"), "memory": q("128Mi")}},
			shares: 2048, quota: 200000, mem: 128 << 20},
		{name: "both", rr: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{"cpu": q("100m"), "ephemeral-storage": q("1Gi")},
			Limits:   corev1.ResourceList{"cpu": q("250m"), "memory": q("100M")}},
			shares: 102, quota: 25000, mem: 100000000},
		{name: "hugepages", rr: corev1.ResourceRequirements{Limits: corev1.ResourceList{"hugepages-2Mi": q("2Mi")}},
			wantErr: "spec.containers[0].resources.limits[hugepages-2Mi]: not supported yet", sentinel: ErrUnsupported},
		{name: "extended", rr: corev1.ResourceRequirements{Requests: corev1.ResourceList{"example.com/gpu": q("1")}},
			wantErr: "resources.requests[example.com/gpu]", sentinel: ErrUnsupported},
		{name: "claims", rr: corev1.ResourceRequirements{Claims: []corev1.ResourceClaim{{Name: "gpu"}}},
			wantErr: "spec.containers[0].resources.claims", sentinel: ErrUnsupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := resources(&corev1.Container{Resources: tc.rr}, "spec.containers[0]")
			wantErr(t, err, tc.wantErr, tc.sentinel)
			if tc.wantErr != "" {
				return
			}
			if *r.CPU.Shares != tc.shares || *r.CPU.Period != 100000 {
				t.Errorf("shares %d period %d", *r.CPU.Shares, *r.CPU.Period)
			}
			if (r.CPU.Quota == nil) != (tc.quota == 0) || (r.CPU.Quota != nil && *r.CPU.Quota != tc.quota) {
				t.Errorf("quota %v, want %d", r.CPU.Quota, tc.quota)
			}
			if (r.Memory == nil) != (tc.mem == 0) || (r.Memory != nil && *r.Memory.Limit != tc.mem) {
				t.Errorf("memory %+v, want %d", r.Memory, tc.mem)
			}
		})
	}
}
