package nodeserver

import (
	"bytes"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestParseLogOptions(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		query   string
		want    LogOptions
		wantErr string
	}{
		{"", LogOptions{TailLines: -1}, ""},
		{"follow=true&previous=1&timestamps=true", LogOptions{Follow: true, Previous: true, Timestamps: true, TailLines: -1}, ""},
		{"tailLines=0&limitBytes=5", LogOptions{TailLines: 0, LimitBytes: 5}, ""},
		{"sinceSeconds=60", LogOptions{TailLines: -1, Since: now.Add(-time.Minute)}, ""},
		{"sinceTime=2026-01-01T00:00:00Z", LogOptions{TailLines: -1, Since: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}, ""},
		{"follow=maybe", LogOptions{}, "invalid follow"},
		{"tailLines=-1", LogOptions{}, "invalid tailLines"},
		{"limitBytes=0", LogOptions{}, "invalid limitBytes"},
		{"sinceSeconds=0", LogOptions{}, "invalid sinceSeconds"},
		{"sinceTime=yesterday", LogOptions{}, "invalid sinceTime"},
		{"sinceSeconds=1&sinceTime=2026-01-01T00:00:00Z", LogOptions{}, "at most one"},
	} {
		q, _ := url.ParseQuery(tc.query)
		got, err := ParseLogOptions(q, now)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: err %v, want %q", tc.query, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !got.Since.Equal(tc.want.Since) {
			t.Errorf("%q: %+v, %v", tc.query, got, err)
			continue
		}
		got.Since, tc.want.Since = time.Time{}, time.Time{}
		if got != tc.want {
			t.Errorf("%q: %+v, want %+v", tc.query, got, tc.want)
		}
	}
}

func TestParseCRILine(t *testing.T) {
	for _, tc := range []struct {
		line    string
		stream  string
		partial bool
		msg     string
		bad     bool
	}{
		{"2026-01-02T03:04:05.123456789Z stdout F hello world", "stdout", false, "hello world", false},
		{"2026-01-02T03:04:05.1Z stderr P part", "stderr", true, "part", false},
		{"2026-01-02T03:04:05Z stdout F ", "stdout", false, "", false},
		{"2026-01-02T03:04:05Z stdout F", "stdout", false, "", false},
		{"2026-01-02T03:04:05Z stdout F  two spaces", "stdout", false, " two spaces", false},
		{"nonsense", "", false, "", true},
		{"2026-01-02T03:04:05Z stdin F x", "", false, "", true},
		{"2026-01-02T03:04:05Z stdout X x", "", false, "", true},
		{"yesterday stdout F x", "", false, "", true},
	} {
		e, err := parseCRILine([]byte(tc.line))
		if tc.bad != (err != nil) {
			t.Errorf("%q: err %v", tc.line, err)
			continue
		}
		if !tc.bad && (e.Stream != tc.stream || e.Partial != tc.partial || string(e.Msg) != tc.msg) {
			t.Errorf("%q: %+v", tc.line, e)
		}
	}
}

const sampleLog = `2026-01-02T03:04:01Z stdout F one
2026-01-02T03:04:02Z stderr P tw
2026-01-02T03:04:03Z stderr F o
2026-01-02T03:04:04Z stdout F three
2026-01-02T03:04:05Z stdout F four
`

func TestLogWriterAndTail(t *testing.T) {
	at := func(s int) time.Time { return time.Date(2026, 1, 2, 3, 4, s, 0, time.UTC) }
	for _, tc := range []struct {
		name string
		opts LogOptions
		want string
	}{
		{"all", LogOptions{TailLines: -1}, "one\ntwo\nthree\nfour\n"},
		{"partials joined, one timestamp per line", LogOptions{TailLines: -1, Timestamps: true},
			"2026-01-02T03:04:01Z one\n2026-01-02T03:04:02Z two\n2026-01-02T03:04:04Z three\n2026-01-02T03:04:05Z four\n"},
		{"tail counts lines, not entries", LogOptions{TailLines: 3}, "two\nthree\nfour\n"},
		{"tail 1", LogOptions{TailLines: 1}, "four\n"},
		{"tail 0", LogOptions{TailLines: 0}, ""},
		{"tail more than there is", LogOptions{TailLines: 10}, "one\ntwo\nthree\nfour\n"},
		{"since drops whole lines", LogOptions{TailLines: -1, Since: at(3)}, "three\nfour\n"},
		{"since keeps a line that began after it", LogOptions{TailLines: -1, Since: at(2)}, "two\nthree\nfour\n"},
		{"limitBytes cuts mid-line", LogOptions{TailLines: -1, LimitBytes: 6}, "one\ntw"},
		{"limitBytes at a line end", LogOptions{TailLines: -1, LimitBytes: 4}, "one\n"},
	} {
		off, err := tailOffset(strings.NewReader(sampleLog), tc.opts.TailLines)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		lw := newLogWriter(&out, tc.opts)
		for _, l := range strings.Split(strings.TrimSuffix(sampleLog[off:], "\n"), "\n") {
			if l == "" {
				continue
			}
			e, err := parseCRILine([]byte(l))
			if err != nil {
				t.Fatal(err)
			}
			if err := lw.write(e); errors.Is(err, errLimitReached) {
				break
			} else if err != nil {
				t.Fatal(err)
			}
		}
		if out.String() != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, out.String(), tc.want)
		}
	}
}

func TestPreviousLogFile(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"0.log", "2.log", "3.log", "x.log", "notes"} {
		if err := writeEmpty(dir + "/" + n); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		attempt int
		want    string
	}{{3, "2.log"}, {2, "0.log"}, {1, "0.log"}, {0, ""}} {
		got := previousLogFile(dir+"/"+"3.log", tc.attempt)
		if want := tc.want; (want == "" && got != "") || (want != "" && got != dir+"/"+want) {
			t.Errorf("attempt %d: %q, want %q", tc.attempt, got, tc.want)
		}
	}
}
