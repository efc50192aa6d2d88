package e2e

import (
	"os"
	"testing"

	"github.com/peapod/peapod/internal/leakcheck"
	"github.com/peapod/peapod/internal/proxy"
)

var leakOptions = leakcheck.Options{
	CgroupNames:  []string{e2eCgroup},
	ProcessNames: []string{"peapod", "pause", "runc", "crun", "busybox", "sh", "sleep", "httpd", "etcd", "svcprobe"},
	// The service proxy's table and the connections it translated:
	// `peapod reset` (run by every cluster's teardown) removes both.
	NFTables:      []string{proxy.DefaultTable},
	ConntrackMark: proxy.ConnMark,
}

// TestMain proves the suite leaks nothing: no netns, veth, mount, cgroup,
// process, IP, nftables table or conntrack entry of any pod or cluster it
// made remains afterwards.
func TestMain(m *testing.M) {
	os.Exit(leakcheck.Suite(m, "end-to-end", leakOptions, nil))
}
