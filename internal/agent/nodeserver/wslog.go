package nodeserver

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"
)

// withStreamLogger gives wsstream, which logs through the logger in the
// request's context (klog's, on standard error, otherwise), this server's
// logger. A receive that fails because the connection was closed is how
// every exec and attach ends (the handler closes the connection once the
// process is gone, while wsstream's reader still waits on it): it is
// logged at Debug, not as the Error wsstream calls it.
func (s *Server) withStreamLogger(r *http.Request) *http.Request {
	logger := logr.FromSlogHandler(closedAtDebug{s.log.Handler()})
	return r.WithContext(klog.NewContext(r.Context(), logger))
}

// closedAtDebug is a slog.Handler that lowers records carrying an error
// for a closed connection to Debug.
type closedAtDebug struct{ slog.Handler }

func (h closedAtDebug) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Level > slog.LevelDebug && closedConnection(rec) {
		if !h.Handler.Enabled(ctx, slog.LevelDebug) {
			return nil
		}
		rec.Level = slog.LevelDebug
	}
	return h.Handler.Handle(ctx, rec)
}

func (h closedAtDebug) WithAttrs(attrs []slog.Attr) slog.Handler {
	return closedAtDebug{h.Handler.WithAttrs(attrs)}
}

func (h closedAtDebug) WithGroup(name string) slog.Handler {
	return closedAtDebug{h.Handler.WithGroup(name)}
}

// closedConnection reports whether rec carries an error wrapping
// net.ErrClosed.
func closedConnection(rec slog.Record) bool {
	closed := false
	rec.Attrs(func(a slog.Attr) bool {
		if err, ok := a.Value.Any().(error); ok && errors.Is(err, net.ErrClosed) {
			closed = true
			return false
		}
		return true
	})
	return closed
}
