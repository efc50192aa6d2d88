package persistentvolume

import (
	"slices"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
)

// Annotations and names Kubernetes and k3s use.
const (
	// AnnSelectedNode is written on a claim by the scheduler: the node of
	// the first pod using a WaitForFirstConsumer claim.
	AnnSelectedNode = "volume.kubernetes.io/selected-node"
	// AnnProvisionedBy names the provisioner that made a volume.
	AnnProvisionedBy = "pv.kubernetes.io/provisioned-by"
	// AnnBindCompleted and AnnBoundByController mark a claim the controller
	// has bound.
	AnnBindCompleted     = "pv.kubernetes.io/bind-completed"
	AnnBoundByController = "pv.kubernetes.io/bound-by-controller"
	// AnnStorageProvisioner names, on a claim, the provisioner expected to
	// provision it.
	AnnStorageProvisioner = "volume.kubernetes.io/storage-provisioner"
	// AnnLocalPathNode is local-path's record of a volume's node.
	AnnLocalPathNode = "local.path.provisioner/selected-node"
	// LocalPathProvisioner and LocalPathClass are k3s's built-in
	// provisioner and its default StorageClass.
	LocalPathProvisioner = "rancher.io/local-path"
	LocalPathClass       = "local-path"
)

// ClaimClass is the claim's storageClassName, "" for none. Pure.
func ClaimClass(c *v1.PersistentVolumeClaim) string {
	if c.Spec.StorageClassName != nil {
		return *c.Spec.StorageClassName
	}
	return ""
}

// IsDelayBinding reports whether class binds at the first consumer. Pure.
func IsDelayBinding(class *storagev1.StorageClass) bool {
	return class != nil && class.VolumeBindingMode != nil && *class.VolumeBindingMode == storagev1.VolumeBindingWaitForFirstConsumer
}

// FindMatch returns the volume claim should bind to, or nil: a volume
// already pre-bound to the claim (by claimRef) if there is one, else the
// smallest Available, unclaimed volume of the claim's class that offers
// every requested access mode, the same volume mode, at least the
// requested storage and labels the claim's selector matches, as the PV
// controller's findByClaim. node, when set (delayed binding), also
// requires the volume's node affinity to admit it. Pure.
func FindMatch(claim *v1.PersistentVolumeClaim, volumes []*v1.PersistentVolume, node *v1.Node) *v1.PersistentVolume {
	req := claim.Spec.Resources.Requests[v1.ResourceStorage]
	var sel labels.Selector
	if claim.Spec.Selector != nil {
		s, err := metav1.LabelSelectorAsSelector(claim.Spec.Selector)
		if err != nil {
			return nil
		}
		sel = s
	}
	var best *v1.PersistentVolume
	for _, pv := range volumes {
		if pv.DeletionTimestamp != nil {
			continue
		}
		if claim.Spec.VolumeName != "" && pv.Name != claim.Spec.VolumeName {
			continue
		}
		if cr := pv.Spec.ClaimRef; cr != nil {
			if cr.Namespace != claim.Namespace || cr.Name != claim.Name || (cr.UID != "" && cr.UID != claim.UID) {
				continue
			}
			if fits(claim, pv, req, sel, node) || cr.UID == claim.UID {
				return pv // pre-bound to this claim
			}
			continue
		}
		if pv.Status.Phase != v1.VolumeAvailable || !fits(claim, pv, req, sel, node) {
			continue
		}
		if claim.Spec.VolumeName != "" {
			return pv
		}
		if best == nil || pv.Spec.Capacity.Storage().Cmp(*best.Spec.Capacity.Storage()) < 0 {
			best = pv
		}
	}
	return best
}

func fits(claim *v1.PersistentVolumeClaim, pv *v1.PersistentVolume, req resource.Quantity, sel labels.Selector, node *v1.Node) bool {
	if pv.Spec.StorageClassName != ClaimClass(claim) {
		return false
	}
	for _, m := range claim.Spec.AccessModes {
		if !slices.Contains(pv.Spec.AccessModes, m) {
			return false
		}
	}
	if volumeMode(pv.Spec.VolumeMode) != volumeMode(claim.Spec.VolumeMode) {
		return false
	}
	if pv.Spec.Capacity.Storage().Cmp(req) < 0 {
		return false
	}
	if sel != nil && !sel.Matches(labels.Set(pv.Labels)) {
		return false
	}
	if node != nil && !VolumeFitsNode(pv, node) {
		return false
	}
	return true
}

// VolumeFitsNode reports whether pv's required node affinity, if any,
// admits node. Pure.
func VolumeFitsNode(pv *v1.PersistentVolume, node *v1.Node) bool {
	na := pv.Spec.NodeAffinity
	if na == nil || na.Required == nil {
		return true
	}
	ok, err := nodeaffinity.NewLazyErrorNodeSelector(na.Required).Match(node)
	return err == nil && ok
}

func volumeMode(m *v1.PersistentVolumeMode) v1.PersistentVolumeMode {
	if m == nil {
		return v1.PersistentVolumeFilesystem
	}
	return *m
}
