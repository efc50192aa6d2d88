package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"

	"github.com/peapod/peapod/internal/image"
	"github.com/peapod/peapod/internal/runtime/spec"
	"github.com/peapod/peapod/internal/runtime/userns"
)

// defaultRlimitNofile is the open-files limit containers get, containerd's
// default, which stays below what this kind of host grants (20000).
const defaultRlimitNofile = 1024

// ErrImageNotPresent: the container's image is not in the store; pull it first.
var ErrImageNotPresent = errors.New("image not present")

// ContainerOptions say which run of which container to create.
type ContainerOptions struct {
	// Attempt is the container's restart count: 0 for the first run.
	Attempt int
	// Init marks an init container.
	Init bool
}

// CreateContainer prepares a container of the sandbox's pod to run: its
// rootfs over the image's layers, its log file and its OCI bundle joining
// the sandbox's namespaces. The image must be present (see EnsureImage).
// On error nothing is left behind. It returns the container's ID.
func (r *Runtime) CreateContainer(ctx context.Context, sandboxID, name string, opts ContainerOptions) (cid string, retErr error) {
	unlock := r.lockSandbox(sandboxID)
	defer unlock()
	sb, err := r.loadSandbox(sandboxID)
	if err != nil {
		return "", err
	}
	if !sb.Ready {
		return "", fmt.Errorf("sandbox %s is not ready", sandboxID)
	}
	if !pauseAlive(sb) {
		return "", fmt.Errorf("sandbox %s: %w", sandboxID, ErrSandboxLost)
	}
	pod := sb.Pod
	c, init := findContainer(pod, name)
	if c == nil {
		return "", fmt.Errorf("%w: pod %s/%s has no container %q", ErrInvalid, pod.Namespace, pod.Name, name)
	}
	img, err := r.images.Get(c.Image)
	if errors.Is(err, image.ErrNotFound) {
		return "", fmt.Errorf("container %q: %w: %s", name, ErrImageNotPresent, c.Image)
	}
	if err != nil {
		return "", fmt.Errorf("container %q: %w", name, err)
	}

	stopSignal, _, err := spec.StopSignal(c, img.Config.StopSignal)
	if err != nil {
		return "", fmt.Errorf("%w: container %q: stop signal: %w", ErrInvalid, name, err)
	}

	cid = newID()
	dir := r.containerDir(sandboxID, cid)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create container dir: %w", err)
	}
	rec := &containerRecord{
		ID:        cid,
		SandboxID: sandboxID,
		Name:      name,
		Init:      init || opts.Init,
		Attempt:   opts.Attempt,
		Image:     c.Image,
		ImageRef:  imageRef(img),
		ImageID:   img.ID,
		Handler:   sb.Handler,
		CreatedAt: time.Now(),

		StopSignal: stopSignal,
		Resources:  c.Resources.DeepCopy(),
	}
	defer func() {
		if retErr == nil {
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if err := r.removeContainerFiles(cctx, sb, cid); err != nil {
			r.log.Error("roll back failed container", "container", cid, "err", err)
		}
	}()
	if err := r.saveContainer(rec); err != nil {
		return cid, err
	}
	var remap *image.RemapOptions
	if sb.UserNS != nil {
		// runc mounts the bundle's rootfs as the pod's root, who sees the
		// image's files as its own, through idmapped layers, and owns its
		// upper dir.
		if err := groupOnly(int(sb.UserNS.HostID), dir); err != nil {
			return cid, err
		}
		usernsPath := sb.Holder.NamespacePath("user")
		remap = &image.RemapOptions{
			IDMap:   func(src, dst string) error { return userns.MountIDMapped(src, dst, usernsPath, false) },
			RootUID: int(sb.UserNS.HostID), RootGID: int(sb.UserNS.HostID),
		}
	}
	rootfs, err := r.images.PrepareRootfs(ctx, img, dir, remap)
	if err != nil {
		return cid, fmt.Errorf("container %q: prepare rootfs: %w", name, err)
	}

	logDir := filepath.Join(r.paths.PodLogs(pod.Namespace, pod.Name, string(pod.UID)), name)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return cid, fmt.Errorf("create log dir: %w", err)
	}
	rec.LogPath = filepath.Join(logDir, strconv.Itoa(opts.Attempt)+".log")
	rec.TerminationMessagePath = filepath.Join(dir, "termination-log")
	if err := os.WriteFile(rec.TerminationMessagePath, nil, 0o666); err != nil {
		return cid, fmt.Errorf("create termination message file: %w", err)
	}

	mounts, err := containerMounts(c, sb.Volumes, rec.TerminationMessagePath)
	if err != nil {
		return cid, fmt.Errorf("%w: container %q: %w", ErrInvalid, name, err)
	}
	if sb.UserNS != nil {
		for i := range mounts {
			mounts[i].Locked = lockedMountFlags(mounts[i].HostPath)
		}
	}
	labels, err := r.selinux.labels(sb.SELinuxLevel, pod, c)
	if err != nil {
		return cid, fmt.Errorf("%w: container %q: SELinux labels: %w", ErrInvalid, name, err)
	}
	var serviceEnv map[string]string
	if r.serviceEnv != nil {
		if serviceEnv, err = r.serviceEnv(ctx, pod); err != nil {
			return cid, fmt.Errorf("container %q: service environment variables: %w", name, err)
		}
	}
	sbDir := r.sandboxDir(sandboxID)
	shm := filepath.Join(sbDir, "shm")
	if pod.Spec.HostIPC {
		shm = hostShm // the node's POSIX shared memory, as containerd gives hostIPC pods
	}
	in := spec.Input{
		Pod:                 pod,
		Container:           c,
		Image:               imageConfig(img),
		Rootfs:              rootfs,
		Namespaces:          sandboxNamespaces(sb),
		Hostname:            sb.Hostname,
		CgroupsPath:         r.containerCgroup(sandboxID, cid),
		Mounts:              mounts,
		EtcHosts:            filepath.Join(sbDir, "hosts"),
		ResolvConf:          filepath.Join(sbDir, "resolv.conf"),
		EtcHostname:         filepath.Join(sbDir, "hostname"),
		ShmDir:              shm,
		PodIPs:              sandboxIPs(sb),
		HostIP:              r.nodeIP,
		HostIPs:             r.nodeIPs(),
		NodeAllocatable:     r.NodeCapacity(),
		HostCapabilities:    r.hostCaps,
		SandboxID:           sandboxID,
		NodeName:            r.cfg.NodeName,
		Passwd:              readInRoot(rootfs, "/etc/passwd"),
		Group:               readInRoot(rootfs, "/etc/group"),
		DefaultRlimitNofile: defaultRlimitNofile,
		Lookup:              r.lookup(ctx, pod.Namespace),
		SELinux:             labels,
		ServiceEnv:          serviceEnv,
	}
	if sb.UserNS != nil {
		in.UserNamespace = &spec.UserNamespace{HostID: sb.UserNS.HostID, Length: sb.UserNS.Length}
	}
	s, err := spec.Build(in)
	if err != nil {
		return cid, fmt.Errorf("%w: container %q: %w", ErrInvalid, name, err)
	}
	if err := r.finishSpec(ctx, sb, c, in, s); err != nil {
		return cid, fmt.Errorf("container %q: %w", name, err)
	}
	data, err := json.Marshal(s)
	if err != nil {
		return cid, fmt.Errorf("encode OCI spec: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o600); err != nil {
		return cid, fmt.Errorf("write OCI spec: %w", err)
	}
	if err := r.saveContainer(rec); err != nil {
		return cid, err
	}
	r.mu.Lock()
	r.owner[cid] = sandboxID
	r.mu.Unlock()
	return cid, nil
}

