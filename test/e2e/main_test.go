package e2e

import (
	"fmt"
	"os"
	"testing"

	"github.com/peapod/peapod/internal/leakcheck"
	"github.com/peapod/peapod/internal/nodenet"
	"github.com/peapod/peapod/internal/proxy"
)

var leakOptions = leakcheck.Options{
	CgroupNames:  []string{e2eCgroup},
	ProcessNames: []string{"peapod", "pause", "pause-holder", "pause-pid1", "runc", "crun", "busybox", "sh", "sleep", "httpd", "etcd", "svcprobe"},
	// The pod network between nodes: its forward rules and its routes to
	// peers, on the host (single-node clusters) and in every node's
	// namespace (peapod cluster); its VXLAN device is among the links.
	RuleMatches:    []string{"PEAPOD-FORWARD"},
	RouteProtocols: []int{int(nodenet.RouteProtocol)},
	// The service proxy's table and the connections it translated:
	// `peapod reset` (run by every cluster's teardown) removes both.
	NFTables:      []string{proxy.DefaultTable},
	ConntrackMark: proxy.ConnMark,
}

// TestMain proves the suite leaks nothing: no netns, veth, mount, cgroup,
// process, IP, nftables table or conntrack entry of any pod or cluster it
// made remains afterwards.
func TestMain(m *testing.M) {
	var downErr error
	// The shared multi-node cluster goes down before the last snapshot.
	code := leakcheck.Suite(m, "end-to-end", withClusterLeaks(leakOptions), func() { downErr = downShared() })
	if downErr != nil {
		fmt.Fprintln(os.Stderr, "shared multi-node cluster:", downErr)
		code = 1
	}
	os.Exit(code)
}
