package pause

import (
	"context"
	"fmt"
	"os/exec"
	"syscall"
	"time"
)

// HolderOptions says how to start the user-namespace holder of one pod
// with hostUsers: false.
type HolderOptions struct {
	// Binary is the installed pause executable (see Install).
	Binary string
	// HostID and Length are the pod's ID range: user and group IDs
	// 0..Length-1 of the pod map to HostID..HostID+Length-1 on the host.
	HostID, Length uint32
	// SharePID also gives the holder a new PID namespace, of which it is
	// PID 1 (shareProcessNamespace): the pod's containers join it.
	SharePID bool
	// Cgroup, if set, is called with the holder's PID to place it in the
	// pod's cgroup.
	Cgroup func(pid int) error
}

// StartHolder starts `pause --hold` in a new user namespace mapping the
// pod's ID range (uid and gid alike, setgroups allowed), with new network,
// IPC and UTS namespaces, and with SharePID a new PID namespace, that this
// user namespace owns. That ownership is what lets the pod's root use its
// own network namespace (bind port 80, mount sysfs, set net sysctls), as
// containerd creates the network namespace of such a pod inside its user
// namespace. The holder does nothing but hold them (and reap, as PID 1);
// their paths are /proc/PID/ns/{user,net,ipc,uts,pid}. Like Start, the
// process outlives the caller and a goroutine reaps it while the caller
// lives; Stop ends it. The namespaces exist once StartHolder returns. On
// error nothing is left running.
func StartHolder(ctx context.Context, opts HolderOptions) (_ *Process, retErr error) {
	if opts.Binary == "" {
		return nil, fmt.Errorf("start user namespace holder: Binary is required")
	}
	if opts.HostID == 0 || opts.Length == 0 {
		return nil, fmt.Errorf("start user namespace holder: host ID %d, length %d: root of the host may not be mapped and the range may not be empty", opts.HostID, opts.Length)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start user namespace holder: %w", err)
	}
	flags := uintptr(syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET | syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS)
	if opts.SharePID {
		flags |= syscall.CLONE_NEWPID
	}
	idMap := []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(opts.HostID), Size: int(opts.Length)}}
	// Not CommandContext: the holder must outlive ctx and the caller.
	cmd := exec.Command(opts.Binary, "--hold")
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setsid:      true,
		Cloneflags:  flags,
		UidMappings: idMap,
		GidMappings: idMap,
		// The pod's containers set their supplementary groups, which a
		// user namespace with setgroups denied would refuse for ever.
		GidMappingsEnableSetgroups: true,
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start user namespace holder: %w", err)
	}
	pid := cmd.Process.Pid
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // reap; the holder's fate is read via Alive
		close(exited)
	}()
	defer func() {
		if retErr == nil {
			return
		}
		_ = cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(2 * time.Second):
		}
	}()
	if opts.Cgroup != nil {
		if err := opts.Cgroup(pid); err != nil {
			return nil, fmt.Errorf("start user namespace holder: place pid %d in cgroup: %w", pid, err)
		}
	}
	st, err := startTime(pid)
	if err != nil {
		return nil, fmt.Errorf("start user namespace holder: %w", err)
	}
	p := &Process{PID: pid, StartTime: st}
	if opts.SharePID {
		p.PIDNamespacePID = pid
	}
	return p, nil
}

// NamespacePath is the path of one of p's namespaces ("user", "net", ...).
func (p Process) NamespacePath(kind string) string {
	return fmt.Sprintf("/proc/%d/ns/%s", p.PID, kind)
}
