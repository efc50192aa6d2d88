package pause

import (
	"testing"
	"time"

	"github.com/peapod/peapod/internal/runtime/oci"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name, in  string
		state     byte
		start     uint64
		wantError bool
	}{
		{"plain", "42 (pause) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 12345 1000 10", 'S', 12345, false},
		{"spaces and parens in comm", "42 (a b) c)) Z 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 777 1000 10", 'Z', 777, false},
		{"truncated", "42 (x) S 1 2 3", 0, 0, true},
		{"no comm", "garbage", 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state, start, err := parseStat(tt.in)
			if (err != nil) != tt.wantError {
				t.Fatalf("err = %v, want error %v", err, tt.wantError)
			}
			if err == nil && (state != tt.state || start != tt.start) {
				t.Fatalf("got %c %d, want %c %d", state, start, tt.state, tt.start)
			}
		})
	}
}

func TestParseExit(t *testing.T) {
	at := time.Date(2016, 10, 6, 0, 17, 9, 669794202, time.UTC)
	tests := []struct {
		name, in string
		want     *ExitStatus
	}{
		{"exit 3", "3 0 2016-10-06T00:17:09.669794202Z\n", &ExitStatus{ExitCode: 3, FinishedAt: at}},
		{"killed", "137 9 2016-10-06T00:17:09.669794202Z\n", &ExitStatus{ExitCode: 137, Signal: 9, FinishedAt: at}},
		{"empty", "", nil},
		{"bad time", "0 0 yesterday\n", nil},
		{"bad code", "x 0 2016-10-06T00:17:09Z\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseExit(tt.in)
			if tt.want == nil {
				if err == nil {
					t.Fatalf("want error, got %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.ExitCode != tt.want.ExitCode || got.Signal != tt.want.Signal || !got.FinishedAt.Equal(tt.want.FinishedAt) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseStatus(t *testing.T) {
	st, err := parseStatus("OK 10 11\nC a 20 running -1\nC b 21 exited 3\n")
	if err != nil {
		t.Fatal(err)
	}
	if st.PID != 10 || st.PIDNamespacePID != 11 || len(st.Containers) != 2 ||
		st.Containers[1] != (ContainerStatus{ID: "b", PID: 21, State: StateExited, ExitCode: 3}) {
		t.Fatalf("got %+v", st)
	}
	for _, bad := range []string{"ERR x", "OK 1 2\nC a b c d\n", "OK 1 2\nbogus\n"} {
		if _, err := parseStatus(bad); err == nil {
			t.Errorf("parseStatus(%q): want error", bad)
		}
	}
}

func TestRuntimeLogError(t *testing.T) {
	dir := tempDir(t)
	path := dir + "/log.json"
	writeFile(t, path, `{"level":"warning","msg":"w","time":"x"}
{"level":"error","msg":"container_linux.go: starting container process caused: exec: \"nope\": executable file not found","time":"x"}
{"level":"info","msg":"later info","time":"x"}
`)
	if got := oci.LogError(path); got != `container_linux.go: starting container process caused: exec: "nope": executable file not found` {
		t.Fatalf("got %q", got)
	}
	writeFile(t, path, "plain text line\nlast line\n")
	if got := oci.LogError(path); got != "last line" {
		t.Fatalf("got %q", got)
	}
	if got := oci.LogError(dir + "/missing"); got != "" {
		t.Fatalf("got %q", got)
	}
}
