package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/peapod/peapod/internal/controller/persistentvolume"
)

// The agent is the node side of the local-path provisioner: the PV
// controller on the server makes a volume's object, the node its
// directory (when a pod first mounts it, hostPath DirectoryOrCreate) and,
// here, removes both once the volume is Released with reclaim policy
// Delete: the directory first, then the object, so a failure leaves the
// volume for the next try rather than a directory nobody knows of.

// watchLocalVolumes registers the cleaner on inf, an informer of
// PersistentVolumes. Each event is handled on a goroutine of the agent's
// wait group.
func (a *Agent) watchLocalVolumes(ctx context.Context, inf cache.SharedIndexInformer) error {
	handle := func(obj any) {
		pv, ok := obj.(*corev1.PersistentVolume)
		if !ok || LocalPathDirToRemove(pv, a.cfg.NodeName, a.cfg.StorageDir) == "" {
			return
		}
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			if err := a.removeLocalVolume(ctx, pv); err != nil {
				a.log.Warn("remove released local-path volume", "volume", pv.Name, "err", err)
				a.events.Eventf(pv, corev1.EventTypeWarning, "VolumeFailedDelete", "%v", err)
			}
		}()
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: handle, UpdateFunc: func(_, obj any) { handle(obj) },
	}); err != nil {
		return fmt.Errorf("watch persistentvolumes: %w", err)
	}
	return nil
}

// LocalPathDirToRemove returns the directory of pv to remove on node, or
// "": pv must be a Released local-path volume with reclaim policy Delete,
// made for node, whose hostPath is a directory directly under storageDir
// (a volume object pointing elsewhere never makes the node delete
// anything else). Pure.
func LocalPathDirToRemove(pv *corev1.PersistentVolume, node, storageDir string) string {
	if storageDir == "" || pv.Status.Phase != corev1.VolumeReleased || pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete ||
		pv.Annotations[persistentvolume.AnnProvisionedBy] != persistentvolume.LocalPathProvisioner ||
		pv.Annotations[persistentvolume.AnnLocalPathNode] != node || pv.Spec.HostPath == nil {
		return ""
	}
	dir := filepath.Clean(pv.Spec.HostPath.Path)
	if filepath.Dir(dir) != filepath.Clean(storageDir) || !strings.HasPrefix(filepath.Base(dir), "pvc-") {
		return ""
	}
	return dir
}

// removeLocalVolume removes pv's directory, then pv (if it is still the
// same object). Idempotent.
func (a *Agent) removeLocalVolume(ctx context.Context, pv *corev1.PersistentVolume) error {
	dir := LocalPathDirToRemove(pv, a.cfg.NodeName, a.cfg.StorageDir)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove directory %s of volume %s: %w", dir, pv.Name, err)
	}
	uid := pv.UID
	err := a.client.CoreV1().PersistentVolumes().Delete(ctx, pv.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("delete volume %s: %w", pv.Name, err)
	}
	a.log.Info("removed released local-path volume", "volume", pv.Name, "dir", dir)
	return nil
}
