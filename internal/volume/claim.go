package volume

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
)

// setupClaim resolves a persistentVolumeClaim volume to the host path of
// the volume bound to the claim: a hostPath volume is checked (and made,
// for DirectoryOrCreate, which is how local-path volumes come into being
// on first use) as a hostPath pod volume; a local volume's path must
// exist. The claim must be bound to a volume bound back to it; the
// scheduler binds a pod only once its claims are, so a failure here is a
// claim deleted or rebound meanwhile, and the pod worker retries.
func (m *Manager) setupClaim(ctx context.Context, pod *corev1.Pod, src *corev1.PersistentVolumeClaimVolumeSource, fld string) (string, error) {
	if m.sources == nil {
		return "", fmt.Errorf("%s.persistentVolumeClaim: no API source configured", fld)
	}
	claim, err := m.sources.PersistentVolumeClaim(ctx, pod.Namespace, src.ClaimName)
	if err != nil {
		return "", fmt.Errorf("%s.persistentVolumeClaim: get claim %q: %w", fld, src.ClaimName, err)
	}
	if claim.Spec.VolumeName == "" || claim.Status.Phase != corev1.ClaimBound {
		return "", fmt.Errorf("%s.persistentVolumeClaim: claim %q is not bound", fld, src.ClaimName)
	}
	pv, err := m.sources.PersistentVolume(ctx, claim.Spec.VolumeName)
	if err != nil {
		return "", fmt.Errorf("%s.persistentVolumeClaim: get volume %q of claim %q: %w", fld, claim.Spec.VolumeName, src.ClaimName, err)
	}
	if cr := pv.Spec.ClaimRef; cr == nil || cr.UID != claim.UID {
		return "", fmt.Errorf("%s.persistentVolumeClaim: volume %q is not bound to claim %q", fld, pv.Name, src.ClaimName)
	}
	switch {
	case pv.Spec.HostPath != nil && pv.Annotations[annProvisionedBy] == localPathProvisioner:
		return setupLocalPathDir(pv.Spec.HostPath.Path, fld, pv.Name)
	case pv.Spec.HostPath != nil:
		return setupHostPath(pv.Spec.HostPath, fld+".persistentVolumeClaim(volume "+pv.Name+")")
	case pv.Spec.Local != nil:
		path := filepath.Clean(pv.Spec.Local.Path)
		st, err := os.Stat(path)
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("%s.persistentVolumeClaim: local volume %q: path %s does not exist", fld, pv.Name, path)
		}
		if err != nil {
			return "", fmt.Errorf("%s.persistentVolumeClaim: local volume %q: %w", fld, pv.Name, err)
		}
		if !st.IsDir() {
			return "", fmt.Errorf("%s.persistentVolumeClaim: local volume %q: %s is not a directory", fld, pv.Name, path)
		}
		return path, nil
	}
	return "", fmt.Errorf("%s.persistentVolumeClaim: volume %q: only hostPath and local volumes are supported", fld, pv.Name)
}

// The annotation and name by which a volume is known as local-path's.
const (
	annProvisionedBy     = "pv.kubernetes.io/provisioned-by"
	localPathProvisioner = "rancher.io/local-path"
)

// setupLocalPathDir makes a local-path volume's directory on first use
// with mode 0777, whatever the umask, as k3s's provisioner does (its
// helper runs "mkdir -m 0777 -p"): the pod's user, not root, writes there.
// An existing directory is used as it is.
func setupLocalPathDir(path, fld, volume string) (string, error) {
	path = filepath.Clean(path)
	if !filepath.IsAbs(path) {
		return "", fmt.Errorf("%s.persistentVolumeClaim: volume %q: path %q is not absolute", fld, volume, path)
	}
	st, err := os.Stat(path)
	if err == nil {
		if !st.IsDir() {
			return "", fmt.Errorf("%s.persistentVolumeClaim: volume %q: %s is not a directory", fld, volume, path)
		}
		return path, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("%s.persistentVolumeClaim: volume %q: %w", fld, volume, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", fmt.Errorf("%s.persistentVolumeClaim: volume %q: create %s: %w", fld, volume, filepath.Dir(path), err)
	}
	if err := os.Mkdir(path, 0o777); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("%s.persistentVolumeClaim: volume %q: create %s: %w", fld, volume, path, err)
	}
	if err := os.Chmod(path, 0o777); err != nil {
		return "", fmt.Errorf("%s.persistentVolumeClaim: volume %q: chmod %s: %w", fld, volume, path, err)
	}
	return path, nil
}
