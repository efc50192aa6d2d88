package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// TerminalSize is a terminal's size in character cells.
type TerminalSize struct {
	Width, Height uint16
}

// ExecIO connects an exec'd process to the caller.
type ExecIO struct {
	// Stdin is copied to the process if set; otherwise it gets /dev/null.
	Stdin io.Reader
	// Stdout and Stderr receive the output (nil discards). With TTY, both
	// streams arrive on Stdout.
	Stdout, Stderr io.Writer
	// TTY allocates a pseudo-terminal (via the runtime's --console-socket).
	TTY bool
	// Resize delivers the initial size and later resizes (TTY only).
	Resize <-chan TerminalSize
}

// Exec runs process p in the running container id and waits for it. It
// returns the process's exit code; err is set when the runtime itself
// failed (the container is gone, the executable is missing, ...), with the
// runtime's message. With stdio.TTY the process gets a terminal whose
// master the runtime hands over on a console socket; Stdin and Stdout are
// copied to and from it and stdio.Resize is applied. Cancelling ctx kills
// the runtime's exec and returns ctx's error.
func (r *Runtime) Exec(ctx context.Context, id string, p specs.Process, stdio ExecIO) (exitCode int, retErr error) {
	tmp, err := os.MkdirTemp("", "ppexec")
	if err != nil {
		return -1, fmt.Errorf("%s exec in %s: %w", r.Handler, id, err)
	}
	defer os.RemoveAll(tmp)
	p.Terminal = stdio.TTY
	procJSON, err := json.Marshal(p)
	if err != nil {
		return -1, fmt.Errorf("%s exec in %s: encode process: %w", r.Handler, id, err)
	}
	procFile := filepath.Join(tmp, "process.json")
	if err := os.WriteFile(procFile, procJSON, 0o600); err != nil {
		return -1, fmt.Errorf("%s exec in %s: %w", r.Handler, id, err)
	}
	logFile := filepath.Join(tmp, "log.json")
	pidFile := filepath.Join(tmp, "pid")
	statusFile := filepath.Join(tmp, "status")
	rtArgs := []string{"--root", r.Root, "--log", logFile, "--log-format", "json", "exec", "--process", procFile}

	var cmd *exec.Cmd
	var sock *net.UnixListener
	var stderr bytes.Buffer // the runtime's own stderr in TTY mode
	var stdinPipe *os.File  // our end of the process's stdin (no tty)
	if stdio.TTY {
		if r.Shim == "" {
			return -1, fmt.Errorf("%s exec in %s: a tty needs Runtime.Shim (the pause binary)", r.Handler, id)
		}
		sockPath := filepath.Join(tmp, "c.sock")
		sock, err = net.ListenUnix("unix", &net.UnixAddr{Name: sockPath, Net: "unix"})
		if err != nil {
			return -1, fmt.Errorf("%s exec in %s: console socket: %w", r.Handler, id, err)
		}
		defer sock.Close()
		rtArgs = append(rtArgs, "--detach", "--console-socket", sockPath, "--pid-file", pidFile, id)
		cmd = exec.Command(r.Shim, append([]string{"--exec-shim", statusFile, pidFile, r.Binary}, rtArgs...)...)
		cmd.Stderr = &stderr
		// On cancel, kill the exec'd process (the shim then reports it).
		stop := context.AfterFunc(ctx, func() {
			if b, err := os.ReadFile(pidFile); err == nil {
				if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
					_ = unix.Kill(pid, unix.SIGKILL)
				}
			}
		})
		defer stop()
	} else {
		cmd = exec.CommandContext(ctx, r.Binary, append(rtArgs, id)...)
		cmd.Stdout = stdio.Stdout
		cmd.Stderr = stdio.Stderr
		if stdio.Stdin != nil {
			// A pipe we feed ourselves, not one exec.Cmd feeds: Wait
			// waits for its own stdin copy, that is for the client to end
			// its stdin, even after the process exited (a command that
			// reads one line, a client that cannot half-close). The exec
			// ends when its process does, as containerd's.
			pr, pw, err := os.Pipe()
			if err != nil {
				return -1, fmt.Errorf("%s exec in %s: stdin pipe: %w", r.Handler, id, err)
			}
			defer pr.Close()
			defer pw.Close()
			cmd.Stdin, stdinPipe = pr, pw
		}
	}
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		return -1, fmt.Errorf("%s exec in %s: %w", r.Handler, id, err)
	}
	if stdinPipe != nil {
		// The runtime has its copy of the read end; closing ours lets a
		// write fail once the process is gone. The copy outlives Exec
		// until the client's stdin ends (its stream is closed after the
		// exec) or a write fails.
		_ = cmd.Stdin.(*os.File).Close()
		go func() {
			_, _ = io.Copy(stdinPipe, stdio.Stdin)
			_ = stdinPipe.Close() // EOF for the process
		}()
	}
	waitErr := make(chan error, 1)
	var ttyDone sync.WaitGroup
	var masterFile *os.File
	if stdio.TTY {
		master, err := receiveConsole(ctx, sock, cmd)
		if err != nil {
			_ = cmd.Process.Kill()
			werr := cmd.Wait()
			return -1, r.execError(id, logFile, stderr.String(), fmt.Errorf("receive console: %w (%v)", err, werr))
		}
		defer master.Close()
		masterFile = master
		ttyDone.Add(1)
		go func() { // output: until EIO once the process and runtime are gone
			defer ttyDone.Done()
			if stdio.Stdout != nil {
				_, _ = io.Copy(stdio.Stdout, master)
			} else {
				_, _ = io.Copy(io.Discard, master)
			}
		}()
		if stdio.Stdin != nil {
			go func() { _, _ = io.Copy(master, stdio.Stdin) }()
		}
		if stdio.Resize != nil {
			setSize := func(sz TerminalSize) {
				if rc, err := master.SyscallConn(); err == nil {
					_ = rc.Control(func(fd uintptr) {
						_ = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: sz.Height, Col: sz.Width})
					})
				}
			}
			select { // the initial size, before the process can look
			case sz, ok := <-stdio.Resize:
				if ok {
					setSize(sz)
				}
			default:
			}
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				for {
					select {
					case sz, ok := <-stdio.Resize:
						if !ok {
							return
						}
						setSize(sz)
					case <-stop:
						return
					}
				}
			}()
		}
	}
	go func() { waitErr <- cmd.Wait() }()
	err = <-waitErr
	if stdio.TTY {
		// Output ends with EIO when the last slave fd closes; a background
		// process keeping it open must not hang us.
		done := make(chan struct{})
		go func() { ttyDone.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			_ = masterFile.SetReadDeadline(time.Now())
			<-done
		}
	}
	if ctx.Err() != nil {
		return -1, fmt.Errorf("%s exec in %s: %w", r.Handler, id, ctx.Err())
	}
	if stdio.TTY {
		return r.shimResult(id, statusFile, logFile, stderr.String(), err)
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return -1, fmt.Errorf("%s exec in %s: %w", r.Handler, id, err)
	}
	code := 0
	if ee != nil {
		code = ee.ExitCode()
	}
	if code != 0 && hasErrorLevel(logFile) {
		// The runtime exits with the process's code; it failed itself only
		// if it logged an error.
		return code, r.execError(id, logFile, "", fmt.Errorf("exit code %d", code))
	}
	return code, nil
}

