package persistentvolume

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

var everything = labels.Everything()

// Finalizers the API server puts on new claims and volumes.
const (
	pvcProtection = "kubernetes.io/pvc-protection"
	pvProtection  = "kubernetes.io/pv-protection"
)

// syncClaim runs one round of the claim's life: protection on delete,
// then binding (or provisioning) while it has no volume, then keeping its
// status in step with its volume.
func (c *Controller) syncClaim(ctx context.Context, cl *v1.PersistentVolumeClaim) error {
	if cl.DeletionTimestamp != nil {
		return c.releaseClaimFinalizer(ctx, cl)
	}
	if cl.Spec.VolumeName == "" || !metav1.HasAnnotation(cl.ObjectMeta, AnnBindCompleted) {
		return c.syncUnboundClaim(ctx, cl)
	}
	pv, err := c.volumes.Get(cl.Spec.VolumeName)
	if apierrors.IsNotFound(err) {
		if cl.Status.Phase != v1.ClaimLost {
			c.recorder.Event(cl, v1.EventTypeWarning, "ClaimLost", "Bound claim has lost its PersistentVolume. Data on the volume is lost!")
			return c.claimStatus(ctx, cl, v1.ClaimLost, nil)
		}
		return nil
	}
	if err != nil {
		return err
	}
	switch cr := pv.Spec.ClaimRef; {
	case cr == nil:
		return c.bind(ctx, cl, pv) // the volume's half of the binding was lost: redo it
	case cr.UID != cl.UID:
		// Another claim holds the volume: this one is Lost, as in Kubernetes.
		if cl.Status.Phase != v1.ClaimLost {
			c.recorder.Event(cl, v1.EventTypeWarning, "ClaimMisbound", "Two claims are bound to the same volume, this one is bound incorrectly")
		}
		return c.claimStatus(ctx, cl, v1.ClaimLost, nil)
	}
	return c.claimStatus(ctx, cl, v1.ClaimBound, pv)
}

// syncUnboundClaim binds a claim to the volume FindMatch picks, or
// provisions one, or says why it waits.
func (c *Controller) syncUnboundClaim(ctx context.Context, cl *v1.PersistentVolumeClaim) error {
	className := ClaimClass(cl)
	class, err := c.classes.Get(className)
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	if className == "" {
		class = nil
	}
	var node *v1.Node
	selected := cl.Annotations[AnnSelectedNode]
	if IsDelayBinding(class) && cl.Spec.VolumeName == "" {
		if selected == "" {
			c.recorder.Event(cl, v1.EventTypeNormal, "WaitForFirstConsumer", "waiting for first consumer to be created before binding")
			return nil
		}
		if node, err = c.nodes.Get(selected); err != nil {
			return fmt.Errorf("selected node %s of claim %s/%s: %w", selected, cl.Namespace, cl.Name, err)
		}
	}
	vols, err := c.volumes.List(everything)
	if err != nil {
		return err
	}
	if pv := FindMatch(cl, vols, node); pv != nil {
		return c.bind(ctx, cl, pv)
	}
	if cl.Spec.VolumeName != "" {
		// Pre-bound to a volume that is not there (yet) or does not fit.
		c.recorder.Eventf(cl, v1.EventTypeNormal, "FailedBinding", "volume %q not found", cl.Spec.VolumeName)
		return nil
	}
	switch {
	case className == "":
		c.recorder.Event(cl, v1.EventTypeNormal, "FailedBinding", "no persistent volumes available for this claim and no storage class is set")
	case class == nil:
		c.recorder.Eventf(cl, v1.EventTypeWarning, "ProvisioningFailed", "storageclass.storage.k8s.io %q not found", className)
	case class.Provisioner == LocalPathProvisioner:
		return c.provisionLocalPath(ctx, cl, class.ReclaimPolicy, selected)
	case strings.HasPrefix(class.Provisioner, "kubernetes.io/"):
		// In-tree names: peapod has no in-tree provisioners, and
		// kubernetes.io/no-provisioner is Kubernetes' "static only".
		c.recorder.Eventf(cl, v1.EventTypeWarning, "ProvisioningFailed", "no volume plugin matched name: %s", class.Provisioner)
	default:
		c.recorder.Eventf(cl, v1.EventTypeNormal, "ExternalProvisioning",
			"Waiting for a volume to be created either by the external provisioner '%s' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered.", class.Provisioner)
	}
	return nil
}

