package volume

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
)

// Mount propagation, as the kubelet and containerd arrange it: a volume
// bound into a container with HostToContainer (rslave) receives the mounts
// made below it on the host, and one bound with Bidirectional (rshared)
// also sends the container's mounts back to the host. Both need the host
// side to be in a peer group: the kubelet keeps its pods directory on a
// shared mount (bound onto itself and made rshared at start), and
// containerd refuses a source that is not on a shared mount (or, for
// HostToContainer, a slave one). Here each pod that asks for propagation
// on its own volumes gets its volumes directory made shared the same way
// (ShareVolumes), and CheckPropagation is containerd's check.

// NeedsSharedVolumes reports whether a container, init container or
// ephemeral container of the pod mounts one of the pod's own volumes
// (anything but a hostPath) with HostToContainer or Bidirectional
// propagation.
func NeedsSharedVolumes(pod *corev1.Pod) bool {
	hostPath := map[string]bool{}
	for _, v := range pod.Spec.Volumes {
		hostPath[v.Name] = v.HostPath != nil
	}
	mounts := func(vms []corev1.VolumeMount) bool {
		for _, m := range vms {
			if m.MountPropagation != nil && *m.MountPropagation != corev1.MountPropagationNone && !hostPath[m.Name] {
				return true
			}
		}
		return false
	}
	for _, c := range append(append([]corev1.Container(nil), pod.Spec.InitContainers...), pod.Spec.Containers...) {
		if mounts(c.VolumeMounts) {
			return true
		}
	}
	for _, c := range pod.Spec.EphemeralContainers {
		if mounts(c.VolumeMounts) {
			return true
		}
	}
	return false
}

// ShareVolumes makes podDir/volumes a shared mount, as the kubelet's
// MakeRShared makes its root directory one: when the mount holding it is
// not shared already, the directory is bound onto itself (recursively, so
// volumes already mounted below stay visible through it) and made rshared.
// It creates the directory if needed, is idempotent and reports whether
// it mounted anything. TeardownDir unmounts it with the volumes.
func ShareVolumes(podDir string) (bound bool, err error) {
	dir := filepath.Join(podDir, "volumes")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return false, fmt.Errorf("create volumes dir: %w", err)
	}
	m, err := mountOf(dir)
	if err != nil {
		return false, err
	}
	if hasTag(m, "shared:") {
		return false, nil
	}
	if err := unix.Mount(dir, dir, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return false, fmt.Errorf("bind %s onto itself: %w", dir, err)
	}
	if err := unix.Mount("", dir, "", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
		_ = unmount(dir)
		return false, fmt.Errorf("make %s rshared: %w", dir, err)
	}
	return true, nil
}

// CheckPropagation refuses to bind path with a propagation mode its host
// side cannot carry, with containerd's messages: Bidirectional needs path
// on a shared mount, HostToContainer on a shared or slave one. None (or
// "") needs nothing.
func CheckPropagation(path string, mode corev1.MountPropagationMode) error {
	var want []string
	var kind string
	switch mode {
	case corev1.MountPropagationBidirectional:
		want, kind = []string{"shared:"}, "a shared mount"
	case corev1.MountPropagationHostToContainer:
		want, kind = []string{"shared:", "master:"}, "a shared or slave mount"
	default:
		return nil
	}
	m, err := mountOf(path)
	if err != nil {
		return err
	}
	for _, tag := range want {
		if hasTag(m, tag) {
			return nil
		}
	}
	return fmt.Errorf("path %q is mounted on %q but it is not %s", path, m.Mountpoint, kind)
}

// mountOf returns the mount holding path (symlinks resolved): the deepest
// mount point above it, the topmost of any stacked there.
func mountOf(path string) (*mountinfo.Info, error) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", path, err)
	}
	mounts, err := mountinfo.GetMounts(mountinfo.ParentsFilter(real))
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	var best *mountinfo.Info
	for _, m := range mounts {
		if best == nil || len(m.Mountpoint) >= len(best.Mountpoint) {
			best = m
		}
	}
	if best == nil {
		return nil, errors.New("no mount holds " + real)
	}
	return best, nil
}

// hasTag reports whether a mount's optional fields carry tag ("shared:",
// "master:").
func hasTag(m *mountinfo.Info, tag string) bool {
	for _, f := range strings.Fields(m.Optional) {
		if strings.HasPrefix(f, tag) {
			return true
		}
	}
	return false
}
