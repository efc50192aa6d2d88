package pause

import (
	"strings"
	"testing"
)

// FuzzParseStatus: any reply parses or is refused, never a panic; a
// parsed one has no more containers than reply lines.
func FuzzParseStatus(f *testing.F) {
	f.Add("pid 42\nc1 43 running -1\n")
	f.Add("pid 42 pidns 7\nc1 0 exited 137\nc2 44 running -1\n")
	f.Add("")
	f.Add("pid x\n")
	f.Fuzz(func(t *testing.T, resp string) {
		st, err := parseStatus(resp)
		if err != nil {
			return
		}
		if len(st.Containers) > strings.Count(resp, "\n")+1 {
			t.Fatalf("%d containers from %d lines", len(st.Containers), strings.Count(resp, "\n")+1)
		}
	})
}

// FuzzParseExit: an exit file parses or is refused, never a panic.
func FuzzParseExit(f *testing.F) {
	f.Add("0 0 2026-12-07T10:00:00.123456789Z\n")
	f.Add("137 9 2026-12-07T10:00:00Z\n")
	f.Add("1 2")
	f.Fuzz(func(t *testing.T, s string) {
		if st, err := parseExit(s); err == nil && st == nil {
			t.Fatal("nil status without an error")
		}
	})
}

// FuzzParseStat: /proc/<pid>/stat text parses or is refused, never a
// panic, whatever the command name holds.
func FuzzParseStat(f *testing.F) {
	f.Add("42 (pause) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 123456 1000 100 18446744073709551615")
	f.Add("42 (a) b) c) R 1 2 3")
	f.Add(")")
	f.Fuzz(func(t *testing.T, s string) {
		_, _, _ = parseStat(s)
	})
}
