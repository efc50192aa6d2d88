package volume

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// emptyDirPerm is the mode the kubelet gives an emptyDir (umask ignored).
const emptyDirPerm = 0o777

// setupEmptyDir makes podDir/volumes/kubernetes.io~empty-dir/<name>, mode
// 0777 (with fsGroup: group-owned by it, setgid), and for medium Memory
// mounts a tmpfs there (nosuid,nodev; root mode 1777) sized by tmpfsSize.
func (m *Manager) setupEmptyDir(podDir string, pod *corev1.Pod, v *corev1.Volume, fld string, prep *Prepared, undo *undoStack) (string, error) {
	ed := v.EmptyDir
	memory := false
	switch ed.Medium {
	case corev1.StorageMediumDefault:
	case corev1.StorageMediumMemory:
		memory = true
	default:
		return "", fmt.Errorf("%s.emptyDir.medium: %q not supported yet", fld, ed.Medium)
	}
	dir, err := makeVolumeDir(podDir, PluginEmptyDir, v.Name, emptyDirPerm, undo)
	if err != nil {
		return "", err
	}
	if memory {
		var size int64
		if q := tmpfsSize(pod, ed.SizeLimit); q != nil {
			size = q.Value()
		}
		// The tmpfs root is 1777 (drwxrwxrwt), as under the kubelet.
		if err := mountTmpfs(dir, size, undo); err != nil {
			return "", err
		}
	} else if ed.SizeLimit != nil && ed.SizeLimit.Sign() > 0 {
		prep.EmptyDirLimits[v.Name] = ed.SizeLimit.Value()
	}
	if err := applyFSGroup(dir, pod); err != nil {
		return "", err
	}
	return dir, nil
}

// makeVolumeDir creates podDir/volumes/<plugin>/<name> (and its parents)
// unless it exists, chmods it to perm, and registers its removal on undo if
// this call created it.
func makeVolumeDir(podDir, plugin, name string, perm os.FileMode, undo *undoStack) (string, error) {
	parent := filepath.Join(podDir, "volumes", plugin)
	if err := os.MkdirAll(parent, 0o750); err != nil {
		return "", fmt.Errorf("create volume dir %s: %w", parent, err)
	}
	dir := filepath.Join(parent, name)
	err := os.Mkdir(dir, perm)
	switch {
	case err == nil:
		undo.push(func() error { return os.RemoveAll(dir) })
		if err := os.Chmod(dir, perm); err != nil {
			return "", fmt.Errorf("chmod volume dir %s: %w", dir, err)
		}
	case errors.Is(err, os.ErrExist):
		st, err := os.Lstat(dir)
		if err != nil {
			return "", fmt.Errorf("stat volume dir %s: %w", dir, err)
		}
		if !st.IsDir() {
			return "", fmt.Errorf("volume dir %s exists and is not a directory", dir)
		}
	default:
		return "", fmt.Errorf("create volume dir %s: %w", dir, err)
	}
	return dir, nil
}

// mountTmpfs mounts a tmpfs of size bytes (0: the kernel default, half of
// RAM) at dir unless a tmpfs is already mounted there, and registers the
// unmount on undo if this call mounted it.
func mountTmpfs(dir string, size int64, undo *undoStack) error {
	real, err := realPath(dir)
	if err != nil {
		return err
	}
	// Mounted and statfs answer without reading /proc/self/mountinfo,
	// whose length grows with every pod on the node.
	mounted, err := mountinfo.Mounted(real)
	if err != nil {
		return fmt.Errorf("check mount at %s: %w", real, err)
	}
	var st unix.Statfs_t
	if mounted && unix.Statfs(real, &st) == nil && st.Type == unix.TMPFS_MAGIC {
		return nil
	}
	opts := ""
	if size > 0 {
		opts = fmt.Sprintf("size=%d", size)
	}
	if err := unix.Mount("tmpfs", real, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mount tmpfs at %s (%s): %w", real, opts, err)
	}
	undo.push(func() error { return unmount(real) })
	return nil
}

// tmpfsSize is the kubelet's calculateEmptyDirMemorySize without the node's
// allocatable memory: the pod's memory limit (when every container has
// one), lowered to sizeLimit when that is positive and smaller. nil means
// no size option (the kernel's default).
func tmpfsSize(pod *corev1.Pod, sizeLimit *resource.Quantity) *resource.Quantity {
	size := podMemoryLimit(pod)
	if sizeLimit != nil && sizeLimit.Sign() > 0 && (size == nil || sizeLimit.Cmp(*size) <= 0) {
		size = sizeLimit
	}
	return size
}

// podMemoryLimit is the pod-level memory limit the kubelet puts on the pod
// cgroup: nil unless every container has a memory limit; otherwise the
// larger of the app containers plus restartable (sidecar) init containers,
// and of each ordinary init container plus the sidecars started before it,
// plus the pod overhead.
func podMemoryLimit(pod *corev1.Pod) *resource.Quantity {
	if pod == nil || len(pod.Spec.Containers) == 0 {
		return nil
	}
	limitOf := func(c *corev1.Container) (resource.Quantity, bool) {
		q, ok := c.Resources.Limits[corev1.ResourceMemory]
		return q, ok && q.Sign() > 0
	}
	total := resource.Quantity{}
	for i := range pod.Spec.Containers {
		q, ok := limitOf(&pod.Spec.Containers[i])
		if !ok {
			return nil
		}
		total.Add(q)
	}
	sidecars := resource.Quantity{}
	initMax := resource.Quantity{}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		q, ok := limitOf(c)
		if !ok {
			return nil
		}
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			sidecars.Add(q)
			continue
		}
		q.Add(sidecars)
		if q.Cmp(initMax) > 0 {
			initMax = q
		}
	}
	total.Add(sidecars)
	if initMax.Cmp(total) > 0 {
		total = initMax
	}
	if q, ok := pod.Spec.Overhead[corev1.ResourceMemory]; ok {
		total.Add(q)
	}
	return &total
}

// applyFSGroup gives dir to the pod's fsGroup as the kubelet's
// SetVolumeOwnership does for a fresh volume: group fsGroup, group rwx and
// setgid so new files inherit the group.
func applyFSGroup(dir string, pod *corev1.Pod) error {
	sc := pod.Spec.SecurityContext
	if sc == nil || sc.FSGroup == nil {
		return nil
	}
	if err := os.Lchown(dir, -1, int(*sc.FSGroup)); err != nil {
		return fmt.Errorf("chown %s to fsGroup %d: %w", dir, *sc.FSGroup, err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("stat %s: %w", dir, err)
	}
	keep := os.ModePerm | os.ModeSticky | os.ModeSetuid | os.ModeSetgid
	if err := os.Chmod(dir, st.Mode()&keep|0o070|os.ModeSetgid); err != nil {
		return fmt.Errorf("chmod %s for fsGroup: %w", dir, err)
	}
	return nil
}
