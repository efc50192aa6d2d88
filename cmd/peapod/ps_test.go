package main

import (
	"testing"

	"github.com/peapod/peapod/internal/runtime"
)

// TestNamespacesCell: `peapod ps` shows a sandbox in the node's namespaces
// as such.
func TestNamespacesCell(t *testing.T) {
	for _, tc := range []struct {
		sb   runtime.SandboxStatus
		want string
	}{
		{runtime.SandboxStatus{NetNSPath: "/run/netns/peapod-1"}, "/run/netns/peapod-1"},
		{runtime.SandboxStatus{HostNetwork: true}, "host"},
		{runtime.SandboxStatus{HostNetwork: true, HostIPC: true, HostPID: true}, "host (host ipc,pid)"},
		{runtime.SandboxStatus{NetNSPath: "/run/netns/peapod-2", HostPID: true}, "/run/netns/peapod-2 (host pid)"},
		{runtime.SandboxStatus{NetNSPath: "/run/netns/peapod-3", UserNamespace: "0 131072 65536"}, "/run/netns/peapod-3 (userns 0 131072 65536)"},
		{runtime.SandboxStatus{}, "<none>"},
	} {
		if got := namespaces(&tc.sb); got != tc.want {
			t.Errorf("namespaces(%+v) = %q, want %q", tc.sb, got, tc.want)
		}
	}
}
