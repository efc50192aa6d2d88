package nodeserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// copyLog writes the CRI log file at path to w as opts say, calling flush
// whenever it has caught up with the file. With opts.Follow it then waits
// (inotify, no polling) for more, until exited is closed and the file is
// drained, or ctx ends (which is not an error). Lines that do not parse
// are skipped.
func copyLog(ctx context.Context, path string, w io.Writer, flush func(), opts LogOptions, exited <-chan struct{}) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open log %s: %w", path, err)
	}
	defer f.Close()
	var watch *fileWatch
	if opts.Follow {
		// Before reading, so a write in between is not missed.
		if watch, err = watchFile(path); err != nil {
			return err
		}
		defer watch.Close()
	}
	off, err := tailOffset(f, opts.TailLines)
	if err != nil {
		return fmt.Errorf("read log %s: %w", path, err)
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return fmt.Errorf("read log %s: %w", path, err)
	}
	lw := newLogWriter(w, opts)
	var pending []byte // an incomplete last line, awaiting the rest
	buf := make([]byte, 32*1024)
	drained := false // exited was seen: one last read to the end
	for {
		n, err := f.Read(buf)
		if n > 0 {
			pending = append(pending, buf[:n]...)
			for {
				i := bytes.IndexByte(pending, '\n')
				if i < 0 {
					break
				}
				e, perr := parseCRILine(pending[:i])
				pending = pending[i+1:]
				if perr != nil {
					continue
				}
				if werr := lw.write(e); werr != nil {
					if errors.Is(werr, errLimitReached) {
						flush()
						return nil
					}
					return werr
				}
			}
			if len(pending) == 0 {
				pending = nil
			}
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read log %s: %w", path, err)
		}
		flush()
		if !opts.Follow || drained {
			return nil
		}
		select {
		case <-watch.ch:
		case <-exited:
			drained = true
			exited = nil
		case <-ctx.Done():
			return nil
		}
	}
}

// fileWatch reports modifications of one file on ch (coalesced).
type fileWatch struct {
	f  *os.File
	ch chan struct{}
}

func watchFile(path string) (*fileWatch, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("watch log %s: inotify: %w", path, err)
	}
	if _, err := unix.InotifyAddWatch(fd, path, unix.IN_MODIFY|unix.IN_CLOSE_WRITE|unix.IN_DELETE_SELF|unix.IN_MOVE_SELF); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("watch log %s: %w", path, err)
	}
	w := &fileWatch{f: os.NewFile(uintptr(fd), "inotify"), ch: make(chan struct{}, 1)}
	go func() {
		buf := make([]byte, 4096)
		for {
			if _, err := w.f.Read(buf); err != nil {
				return // closed
			}
			select {
			case w.ch <- struct{}{}:
			default:
			}
		}
	}()
	return w, nil
}

// Close stops the watch.
func (w *fileWatch) Close() error { return w.f.Close() }
