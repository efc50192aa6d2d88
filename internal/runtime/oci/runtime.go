package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// ErrNotFound is returned (wrapped) when the runtime does not know a container.
var ErrNotFound = errors.New("container not found")

// Runtime is one OCI runtime handler.
type Runtime struct {
	// Handler is the RuntimeClass handler name, e.g. "runc".
	Handler string
	// Binary is the runtime executable, e.g. "/usr/sbin/runc".
	Binary string
	// Root is the runtime's --root state directory, e.g. <data-dir>/oci/runc.
	Root string
	// Shim is the installed pause binary (<data-dir>/bin/pause); Exec with
	// a TTY needs it: runtimes only hand out a console socket's pty to a
	// detached exec, and the shim is the subreaper that collects that
	// process's exit code. Not needed for anything else.
	Shim string
}

// State is a container's state as the runtime reports it (`state` command).
type State struct {
	OCIVersion  string            `json:"ociVersion"`
	ID          string            `json:"id"`
	PID         int               `json:"pid"`
	Status      string            `json:"status"` // creating, created, running, paused, stopped
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs,omitempty"`
	Created     time.Time         `json:"created"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// RunArgs returns the argv that creates and starts container id detached
// (`run -d`) from bundle, writing the main PID to pidFile and the runtime's
// JSON log to logFile. The pause process executes it.
func (r *Runtime) RunArgs(id, bundle, pidFile, logFile string) []string {
	return []string{
		r.Binary, "--root", r.Root, "--log", logFile, "--log-format", "json",
		"run", "--detach", "--pid-file", pidFile, "--bundle", bundle, id,
	}
}

// State returns the runtime's view of container id, or an error wrapping
// ErrNotFound if the runtime does not know it.
func (r *Runtime) State(ctx context.Context, id string) (*State, error) {
	out, err := r.run(ctx, "state", id)
	err = r.notFound(id, err)
	if err != nil {
		return nil, fmt.Errorf("%s state %s: %w", r.Handler, id, err)
	}
	var st State
	if err := json.Unmarshal(out, &st); err != nil {
		return nil, fmt.Errorf("%s state %s: decode %q: %w", r.Handler, id, out, err)
	}
	return &st, nil
}

// Kill sends sig to container id (to all its processes if all). A container
// the runtime does not know, or one already stopped, counts as success.
func (r *Runtime) Kill(ctx context.Context, id string, sig syscall.Signal, all bool) error {
	args := []string{"kill"}
	if all {
		args = append(args, "--all")
	}
	args = append(args, id, fmt.Sprint(int(sig)))
	_, err := r.run(ctx, args...)
	err = r.notFound(id, err)
	if err == nil || errors.Is(err, ErrNotFound) {
		return nil
	}
	// The runtimes word "already stopped" differently; ask for the state.
	st, serr := r.State(ctx, id)
	if errors.Is(serr, ErrNotFound) || (serr == nil && st.Status == "stopped") {
		return nil
	}
	return fmt.Errorf("%s kill %s with signal %d: %w", r.Handler, id, int(sig), err)
}

// Delete removes container id from the runtime; force kills it first if it
// is still running. It is idempotent: an unknown id counts as success.
func (r *Runtime) Delete(ctx context.Context, id string, force bool) error {
	args := []string{"delete"}
	if force {
		args = append(args, "--force")
	}
	_, err := r.run(ctx, append(args, id)...)
	err = r.notFound(id, err)
	if err == nil || errors.Is(err, ErrNotFound) {
		return nil
	}
	return fmt.Errorf("%s delete %s: %w", r.Handler, id, err)
}

// Version returns the first line of `<binary> --version`.
func (r *Runtime) Version(ctx context.Context) (string, error) {
	cmd := exec.CommandContext(ctx, r.Binary, "--version")
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s version: %w", r.Handler, withStderr(err))
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line, nil
}

// run executes the runtime with --root and args, returning stdout. A
// failure carries the runtime's stderr and wraps ErrNotFound when that says
// the container does not exist.
func (r *Runtime) run(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, r.Binary, append([]string{"--root", r.Root}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: %s", ctx.Err(), msg)
		}
		if isNotFound(msg) {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, msg)
		}
		if msg == "" {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %s", err, msg)
	}
	return stdout.Bytes(), nil
}

// notFound turns a failure into ErrNotFound when the runtime keeps no
// state directory for id (both runc and crun keep <root>/<id>), whatever
// its message said.
func (r *Runtime) notFound(id string, err error) error {
	if err == nil || errors.Is(err, ErrNotFound) || r.Root == "" || id == "" || strings.ContainsRune(id, '/') {
		return err
	}
	if _, serr := os.Stat(filepath.Join(r.Root, id)); errors.Is(serr, os.ErrNotExist) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}

// isNotFound reports whether a runtime's error message says the container
// does not exist (runc: "container does not exist"; crun: "... status: No
// such file or directory").
func isNotFound(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "does not exist") || strings.Contains(m, "not found") ||
		(strings.Contains(m, "/status") && strings.Contains(m, "no such file or directory"))
}

func withStderr(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
	}
	return err
}

// LogError returns the last error message in a runtime's JSON --log file
// (or its last line if it is not JSON), or "" if there is none. Use it to
// explain a failed `run -d`.
func LogError(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return logError(b)
}

// logError is LogError's pure core.
func logError(b []byte) string {
	if len(b) > 64<<10 {
		b = b[len(b)-64<<10:]
	}
	var last, lastErr string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		var e struct{ Level, Msg string }
		if json.Unmarshal([]byte(l), &e) == nil && e.Msg != "" {
			last = e.Msg
			if e.Level == "error" || e.Level == "fatal" {
				lastErr = e.Msg
			}
			continue
		}
		last = l
	}
	if lastErr != "" {
		return lastErr
	}
	return last
}
