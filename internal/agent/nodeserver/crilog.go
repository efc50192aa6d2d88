package nodeserver

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"time"
)

// LogOptions are the kubelet's /containerLogs query parameters.
type LogOptions struct {
	Follow     bool
	Previous   bool
	Timestamps bool
	// TailLines keeps only the last lines; -1 keeps all.
	TailLines int64
	// Since drops lines logged before it; zero keeps all.
	Since time.Time
	// LimitBytes stops after that many bytes; 0 is no limit.
	LimitBytes int64
}

// ParseLogOptions reads the query of a /containerLogs request as the API
// server sends it (PodLogOptions: follow, previous, timestamps, tailLines,
// sinceSeconds, sinceTime as RFC3339, limitBytes). now resolves
// sinceSeconds. Booleans accept what strconv.ParseBool does.
func ParseLogOptions(q url.Values, now time.Time) (LogOptions, error) {
	o := LogOptions{TailLines: -1}
	for name, dst := range map[string]*bool{"follow": &o.Follow, "previous": &o.Previous, "timestamps": &o.Timestamps} {
		if v := q.Get(name); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return o, fmt.Errorf("invalid %s %q: %w", name, v, err)
			}
			*dst = b
		}
	}
	if v := q.Get("tailLines"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return o, fmt.Errorf("invalid tailLines %q: must be a number >= 0", v)
		}
		o.TailLines = n
	}
	if v := q.Get("limitBytes"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return o, fmt.Errorf("invalid limitBytes %q: must be a number > 0", v)
		}
		o.LimitBytes = n
	}
	sinceSeconds, sinceTime := q.Get("sinceSeconds"), q.Get("sinceTime")
	if sinceSeconds != "" && sinceTime != "" {
		return o, errors.New("at most one of sinceTime or sinceSeconds may be specified")
	}
	if sinceSeconds != "" {
		n, err := strconv.ParseInt(sinceSeconds, 10, 64)
		if err != nil || n < 1 {
			return o, fmt.Errorf("invalid sinceSeconds %q: must be a number > 0", sinceSeconds)
		}
		o.Since = now.Add(-time.Duration(n) * time.Second)
	}
	if sinceTime != "" {
		t, err := time.Parse(time.RFC3339, sinceTime)
		if err != nil {
			return o, fmt.Errorf("invalid sinceTime %q: %w", sinceTime, err)
		}
		o.Since = t
	}
	return o, nil
}

// criEntry is one line of a CRI log file:
// "<RFC3339Nano time> <stdout|stderr> <P|F> <message>".
type criEntry struct {
	Time    time.Time
	Stream  string
	Partial bool
	Msg     []byte
}

// parseCRILine parses one CRI log line without its trailing newline.
func parseCRILine(line []byte) (criEntry, error) {
	var e criEntry
	ts, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok {
		return e, fmt.Errorf("malformed CRI log line %.60q", line)
	}
	t, err := time.Parse(time.RFC3339Nano, string(ts))
	if err != nil {
		return e, fmt.Errorf("malformed CRI log time %q: %w", ts, err)
	}
	stream, rest, ok := bytes.Cut(rest, []byte{' '})
	if !ok || (string(stream) != "stdout" && string(stream) != "stderr") {
		return e, fmt.Errorf("malformed CRI log stream in %.60q", line)
	}
	tag, msg, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		// "... stdout F" with an empty message and no space is tolerated.
		tag, msg = rest, nil
	}
	switch string(tag) {
	case "P":
		e.Partial = true
	case "F":
	default:
		return e, fmt.Errorf("malformed CRI log tag %q", tag)
	}
	e.Time, e.Stream, e.Msg = t, string(stream), msg
	return e, nil
}

// errLimitReached ends a copy once LimitBytes were written.
var errLimitReached = errors.New("log limit reached")

// logWriter writes log entries the way the kubelet does: the message text,
// a newline after each full (F) entry, partial (P) entries joined to what
// follows, and with Timestamps the entry's time in RFC3339Nano and a space
// at the start of each line.
type logWriter struct {
	w         io.Writer
	opts      LogOptions
	written   int64
	midLine   bool // the last entry written was partial
	skipping  bool // dropping the rest of a line that began before Since
	remaining int64
}

func newLogWriter(w io.Writer, opts LogOptions) *logWriter {
	return &logWriter{w: w, opts: opts, remaining: opts.LimitBytes}
}

// write writes one entry; it returns errLimitReached once LimitBytes are out.
func (lw *logWriter) write(e criEntry) error {
	startsLine := !lw.midLine
	lw.midLine = e.Partial
	if startsLine {
		lw.skipping = !lw.opts.Since.IsZero() && e.Time.Before(lw.opts.Since)
	}
	if lw.skipping {
		return nil
	}
	var buf []byte
	if lw.opts.Timestamps && startsLine {
		buf = append(buf, e.Time.Format(time.RFC3339Nano)...)
		buf = append(buf, ' ')
	}
	buf = append(buf, e.Msg...)
	if !e.Partial {
		buf = append(buf, '\n')
	}
	limited := false
	if lw.opts.LimitBytes > 0 && int64(len(buf)) >= lw.remaining {
		buf = buf[:lw.remaining]
		limited = true
	}
	n, err := lw.w.Write(buf)
	lw.written += int64(n)
	lw.remaining -= int64(n)
	if err != nil {
		return err
	}
	if limited {
		return errLimitReached
	}
	return nil
}

// tailOffset returns the file offset where the last n lines of a CRI log
// begin; a line is a run of partial entries ended by a full one. n < 0
// means the start of the file.
func tailOffset(r io.Reader, n int64) (int64, error) {
	if n < 0 {
		return 0, nil
	}
	if n == 0 {
		// Everything there is now is skipped.
		var off int64
		br := bufio.NewReader(r)
		for {
			line, err := br.ReadBytes('\n')
			if err != nil {
				return off, ignoreEOF(err)
			}
			off += int64(len(line))
		}
	}
	starts := make([]int64, 0, min(n, 4096)) // ring of line starts
	head := 0
	var off int64
	lineStart := true
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			break // a trailing incomplete line is not counted
		}
		if lineStart {
			if int64(len(starts)) < n {
				starts = append(starts, off)
			} else {
				starts[head] = off
				head = (head + 1) % len(starts)
			}
		}
		e, perr := parseCRILine(bytes.TrimSuffix(line, []byte{'\n'}))
		lineStart = perr != nil || !e.Partial
		off += int64(len(line))
	}
	if len(starts) == 0 {
		return off, nil
	}
	if int64(len(starts)) < n {
		return starts[0], nil
	}
	return starts[head], nil
}

func ignoreEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}
