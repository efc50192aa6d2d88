package pause

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// SocketName is the name of pause's unix socket inside its directory.
const SocketName = "pause.sock"

// logName is pause's own diagnostics file inside its directory.
const logName = "pause.log"

// defaultStartTimeout bounds Start when ctx has no deadline.
const defaultStartTimeout = 10 * time.Second

// StartOptions says how to start one pod's pause process.
type StartOptions struct {
	// Binary is the installed pause executable (see Install).
	Binary string
	// Dir is the sandbox directory: pause chdirs there and listens on
	// Dir/pause.sock. Its length is not limited by sun_path.
	Dir string
	// NetNSPath is the pinned network namespace to join; empty keeps the
	// caller's: the node's, for a hostNetwork pod.
	NetNSPath string
	// IPCNSPath and UTSNSPath name existing IPC and UTS namespaces to join
	// (a user-namespace holder's, see StartHolder) instead of new ones.
	IPCNSPath, UTSNSPath string
	// HostIPC and HostUTS keep the caller's IPC and UTS namespaces
	// (hostIPC; hostNetwork pods share the node's UTS namespace too).
	HostIPC, HostUTS bool
	// Hostname is set in the pod's own UTS namespace; empty leaves it. It
	// is ignored with HostUTS: the node's hostname is never changed.
	Hostname string
	// SharePID makes pause fork a PID-1 reaper in a new PID namespace that
	// the pod's containers join (Process.PIDNamespacePID).
	SharePID bool
	// Cgroup, if set, is called with pause's PID before pause forks or
	// serves anything, to place it in the pod's cgroup.
	Cgroup func(pid int) error
}

// Process identifies a running pause process. It is meant to be persisted
// (JSON) and used after a peapod restart.
type Process struct {
	PID int `json:"pid"`
	// StartTime is field 22 of /proc/PID/stat; with PID it guards against
	// PID reuse.
	StartTime uint64 `json:"startTime"`
	// PIDNamespacePID is the host PID of the PID-1 reaper whose
	// /proc/PID/ns/pid containers join; 0 unless SharePID.
	PIDNamespacePID int `json:"pidNamespacePID,omitempty"`
}

// Start starts a pause process for one pod and returns once it accepts
// connections on Dir/pause.sock. The process runs in its own session with no
// parent-death signal, so it outlives the caller; while the caller lives, a
// goroutine reaps it when it exits. ctx bounds only the startup. On error,
// whatever was started is killed.
func Start(ctx context.Context, opts StartOptions) (_ *Process, retErr error) {
	if opts.Binary == "" || opts.Dir == "" {
		return nil, fmt.Errorf("start pause: Binary and Dir are required")
	}
	if (opts.HostIPC && opts.IPCNSPath != "") || (opts.HostUTS && opts.UTSNSPath != "") {
		return nil, fmt.Errorf("start pause: a namespace cannot be both the host's and joined by path")
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultStartTimeout)
		defer cancel()
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("start pause in %s: socketpair: %w", opts.Dir, err)
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, fmt.Errorf("start pause in %s: %w", opts.Dir, err)
	}
	ours := os.NewFile(uintptr(fds[0]), "pause-ready")
	theirs := os.NewFile(uintptr(fds[1]), "pause-ready-child")
	defer ours.Close()

	logPath := filepath.Join(opts.Dir, logName)
	args := []string{"--dir", opts.Dir, "--ready-fd", "3", "--log", logPath}
	if opts.NetNSPath != "" {
		args = append(args, "--netns", opts.NetNSPath)
	}
	if opts.IPCNSPath != "" {
		args = append(args, "--ipcns", opts.IPCNSPath)
	}
	if opts.UTSNSPath != "" {
		args = append(args, "--utsns", opts.UTSNSPath)
	}
	if opts.HostIPC {
		args = append(args, "--host-ipc")
	}
	if opts.HostUTS {
		args = append(args, "--host-uts")
	}
	if opts.Hostname != "" && !opts.HostUTS {
		args = append(args, "--hostname", opts.Hostname)
	}
	if opts.SharePID {
		args = append(args, "--share-pid")
	}
	// Not CommandContext: pause must outlive ctx and the caller.
	cmd := exec.Command(opts.Binary, args...)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.ExtraFiles = []*os.File{theirs}
	err = cmd.Start()
	theirs.Close()
	if err != nil {
		return nil, fmt.Errorf("start pause in %s: %w", opts.Dir, err)
	}
	pid := cmd.Process.Pid
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // reap; pause's fate is read via Alive/Status
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
		_ = os.Remove(filepath.Join(opts.Dir, SocketName))
		if msg := tail(logPath); msg != "" {
			retErr = fmt.Errorf("%w (pause log: %s)", retErr, msg)
		}
	}()

	if opts.Cgroup != nil {
		if err := opts.Cgroup(pid); err != nil {
			return nil, fmt.Errorf("start pause in %s: place pid %d in cgroup: %w", opts.Dir, pid, err)
		}
	}
	stop := context.AfterFunc(ctx, func() { _ = ours.SetDeadline(time.Now()) })
	defer stop()
	if _, err := ours.Write([]byte{1}); err != nil {
		return nil, fmt.Errorf("start pause in %s: send go-ahead: %w", opts.Dir, err)
	}
	line, err := bufio.NewReader(ours).ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("start pause in %s: wait for readiness: %w", opts.Dir, err)
	}
	var rpid, nspid int
	if _, err := fmt.Sscanf(line, "READY %d %d\n", &rpid, &nspid); err != nil || rpid != pid {
		return nil, fmt.Errorf("start pause in %s: bad readiness line %q", opts.Dir, line)
	}
	st, err := startTime(pid)
	if err != nil {
		return nil, fmt.Errorf("start pause in %s: %w", opts.Dir, err)
	}
	p := &Process{PID: pid, StartTime: st, PIDNamespacePID: nspid}
	if _, err := Dial(opts.Dir).Status(ctx); err != nil {
		return nil, fmt.Errorf("start pause in %s: %w", opts.Dir, err)
	}
	return p, nil
}