// bind points pv at cl, then cl at pv, then sets both statuses Bound, as
// the PV controller's bind does: each step is idempotent, and a conflict
// retries the whole claim.
func (c *Controller) bind(ctx context.Context, cl *v1.PersistentVolumeClaim, pv *v1.PersistentVolume) error {
	pv = pv.DeepCopy()
	if pv.Spec.ClaimRef == nil || pv.Spec.ClaimRef.UID != cl.UID {
		pv.Spec.ClaimRef = &v1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: cl.Namespace, Name: cl.Name,
			UID: cl.UID, ResourceVersion: cl.ResourceVersion}
		metav1.SetMetaDataAnnotation(&pv.ObjectMeta, AnnBoundByController, "yes")
		updated, err := c.client.CoreV1().PersistentVolumes().Update(ctx, pv, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("bind volume %s to claim %s/%s: %w", pv.Name, cl.Namespace, cl.Name, err)
		}
		pv = updated
	}
	if err := c.volumeStatus(ctx, pv, v1.VolumeBound, ""); err != nil {
		return err
	}
	if cl.Spec.VolumeName != pv.Name || !metav1.HasAnnotation(cl.ObjectMeta, AnnBindCompleted) {
		cl.Spec.VolumeName = pv.Name
		metav1.SetMetaDataAnnotation(&cl.ObjectMeta, AnnBindCompleted, "yes")
		metav1.SetMetaDataAnnotation(&cl.ObjectMeta, AnnBoundByController, "yes")
		updated, err := c.client.CoreV1().PersistentVolumeClaims(cl.Namespace).Update(ctx, cl, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("bind claim %s/%s to volume %s: %w", cl.Namespace, cl.Name, pv.Name, err)
		}
		cl = updated
	}
	return c.claimStatus(ctx, cl, v1.ClaimBound, pv)
}

// claimStatus sets the claim's phase, and when bound its capacity and
// access modes from pv.
func (c *Controller) claimStatus(ctx context.Context, cl *v1.PersistentVolumeClaim, phase v1.PersistentVolumeClaimPhase, pv *v1.PersistentVolume) error {
	st := cl.Status.DeepCopy()
	st.Phase = phase
	if pv != nil && phase == v1.ClaimBound {
		st.AccessModes = pv.Spec.AccessModes
		st.Capacity = v1.ResourceList{v1.ResourceStorage: pv.Spec.Capacity[v1.ResourceStorage]}
	}
	if st.Phase == cl.Status.Phase && slices.Equal(st.AccessModes, cl.Status.AccessModes) &&
		st.Capacity.Storage().Cmp(*cl.Status.Capacity.Storage()) == 0 {
		return nil
	}
	if phase == v1.ClaimBound && cl.Status.Phase != v1.ClaimBound {
		c.log.Info("claim bound", "claim", cl.Namespace+"/"+cl.Name, "volume", cl.Spec.VolumeName)
	}
	cl = cl.DeepCopy()
	cl.Status = *st
	if _, err := c.client.CoreV1().PersistentVolumeClaims(cl.Namespace).UpdateStatus(ctx, cl, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("update status of claim %s/%s: %w", cl.Namespace, cl.Name, err)
	}
	return nil
}

func (c *Controller) volumeStatus(ctx context.Context, pv *v1.PersistentVolume, phase v1.PersistentVolumePhase, msg string) error {
	if pv.Status.Phase == phase && pv.Status.Message == msg {
		return nil
	}
	pv = pv.DeepCopy()
	pv.Status.Phase, pv.Status.Message = phase, msg
	now := metav1.Now()
	pv.Status.LastPhaseTransitionTime = &now
	if _, err := c.client.CoreV1().PersistentVolumes().UpdateStatus(ctx, pv, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("update status of volume %s: %w", pv.Name, err)
	}
	return nil
}

