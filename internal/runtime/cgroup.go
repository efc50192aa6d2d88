package runtime

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/sys/mountinfo"
	"github.com/opencontainers/cgroups"
	cgmanager "github.com/opencontainers/cgroups/manager"
)

// podCgroup is the cgroup path of a sandbox; its containers get child
// cgroups, so a pod's pause and containers are accounted together.
func (r *View) podCgroup(sandboxID string) string {
	return path.Join("/", r.cfg.CgroupParent, sandboxID)
}

func (r *View) containerCgroup(sandboxID, containerID string) string {
	return path.Join(r.podCgroup(sandboxID), containerID)
}

func cgroupManager(p string) (cgroups.Manager, error) {
	m, err := cgmanager.New(&cgroups.Cgroup{Path: p, Resources: &cgroups.Resources{SkipDevices: true}})
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", p, err)
	}
	return m, nil
}

// joinCgroup creates the cgroup p in every hierarchy (copying cpuset
// settings from the parent as the kernel requires) and moves pid into it.
func joinCgroup(p string, pid int) error {
	m, err := cgroupManager(p)
	if err != nil {
		return err
	}
	if err := m.Apply(pid); err != nil {
		return fmt.Errorf("move pid %d to cgroup %s: %w", pid, p, err)
	}
	return nil
}

// removeCgroup removes the cgroup p and what is below it; a missing cgroup
// is success. Processes still in it (a pause or container whose record was
// lost mid-teardown) are killed first: the cgroup is the last word on what
// belongs to the pod.
func removeCgroup(p string) error {
	m, err := cgroupManager(p)
	if err != nil {
		return err
	}
	for try := 0; try < 50; try++ {
		pids := cgroupPids(p)
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := m.Destroy(); err != nil {
		return fmt.Errorf("remove cgroup %s: %w", p, err)
	}
	return nil
}

// cgroupPids lists the processes in cgroup p or below it, in any mounted
// hierarchy.
func cgroupPids(p string) []int {
	seen := map[int]bool{}
	roots, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*") + p)
	if fi, err := os.Stat(filepath.Join("/sys/fs/cgroup", p)); err == nil && fi.IsDir() {
		roots = append(roots, filepath.Join("/sys/fs/cgroup", p)) // pure cgroup v2
	}
	for _, root := range roots {
		_ = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			data, _ := os.ReadFile(path)
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil {
					seen[pid] = true
				}
			}
			return nil
		})
	}
	pids := make([]int, 0, len(seen))
	for pid := range seen {
		pids = append(pids, pid)
	}
	return pids
}

// cgroupOOMKills reports how many processes of cgroup p the kernel's OOM
// killer ended, or 0 when the cgroup is gone.
func cgroupOOMKills(p string) uint64 {
	m, err := cgroupManager(p)
	if err != nil || !m.Exists() {
		return 0
	}
	n, err := m.OOMKillCount()
	if err != nil {
		return 0
	}
	return n
}

// slowCgroupMoves names a cgroup2 mount whose lack of the favordynmods
// option makes every move of a process between cgroups wait for an RCU
// grace period (about 15 ms on a small VM, paid by each container start).
// It returns "" when moves are fast or nothing can be said.
func slowCgroupMoves() string {
	mounts, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("cgroup2"))
	if err != nil || len(mounts) == 0 {
		return ""
	}
	for _, m := range mounts {
		if strings.Contains(","+m.VFSOptions+",", ",favordynmods,") {
			return ""
		}
	}
	return mounts[0].Mountpoint
}
