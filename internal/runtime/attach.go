package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/peapod/peapod/internal/network/netns"
	"github.com/peapod/peapod/internal/runtime/oci"
	"github.com/peapod/peapod/internal/runtime/pause"
)

// ErrNotRunning: the container or sandbox is not running, so there is
// nothing to attach or forward to.
var ErrNotRunning = errors.New("not running")

// Attach connects stdio to the main process of a running container, as
// `kubectl attach` does: Stdout and Stderr receive what the container
// writes from now on (with a terminal, everything arrives on Stdout),
// Stdin is copied to the container's stdin (the pod must ask for
// `stdin: true` or `tty: true`), and Resize sizes its terminal.
//
// It returns when the container's output ends (it exited), when ctx ends,
// or when Stdin ends: then, for a container with stdinOnce and no
// terminal, the container's stdin is closed and Attach waits for its
// output to end; otherwise Attach just detaches. A detached container
// keeps running. The caller's readers are not closed by Attach; a copy
// still blocked reading Stdin ends when the caller closes it.
func (r *Runtime) Attach(ctx context.Context, cid string, stdio oci.ExecIO) error {
	sandboxID, err := r.sandboxOf(cid)
	if err != nil {
		return err
	}
	sb, err := r.loadSandbox(sandboxID)
	if err != nil {
		return err
	}
	st, err := r.containerStatus(sb, cid)
	if err != nil {
		return err
	}
	if st.State != ContainerRunning {
		return fmt.Errorf("attach to container %q: %w (state %s)", st.Name, ErrNotRunning, st.State)
	}
	spec, _ := findContainer(sb.Pod, st.Name)
	if spec == nil {
		return fmt.Errorf("attach to container %q: %w: not in the pod spec", st.Name, ErrNotFound)
	}
	tty, stdinOnce := spec.TTY, spec.StdinOnce
	client := pause.Dial(r.sandboxDir(sandboxID))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Subscribe to the output before stdin is connected, so the answer
	// to the first thing typed is not missed.
	var outputs sync.WaitGroup
	var readers []io.Closer
	defer func() {
		for _, rc := range readers {
			rc.Close()
		}
	}()
	follow := func(stream pause.Stream, w io.Writer) error {
		rc, err := client.Attach(ctx, cid, stream)
		if err != nil {
			return fmt.Errorf("attach to container %q: %w", st.Name, err)
		}
		readers = append(readers, rc)
		outputs.Add(1)
		go func() {
			defer outputs.Done()
			ew := &errWriter{w: w}
			_, _ = io.Copy(ew, rc)
			if ew.err != nil {
				cancel() // the client went away: detach
			}
		}()
		return nil
	}
	if stdio.Stdout != nil {
		if err := follow(pause.Stdout, stdio.Stdout); err != nil {
			return err
		}
	}
	if stdio.Stderr != nil && !tty {
		if err := follow(pause.Stderr, stdio.Stderr); err != nil {
			return err
		}
	}
	outputDone := make(chan struct{})
	if len(readers) > 0 {
		go func() { outputs.Wait(); close(outputDone) }()
	} else {
		go func() {
			_, _ = r.WaitContainer(ctx, cid)
			close(outputDone)
		}()
	}

	var stdinDone chan struct{} // nil (never ready) without stdin
	if stdio.Stdin != nil {
		in, _, err := client.OpenStdin(ctx, cid)
		if errors.Is(err, pause.ErrNoStdin) {
			return fmt.Errorf("attach to container %q: %w: stdin is not enabled for this container (stdin: true)", st.Name, ErrInvalid)
		}
		if err != nil {
			return fmt.Errorf("attach to container %q: %w", st.Name, err)
		}
		readers = append(readers, in)
		stdinDone = make(chan struct{})
		go func() {
			defer close(stdinDone)
			_, _ = io.Copy(in, stdio.Stdin)
			// Our copy must go for stdinOnce's EOF to reach the container.
			in.Close()
		}()
	}
	if stdio.Resize != nil && tty {
		go func() {
			for {
				select {
				case sz, ok := <-stdio.Resize:
					if !ok {
						return
					}
					if err := client.Resize(ctx, cid, sz.Width, sz.Height); err != nil && ctx.Err() == nil {
						r.log.Debug("resize terminal", "container", cid, "err", err)
					}
				case <-ctx.Done():
					return
				}
			}
		}()
	}

	select {
	case <-outputDone:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-stdinDone:
	}
	if !stdinOnce || tty {
		return nil // detach; the container keeps its stdin
	}
	cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer ccancel()
	if err := client.CloseStdin(cctx, cid); err != nil {
		return fmt.Errorf("attach to container %q: %w", st.Name, err)
	}
	select {
	case <-outputDone:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// PortForward connects stream to port on 127.0.0.1 inside the sandbox's
// network namespace, as `kubectl port-forward` does, and copies both ways.
// When stream's input ends the connection is half-closed; PortForward
// returns once the pod's side closed (everything it sent is copied), or
// when ctx ends. It closes neither stream nor anything of the caller's
// but the connection it made.
func (r *Runtime) PortForward(ctx context.Context, sandboxID string, port int32, stream io.ReadWriteCloser) error {
	if port <= 0 || port > 65535 {
		return fmt.Errorf("port forward to sandbox %s: %w: port %d", sandboxID, ErrInvalid, port)
	}
	sb, err := r.loadSandbox(sandboxID)
	if err != nil {
		return err
	}
	if !sb.Ready || !pauseAlive(sb) {
		return fmt.Errorf("port forward to sandbox %s: %w", sandboxID, ErrNotRunning)
	}
	var conn net.Conn
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port)))
	dial := func() error {
		d := net.Dialer{Timeout: 10 * time.Second}
		c, err := d.DialContext(ctx, "tcp4", addr)
		conn = c
		return err
	}
	if sb.NetNSPath == "" {
		err = dial() // a hostNetwork pod's localhost is the node's
	} else {
		// A socket made inside the pod's netns stays there: only
		// creating it needs the namespace.
		err = netns.Do(sb.NetNSPath, dial)
	}
	if err != nil {
		return fmt.Errorf("port forward to sandbox %s: connect to %s in the pod: %w", sandboxID, addr, err)
	}
	defer conn.Close()
	toStream := make(chan error, 1)
	go func() {
		_, err := io.Copy(stream, conn)
		toStream <- err
	}()
	go func() {
		_, _ = io.Copy(conn, stream)
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}()
	select {
	case err := <-toStream:
		if err != nil && !errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("port forward to sandbox %s port %d: %w", sandboxID, port, err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// errWriter remembers whether writing (rather than reading) failed.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil {
		e.err = err
	}
	return n, err
}
