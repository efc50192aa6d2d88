package wsbinary

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// serve runs Copy of what the test writes to the returned pipe, and
// reports Copy's result and whether stop was called.
func serve(t *testing.T) (url string, in *io.PipeWriter, stopped chan struct{}, result chan error) {
	t.Helper()
	pr, pw := io.Pipe()
	stopped = make(chan struct{})
	result = make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		result <- Copy(w, r, pr, func() {
			close(stopped)
			pr.CloseWithError(io.ErrClosedPipe) // what a cancelled log follow does
		})
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http"), pw, stopped, result
}

func dial(t *testing.T, url string, protocols ...string) *websocket.Conn {
	t.Helper()
	conn, resp, err := (&websocket.Dialer{Subprotocols: protocols}).Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %v: %v (%v)", protocols, err, resp)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	return conn
}

// read returns the next message's type and payload.
func read(t *testing.T, conn *websocket.Conn) (int, string) {
	t.Helper()
	typ, b, err := conn.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return typ, string(b)
}

func wait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not happen", what)
	}
	var zero T
	return zero
}

func TestProtocols(t *testing.T) {
	for _, tc := range []struct {
		name      string
		protocols []string
		wantProto string
		wantType  int
		decode    func(string) string
	}{
		{"binary", []string{BinaryProtocol}, BinaryProtocol, websocket.BinaryMessage, func(s string) string { return s }},
		{"base64", []string{Base64BinaryProtocol}, Base64BinaryProtocol, websocket.TextMessage, func(s string) string {
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				t.Fatalf("not base64: %q", s)
			}
			return string(b)
		}},
		{"first offered wins", []string{Base64BinaryProtocol, BinaryProtocol}, Base64BinaryProtocol, websocket.TextMessage, nil},
		{"none is binary", nil, "", websocket.BinaryMessage, func(s string) string { return s }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url, in, _, result := serve(t)
			conn := dial(t, url, tc.protocols...)
			if conn.Subprotocol() != tc.wantProto {
				t.Fatalf("negotiated %q, want %q", conn.Subprotocol(), tc.wantProto)
			}
			// The empty message says the stream is open.
			if typ, msg := read(t, conn); typ != tc.wantType || msg != "" {
				t.Fatalf("first message: type %d %q, want an empty one of type %d", typ, msg, tc.wantType)
			}
			if tc.decode == nil {
				return
			}
			go func() { _, _ = in.Write([]byte("line one\n")) }()
			if typ, msg := read(t, conn); typ != tc.wantType || tc.decode(msg) != "line one\n" {
				t.Fatalf("message: type %d %q", typ, msg)
			}
			// The end of the stream closes the connection normally.
			in.Close()
			if _, _, err := conn.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
				t.Fatalf("after the end: %v, want a normal close", err)
			}
			if err := wait(t, result, "Copy returning"); err != nil {
				t.Fatalf("Copy: %v", err)
			}
		})
	}
}

// A client that leaves ends a stream that has nothing more to say: stop
// is called, and Copy returns without an error.
func TestClientCloseStopsTheSource(t *testing.T) {
	url, _, stopped, result := serve(t)
	conn := dial(t, url, BinaryProtocol)
	read(t, conn)
	_ = conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	conn.Close()
	wait(t, stopped, "stop")
	if err := wait(t, result, "Copy returning"); err != nil {
		t.Fatalf("Copy: %v", err)
	}
}

// A plain HTTP request is refused, and stop still runs.
func TestNotAWebSocket(t *testing.T) {
	url, _, stopped, result := serve(t)
	resp, err := http.Get("http" + strings.TrimPrefix(url, "ws"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("status %d, want 400", resp.StatusCode)
	}
	wait(t, stopped, "stop")
	if err := wait(t, result, "Copy returning"); err == nil {
		t.Error("Copy of a plain request returned nil")
	}
}