// syncVolume keeps a volume's phase: Available without a claim, Bound
// with its claim, Released once the claim is gone, then reclaimed.
func (c *Controller) syncVolume(ctx context.Context, pv *v1.PersistentVolume) error {
	if pv.DeletionTimestamp != nil && pv.Status.Phase != v1.VolumeBound {
		if err := c.removeFinalizer(ctx, pv, pvProtection); err != nil {
			return err
		}
	}
	cr := pv.Spec.ClaimRef
	if cr == nil {
		return c.volumeStatus(ctx, pv, v1.VolumeAvailable, "")
	}
	if cr.UID == "" {
		return c.volumeStatus(ctx, pv, v1.VolumeAvailable, "") // pre-bound by the user; the claim's sync binds it
	}
	cl, err := c.claims.PersistentVolumeClaims(cr.Namespace).Get(cr.Name)
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	if cl != nil && cl.UID == cr.UID {
		if cl.Spec.VolumeName == "" {
			c.queue.Add(claimPrefix + cl.Namespace + "/" + cl.Name) // half bound: the claim's sync finishes
			return nil
		}
		return c.volumeStatus(ctx, pv, v1.VolumeBound, "")
	}
	// The claim is gone: released, then reclaimed by policy.
	if pv.Status.Phase != v1.VolumeReleased && pv.Status.Phase != v1.VolumeFailed {
		if err := c.volumeStatus(ctx, pv, v1.VolumeReleased, ""); err != nil {
			return err
		}
	}
	if pv.Spec.PersistentVolumeReclaimPolicy != v1.PersistentVolumeReclaimDelete {
		return nil
	}
	if pv.Annotations[AnnProvisionedBy] == LocalPathProvisioner {
		return nil // its node removes the directory, then the volume
	}
	msg := fmt.Sprintf("error getting deleter volume plugin for volume %q: no deletable volume plugin matched", pv.Name)
	if pv.Status.Phase != v1.VolumeFailed {
		c.recorder.Event(pv, v1.EventTypeWarning, "VolumeFailedDelete", msg)
	}
	return c.volumeStatus(ctx, pv, v1.VolumeFailed, msg)
}

// releaseClaimFinalizer removes pvc-protection once no pod that has not
// finished uses the claim, as the pvc-protection controller does.
func (c *Controller) releaseClaimFinalizer(ctx context.Context, cl *v1.PersistentVolumeClaim) error {
	if !slices.Contains(cl.Finalizers, pvcProtection) {
		return nil
	}
	pods, err := c.pods.Pods(cl.Namespace).List(everything)
	if err != nil {
		return err
	}
	for _, p := range pods {
		if p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed {
			continue
		}
		for _, v := range p.Spec.Volumes {
			if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == cl.Name {
				return nil // in use; the pod's going enqueues the claim again
			}
		}
	}
	return c.removeFinalizer(ctx, cl, pvcProtection)
}

// removeFinalizer drops f from obj (a claim or a volume) with a JSON patch
// guarded by the resourceVersion.
func (c *Controller) removeFinalizer(ctx context.Context, obj metav1.Object, f string) error {
	var keep []string
	for _, have := range obj.GetFinalizers() {
		if have != f {
			keep = append(keep, have)
		}
	}
	if len(keep) == len(obj.GetFinalizers()) {
		return nil
	}
	var err error
	switch o := obj.(type) {
	case *v1.PersistentVolumeClaim:
		o = o.DeepCopy()
		o.Finalizers = keep
		_, err = c.client.CoreV1().PersistentVolumeClaims(o.Namespace).Update(ctx, o, metav1.UpdateOptions{})
	case *v1.PersistentVolume:
		o = o.DeepCopy()
		o.Finalizers = keep
		_, err = c.client.CoreV1().PersistentVolumes().Update(ctx, o, metav1.UpdateOptions{})
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("remove finalizer %s from %s: %w", f, obj.GetName(), err)
	}
	return nil
}

