package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/peapod/peapod/internal/leakcheck"
)

var leakOptions = leakcheck.Options{
	CgroupNames:  []string{e2eCgroup},
	ProcessNames: []string{"peapod", "pause", "runc", "crun", "busybox", "sh", "sleep", "httpd"},
}

// TestMain proves the suite leaks nothing: no netns, veth, mount, cgroup,
// process or IP of any pod or cluster it made remains afterwards.
func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		os.Exit(m.Run())
	}
	before, err := leakcheck.Take(leakOptions)
	if err != nil {
		fmt.Fprintln(os.Stderr, "leak check:", err)
		os.Exit(1)
	}
	code := m.Run()
	var leaks []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		after, err := leakcheck.Take(leakOptions)
		if err != nil {
			fmt.Fprintln(os.Stderr, "leak check:", err)
			os.Exit(1)
		}
		if leaks = before.Leaked(after); len(leaks) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(leaks) > 0 {
		fmt.Fprintf(os.Stderr, "the end-to-end suite leaked %d resources:\n  %s\n", len(leaks), strings.Join(leaks, "\n  "))
		code = 1
	}
	os.Exit(code)
}
