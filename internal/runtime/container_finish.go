package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	corev1 "k8s.io/api/core/v1"

	"github.com/peapod/peapod/internal/runtime/spec"
	"github.com/peapod/peapod/internal/volume"
)

// finishSpec completes a container's built OCI spec with what needs the
// node, as the kubelet and containerd add it at container creation:
//
//   - each subPath or subPathExpr (expanded with the container's env) is
//     bound from the volume into <sandbox>/volume-subpaths and that bind
//     replaces the volume as the mount's source;
//   - a mount with HostToContainer or Bidirectional propagation needs its
//     source on a shared (or slave) mount, containerd's check;
//   - an ephemeral container with a targetContainerName joins that
//     running container's PID namespace;
//   - the pod cgroup gets the pod's resources, if it does not have them
//     yet.
//
// Errors a pod spec causes wrap ErrInvalid (the kubelet's
// CreateContainerConfigError); the caller holds the sandbox's lock.
func (r *Runtime) finishSpec(ctx context.Context, sb *sandboxRecord, c *corev1.Container, in spec.Input, s *specs.Spec) error {
	if err := r.bindSubPaths(sb, c, in, s); err != nil {
		return err
	}
	for _, vm := range c.VolumeMounts {
		if vm.MountPropagation == nil {
			continue
		}
		if m := bindMountAt(s, vm.MountPath); m != nil {
			if err := volume.CheckPropagation(m.Source, *vm.MountPropagation); err != nil {
				return err
			}
		}
	}
	if err := r.joinTarget(sb, c, s); err != nil {
		return err
	}
	return r.applyPodCgroup(ctx, sb)
}

// bindSubPaths binds each subPath and expanded subPathExpr of c's
// volumeMounts at <sandbox>/volume-subpaths/<volume>/<container>/<index>
// (the kubelet's layout) and points the spec's mount there. Like the
// kubelet, it passes on the reasons a subPath is refused by its shape
// (absolute, "..", a $(VAR) without a value) but not how resolving one
// failed on the node, which it only logs: the details would describe the
// host's file system.
func (r *Runtime) bindSubPaths(sb *sandboxRecord, c *corev1.Container, in spec.Input, s *specs.Spec) error {
	var env map[string]string
	for i, vm := range c.VolumeMounts {
		sub := vm.SubPath
		if vm.SubPathExpr != "" {
			var err error
			if env == nil {
				if env, err = spec.KubeletEnv(in); err != nil {
					return fmt.Errorf("%w: %w", ErrInvalid, err)
				}
			}
			if sub, err = spec.ExpandSubPathExpr(vm.SubPathExpr, env); err != nil {
				return fmt.Errorf("%w: %w", ErrInvalid, err)
			}
		}
		if sub == "" {
			continue
		}
		if err := volume.ValidateSubPath(sub); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		m := bindMountAt(s, vm.MountPath)
		if m == nil {
			return fmt.Errorf("%w: volumeMounts[%d]: no mount at %s", ErrInvalid, i, vm.MountPath)
		}
		target := filepath.Join(r.sandboxDir(sb.ID), volume.SubPathsDir, vm.Name, c.Name, strconv.Itoa(i))
		err := os.MkdirAll(filepath.Dir(target), 0o750)
		if err == nil {
			err = volume.BindSubPath(m.Source, sub, target)
		}
		if err != nil {
			r.log.Warn("prepare subPath", "sandbox", sb.ID, "container", c.Name, "volumeMount", vm.Name, "subPath", sub, "err", err)
			return fmt.Errorf("%w: failed to prepare subPath for volumeMount %q of container %q", ErrInvalid, vm.Name, c.Name)
		}
		m.Source = target
	}
	return nil
}

// bindMountAt returns the spec's bind mount at a volumeMount's mountPath.
func bindMountAt(s *specs.Spec, mountPath string) *specs.Mount {
	dest := filepath.Clean(mountPath)
	for i := range s.Mounts {
		if s.Mounts[i].Destination == dest && s.Mounts[i].Type == "bind" {
			return &s.Mounts[i]
		}
	}
	return nil
}

// joinTarget puts an ephemeral container with a targetContainerName into
// the PID namespace of that container's running process, as containerd
// does for the kubelet's NamespaceMode TARGET. A pod on the node's PID
// namespace has nothing to join.
func (r *Runtime) joinTarget(sb *sandboxRecord, c *corev1.Container, s *specs.Spec) error {
	target := ""
	for _, ec := range sb.Pod.Spec.EphemeralContainers {
		if ec.Name == c.Name {
			target = ec.TargetContainerName
		}
	}
	if target == "" || sb.Pod.Spec.HostPID {
		return nil
	}
	pid, err := r.runningPID(sb, target)
	if err != nil {
		return fmt.Errorf("%w: unable to find target container %s: %w", ErrInvalid, target, err)
	}
	for i := range s.Linux.Namespaces {
		if s.Linux.Namespaces[i].Type == specs.PIDNamespace {
			s.Linux.Namespaces[i].Path = fmt.Sprintf("/proc/%d/ns/pid", pid)
		}
	}
	return nil
}

// runningPID is the process ID of the newest run of the named container
// in the sandbox, which must be running.
func (r *Runtime) runningPID(sb *sandboxRecord, name string) (int, error) {
	cids, err := r.containerIDs(sb.ID)
	if err != nil {
		return 0, err
	}
	var newest *ContainerStatus
	for _, cid := range cids {
		st, err := r.containerStatus(sb, cid)
		if err != nil || st.Name != name {
			continue
		}
		if newest == nil || st.CreatedAt.After(newest.CreatedAt) {
			newest = st
		}
	}
	if newest == nil || newest.State != ContainerRunning || newest.PID == 0 {
		return 0, errors.New("not running")
	}
	return newest.PID, nil
}
