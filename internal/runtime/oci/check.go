package oci

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// CheckUsable reports whether the runtime binary for handler can run
// containers on this host. It checks that the binary runs, and for crun
// that the host's cgroups are not "hybrid" with controllers in cgroup2,
// which crun refuses ("cgroups in hybrid mode not supported"); the error
// then explains the fix. Pure cgroup v1 and pure v2 hosts are fine.
func CheckUsable(handler, binary string) error {
	path, err := exec.LookPath(binary)
	if err != nil {
		return fmt.Errorf("runtime handler %s: binary %s: %w", handler, binary, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := (&Runtime{Handler: handler, Binary: path}).Version(ctx); err != nil {
		return fmt.Errorf("runtime handler %s: %w", handler, err)
	}
	if handler != "crun" && filepath.Base(path) != "crun" {
		return nil
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("runtime handler %s: %w", handler, err)
	}
	readControllers := func(mountpoint string) (string, bool) {
		b, err := os.ReadFile(filepath.Join(mountpoint, "cgroup.controllers"))
		return strings.TrimSpace(string(b)), err == nil
	}
	if err := checkHybrid(string(mi), readControllers); err != nil {
		return fmt.Errorf("runtime handler %s (%s): %w", handler, path, err)
	}
	return nil
}

// cgroupMounts is what mountinfo says about the host's cgroup hierarchies.
type cgroupMounts struct {
	// v2 lists cgroup2 mount points.
	v2 []string
	// v1 maps each v1 controller (or name=) option to its mount point.
	v1 map[string]string
}

// parseCgroupMounts reads cgroup mounts from /proc/self/mountinfo text.
func parseCgroupMounts(mountinfo string) cgroupMounts {
	m := cgroupMounts{v1: map[string]string{}}
	for _, line := range strings.Split(mountinfo, "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		pf := strings.Fields(pre)
		f := strings.Fields(post)
		if len(pf) < 5 || len(f) < 3 {
			continue
		}
		mountpoint := pf[4]
		switch f[0] {
		case "cgroup2":
			m.v2 = append(m.v2, mountpoint)
		case "cgroup":
			for _, opt := range strings.Split(f[2], ",") {
				switch opt {
				case "rw", "ro", "relatime", "noatime", "nosuid", "nodev", "noexec", "clone_children", "xattr":
					continue
				}
				m.v1[opt] = mountpoint
			}
		}
	}
	return m
}

// checkHybrid is CheckUsable's pure core for crun. A host is hybrid when
// v1 hierarchies are mounted and cgroup2 is mounted beside them (typically
// at /sys/fs/cgroup/unified); crun refuses it when that cgroup2 still has
// controllers. controllers reads a cgroup2 mount's cgroup.controllers
// (ok=false if unreadable: then a missing v1 hugetlb hierarchy, the usual
// culprit, decides).
func checkHybrid(mountinfo string, controllers func(mountpoint string) (string, bool)) error {
	m := parseCgroupMounts(mountinfo)
	if len(m.v2) == 0 || len(m.v1) == 0 {
		return nil // pure v1 or pure v2
	}
	for _, mp := range m.v2 {
		if mp == "/sys/fs/cgroup" {
			return nil // unified at the root: crun treats the host as v2
		}
	}
	unified := m.v2[0]
	ctrl, ok := controllers(unified)
	if ok && ctrl == "" {
		return nil // hybrid, but cgroup2 holds no controllers: crun accepts it
	}
	if !ok {
		if _, hasHugetlb := m.v1["hugetlb"]; hasHugetlb {
			return nil
		}
		ctrl = "unknown"
	}
	fix := ""
	if ctrl == "hugetlb" || ctrl == "unknown" {
		fix = "; fix: mkdir /sys/fs/cgroup/hugetlb; mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb (moves hugetlb to a v1 hierarchy; `make setup` does this)"
	} else {
		fix = "; fix: mount each of those controllers as a v1 hierarchy, or boot with pure cgroup v2 (systemd.unified_cgroup_hierarchy=1)"
	}
	return fmt.Errorf("crun refuses hybrid cgroups (\"cgroups in hybrid mode not supported\"): cgroup v1 hierarchies are mounted and cgroup2 at %s still holds controllers [%s]%s", unified, ctrl, fix)
}
