package runtime

import (
	"fmt"
	"path"

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
// is success. The cgroup must hold no process.
func removeCgroup(p string) error {
	m, err := cgroupManager(p)
	if err != nil {
		return err
	}
	if err := m.Destroy(); err != nil {
		return fmt.Errorf("remove cgroup %s: %w", p, err)
	}
	return nil
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
