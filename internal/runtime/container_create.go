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
	rootfs, err := r.images.PrepareRootfs(ctx, img, dir)
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
	sbDir := r.sandboxDir(sandboxID)
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
		ShmDir:              filepath.Join(sbDir, "shm"),
		PodIP:               firstIP(sb),
		PodIPs:              podIPs(sb.Network),
		HostCapabilities:    r.hostCaps,
		SandboxID:           sandboxID,
		NodeName:            r.cfg.NodeName,
		Passwd:              readInRoot(rootfs, "/etc/passwd"),
		Group:               readInRoot(rootfs, "/etc/group"),
		DefaultRlimitNofile: defaultRlimitNofile,
		Lookup:              r.lookup(ctx, pod.Namespace),
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

func sandboxNamespaces(sb *sandboxRecord) spec.SandboxNamespaces {
	ns := func(kind string) string { return fmt.Sprintf("/proc/%d/ns/%s", sb.Pause.PID, kind) }
	out := spec.SandboxNamespaces{Net: ns("net"), IPC: ns("ipc"), UTS: ns("uts")}
	if sb.SharePID && sb.Pause.PIDNamespacePID != 0 {
		out.PID = fmt.Sprintf("/proc/%d/ns/pid", sb.Pause.PIDNamespacePID)
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

func firstIP(sb *sandboxRecord) string {
	if ips := podIPs(sb.Network); len(ips) > 0 {
		return ips[0]
	}
	return ""
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
