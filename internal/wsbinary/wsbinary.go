// Package wsbinary streams a byte stream, such as a container log, to a
// WebSocket client in Kubernetes' one-way subprotocols, as kube-apiserver
// serves pods/log to WebSocket clients:
//
//   - binary.k8s.io: each chunk read from the stream is one binary
//     message, its bytes unchanged;
//   - base64.binary.k8s.io: each chunk is one text message, base64
//     encoded (for clients that cannot read binary frames);
//   - no subprotocol: as binary.k8s.io.
//
// An empty message goes first, telling the client the stream is open.
// Messages from the client are read and discarded; the client closing the
// connection ends the stream.
//
// Usage: when wsstream.IsWebSocketRequest(r), call Copy(w, r, src, stop),
// where stop unblocks src (cancels whatever produces it), so that a
// follow that would wait for the next line ends as soon as the client
// goes away.
//
// k8s.io/streaming's wsstream.Reader speaks the same protocols, but its
// Copy never returns when the handshake fails and leaves a read of src
// blocked after the client leaves; both matter for a followed log.
package wsbinary

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// The subprotocols served.
const (
	BinaryProtocol       = "binary.k8s.io"
	Base64BinaryProtocol = "base64.binary.k8s.io"
)

// writeWait bounds one message write, so a client that stops reading
// cannot hold the stream (and its source) for ever.
const writeWait = time.Minute

// Copy upgrades the request to a WebSocket and copies src to it until src
// ends (io.EOF: a normal close) or fails, or the client goes away. It
// calls stop (when not nil) exactly once when it is done or the client
// has gone, whichever is first, so a Read blocked on src can end; stop
// must make src's Read return. The error is nil when src ended or the
// client closed the connection. A failed upgrade has been answered with an
// HTTP error by then and is returned.
func Copy(w http.ResponseWriter, r *http.Request, src io.Reader, stop func()) error {
	var once sync.Once
	stopOnce := func() {
		if stop != nil {
			once.Do(stop)
		}
	}
	defer stopOnce()
	up := websocket.Upgrader{
		Subprotocols: []string{BinaryProtocol, Base64BinaryProtocol},
		// Callers authenticate the request by its credentials; browsers'
		// same-origin rules do not apply to API clients (kube-apiserver
		// does not check Origin either).
		CheckOrigin: func(*http.Request) bool { return true },
	}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		return fmt.Errorf("websocket upgrade: %w", err)
	}
	defer conn.Close()
	encode := conn.Subprotocol() == Base64BinaryProtocol

	// The client sends nothing we use; reading is how its close (or its
	// disappearance) is noticed.
	var gone atomic.Bool
	go func() {
		for {
			if _, _, err := conn.NextReader(); err != nil {
				gone.Store(true)
				stopOnce()
				return
			}
		}
	}()
	// clientGone reports a failed write or read: nil once the client has
	// closed the connection (stop then ends src with some error of its
	// own), else err.
	clientGone := func(err error) error {
		if gone.Load() || websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway) || errors.Is(err, websocket.ErrCloseSent) {
			return nil
		}
		return err
	}

	send := func(b []byte) error {
		_ = conn.SetWriteDeadline(time.Now().Add(writeWait))
		if encode {
			return conn.WriteMessage(websocket.TextMessage, []byte(base64.StdEncoding.EncodeToString(b)))
		}
		return conn.WriteMessage(websocket.BinaryMessage, b)
	}
	if err := send(nil); err != nil {
		return clientGone(fmt.Errorf("write websocket: %w", err))
	}
	buf := make([]byte, 32*1024)
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			if err := send(buf[:n]); err != nil {
				return clientGone(fmt.Errorf("write websocket: %w", err))
			}
		}
		if errors.Is(rerr, io.EOF) {
			_ = conn.SetWriteDeadline(time.Now().Add(writeWait))
			_ = conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
			return nil
		}
		if rerr != nil {
			return clientGone(fmt.Errorf("read stream: %w", rerr))
		}
	}
}