// shimResult reads the exec shim's status file: "exit N" or "runtime N".
func (r *Runtime) shimResult(id, statusFile, logFile, stderr string, waitErr error) (int, error) {
	b, err := os.ReadFile(statusFile)
	if err != nil {
		return -1, r.execError(id, logFile, stderr, fmt.Errorf("exec shim: %v (%w)", waitErr, err))
	}
	var kind string
	var code int
	if _, err := fmt.Sscanf(string(b), "%s %d", &kind, &code); err != nil {
		return -1, fmt.Errorf("%s exec in %s: bad shim status %q", r.Handler, id, b)
	}
	if kind != "exit" {
		return -1, r.execError(id, logFile, stderr, fmt.Errorf("runtime exit code %d", code))
	}
	return code, nil
}

// execError builds an exec error with the runtime's own message.
func (r *Runtime) execError(id, logFile, stderr string, err error) error {
	msg := LogError(logFile)
	if msg == "" {
		msg = strings.TrimSpace(stderr)
	}
	if msg != "" {
		return fmt.Errorf("%s exec in %s: %w: %s", r.Handler, id, err, msg)
	}
	return fmt.Errorf("%s exec in %s: %w", r.Handler, id, err)
}

// hasErrorLevel reports whether a JSON runtime log has an error entry.
func hasErrorLevel(path string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	for _, l := range bytes.Split(b, []byte("\n")) {
		var e struct{ Level string }
		if json.Unmarshal(l, &e) == nil && (e.Level == "error" || e.Level == "fatal") {
			return true
		}
	}
	return false
}

// receiveConsole accepts the runtime's connection on the console socket and
// returns the pty master it sends with SCM_RIGHTS. It gives up when the
// runtime exits first or ctx ends.
func receiveConsole(ctx context.Context, l *net.UnixListener, cmd *exec.Cmd) (*os.File, error) {
	type result struct {
		f   *os.File
		err error
	}
	ch := make(chan result, 1)
	go func() {
		conn, err := l.AcceptUnix()
		if err != nil {
			ch <- result{nil, err}
			return
		}
		defer conn.Close()
		buf := make([]byte, 256)
		oob := make([]byte, unix.CmsgSpace(4))
		_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
		if err != nil {
			ch <- result{nil, err}
			return
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) == 0 {
			ch <- result{nil, fmt.Errorf("no control message (%v)", err)}
			return
		}
		fds, err := unix.ParseUnixRights(&msgs[0])
		if err != nil || len(fds) != 1 {
			for _, fd := range fds {
				unix.Close(fd)
			}
			ch <- result{nil, fmt.Errorf("expected one fd (%v)", err)}
			return
		}
		unix.CloseOnExec(fds[0])
		_ = unix.SetNonblock(fds[0], true) // pollable: reads can time out
		ch <- result{os.NewFile(uintptr(fds[0]), "pty-master"), nil}
	}()
	// Poll the runtime's liveness while waiting, without reaping it.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case res := <-ch:
			return res.f, res.err
		case <-ctx.Done():
			_ = l.Close()
			return nil, ctx.Err()
		case <-tick.C:
			var si unix.Siginfo
			err := unix.Waitid(unix.P_PID, cmd.Process.Pid, &si, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
			if err == nil && si.Signo != 0 {
				_ = l.Close()
				res := <-ch
				if res.f != nil {
					return res.f, nil
				}
				return nil, errors.New("runtime exited before sending the console")
			}
		}
	}
}