// containerMounts resolves a container's volumeMounts to host paths: the
// volumes' own; finishSpec swaps in the subPath binds.
func containerMounts(c *corev1.Container, volumes map[string]string, termLog string) ([]spec.Mount, error) {
	var mounts []spec.Mount
	for i, vm := range c.VolumeMounts {
		host, ok := volumes[vm.Name]
		if !ok {
			return nil, fmt.Errorf("volumeMounts[%d].name: volume %q not found", i, vm.Name)
		}
		// A subPath or subPathExpr is bound in place of the volume once
		// the spec is built (finishSpec), which knows the container's env.
		m := spec.Mount{HostPath: host, ContainerPath: vm.MountPath, ReadOnly: vm.ReadOnly}
		if vm.MountPropagation != nil {
			m.Propagation = *vm.MountPropagation
		}
		mounts = append(mounts, m)
	}
	tmp := c.TerminationMessagePath
	if tmp == "" {
		tmp = corev1.TerminationMessagePathDefault
	}
	mounts = append(mounts, spec.Mount{HostPath: termLog, ContainerPath: tmp})
	return mounts, nil
}

// lockedMountFlags are the nosuid, nodev and noexec flags of the mount
// holding path, which a bind of it in a user namespace must keep.
func lockedMountFlags(path string) []string {
	var st unix.Statfs_t
	if unix.Statfs(path, &st) != nil {
		return nil
	}
	var out []string
	for _, f := range []struct {
		bit  int64
		name string
	}{{unix.ST_NOSUID, "nosuid"}, {unix.ST_NODEV, "nodev"}, {unix.ST_NOEXEC, "noexec"}} {
		if st.Flags&f.bit != 0 {
			out = append(out, f.name)
		}
	}
	return out
}

