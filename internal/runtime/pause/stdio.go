package pause

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Stream names one of a container's output streams.
type Stream string

// The container output streams Attach follows.
const (
	Stdout Stream = "stdout"
	Stderr Stream = "stderr"
)

// ErrNoStdin is returned (wrapped) by OpenStdin for a container launched
// without Stdin or Terminal.
var ErrNoStdin = errors.New("container has no stdin")

// OpenStdin returns the write end of container id's stdin: a copy of its
// stdin pipe (LaunchRequest.Stdin), or of its pty master when it has a
// terminal (tty is then true). Writes reach the container; the caller closes
// the file when done. Closing it does not close the container's stdin, as
// pause keeps its own copy (see CloseStdin). The container must be running.
func (c *Client) OpenStdin(ctx context.Context, id string) (f *os.File, tty bool, retErr error) {
	uc, err := c.send(ctx, []string{"STDIN", id})
	if err != nil {
		return nil, false, fmt.Errorf("open stdin of %s: %w", id, err)
	}
	defer uc.Close()
	stop := context.AfterFunc(ctx, func() { _ = uc.SetDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 256)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := uc.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, false, fmt.Errorf("open stdin of %s: %w", id, ctxErr(ctx, err))
	}
	var fds []int
	if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
		for _, m := range msgs {
			if got, err := unix.ParseUnixRights(&m); err == nil {
				fds = append(fds, got...)
			}
		}
	}
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	resp := strings.TrimSpace(string(buf[:n]))
	kind, ok := strings.CutPrefix(resp, "OK ")
	if !ok {
		err := replyError(resp)
		if strings.Contains(resp, "has no stdin") {
			err = fmt.Errorf("%w: %w", ErrNoStdin, err)
		}
		return nil, false, fmt.Errorf("open stdin of %s: %w", id, err)
	}
	if len(fds) != 1 {
		return nil, false, fmt.Errorf("open stdin of %s: pause sent %d descriptors", id, len(fds))
	}
	fd := fds[0]
	fds = nil
	unix.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), "stdin-"+id), kind == "tty", nil
}

// CloseStdin closes pause's copy of container id's stdin pipe, so the
// container reads EOF once every copy from OpenStdin is closed too (as
// stdinOnce asks). For a terminal it does nothing. It is idempotent.
func (c *Client) CloseStdin(ctx context.Context, id string) error {
	if err := c.simple(ctx, "CLOSESTDIN", id); err != nil {
		return fmt.Errorf("close stdin of %s: %w", id, err)
	}
	return nil
}

// Resize sets the size of container id's terminal (TIOCSWINSZ on its pty
// master); the container gets SIGWINCH.
func (c *Client) Resize(ctx context.Context, id string, width, height uint16) error {
	if err := c.simple(ctx, "RESIZE", id, strconv.Itoa(int(width)), strconv.Itoa(int(height))); err != nil {
		return fmt.Errorf("resize terminal of %s: %w", id, err)
	}
	return nil
}

// Attach follows one output stream of container id from now on: the
// returned reader yields the raw bytes the container writes (a terminal's
// output is Stdout) and reaches EOF when the container closes the stream
// (it exited). Closing the reader detaches. A reader that falls more than
// about a megabyte behind is cut off (its read fails or ends early), so a
// slow client never holds up the container or its log.
func (c *Client) Attach(ctx context.Context, id string, stream Stream) (io.ReadCloser, error) {
	uc, err := c.send(ctx, []string{"ATTACH", id, string(stream)})
	if err != nil {
		return nil, fmt.Errorf("attach to %s of %s: %w", stream, id, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = uc.SetReadDeadline(time.Now()) })
	br := bufio.NewReader(uc)
	line, err := br.ReadString('\n')
	if !stop() || err != nil {
		uc.Close()
		if err == nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("attach to %s of %s: %w", stream, id, ctxErr(ctx, err))
	}
	if strings.TrimSpace(line) != "OK" {
		uc.Close()
		return nil, fmt.Errorf("attach to %s of %s: %w", stream, id, replyError(line))
	}
	return &attachReader{Reader: br, conn: uc}, nil
}

type attachReader struct {
	io.Reader
	conn net.Conn
}

func (a *attachReader) Close() error { return a.conn.Close() }

// simple sends a request whose reply is "OK" or an ERR line.
func (c *Client) simple(ctx context.Context, fields ...string) error {
	resp, err := c.roundTrip(ctx, fields)
	if err != nil {
		return err
	}
	if strings.TrimSpace(resp) != "OK" {
		return replyError(resp)
	}
	return nil
}

// replyError turns pause's "ERR <code> <signal> <message>" into an error.
func replyError(resp string) error {
	rest, ok := strings.CutPrefix(strings.TrimSpace(resp), "ERR ")
	if !ok {
		return fmt.Errorf("bad reply %q", resp)
	}
	if parts := strings.SplitN(rest, " ", 3); len(parts) == 3 {
		rest = parts[2]
	}
	return errors.New(rest)
}
