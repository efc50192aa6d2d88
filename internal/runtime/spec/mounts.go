package spec

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	corev1 "k8s.io/api/core/v1"
)

// Container paths of the pod files.
const (
	etcHostsPath    = "/etc/hosts"
	resolvConfPath  = "/etc/resolv.conf"
	etcHostnamePath = "/etc/hostname"
	devShmPath      = "/dev/shm"
)

// defaultMounts returns the kernel filesystems every container gets, in
// mount order. /sys and /sys/fs/cgroup are read-write only when privileged.
func defaultMounts(privileged bool, privateShm bool) []specs.Mount {
	mode := "ro"
	if privileged {
		mode = "rw"
	}
	m := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
	}
	if privateShm {
		m = append(m, specs.Mount{Destination: devShmPath, Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}})
	}
	return append(m,
		specs.Mount{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		specs.Mount{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", mode}},
		specs.Mount{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", mode}},
	)
}

// buildMounts returns the spec's mounts and rootfs propagation, after
// containerd's CRI plugin:
//
//  1. the default kernel filesystems (minus any a bind mount replaces, and
//     everything under /dev if /dev itself is bound);
//  2. the bind mounts, sorted by depth so parents come before children:
//     Input.Mounts, plus the pod files (/etc/hosts, /etc/resolv.conf,
//     /etc/hostname, read-only with a read-only rootfs; /dev/shm) unless an
//     Input mount has the same destination.
//
// Bind options are "rbind", the propagation ("rprivate", "rslave" or
// "rshared") and "ro" or "rw".
func buildMounts(in Input, privileged bool, path string) ([]specs.Mount, string, error) {
	sc := in.Container.SecurityContext
	roRootfs := sc != nil && sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem

	binds := make([]Mount, 0, len(in.Mounts)+4)
	seen := map[string]bool{}
	for i, m := range in.Mounts {
		fp := fmt.Sprintf("mount %d (%s)", i, m.ContainerPath)
		if !filepath.IsAbs(m.ContainerPath) || !filepath.IsAbs(m.HostPath) {
			return nil, "", fmt.Errorf("%s: %s: host and container paths must be absolute: %w", path, fp, ErrInvalid)
		}
		m.ContainerPath = filepath.Clean(m.ContainerPath)
		if seen[m.ContainerPath] {
			return nil, "", fmt.Errorf("%s: %s: duplicate mount destination: %w", path, fp, ErrInvalid)
		}
		seen[m.ContainerPath] = true
		binds = append(binds, m)
	}
	for _, f := range []Mount{
		{HostPath: in.EtcHosts, ContainerPath: etcHostsPath, ReadOnly: roRootfs},
		{HostPath: in.ResolvConf, ContainerPath: resolvConfPath, ReadOnly: roRootfs},
		{HostPath: in.EtcHostname, ContainerPath: etcHostnamePath, ReadOnly: roRootfs},
		{HostPath: in.ShmDir, ContainerPath: devShmPath},
	} {
		if f.HostPath == "" || seen[f.ContainerPath] {
			continue
		}
		if !filepath.IsAbs(f.HostPath) {
			return nil, "", fmt.Errorf("%s: %s source %q: must be absolute: %w", path, f.ContainerPath, f.HostPath, ErrInvalid)
		}
		seen[f.ContainerPath] = true
		binds = append(binds, f)
	}
	sort.SliceStable(binds, func(i, j int) bool { return depth(binds[i].ContainerPath) < depth(binds[j].ContainerPath) })

	var out []specs.Mount
	for _, m := range defaultMounts(privileged, in.ShmDir == "") {
		if seen[m.Destination] || (seen["/dev"] && strings.HasPrefix(m.Destination, "/dev/")) {
			continue
		}
		out = append(out, m)
	}
	var rootProp string
	for _, m := range binds {
		opts := []string{"rbind"}
		switch m.Propagation {
		case "", corev1.MountPropagationNone:
			opts = append(opts, "rprivate")
		case corev1.MountPropagationHostToContainer:
			opts = append(opts, "rslave")
			if rootProp != "rshared" {
				rootProp = "rslave"
			}
		case corev1.MountPropagationBidirectional:
			if !privileged {
				return nil, "", fmt.Errorf("%s: mount %s: Bidirectional mount propagation is available only to privileged containers: %w",
					path, m.ContainerPath, ErrInvalid)
			}
			opts = append(opts, "rshared")
			rootProp = "rshared"
		default:
			return nil, "", fmt.Errorf("%s: mount %s: propagation %q: %w", path, m.ContainerPath, m.Propagation, ErrInvalid)
		}
		if m.ReadOnly {
			opts = append(opts, "ro")
		} else {
			opts = append(opts, "rw")
		}
		opts = append(opts, m.Locked...)
		out = append(out, specs.Mount{Destination: m.ContainerPath, Type: "bind", Source: m.HostPath, Options: opts})
	}
	return out, rootProp, nil
}

// depth is the number of path elements of a clean absolute path.
func depth(p string) int {
	return strings.Count(filepath.Clean(p), "/")
}
