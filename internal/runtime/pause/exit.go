package pause

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ExitStatus is how a container's main process ended, as pause recorded it.
type ExitStatus struct {
	// ExitCode is the exit code, or 128+Signal for a death by signal (as
	// Kubernetes shows it).
	ExitCode int
	// Signal is the killing signal, or 0.
	Signal     int
	FinishedAt time.Time
}

// ReadExit reads the exit file pause wrote at path. Before the container
// exited it returns an error wrapping os.ErrNotExist.
func ReadExit(path string) (*ExitStatus, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read exit status: %w", err)
	}
	es, err := parseExit(string(b))
	if err != nil {
		return nil, fmt.Errorf("read exit status %s: %w", path, err)
	}
	return es, nil
}

// parseExit parses "<exitcode> <signal> <finishedAt RFC3339Nano>\n".
func parseExit(s string) (*ExitStatus, error) {
	f := strings.Fields(s)
	if len(f) != 3 {
		return nil, fmt.Errorf("malformed exit record %q", s)
	}
	code, err := strconv.Atoi(f[0])
	if err != nil {
		return nil, fmt.Errorf("malformed exit code %q", f[0])
	}
	sig, err := strconv.Atoi(f[1])
	if err != nil {
		return nil, fmt.Errorf("malformed signal %q", f[1])
	}
	at, err := time.Parse(time.RFC3339Nano, f[2])
	if err != nil {
		return nil, fmt.Errorf("malformed finish time %q: %w", f[2], err)
	}
	return &ExitStatus{ExitCode: code, Signal: sig, FinishedAt: at}, nil
}

// WaitExit blocks until the exit file at exitPath exists and returns it, or
// until ctx ends. It watches the directory with inotify (pause renames the
// file into place), so it does not poll. The directory must exist.
func WaitExit(ctx context.Context, exitPath string) (*ExitStatus, error) {
	dir, name := filepath.Split(exitPath)
	if dir == "" {
		dir = "."
	}
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("wait for exit %s: inotify: %w", exitPath, err)
	}
	f := os.NewFile(uintptr(fd), "inotify")
	defer f.Close()
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_MOVED_TO|unix.IN_CLOSE_WRITE|unix.IN_CREATE|unix.IN_DELETE_SELF|unix.IN_MOVE_SELF); err != nil {
		return nil, fmt.Errorf("wait for exit %s: watch %s: %w", exitPath, dir, err)
	}
	// After the watch is in place, so a rename in between is not missed.
	if es, err := ReadExit(exitPath); err == nil || !errors.Is(err, os.ErrNotExist) {
		return es, err
	}
	stop := context.AfterFunc(ctx, func() { _ = f.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 4096)
	for {
		n, err := f.Read(buf)
		if err != nil {
			return nil, fmt.Errorf("wait for exit %s: %w", exitPath, ctxErr(ctx, err))
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafePointer(buf[off:]))
			nameBytes := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
			off += unix.SizeofInotifyEvent + int(ev.Len)
			if ev.Mask&(unix.IN_DELETE_SELF|unix.IN_MOVE_SELF|unix.IN_IGNORED) != 0 {
				return nil, fmt.Errorf("wait for exit %s: directory %s went away", exitPath, dir)
			}
			if strings.TrimRight(string(nameBytes), "\x00") != name {
				continue
			}
			es, err := ReadExit(exitPath)
			if err == nil || !errors.Is(err, os.ErrNotExist) {
				return es, err
			}
		}
	}
}
