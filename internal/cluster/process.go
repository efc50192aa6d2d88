package cluster

import (
	"bytes"
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

	"github.com/peapod/peapod/internal/network/netns"
)

// startInNetNS starts binary with args inside the network namespace at
// nsPath and nowhere else: the process is forked from an OS thread that
// entered only that namespace (netns.Do), so it keeps the host's mount,
// PID and cgroup namespaces. It runs in a session of its own, with stdin
// from /dev/null and stdout and stderr appended to logPath, and outlives
// the caller. It returns the PID and start time.
func startInNetNS(nsPath, binary string, args []string, logPath string) (pid int, start uint64, err error) {
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return 0, 0, fmt.Errorf("open node log: %w", err)
	}
	defer logFile.Close()
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := netns.Do(nsPath, cmd.Start); err != nil {
		return 0, 0, fmt.Errorf("start %s %s in %s: %w", filepath.Base(binary), args[0], nsPath, err)
	}
	pid = cmd.Process.Pid
	// Reap it if it ends while this process lives (a test driving the
	// package in-process); once this process exits, init does.
	go func() { _ = cmd.Wait() }()
	start, _, err = procStat(pid)
	if err != nil {
		return pid, 0, fmt.Errorf("started pid %d but cannot read it: %w", pid, err)
	}
	return pid, start, nil
}

// procStat returns a process's start time (clock ticks after boot) and
// state letter from /proc/<pid>/stat.
func procStat(pid int) (start uint64, state byte, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// comm (field 2) may hold spaces and parentheses: split after the last ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	fields := strings.Fields(string(data[i+1:]))
	// fields[0] is field 3 (state); start time is field 22.
	if len(fields) < 20 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	start, err = strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: start time: %w", pid, err)
	}
	return start, fields[0][0], nil
}

// running reports whether the node's recorded process still runs: the
// PID exists, was started when recorded, and is not a zombie.
func (n *Node) running() bool {
	if n.PID <= 0 {
		return false
	}
	start, state, err := procStat(n.PID)
	return err == nil && start == n.StartTime && state != 'Z' && state != 'X'
}

// stopProcess signals the node's process with sig and waits until it has
// exited; if it has not after grace, it is killed. A process that is gone
// (or whose PID now names another process) counts as stopped. The signal
// goes through a pidfd opened after checking the start time, so a reused
// PID is never signalled.
func (n *Node) stopProcess(ctx context.Context, sig syscall.Signal, grace time.Duration) error {
	if n.PID <= 0 {
		return nil
	}
	fd, err := unix.PidfdOpen(n.PID, 0)
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stop %s (pid %d): %w", n.Name, n.PID, err)
	}
	defer unix.Close(fd)
	if start, _, err := procStat(n.PID); err != nil || start != n.StartTime {
		return nil // gone, or another process has the PID now
	}
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("signal %s (pid %d): %w", n.Name, n.PID, err)
	}
	if exited, err := waitPidfd(ctx, fd, grace); err != nil || exited {
		return err
	}
	if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("kill %s (pid %d): %w", n.Name, n.PID, err)
	}
	exited, err := waitPidfd(ctx, fd, 30*time.Second)
	if err == nil && !exited {
		err = fmt.Errorf("%s (pid %d) still runs 30s after SIGKILL", n.Name, n.PID)
	}
	return err
}

// waitPidfd waits until the pidfd's process has exited (the fd polls
// readable) or timeout passes.
func waitPidfd(ctx context.Context, fd int, timeout time.Duration) (bool, error) {
	deadline := time.Now().Add(timeout)
	for {
		wait := time.Until(deadline)
		if wait > 100*time.Millisecond {
			wait = 100 * time.Millisecond
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(wait.Milliseconds()))
		if err != nil && !errors.Is(err, unix.EINTR) {
			return false, fmt.Errorf("wait for process: %w", err)
		}
		if n > 0 {
			return true, nil
		}
		if err := ctx.Err(); err != nil {
			return false, err
		}
		if !time.Now().Before(deadline) {
			return false, nil
		}
	}
}

// killProcessesIn kills, with SIGKILL, every process whose network
// namespace is the one pinned at nsPath, and waits for them to exit: what
// is left of a node whose PID was never recorded (an Up that failed between
// start and record). Pods' processes are in their own namespaces and are
// not touched; `peapod reset` takes care of them.
func killProcessesIn(ctx context.Context, nsPath string) error {
	var target unix.Stat_t
	if err := unix.Stat(nsPath, &target); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("stat %s: %w", nsPath, err)
	}
	if !netns.Exists(nsPath) {
		return nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return fmt.Errorf("list processes: %w", err)
	}
	var errs []error
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st) != nil || st.Ino != target.Ino || st.Dev != target.Dev {
			continue
		}
		start, _, err := procStat(pid)
		if err != nil {
			continue
		}
		n := Node{Name: fmt.Sprintf("process in %s", filepath.Base(nsPath)), PID: pid, StartTime: start}
		if err := n.stopProcess(ctx, unix.SIGKILL, 10*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
