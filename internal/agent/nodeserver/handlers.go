package nodeserver

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	pfserver "k8s.io/cri-streaming/pkg/streaming/portforward"
	rcserver "k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/streaming/pkg/httpstream/wsstream"
	utilexec "k8s.io/utils/exec"

	"github.com/peapod/peapod/internal/runtime/oci"
	"github.com/peapod/peapod/internal/wsbinary"
)

// serveLogs serves GET /containerLogs/{namespace}/{pod}/{container}.
func (s *Server) serveLogs(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	opts, err := ParseLogOptions(r.URL.Query(), time.Now())
	if err != nil {
		s.writeError(w, r, errorf(http.StatusBadRequest, "%v", err))
		return
	}
	ns, pod, container := r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container")
	src, err := s.logFile(ctx, ns, pod, container, opts.Previous)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	exited := make(chan struct{})
	if opts.Follow && src.container != nil {
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() {
			if _, err := s.rt.WaitContainer(wctx, src.container.ID); err == nil {
				close(exited)
			}
		}()
	} else {
		close(exited)
	}
	if wsstream.IsWebSocketRequest(r) {
		s.serveLogsOverWebSocket(ctx, w, r, src.path, opts, exited)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	rc := http.NewResponseController(w)
	flush := func() { _ = rc.Flush() }
	if err := copyLog(ctx, src.path, w, flush, opts, exited); err != nil && ctx.Err() == nil {
		s.log.Warn("serve container log", "pod", ns+"/"+pod, "container", container, "err", err)
	}
}

// serveLogsOverWebSocket streams a container log to a WebSocket client
// (binary.k8s.io or base64.binary.k8s.io), as kube-apiserver serves
// pods/log; the kubelet itself has only the plain stream, but a client
// reaching this server through nodes/proxy gets the same choice as
// through pods/log. The client leaving ends a follow.
func (s *Server) serveLogsOverWebSocket(ctx context.Context, w http.ResponseWriter, r *http.Request, path string, opts LogOptions, exited <-chan struct{}) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		pw.CloseWithError(copyLog(ctx, path, pw, func() {}, opts, exited))
	}()
	err := wsbinary.Copy(w, r, pr, func() {
		cancel()
		pr.CloseWithError(context.Canceled)
	})
	<-copied
	if err != nil {
		s.log.Debug("container log over websocket", "path", r.URL.Path, "err", err)
	}
}

// streamOptions reads which streams an exec or attach wants: the kubelet's
// input/output/error/tty, or the API's stdin/stdout/stderr/tty.
func streamOptions(r *http.Request) (*rcserver.Options, error) {
	q := r.URL.Query()
	flag := func(names ...string) bool {
		for _, n := range names {
			if v := q.Get(n); v != "" {
				if b, err := strconv.ParseBool(v); err == nil && b {
					return true
				}
			}
		}
		return false
	}
	o := &rcserver.Options{
		Stdin:  flag(rcserver.ExecStdinParam, "stdin"),
		Stdout: flag(rcserver.ExecStdoutParam, "stdout"),
		Stderr: flag(rcserver.ExecStderrParam, "stderr"),
		TTY:    flag(rcserver.ExecTTYParam),
	}
	if o.TTY {
		o.Stderr = false // a terminal multiplexes both on stdout
	}
	if !o.Stdin && !o.Stdout && !o.Stderr {
		return nil, fmt.Errorf("you must specify at least 1 of stdin, stdout, stderr")
	}
	return o, nil
}

// serveExec serves /exec/{namespace}/{pod}[/{uid}]/{container}?command=...
func (s *Server) serveExec(w http.ResponseWriter, r *http.Request) {
	cmd := r.URL.Query()["command"]
	if len(cmd) == 0 {
		s.writeError(w, r, errorf(http.StatusBadRequest, "you must specify at least one command for the container"))
		return
	}
	s.serveStream(w, r, func(ctx context.Context, cid string, stdio oci.ExecIO) error {
		code, err := s.rt.Exec(ctx, cid, cmd, stdio)
		if err != nil {
			return err
		}
		if code != 0 {
			return utilexec.CodeExitError{Err: fmt.Errorf("command terminated with exit code %d", code), Code: code}
		}
		return nil
	})
}

// serveAttach serves /attach/{namespace}/{pod}[/{uid}]/{container}.
func (s *Server) serveAttach(w http.ResponseWriter, r *http.Request) {
	s.serveStream(w, r, s.rt.Attach)
}

