package nodeserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/peapod/peapod/internal/config"
	"github.com/peapod/peapod/internal/runtime"
)

// httpError is an error with the HTTP status the server answers it with.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func errorf(code int, format string, args ...any) error {
	return &httpError{code: code, msg: fmt.Sprintf(format, args...)}
}

// writeError answers a request that failed before any streaming began.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := http.StatusInternalServerError
	var he *httpError
	if errors.As(err, &he) {
		code = he.code
	} else {
		s.log.Error("node server request failed", "path", r.URL.Path, "err", err)
	}
	http.Error(w, err.Error(), code)
}

// podSandboxes returns the sandboxes of the pod (the UID's if uid is set,
// else the newest pod of that name), oldest first.
func (s *Server) podSandboxes(ctx context.Context, namespace, name, uid string) ([]*runtime.SandboxStatus, error) {
	all, err := s.rt.ListSandboxes(ctx)
	if err != nil {
		return nil, fmt.Errorf("list sandboxes: %w", err)
	}
	var found []*runtime.SandboxStatus
	for _, sb := range all { // oldest first
		if sb.PodNamespace != namespace || sb.PodName != name || (uid != "" && sb.PodUID != uid) {
			continue
		}
		if len(found) > 0 && found[len(found)-1].PodUID != sb.PodUID {
			found = found[:0] // a newer pod of the same name
		}
		found = append(found, sb)
	}
	if len(found) == 0 {
		return nil, errorf(http.StatusNotFound, "pod %q does not exist", name)
	}
	return found, nil
}

// containerRuns lists the runs of the named container over the pod's
// sandboxes, in restart order (the current run last).
func containerRuns(sandboxes []*runtime.SandboxStatus, container string) []*runtime.ContainerStatus {
	var runs []*runtime.ContainerStatus
	for _, sb := range sandboxes {
		for _, c := range sb.Containers {
			if c.Name == container {
				runs = append(runs, c)
			}
		}
	}
	sort.SliceStable(runs, func(i, j int) bool {
		if runs[i].Attempt != runs[j].Attempt {
			return runs[i].Attempt < runs[j].Attempt
		}
		return runs[i].CreatedAt.Before(runs[j].CreatedAt)
	})
	return runs
}

// runningContainer resolves a container to exec in or attach to.
func (s *Server) runningContainer(ctx context.Context, namespace, pod, uid, container string) (*runtime.ContainerStatus, error) {
	sandboxes, err := s.podSandboxes(ctx, namespace, pod, uid)
	if err != nil {
		return nil, err
	}
	runs := containerRuns(sandboxes, container)
	if len(runs) == 0 {
		return nil, errorf(http.StatusNotFound, "container %q not found in pod %q", container, pod)
	}
	c := runs[len(runs)-1]
	if c.State != runtime.ContainerRunning {
		return nil, errorf(http.StatusBadRequest, "container %q in pod %q is not running (state %s)", container, pod, c.State)
	}
	return c, nil
}

// logSource is the log file to read and, unless the run already ended, its
// container to wait for.
type logSource struct {
	path      string
	container *runtime.ContainerStatus // nil: a previous run, no longer tracked
}

// logFile resolves the log of the current run of a container, or of the
// run before it with previous, with the kubelet's error messages.
func (s *Server) logFile(ctx context.Context, namespace, pod, container string, previous bool) (*logSource, error) {
	sandboxes, err := s.podSandboxes(ctx, namespace, pod, "")
	var he *httpError
	if errors.As(err, &he) && he.code == http.StatusNotFound {
		// A finished pod gives its sandbox back but keeps its logs until
		// it is deleted, as on Kubernetes: read them from the log dir.
		return s.finishedLogFile(namespace, pod, container, previous)
	}
	if err != nil {
		return nil, err
	}
	runs := containerRuns(sandboxes, container)
	if len(runs) == 0 {
		// Not started yet, or its sandbox is being given back: the log
		// dir knows which.
		return s.finishedLogFile(namespace, pod, container, previous)
	}
	cur := runs[len(runs)-1]
	if !previous {
		if cur.State == runtime.ContainerCreated {
			return nil, errorf(http.StatusBadRequest, "container %q in pod %q is waiting to start: ContainerCreating", container, pod)
		}
		return &logSource{path: cur.LogPath, container: cur}, nil
	}
	// The run before the current one: still recorded, or only its log
	// file left (<attempt>.log beside the current one).
	for i := len(runs) - 2; i >= 0; i-- {
		if runs[i].Attempt < cur.Attempt && runs[i].LogPath != "" {
			return &logSource{path: runs[i].LogPath}, nil
		}
	}
	if p := previousLogFile(cur.LogPath, cur.Attempt); p != "" {
		return &logSource{path: p}, nil
	}
	return nil, errorf(http.StatusBadRequest, "previous terminated container %q in pod %q not found", container, pod)
}

// finishedLogFile resolves a log of a pod that has no sandbox left: the
// newest <attempt>.log of the container in the pod's newest log dir (or
// the one before it, with previous).
func (s *Server) finishedLogFile(namespace, pod, container string, previous bool) (*logSource, error) {
	// Every UID the pod's name has had; names are DNS labels, no glob characters.
	dirs, _ := filepath.Glob(config.PathsFor(s.rt.DataDir()).PodLogs(namespace, pod, "*"))
	var newest string
	var newestTime int64
	for _, d := range dirs {
		if fi, err := os.Stat(d); err == nil && fi.ModTime().UnixNano() >= newestTime {
			newest, newestTime = d, fi.ModTime().UnixNano()
		}
	}
	if newest == "" {
		return nil, errorf(http.StatusNotFound, "pod %q does not exist", pod)
	}
	entries, _ := os.ReadDir(filepath.Join(newest, container)) // none yet: not started
	var attempts []int
	for _, e := range entries {
		if n, err := strconv.Atoi(strings.TrimSuffix(e.Name(), ".log")); err == nil && strings.HasSuffix(e.Name(), ".log") {
			attempts = append(attempts, n)
		}
	}
	sort.Ints(attempts)
	i := len(attempts) - 1
	if previous {
		i--
	}
	if i < 0 {
		if previous {
			return nil, errorf(http.StatusBadRequest, "previous terminated container %q in pod %q not found", container, pod)
		}
		return nil, errorf(http.StatusBadRequest, "container %q in pod %q is waiting to start: ContainerCreating", container, pod)
	}
	return &logSource{path: filepath.Join(newest, container, strconv.Itoa(attempts[i])+".log")}, nil
}

// previousLogFile finds the newest "<n>.log" with n < attempt beside
// current, or "".
func previousLogFile(current string, attempt int) string {
	if current == "" {
		return ""
	}
	entries, err := os.ReadDir(filepath.Dir(current))
	if err != nil {
		return ""
	}
	best, bestN := "", -1
	for _, e := range entries {
		ns, ok := strings.CutSuffix(e.Name(), ".log")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(ns)
		if err != nil || n >= attempt || n <= bestN {
			continue
		}
		best, bestN = filepath.Join(filepath.Dir(current), e.Name()), n
	}
	return best
}
