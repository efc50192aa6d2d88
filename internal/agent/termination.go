package agent

import (
	"bytes"
	"io"
	"os"

	corev1 "k8s.io/api/core/v1"

	"github.com/peapod/peapod/internal/runtime"
)

// The kubelet's FallbackToLogsOnError takes at most the last 80 lines and
// 2048 bytes of the container's log.
const (
	fallbackLogLines = 80
	fallbackLogBytes = 2048
	// fallbackReadBytes is how much of the log file's end is read to find
	// them: CRI lines carry a timestamp and a stream before the text.
	fallbackReadBytes = 64 << 10
)

// fillTerminationMessages applies terminationMessagePolicy
// FallbackToLogsOnError: a container that failed without writing a
// termination message gets the tail of its log as one. It reads only the
// logs of such containers.
func fillTerminationMessages(pod *corev1.Pod, sb *runtime.SandboxStatus) {
	if sb == nil {
		return
	}
	for _, c := range sb.Containers {
		if c.State != runtime.ContainerExited || c.ExitCode == 0 || c.Message != "" || c.LogPath == "" {
			continue
		}
		spec := containerSpec(pod, c.Name)
		if spec == nil || spec.TerminationMessagePolicy != corev1.TerminationMessageFallbackToLogsOnError {
			continue
		}
		if data, err := readTail(c.LogPath, fallbackReadBytes); err == nil {
			c.Message = logTail(data, fallbackLogLines, fallbackLogBytes)
		}
	}
}

// readTail returns up to n bytes from the end of a file.
func readTail(path string, n int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	off := max(fi.Size()-n, 0)
	data, err := io.ReadAll(io.NewSectionReader(f, off, fi.Size()-off))
	if err != nil {
		return nil, err
	}
	if off > 0 {
		// Drop the partial first line.
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			data = data[i+1:]
		}
	}
	return data, nil
}

// logTail turns the end of a CRI-format log ("<time> <stream> <P|F>
// <text>" per line, P marking a line continued on the next) into the
// containers' own output: at most the last maxLines lines, then at most
// the last maxBytes bytes of them. It is pure.
func logTail(data []byte, maxLines, maxBytes int) string {
	var lines [][]byte
	var cur []byte
	for _, raw := range bytes.Split(data, []byte("\n")) {
		fields := bytes.SplitN(raw, []byte(" "), 4)
		if len(fields) < 3 {
			continue
		}
		var text []byte
		if len(fields) == 4 {
			text = fields[3]
		}
		cur = append(cur, text...)
		if string(fields[2]) == "P" {
			continue
		}
		lines = append(lines, cur)
		cur = nil
	}
	if cur != nil {
		lines = append(lines, cur)
	}
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	var out []byte
	for _, l := range lines {
		out = append(append(out, l...), '\n')
	}
	if len(out) > maxBytes {
		out = out[len(out)-maxBytes:]
	}
	return string(out)
}
