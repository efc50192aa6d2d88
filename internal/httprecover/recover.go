// Package httprecover keeps a panicking HTTP handler from leaving its
// request unanswered.
//
// net/http recovers a handler's panic itself, but only by logging it and
// closing the connection: the client sees EOF, not an error, and the
// panic is easy to miss. Handler recovers instead, hands the panic and
// its stack to the caller's OnPanic (which logs it, counts it and writes
// the 500 in its own format) and, when the response had already started
// and a 500 can no longer be sent, aborts the connection with
// http.ErrAbortHandler so the client sees a broken response rather than a
// truncated one that looks complete.
package httprecover

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime/debug"
)

// Panic is a recovered panic with the stack of the goroutine that
// panicked.
type Panic struct {
	Value any
	Stack []byte
}

// Error describes the panic's value.
func (p Panic) Error() string { return fmt.Sprintf("panic: %v", p.Value) }

// OnPanic answers a request whose handler panicked. started says whether
// the response had begun (status or body written, or the connection
// hijacked): then w must not be written to, and OnPanic should only
// record the panic.
type OnPanic func(w http.ResponseWriter, r *http.Request, p Panic, started bool)

// Handler runs next, recovering its panics with onPanic. A panic with
// http.ErrAbortHandler is a deliberate abort and passes through.
func Handler(next http.Handler, onPanic OnPanic) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tw := &trackingWriter{ResponseWriter: w}
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				panic(v)
			}
			p := Panic{Value: v, Stack: debug.Stack()}
			started := tw.started
			onPanic(tw, r, p, started)
			if started {
				panic(http.ErrAbortHandler)
			}
		}()
		next.ServeHTTP(tw, r)
	})
}

// trackingWriter notes whether the response has started. It keeps the
// optional interfaces handlers rely on (Flusher for watches, Hijacker for
// exec and port-forward upgrades) and Unwrap for http.ResponseController.
type trackingWriter struct {
	http.ResponseWriter
	started bool
}

func (t *trackingWriter) WriteHeader(code int) {
	// 1xx responses (100 Continue, 101 is a hijack) do not start the
	// final response.
	if code >= 200 {
		t.started = true
	}
	t.ResponseWriter.WriteHeader(code)
}

func (t *trackingWriter) Write(b []byte) (int, error) {
	t.started = true
	return t.ResponseWriter.Write(b)
}

func (t *trackingWriter) Flush() {
	t.started = true
	if f, ok := t.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (t *trackingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := t.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, fmt.Errorf("hijack: %T does not support it", t.ResponseWriter)
	}
	t.started = true
	return hj.Hijack()
}

// Unwrap lets http.ResponseController reach the real writer.
func (t *trackingWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }
