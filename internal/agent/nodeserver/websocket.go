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

// WebSocket remotecommand subprotocols served: every one the kubelet
// serves (cri-streaming's websocket.go: none, channel.k8s.io,
// base64.channel.k8s.io and their v4 forms) and v5, which kube-apiserver
// serves itself in front of a kubelet and kubectl 1.30+ asks for first.
//
//   - channel.k8s.io (and no subprotocol): binary messages, the first byte
//     the channel: 0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize. The
//     error channel carries only a failure's message, as plain text.
//   - base64.channel.k8s.io: text messages, the channel as an ASCII digit
//     ('0'..'4') followed by the data in base64, both ways.
//   - v4.channel.k8s.io, v4.base64.channel.k8s.io: the same framing; the
//     error channel carries a JSON metav1.Status, success included, with
//     a non-zero exit code as an ExitCode cause.
//   - v5.channel.k8s.io: v4 binary, plus the client's CLOSE signal
//     (message 255, channel) that ends a stream, stdin's EOF.
//
// The resize channel takes JSON {"Width":w,"Height":h} messages.
const (
	wsV1     = wsstream.ChannelWebSocketProtocol
	wsV1Base = wsstream.Base64ChannelWebSocketProtocol
	wsV4     = "v4." + wsstream.ChannelWebSocketProtocol
	wsV4Base = "v4." + wsstream.Base64ChannelWebSocketProtocol
	wsV5     = rcserver.StreamProtocolV5Name
)

// Remotecommand channels.
const (
	stdinChannel = iota
	stdoutChannel
	stderrChannel
	errorChannel
	resizeChannel
)

// remotecommandProtocols maps each subprotocol to its framing (all share
// the channels of one request).
func remotecommandProtocols(channels []wsstream.ChannelType) map[string]wsstream.ChannelProtocolConfig {
	return map[string]wsstream.ChannelProtocolConfig{
		"":       {Binary: true, Channels: channels},
		wsV1:     {Binary: true, Channels: channels},
		wsV1Base: {Binary: false, Channels: channels},
		wsV4:     {Binary: true, Channels: channels},
		wsV4Base: {Binary: false, Channels: channels},
		wsV5:     {Binary: true, Channels: channels},
	}
}

// writeStatusFunc writes how a command ended to the error channel in the
// negotiated protocol's form: pre-v4 protocols write a failure's message
// only, v4 and later a JSON metav1.Status, success included.
func writeStatusFunc(protocol string, errStream io.Writer) func(*metav1.Status) {
	switch protocol {
	case wsV4, wsV4Base, wsV5:
		return func(st *metav1.Status) {
			b, _ := json.Marshal(st)
			_, _ = errStream.Write(b)
		}
	}
	return func(st *metav1.Status) {
		if st.Status != metav1.StatusSuccess {
			_, _ = errStream.Write([]byte(st.Message))
		}
	}
}

// serveWebSocketStream runs an exec or attach over a WebSocket in the
// subprotocol the client asked for first among those served. failure
// prefixes the message of an error other than an exit code, as the
// kubelet words it ("error executing command in container", "error
// attaching to container").
func (s *Server) serveWebSocketStream(w http.ResponseWriter, r *http.Request, opts *rcserver.Options, cid string, run runFunc, failure string) {
	channel := func(on bool, t wsstream.ChannelType) wsstream.ChannelType {
		if on {
			return t
		}
		return wsstream.IgnoreChannel
	}
	channels := []wsstream.ChannelType{
		stdinChannel:  channel(opts.Stdin, wsstream.ReadChannel),
		stdoutChannel: channel(opts.Stdout, wsstream.WriteChannel),
		stderrChannel: channel(opts.Stderr, wsstream.WriteChannel),
		errorChannel:  wsstream.WriteChannel,
		resizeChannel: channel(opts.TTY, wsstream.ReadChannel),
	}
	conn := wsstream.NewConn(remotecommandProtocols(channels))
	conn.SetIdleTimeout(s.opts.StreamIdleTimeout)
	protocol, streams, err := conn.Open(w, s.withStreamLogger(r))
	if err != nil {
		s.log.Debug("websocket upgrade", "path", r.URL.Path, "err", err)
		return
	}
	defer conn.Close()
	writeStatus := writeStatusFunc(protocol, streams[errorChannel])
	// An empty message on the first writable channel tells the client the
	// connection is up.
	switch {
	case opts.Stdout:
		_, _ = streams[stdoutChannel].Write(nil)
	case opts.Stderr:
		_, _ = streams[stderrChannel].Write(nil)
	default:
		_, _ = streams[errorChannel].Write(nil)
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	var resize chan rcserver.TerminalSize
	if opts.TTY {
		resize = make(chan rcserver.TerminalSize)
		go func() {
			defer close(resize)
			dec := json.NewDecoder(streams[resizeChannel])
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
		in = streams[stdinChannel]
	}
	if opts.Stdout {
		out = streams[stdoutChannel]
	}
	if opts.Stderr {
		errw = streams[stderrChannel]
	}
	err = run(ctx, cid, execIO(ctx, in, out, errw, opts.TTY, resize))
	writeStatus(exitStatus(err, failure))
}

// exitStatus is the status the kubelet reports on the error channel: an
// ExitCode cause for a non-zero exit, else an internal error whose message
// failure prefixes.
func exitStatus(err error, failure string) *metav1.Status {
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
		Message: fmt.Sprintf("Internal error occurred: %s: %v", failure, err),
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
