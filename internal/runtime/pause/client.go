package pause

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/peapod/peapod/internal/runtime/oci"

	"golang.org/x/sys/unix"
)

// Client talks to one pause process over dir/pause.sock. It holds no
// connection: each request dials anew, so a Client survives pause restarts
// and may be used from several goroutines at once.
type Client struct {
	dir string
}

// Dial returns a client for the pause process listening in dir. It does not
// connect; each request does. dir may be longer than a unix socket path
// allows: the socket is reached through /proc/self/fd.
func Dial(dir string) *Client { return &Client{dir: dir} }

// Container states reported by Status.
const (
	StateLaunching = "launching" // the runtime's `run -d` has not finished
	StateRunning   = "running"
	StateExited    = "exited"
	StateFailed    = "failed" // the launch failed
)

// Status is what a pause process reports about itself.
type Status struct {
	PID             int
	PIDNamespacePID int // 0 unless started with SharePID (or its reaper died)
	Containers      []ContainerStatus
}

// ContainerStatus is one container pause launched.
type ContainerStatus struct {
	ID       string
	PID      int
	State    string // one of the State* constants
	ExitCode int    // valid when State is StateExited, else -1
}

// LaunchRequest asks pause to start one container.
type LaunchRequest struct {
	// ID names the container; it must not be launching or running already.
	ID string
	// Argv is the launcher, usually the runtime's `run -d` (see oci
	// Runtime.RunArgs); Argv[0] is an absolute path or found in PATH.
	Argv []string
	// Env is the launcher's environment; empty gives a default PATH.
	Env []string
	// LogPath is the CRI log file the container's stdout/stderr go to.
	LogPath string
	// ExitPath is where the exit status is written once the container's
	// main process died (see ReadExit).
	ExitPath string
	// PIDPath is the pid file the launcher writes the main PID to.
	PIDPath string
	// RuntimeLogPath optionally names the runtime's --log file; a failed
	// launch adds its last error message to the returned error.
	RuntimeLogPath string
	// Stdin gives the container a stdin pipe whose write end pause keeps
	// (see OpenStdin and CloseStdin); without it stdin is /dev/null.
	Stdin bool
	// Terminal makes pause create a console socket and insert
	// "--console-socket <path>" before the last element of Argv (the
	// container ID in `run -d ... ID`); the runtime hands pause the pty
	// master there. Its output is logged as stdout, it is the container's
	// stdin (OpenStdin) and Resize sets its size. The OCI spec must ask
	// for a terminal (process.terminal).
	Terminal bool
}

// LaunchError is returned (wrapped) by Launch when the launcher failed.
type LaunchError struct {
	ID       string
	ExitCode int    // the launcher's exit code, -1 if none
	Signal   int    // the signal that killed the launcher, or 0
	Message  string // pause's reason plus the runtime's own message, if known
}

func (e *LaunchError) Error() string {
	return fmt.Sprintf("launch container %s: exit code %d signal %d: %s", e.ID, e.ExitCode, e.Signal, e.Message)
}

// Launch asks pause to start a container and waits until the launcher
// exited; it returns the container's main PID read from PIDPath. The
// container's output and exit status are then handled by pause alone.
// If ctx ends first the launch goes on in pause; its outcome shows in Status.
func (c *Client) Launch(ctx context.Context, req LaunchRequest) (int, error) {
	if req.ID == "" || len(req.Argv) == 0 || req.LogPath == "" || req.ExitPath == "" || req.PIDPath == "" {
		return 0, fmt.Errorf("launch container %q: ID, Argv, LogPath, ExitPath and PIDPath are required", req.ID)
	}
	for _, s := range append([]string{req.ID}, req.Argv...) {
		if strings.ContainsAny(s, "\x00") {
			return 0, fmt.Errorf("launch container %q: NUL in argument", req.ID)
		}
	}
	if strings.ContainsAny(req.ID, " \n\t") {
		return 0, fmt.Errorf("launch container %q: ID must not contain whitespace", req.ID)
	}
	env := req.Env
	if len(env) == 0 {
		env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	}
	fields := []string{"LAUNCH", req.ID, req.LogPath, req.ExitPath, req.PIDPath, strconv.Itoa(len(req.Argv))}
	if req.Stdin || req.Terminal {
		flags := ""
		if req.Stdin {
			flags += "i"
		}
		if req.Terminal {
			flags += "t"
		}
		// LAUNCH2 only when needed, so an older pause still launches
		// plain containers.
		fields = append([]string{"LAUNCH2", flags}, fields[1:]...)
	}
	fields = append(fields, req.Argv...)
	fields = append(fields, env...)
	resp, err := c.roundTrip(ctx, fields)
	if err != nil {
		return 0, fmt.Errorf("launch container %s: %w", req.ID, err)
	}
	if pidStr, ok := strings.CutPrefix(resp, "OK "); ok {
		pid, err := strconv.Atoi(strings.TrimSpace(pidStr))
		if err != nil {
			return 0, fmt.Errorf("launch container %s: bad reply %q", req.ID, resp)
		}
		return pid, nil
	}
	le := &LaunchError{ID: req.ID, ExitCode: -1}
	rest, ok := strings.CutPrefix(strings.TrimSpace(resp), "ERR ")
	if !ok {
		return 0, fmt.Errorf("launch container %s: bad reply %q", req.ID, resp)
	}
	parts := strings.SplitN(rest, " ", 3)
	if len(parts) == 3 {
		le.ExitCode, _ = strconv.Atoi(parts[0])
		le.Signal, _ = strconv.Atoi(parts[1])
		le.Message = parts[2]
	} else {
		le.Message = rest
	}
	if req.RuntimeLogPath != "" {
		if msg := oci.LogError(req.RuntimeLogPath); msg != "" {
			le.Message += ": " + msg
		}
	}
	return 0, le
}

