package main

import (
	"testing"
	"time"

	"github.com/peapod/peapod/internal/runtime"
	"github.com/peapod/peapod/internal/storage"
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

// TestEtcdLine: `peapod ps` on the server's node shows the state store's
// size, quota and alarms.
func TestEtcdLine(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		st   storage.DBStatus
		want string
	}{
		{storage.DBStatus{Checked: now.Add(-30 * time.Second), DBSize: 20 << 20, DBSizeInUse: 5 << 20, Quota: 2 << 30},
			"etcd: db 20.0 MiB (5.0 MiB in use) of 2048.0 MiB quota, alarms: none, checked 30s ago"},
		{storage.DBStatus{Checked: now.Add(-time.Minute), DBSize: 24 << 20, DBSizeInUse: 24 << 20, Quota: 24 << 20, Alarms: []string{"NOSPACE"},
			LastDefrag: now.Add(-2 * time.Minute)},
			"etcd: db 24.0 MiB (24.0 MiB in use) of 24.0 MiB quota, alarms: NOSPACE (writes refused), checked 1m ago, defragmented 2m ago"},
	} {
		if got := etcdLine(&tc.st, now); got != tc.want {
			t.Errorf("etcdLine = %q\nwant        %q", got, tc.want)
		}
	}
}