// tail returns the last line of a small diagnostics file, or "".
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// procStat returns the state (field 3) and start time (field 22) of pid.
func procStat(pid int) (state byte, start uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	return parseStat(string(b))
}

// parseStat extracts the state and start time from a /proc/PID/stat line.
// The command name (field 2) may contain spaces and parentheses, so fields
// are counted after its last ')'.
func parseStat(s string) (state byte, start uint64, err error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("parse stat: no command name")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); field 22 is f[19].
	if len(f) < 20 || len(f[0]) != 1 {
		return 0, 0, fmt.Errorf("parse stat: too few fields")
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("parse stat: start time: %w", err)
	}
	return f[0][0], start, nil
}

func startTime(pid int) (uint64, error) {
	_, st, err := procStat(pid)
	if err != nil {
		return 0, fmt.Errorf("read start time of pid %d: %w", pid, err)
	}
	return st, nil
}

// Alive reports whether p's process exists, is not a zombie, and has the
// recorded start time (so a reused PID is not mistaken for it).
func Alive(p Process) bool {
	if p.PID <= 0 {
		return false
	}
	state, st, err := procStat(p.PID)
	return err == nil && state != 'Z' && state != 'X' && st == p.StartTime
}

// Stop ends a pause process: SIGTERM, up to two seconds' grace, then
// SIGKILL, and removes dir/pause.sock. The pod's containers must already be
// stopped. It is idempotent: a process that is gone (or whose PID was
// reused) counts as success. Signals go through a pidfd, so a PID reused
// between the check and the signal is never hit.
func Stop(ctx context.Context, p Process, dir string) error {
	defer func() {
		if dir != "" {
			_ = os.Remove(filepath.Join(dir, SocketName))
		}
	}()
	if p.PID <= 0 {
		return nil
	}
	pidfd, err := unix.PidfdOpen(p.PID, 0)
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stop pause %d: pidfd_open: %w", p.PID, err)
	}
	defer unix.Close(pidfd)
	if !Alive(p) { // checked after pidfd_open: the pidfd is that process
		return nil
	}
	if err := unix.PidfdSendSignal(pidfd, unix.SIGTERM, nil, 0); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil
		}
		return fmt.Errorf("stop pause %d: SIGTERM: %w", p.PID, err)
	}
	if waitPidfd(ctx, pidfd, 2*time.Second) {
		return nil
	}
	if err := unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("stop pause %d: SIGKILL: %w", p.PID, err)
	}
	if !waitPidfd(ctx, pidfd, 5*time.Second) {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("stop pause %d: %w", p.PID, err)
		}
		return fmt.Errorf("stop pause %d: still running after SIGKILL", p.PID)
	}
	return nil
}

// waitPidfd reports whether the process exited within d (or before ctx ended).
func waitPidfd(ctx context.Context, pidfd int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 50)
		if err == nil && n > 0 {
			return true
		}
		if err != nil && !errors.Is(err, unix.EINTR) {
			return false
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return false
		}
	}
}

// Wait blocks until the pause process exits, or ctx ends. It sleeps in the
// runtime's poller on a pidfd, so a node with many pods watches them all
// for free. A process already gone returns at once.
func Wait(ctx context.Context, p Process) error {
	if p.PID <= 0 {
		return nil
	}
	pidfd, err := unix.PidfdOpen(p.PID, unix.PIDFD_NONBLOCK)
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("watch pause %d: pidfd_open: %w", p.PID, err)
	}
	f := os.NewFile(uintptr(pidfd), "pidfd")
	defer f.Close()
	if !Alive(p) {
		return nil
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("watch pause %d: %w", p.PID, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = f.SetReadDeadline(time.Now()) })
	defer stop()
	var exited bool
	err = rc.Read(func(fd uintptr) bool {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, _ := unix.Poll(fds, 0)
		exited = n > 0
		return exited
	})
	if exited {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("watch pause %d: %w", p.PID, err)
}
