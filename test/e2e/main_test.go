package e2e

import (
	"os"
	"testing"

	"github.com/peapod/peapod/internal/leakcheck"
)

var leakOptions = leakcheck.Options{
	CgroupNames:  []string{e2eCgroup},
	ProcessNames: []string{"peapod", "pause", "pause-holder", "pause-pid1", "runc", "crun", "busybox", "sh", "sleep", "httpd"},
}

// TestMain proves the suite leaks nothing: no netns, veth, mount, cgroup,
// process or IP of any pod or cluster it made remains afterwards.
func TestMain(m *testing.M) {
	os.Exit(leakcheck.Suite(m, "end-to-end", leakOptions, nil))
}