// LocalPathVolumeName is the volume local-path makes for a claim. Pure.
func LocalPathVolumeName(cl *v1.PersistentVolumeClaim) string { return "pvc-" + string(cl.UID) }

// LocalPathDir is the directory of a local-path claim under a node's
// storage directory, as k3s names it: pvc-<uid>_<namespace>_<name>. Pure.
func LocalPathDir(storageDir string, cl *v1.PersistentVolumeClaim) string {
	return filepath.Join(storageDir, LocalPathVolumeName(cl)+"_"+cl.Namespace+"_"+cl.Name)
}

// provisionLocalPath creates the claim's hostPath volume on its selected
// node, pre-bound to the claim; the next sync binds it. The directory
// itself is made by the node when a pod first mounts it
// (DirectoryOrCreate).
func (c *Controller) provisionLocalPath(ctx context.Context, cl *v1.PersistentVolumeClaim, reclaim *v1.PersistentVolumeReclaimPolicy, node string) error {
	if node == "" {
		c.recorder.Event(cl, v1.EventTypeWarning, "ProvisioningFailed", "failed to provision volume with StorageClass \""+ClaimClass(cl)+"\": configuration error, no node was specified")
		return nil
	}
	dir := c.dir
	if n, err := c.nodes.Get(node); err == nil && n.Annotations[AnnNodeStorageDir] != "" {
		dir = n.Annotations[AnnNodeStorageDir]
	}
	policy := v1.PersistentVolumeReclaimDelete
	if reclaim != nil {
		policy = *reclaim
	}
	dirType := v1.HostPathDirectoryOrCreate
	mode := v1.PersistentVolumeFilesystem
	pv := &v1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: LocalPathVolumeName(cl), Annotations: map[string]string{
			AnnProvisionedBy: LocalPathProvisioner, AnnLocalPathNode: node}},
		Spec: v1.PersistentVolumeSpec{
			Capacity:                      v1.ResourceList{v1.ResourceStorage: cl.Spec.Resources.Requests[v1.ResourceStorage]},
			AccessModes:                   cl.Spec.AccessModes,
			PersistentVolumeReclaimPolicy: policy,
			StorageClassName:              ClaimClass(cl),
			VolumeMode:                    &mode,
			PersistentVolumeSource: v1.PersistentVolumeSource{HostPath: &v1.HostPathVolumeSource{
				Path: LocalPathDir(dir, cl), Type: &dirType}},
			ClaimRef: &v1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: cl.Namespace, Name: cl.Name,
				UID: cl.UID, ResourceVersion: cl.ResourceVersion},
			NodeAffinity: &v1.VolumeNodeAffinity{Required: &v1.NodeSelector{NodeSelectorTerms: []v1.NodeSelectorTerm{{
				MatchExpressions: []v1.NodeSelectorRequirement{{Key: v1.LabelHostname, Operator: v1.NodeSelectorOpIn, Values: []string{node}}},
			}}}},
		},
	}
	c.recorder.Eventf(cl, v1.EventTypeNormal, "Provisioning", "External provisioner is provisioning volume for claim \"%s/%s\"", cl.Namespace, cl.Name)
	_, err := c.client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil // made earlier; its event binds it
	}
	if err != nil {
		c.recorder.Eventf(cl, v1.EventTypeWarning, "ProvisioningFailed", "failed to provision volume with StorageClass %q: %v", ClaimClass(cl), err)
		return fmt.Errorf("provision volume for claim %s/%s: %w", cl.Namespace, cl.Name, err)
	}
	c.recorder.Eventf(cl, v1.EventTypeNormal, "ProvisioningSucceeded", "Successfully provisioned volume %s", pv.Name)
	return nil
}