// hostShm is the node's /dev/shm, which hostIPC pods' containers bind.
const hostShm = "/dev/shm"

// sandboxNamespaces are the namespaces the sandbox's containers join:
// pause's network, IPC and UTS namespaces (spec.Build leaves out those the
// pod shares with the node), the shared PID namespace's reaper's, and a
// pod with its own user namespace joins the holder's.
func sandboxNamespaces(sb *sandboxRecord) spec.SandboxNamespaces {
	out := spec.SandboxNamespaces{Net: sb.Pause.NamespacePath("net"), IPC: sb.Pause.NamespacePath("ipc"), UTS: sb.Pause.NamespacePath("uts")}
	if sb.Holder.PID != 0 {
		out.User = sb.Holder.NamespacePath("user")
	}
	for _, p := range []int{sb.Pause.PIDNamespacePID, sb.Holder.PIDNamespacePID} {
		if sb.SharePID && p != 0 {
			out.PID = fmt.Sprintf("/proc/%d/ns/pid", p)
		}
	}
	return out
}

func imageConfig(img *image.Image) spec.ImageConfig {
	return spec.ImageConfig{
		Entrypoint: img.Config.Entrypoint,
		Cmd:        img.Config.Cmd,
		Env:        img.Config.Env,
		WorkingDir: img.Config.WorkingDir,
		User:       img.Config.User,
	}
}

// imageRef is the image's reference as Kubernetes reports imageID: a repo digest when known.
func imageRef(img *image.Image) string {
	if len(img.RepoDigests) > 0 {
		return img.RepoDigests[0]
	}
	return img.ID
}

// readInRoot reads a file of a container's rootfs, resolving symlinks
// inside that rootfs so an image cannot make peapod read the host's files.
// A missing or unreadable file reads as empty.
func readInRoot(root, name string) []byte {
	rootFD, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	defer unix.Close(rootFD)
	fd, err := unix.Openat2(rootFD, name, &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT})
	if err != nil {
		return nil
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil
	}
	return data
}

// findContainer finds a container, init container or ephemeral container
// of the pod by name.
func findContainer(pod *corev1.Pod, name string) (c *corev1.Container, init bool) {
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i], true
		}
	}
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i], false
		}
	}
	for i := range pod.Spec.EphemeralContainers {
		if pod.Spec.EphemeralContainers[i].Name == name {
			return (*corev1.Container)(&pod.Spec.EphemeralContainers[i].EphemeralContainerCommon), false
		}
	}
	return nil, false
}

// allContainers lists init containers, then containers.
func allContainers(pod *corev1.Pod) []corev1.Container {
	return append(append([]corev1.Container(nil), pod.Spec.InitContainers...), pod.Spec.Containers...)
}
