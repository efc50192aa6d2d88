// Package testutil holds what peapod's tests share: the guard of tests
// that need root and the real kernel, and the busybox image they run.
package testutil

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/peapod/peapod/hack/mkbusybox/busyboximage"
)

// RequiresRoot skips a kernel test when not root, so `go test` works for a
// newcomer; with PEAPOD_REQUIRE_ROOT=1 (as `make test` sets) it fails
// instead, because a kernel test skipped there is a defect.
func RequiresRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("PEAPOD_REQUIRE_ROOT") == "1" {
		t.Fatal("this test needs root and the real kernel, and PEAPOD_REQUIRE_ROOT=1 forbids skipping it")
	}
	t.Skip("needs root and the real kernel")
}

// Missing stops a test whose prerequisite the README promises (a runtime
// binary, a usable cgroup layout, busybox-static) is absent, naming it:
// with PEAPOD_REQUIRE_ROOT=1 (as `make test` sets, after `make setup`) the
// test fails, since nothing the README promises may skip there; otherwise
// it skips, so `go test` still works for a newcomer.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	what := fmt.Sprintf(format, args...)
	if os.Getenv("PEAPOD_REQUIRE_ROOT") == "1" {
		t.Fatalf("%s; PEAPOD_REQUIRE_ROOT=1 forbids skipping (`make setup` provides it)", what)
	}
	t.Skip(what)
}

var (
	busyboxOnce sync.Once
	busyboxPath string
	busyboxErr  error
)

// BusyboxTarball returns the path of the docker.io/library/busybox:latest
// tarball `make images` builds ($PEAPOD_BUSYBOX_TAR), building it from
// Debian's busybox-static when the test runs outside make.
func BusyboxTarball(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("PEAPOD_BUSYBOX_TAR"); p != "" {
		return p
	}
	busyboxOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ppbusybox")
		if err != nil {
			busyboxErr = err
			return
		}
		busyboxPath = filepath.Join(dir, "busybox.tar")
		busyboxErr = busyboximage.WriteFile(busyboximage.DefaultBusybox, busyboxPath)
	})
	if busyboxErr != nil {
		t.Fatalf("build the busybox image: %v", busyboxErr)
	}
	return busyboxPath
}

// SyncBuffer is a bytes.Buffer that a server's goroutines may write (a
// log sink, a stream's output) while the test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
