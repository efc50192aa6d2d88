package e2e

import (
	"fmt"
	"os"
	"testing"

	"github.com/peapod/peapod/internal/leakcheck"
)

var leakOptions = leakcheck.Options{
	// peapod-cluster holds the pod cgroups of every `peapod cluster` node.
	CgroupNames:  []string{e2eCgroup, "peapod-cluster"},
	ProcessNames: []string{"peapod", "pause", "runc", "crun", "busybox", "sh", "sleep", "httpd"},
	// The links inside `peapod cluster` node namespaces (pp-<node>: the
	// node's eth0, pod bridge and pod veths) and the host rules it adds.
	NetNSLinks:  []string{"pp-"},
	RuleMatches: []string{"peapod cluster"},
}

// TestMain proves the suite leaks nothing: no netns, veth, mount, cgroup,
// process or IP of any pod or cluster it made remains afterwards. The
// shared multi-node cluster is taken down before the last snapshot.
func TestMain(m *testing.M) {
	var downErr error
	code := leakcheck.Suite(m, "end-to-end", leakOptions, func() { downErr = downShared() })
	if downErr != nil {
		fmt.Fprintln(os.Stderr, "shared multi-node cluster:", downErr)
		code = 1
	}
	os.Exit(code)
}