// runFunc runs an exec or attach over connected streams. A non-zero exit
// is a utilexec.ExitError.
type runFunc func(ctx context.Context, cid string, stdio oci.ExecIO) error

// serveStream resolves the container, then speaks the remotecommand
// protocol the client chose: WebSocket (v5.channel.k8s.io down to
// channel.k8s.io, binary or base64; websocket.go) or SPDY
// (v4.channel.k8s.io down to v1).
func (s *Server) serveStream(w http.ResponseWriter, r *http.Request, run runFunc) {
	opts, err := streamOptions(r)
	if err != nil {
		s.writeError(w, r, errorf(http.StatusBadRequest, "%v", err))
		return
	}
	c, err := s.runningContainer(r.Context(), r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("uid"), r.PathValue("container"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	attach := strings.HasPrefix(r.URL.Path, "/attach/")
	if wsstream.IsWebSocketRequest(r) {
		failure := "error executing command in container"
		if attach {
			failure = "error attaching to container"
		}
		s.serveWebSocketStream(w, r, opts, c.ID, run, failure)
		return
	}
	adapter := streamAdapter{run: run}
	if attach {
		rcserver.ServeAttach(w, r, adapter, "", "", c.ID, opts, s.opts.StreamIdleTimeout, s.opts.StreamCreationTimeout, rcserver.SupportedStreamingProtocols)
		return
	}
	rcserver.ServeExec(w, r, adapter, "", "", c.ID, nil, opts, s.opts.StreamIdleTimeout, s.opts.StreamCreationTimeout, rcserver.SupportedStreamingProtocols)
}

// streamAdapter lets cri-streaming's SPDY server drive a runFunc.
type streamAdapter struct{ run runFunc }

func (a streamAdapter) ExecInContainer(ctx context.Context, _, _, cid string, _ []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan rcserver.TerminalSize, _ time.Duration) error {
	return a.run(ctx, cid, execIO(ctx, in, out, errw, tty, resize))
}

func (a streamAdapter) AttachContainer(ctx context.Context, _, _, cid string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan rcserver.TerminalSize) error {
	return a.run(ctx, cid, execIO(ctx, in, out, errw, tty, resize))
}

// execIO turns remotecommand streams into the runtime's ExecIO. Absent
// streams arrive as typed nils and are left nil.
func execIO(ctx context.Context, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan rcserver.TerminalSize) oci.ExecIO {
	stdio := oci.ExecIO{TTY: tty}
	if in != nil {
		stdio.Stdin = in
	}
	if out != nil {
		stdio.Stdout = out
	}
	if errw != nil {
		stdio.Stderr = errw
	}
	if resize != nil {
		ch := make(chan oci.TerminalSize, 1)
		go func() {
			defer close(ch)
			for {
				select {
				case sz, ok := <-resize:
					if !ok {
						return
					}
					select {
					case ch <- oci.TerminalSize{Width: sz.Width, Height: sz.Height}:
					case <-ctx.Done():
						return
					}
				case <-ctx.Done():
					return
				}
			}
		}()
		stdio.Resize = ch
	}
	return stdio
}

// servePortForward serves /portForward/{namespace}/{pod}[/{uid}] over SPDY
// (portforward.k8s.io) or WebSocket (v4.channel.k8s.io with ?port=).
func (s *Server) servePortForward(w http.ResponseWriter, r *http.Request) {
	sandboxes, err := s.podSandboxes(r.Context(), r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("uid"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	sb := sandboxes[len(sandboxes)-1]
	if !sb.Ready || !sb.Alive {
		s.writeError(w, r, errorf(http.StatusBadRequest, "pod %q is not running", r.PathValue("pod")))
		return
	}
	if isTunnelingRequest(r) {
		s.serveTunneledPortForward(w, r, sb.ID)
		return
	}
	opts, err := pfserver.NewV4Options(r)
	if err != nil {
		s.writeError(w, r, errorf(http.StatusBadRequest, "%v", err))
		return
	}
	pfserver.ServePortForward(w, r, portForwarder{s.rt}, sb.ID, "", opts, s.opts.StreamIdleTimeout, s.opts.StreamCreationTimeout, pfserver.SupportedProtocols)
}

// portForwarder binds cri-streaming's "pod name" argument to the sandbox ID.
type portForwarder struct{ rt PodRuntime }

func (p portForwarder) PortForward(ctx context.Context, sandboxID, _ string, port int32, stream io.ReadWriteCloser) error {
	return p.rt.PortForward(ctx, sandboxID, port, stream)
}
