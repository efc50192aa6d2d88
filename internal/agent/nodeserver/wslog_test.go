package nodeserver

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/go-logr/logr"
)

// The end of every exec (a receive on the connection the handler closed)
// is Debug; any other stream error stays an Error.
func TestClosedConnectionIsDebug(t *testing.T) {
	var buf bytes.Buffer
	logger := logr.FromSlogHandler(closedAtDebug{slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})})
	logger.Error(fmt.Errorf("read tcp 1.2.3.4:1->1.2.3.4:2: %w", net.ErrClosed), "Error on socket receive")
	if buf.Len() != 0 {
		t.Errorf("a closed connection was logged above Debug: %s", buf.String())
	}
	logger.Error(errors.New("bad frame"), "Error on socket receive")
	if !strings.Contains(buf.String(), "level=ERROR") || !strings.Contains(buf.String(), "bad frame") {
		t.Errorf("another error was not logged as an Error: %q", buf.String())
	}
}
