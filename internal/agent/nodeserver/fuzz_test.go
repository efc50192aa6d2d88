package nodeserver

import (
	"bytes"
	"testing"
)

// FuzzParseCRILine: any log line parses or is refused, never a panic; a
// parsed line's message is the tail of the line and its stream is one of
// the two.
func FuzzParseCRILine(f *testing.F) {
	f.Add([]byte("2026-12-07T10:00:00.123456789Z stdout F hello"))
	f.Add([]byte("2026-12-07T10:00:00Z stderr P partial"))
	f.Add([]byte("2026-12-07T10:00:00Z stdout F "))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, line []byte) {
		e, err := parseCRILine(line)
		if err != nil {
			return
		}
		if e.Stream != "stdout" && e.Stream != "stderr" {
			t.Fatalf("stream %q", e.Stream)
		}
		if !bytes.HasSuffix(line, e.Msg) {
			t.Fatalf("message %q is not the line's tail", e.Msg)
		}
	})
}