// Status asks pause for its PIDs and the containers it knows. It doubles as
// a liveness ping.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	resp, err := c.roundTrip(ctx, []string{"STATUS"})
	if err != nil {
		return nil, fmt.Errorf("pause status in %s: %w", c.dir, err)
	}
	st, err := parseStatus(resp)
	if err != nil {
		return nil, fmt.Errorf("pause status in %s: %w", c.dir, err)
	}
	return st, nil
}

// parseStatus parses pause's STATUS reply.
func parseStatus(resp string) (*Status, error) {
	lines := strings.Split(strings.TrimRight(resp, "\n"), "\n")
	st := &Status{}
	if _, err := fmt.Sscanf(lines[0], "OK %d %d", &st.PID, &st.PIDNamespacePID); err != nil {
		return nil, fmt.Errorf("bad reply %q", lines[0])
	}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 5 || f[0] != "C" {
			return nil, fmt.Errorf("bad container line %q", l)
		}
		pid, err1 := strconv.Atoi(f[2])
		code, err2 := strconv.Atoi(f[4])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("bad container line %q", l)
		}
		st.Containers = append(st.Containers, ContainerStatus{ID: f[1], PID: pid, State: f[3], ExitCode: code})
	}
	return st, nil
}

// roundTrip sends one request (NUL-terminated fields) and returns the reply.
func (c *Client) roundTrip(ctx context.Context, fields []string) (string, error) {
	uc, err := c.send(ctx, fields)
	if err != nil {
		return "", err
	}
	defer uc.Close()
	stop := context.AfterFunc(ctx, func() { _ = uc.SetDeadline(time.Now()) })
	defer stop()
	resp, err := io.ReadAll(uc)
	if err != nil {
		return "", fmt.Errorf("read reply: %w", ctxErr(ctx, err))
	}
	if len(resp) == 0 {
		return "", fmt.Errorf("read reply: pause closed the connection without a reply")
	}
	return string(resp), nil
}

// send connects, writes one request and shuts down the write side. The
// caller reads the reply and closes the connection.
func (c *Client) send(ctx context.Context, fields []string) (*net.UnixConn, error) {
	dirfd, err := unix.Open(c.dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", c.dir, &os.PathError{Op: "open", Path: c.dir, Err: err})
	}
	defer unix.Close(dirfd)
	addr := fmt.Sprintf("/proc/self/fd/%d/%s", dirfd, SocketName)
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s/%s: %w", c.dir, SocketName, err)
	}
	uc := conn.(*net.UnixConn)
	stop := context.AfterFunc(ctx, func() { _ = uc.SetDeadline(time.Now()) })
	defer stop()
	var b strings.Builder
	for _, f := range fields {
		b.WriteString(f)
		b.WriteByte(0)
	}
	if _, err := io.WriteString(uc, b.String()); err != nil {
		uc.Close()
		return nil, fmt.Errorf("send request: %w", ctxErr(ctx, err))
	}
	if err := uc.CloseWrite(); err != nil {
		uc.Close()
		return nil, fmt.Errorf("send request: %w", ctxErr(ctx, err))
	}
	if err := uc.SetDeadline(time.Time{}); err != nil {
		uc.Close()
		return nil, fmt.Errorf("send request: %w", err)
	}
	return uc, nil
}

// ctxErr prefers ctx's error over the timeout it caused.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
