package persistentvolume

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func pv(name, size, class string, modes ...v1.PersistentVolumeAccessMode) *v1.PersistentVolume {
	return &v1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"disk": name}},
		Spec: v1.PersistentVolumeSpec{
			Capacity:         v1.ResourceList{v1.ResourceStorage: resource.MustParse(size)},
			AccessModes:      modes,
			StorageClassName: class,
		},
		Status: v1.PersistentVolumeStatus{Phase: v1.VolumeAvailable},
	}
}

func claim(size, class string, modes ...v1.PersistentVolumeAccessMode) *v1.PersistentVolumeClaim {
	c := &v1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ns", UID: "uid-c"},
		Spec: v1.PersistentVolumeClaimSpec{
			AccessModes: modes,
			Resources:   v1.VolumeResourceRequirements{Requests: v1.ResourceList{v1.ResourceStorage: resource.MustParse(size)}},
		},
	}
	if class != "-" {
		c.Spec.StorageClassName = &class
	}
	return c
}

// TestFindMatch: the PV controller's choice of volume for a claim.
func TestFindMatch(t *testing.T) {
	rwo, rox, rwx := v1.ReadWriteOnce, v1.ReadOnlyMany, v1.ReadWriteMany
	node := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{v1.LabelHostname: "n1"}}}
	pinned := func(p *v1.PersistentVolume, to string) *v1.PersistentVolume {
		p.Spec.NodeAffinity = &v1.VolumeNodeAffinity{Required: &v1.NodeSelector{NodeSelectorTerms: []v1.NodeSelectorTerm{{
			MatchExpressions: []v1.NodeSelectorRequirement{{Key: v1.LabelHostname, Operator: v1.NodeSelectorOpIn, Values: []string{to}}}}}}}
		return p
	}
	boundTo := func(p *v1.PersistentVolume, name string, uid types.UID) *v1.PersistentVolume {
		p.Spec.ClaimRef = &v1.ObjectReference{Namespace: "ns", Name: name, UID: uid}
		p.Status.Phase = v1.VolumeBound
		return p
	}
	released := func(p *v1.PersistentVolume) *v1.PersistentVolume { p.Status.Phase = v1.VolumeReleased; return p }
	deleting := func(p *v1.PersistentVolume) *v1.PersistentVolume { p.DeletionTimestamp = &metav1.Time{}; return p }
	withSelector := func(c *v1.PersistentVolumeClaim, disk string) *v1.PersistentVolumeClaim {
		c.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"disk": disk}}
		return c
	}
	named := func(c *v1.PersistentVolumeClaim, volume string) *v1.PersistentVolumeClaim {
		c.Spec.VolumeName = volume
		return c
	}
	for _, tc := range []struct {
		name    string
		claim   *v1.PersistentVolumeClaim
		volumes []*v1.PersistentVolume
		node    *v1.Node
		want    string
	}{
		{"smallest that fits", claim("1Gi", "", rwo), []*v1.PersistentVolume{pv("big", "10Gi", "", rwo), pv("small", "2Gi", "", rwo), pv("tiny", "500Mi", "", rwo)}, nil, "small"},
		{"exact size fits", claim("1Gi", "", rwo), []*v1.PersistentVolume{pv("exact", "1Gi", "", rwo)}, nil, "exact"},
		{"more than any offers", claim("20Gi", "", rwo), []*v1.PersistentVolume{pv("big", "10Gi", "", rwo)}, nil, ""},
		{"class must match", claim("1Gi", "fast", rwo), []*v1.PersistentVolume{pv("slow", "1Gi", "slow", rwo), pv("none", "1Gi", "", rwo)}, nil, ""},
		{"no class matches only classless", claim("1Gi", "-", rwo), []*v1.PersistentVolume{pv("fast", "1Gi", "fast", rwo), pv("plain", "5Gi", "", rwo)}, nil, "plain"},
		{"every access mode offered", claim("1Gi", "", rwo, rox), []*v1.PersistentVolume{pv("rwo", "1Gi", "", rwo), pv("both", "9Gi", "", rwo, rox, rwx)}, nil, "both"},
		{"access mode missing", claim("1Gi", "", rwx), []*v1.PersistentVolume{pv("rwo", "1Gi", "", rwo)}, nil, ""},
		{"selector", withSelector(claim("1Gi", "", rwo), "b"), []*v1.PersistentVolume{pv("a", "1Gi", "", rwo), pv("b", "8Gi", "", rwo)}, nil, "b"},
		{"bound elsewhere skipped", claim("1Gi", "", rwo), []*v1.PersistentVolume{boundTo(pv("taken", "1Gi", "", rwo), "other", "u2"), pv("free", "3Gi", "", rwo)}, nil, "free"},
		{"pre-bound to this claim wins", claim("1Gi", "", rwo), []*v1.PersistentVolume{pv("small", "1Gi", "", rwo), boundTo(pv("mine", "5Gi", "", rwo), "c", "uid-c")}, nil, "mine"},
		{"pre-bound by name only", claim("1Gi", "", rwo), []*v1.PersistentVolume{boundTo(pv("byname", "5Gi", "", rwo), "c", "")}, nil, "byname"},
		{"released not reused", claim("1Gi", "", rwo), []*v1.PersistentVolume{released(pv("old", "1Gi", "", rwo))}, nil, ""},
		{"deleting not used", claim("1Gi", "", rwo), []*v1.PersistentVolume{deleting(pv("gone", "1Gi", "", rwo))}, nil, ""},
		{"volumeName chosen", named(claim("1Gi", "", rwo), "b"), []*v1.PersistentVolume{pv("a", "1Gi", "", rwo), pv("b", "5Gi", "", rwo)}, nil, "b"},
		{"volumeName too small", named(claim("8Gi", "", rwo), "a"), []*v1.PersistentVolume{pv("a", "1Gi", "", rwo)}, nil, ""},
		{"delayed: node affinity admits", claim("1Gi", "local", rwo), []*v1.PersistentVolume{pinned(pv("n2", "1Gi", "local", rwo), "n2"), pinned(pv("n1", "4Gi", "local", rwo), "n1")}, node, "n1"},
		{"delayed: no volume on the node", claim("1Gi", "local", rwo), []*v1.PersistentVolume{pinned(pv("n2", "1Gi", "local", rwo), "n2")}, node, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := FindMatch(tc.claim, tc.volumes, tc.node)
			name := ""
			if got != nil {
				name = got.Name
			}
			if name != tc.want {
				t.Errorf("FindMatch = %q, want %q", name, tc.want)
			}
		})
	}
}

func TestLocalPathNames(t *testing.T) {
	c := claim("1Gi", "local-path", v1.ReadWriteOnce)
	if got := LocalPathVolumeName(c); got != "pvc-uid-c" {
		t.Errorf("volume name %q", got)
	}
	if got := LocalPathDir("/var/lib/peapod/storage", c); got != "/var/lib/peapod/storage/pvc-uid-c_ns_c" {
		t.Errorf("dir %q", got)
	}
}
