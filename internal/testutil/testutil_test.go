package testutil

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestMissing: a missing prerequisite fails the test under
// PEAPOD_REQUIRE_ROOT=1, naming it, and skips it otherwise. The test runs
// itself in a child process to watch Missing end it.
func TestMissing(t *testing.T) {
	if os.Getenv("TESTUTIL_MISSING_CHILD") == "1" {
		Missing(t, "runtime %s not usable here", "crun")
		t.Error("Missing returned")
		return
	}
	run := func(requireRoot string) (string, error) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestMissing$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), "TESTUTIL_MISSING_CHILD=1", "PEAPOD_REQUIRE_ROOT="+requireRoot)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("1")
	if err == nil || !strings.Contains(out, "--- FAIL: TestMissing") ||
		!strings.Contains(out, "runtime crun not usable here; PEAPOD_REQUIRE_ROOT=1 forbids skipping (`make setup` provides it)") {
		t.Errorf("under PEAPOD_REQUIRE_ROOT=1: err %v, output:\n%s", err, out)
	}
	out, err = run("")
	if err != nil || !strings.Contains(out, "--- SKIP: TestMissing") || !strings.Contains(out, "runtime crun not usable here") {
		t.Errorf("without PEAPOD_REQUIRE_ROOT: err %v, output:\n%s", err, out)
	}
}
