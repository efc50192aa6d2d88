package nodeserver

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"

	gwebsocket "github.com/gorilla/websocket"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/portforward"
	pfserver "k8s.io/cri-streaming/pkg/streaming/portforward"
	rcserver "k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/streaming/pkg/httpstream/wsstream"
	utilexec "k8s.io/utils/exec"
)

// WebSocket remotecommand subprotocols served. cri-streaming's own
// WebSocket server stops at v4; kubectl 1.30+ speaks v5 (v4 plus a CLOSE
// signal that ends stdin), which wsstream handles once negotiated.
const (
	wsV5     = rcserver.StreamProtocolV5Name
	wsV4     = "v4." + wsstream.ChannelWebSocketProtocol
	wsV4Base = "v4." + wsstream.Base64ChannelWebSocketProtocol
)

// serveWebSocketStream runs an exec or attach over a WebSocket: channel 0
// stdin, 1 stdout, 2 stderr, 3 the status (a JSON metav1.Status, as SPDY
// v4 writes it), 4 resize events.
func (s *Server) serveWebSocketStream(w http.ResponseWriter, r *http.Request, opts *rcserver.Options, cid string, run runFunc) {
	channel := func(on bool, t wsstream.ChannelType) wsstream.ChannelType {
		if on {
			return t
		}
		return wsstream.IgnoreChannel
	}
	channels := []wsstream.ChannelType{
		channel(opts.Stdin, wsstream.ReadChannel),
		channel(opts.Stdout, wsstream.WriteChannel),
		channel(opts.Stderr, wsstream.WriteChannel),
		wsstream.WriteChannel,
		channel(opts.TTY, wsstream.ReadChannel),
	}
	conn := wsstream.NewConn(map[string]wsstream.ChannelProtocolConfig{
		wsV5:     {Binary: true, Channels: channels},
		wsV4:     {Binary: true, Channels: channels},
		wsV4Base: {Binary: false, Channels: channels},
	})
	conn.SetIdleTimeout(s.opts.StreamIdleTimeout)
	_, streams, err := conn.Open(w, r)
	if err != nil {
		s.log.Debug("websocket upgrade", "path", r.URL.Path, "err", err)
		return
	}
	defer conn.Close()
	// An empty message on the first writable channel tells the client the
	// connection is up.
	switch {
	case opts.Stdout:
		_, _ = streams[1].Write(nil)
	case opts.Stderr:
		_, _ = streams[2].Write(nil)
	default:
		_, _ = streams[3].Write(nil)
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	var resize chan rcserver.TerminalSize
	if opts.TTY {
		resize = make(chan rcserver.TerminalSize)
		go func() {
			defer close(resize)
			dec := json.NewDecoder(streams[4])
			for {
				var sz rcserver.TerminalSize
				if err := dec.Decode(&sz); err != nil {
					return
				}
				select {
				case resize <- sz:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	var in io.Reader
	var out, errw io.WriteCloser
	if opts.Stdin {
		in = streams[0]
	}
	if opts.Stdout {
		out = streams[1]
	}
	if opts.Stderr {
		errw = streams[2]
	}
	err = run(ctx, cid, execIO(ctx, in, out, errw, opts.TTY, resize))
	status, _ := json.Marshal(exitStatus(err))
	_, _ = streams[3].Write(status)
}

// exitStatus is the status the kubelet reports on the error channel: an
// ExitCode cause for a non-zero exit, else an internal error.
func exitStatus(err error) *metav1.Status {
	if err == nil {
		return &metav1.Status{Status: metav1.StatusSuccess}
	}
	var exitErr utilexec.ExitError
	if errors.As(err, &exitErr) && exitErr.Exited() {
		return &metav1.Status{
			Status:  metav1.StatusFailure,
			Reason:  rcserver.NonZeroExitCodeReason,
			Message: fmt.Sprintf("command terminated with non-zero exit code: %v", exitErr),
			Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{
				Type:    rcserver.ExitCodeCauseType,
				Message: fmt.Sprint(exitErr.ExitStatus()),
			}}},
		}
	}
	return &metav1.Status{
		Status:  metav1.StatusFailure,
		Reason:  metav1.StatusReasonInternalError,
		Code:    http.StatusInternalServerError,
		Message: fmt.Sprintf("Internal error occurred: %v", err),
	}
}

// isTunnelingRequest reports a WebSocket asking for SPDY tunneled inside it
// (kubectl 1.31+ port-forward: "SPDY/3.1+portforward.k8s.io").
func isTunnelingRequest(r *http.Request) bool {
	if !wsstream.IsWebSocketRequest(r) {
		return false
	}
	for _, p := range gwebsocket.Subprotocols(r) {
		if p == pfserver.WebsocketsSPDYTunnelingPortForwardV1 {
			return true
		}
	}
	return false
}

// serveTunneledPortForward accepts the WebSocket and serves SPDY port
// forwarding over the byte stream it carries, as the API server's
// tunneling handler does in front of a kubelet.
func (s *Server) serveTunneledPortForward(w http.ResponseWriter, r *http.Request, sandboxID string) {
	up := gwebsocket.Upgrader{
		Subprotocols: []string{pfserver.WebsocketsSPDYTunnelingPortForwardV1},
		// Clients are authenticated by their certificate, not an origin.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		s.log.Debug("websocket upgrade", "path", r.URL.Path, "err", err)
		return
	}
	tunnel := portforward.NewTunnelingConnection("server", ws)
	defer tunnel.Close()
	// Hand cri-streaming's SPDY server the tunnel as a hijacked connection
	// of a plain SPDY upgrade request; its 101 response goes nowhere, as
	// the WebSocket handshake already switched protocols.
	req := r.Clone(r.Context())
	req.Header = http.Header{}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "SPDY/3.1")
	req.Header.Set("X-Stream-Protocol-Version", pfserver.ProtocolV1Name)
	resp := &tunnelResponse{header: http.Header{}, conn: tunnel}
	pfserver.ServePortForward(resp, req, portForwarder{s.rt}, sandboxID, "", &pfserver.V4Options{}, s.opts.StreamIdleTimeout, s.opts.StreamCreationTimeout, pfserver.SupportedProtocols)
}

// tunnelResponse is the http.ResponseWriter of a tunneled SPDY upgrade.
type tunnelResponse struct {
	header http.Header
	conn   net.Conn
}

func (t *tunnelResponse) Header() http.Header         { return t.header }
func (t *tunnelResponse) Write(b []byte) (int, error) { return len(b), nil }
func (t *tunnelResponse) WriteHeader(int)             {}

func (t *tunnelResponse) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return t.conn, bufio.NewReadWriter(bufio.NewReader(t.conn), bufio.NewWriter(t.conn)), nil
}

var _ http.Hijacker = (*tunnelResponse)(nil)
