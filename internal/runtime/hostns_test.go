package runtime

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/peapod/peapod/internal/runtime/pause"
	"github.com/peapod/peapod/internal/runtime/userns"
)

// sameNamespace reports whether two processes share a namespace kind.
func sameNamespace(t *testing.T, kind string, a, b int) bool {
	t.Helper()
	na, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", a, kind))
	if err != nil {
		t.Fatal(err)
	}
	nb, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", b, kind))
	if err != nil {
		t.Fatal(err)
	}
	return na == nb
}

func linkNames(t *testing.T) string {
	t.Helper()
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range links {
		if !strings.HasPrefix(l.Attrs().Name, "veth") { // other pods' come and go
			names = append(names, l.Attrs().Name)
		}
	}
	return strings.Join(names, ",")
}

// TestHostNamespacesSandbox: a pod with hostNetwork, hostIPC and hostPID
// runs in the node's network, UTS, IPC and PID namespaces, with the
// node's hostname, IP and /etc/hosts, while pause still holds nothing of
// the pod's but reaps; teardown leaves the node's network as it was.
func TestHostNamespacesSandbox(t *testing.T) {
	h := newHarness(t)
	linksBefore := linkNames(t)
	pod := h.pod(`{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "on-the-host"},
		"spec": {"hostNetwork": true, "hostIPC": true, "hostPID": true,
		"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"],
			"env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
			        {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}}]}]}}`)
	id := h.start(pod, "")
	st := h.status(id)
	if !st.HostNetwork || !st.HostIPC || !st.HostPID || st.NetNSPath != "" || st.HostVeth != "" {
		t.Errorf("sandbox status %+v, want host namespaces, no netns and no veth", st)
	}
	if len(st.IPs) != 1 || st.IPs[0] != h.rt.NodeIP() {
		t.Errorf("pod IPs %v, want the node's %s", st.IPs, h.rt.NodeIP())
	}
	if _, err := os.Stat(filepath.Join(h.cfg.NetNSDir, "peapod-"+id)); err == nil {
		t.Errorf("a netns was pinned for a hostNetwork pod")
	}
	c := h.container(id, "c")
	self := os.Getpid()
	for _, kind := range []string{"net", "uts", "ipc", "pid"} {
		if !sameNamespace(t, kind, self, c.PID) {
			t.Errorf("container is not in the node's %s namespace", kind)
		}
		if kind != "pid" && !sameNamespace(t, kind, self, st.PausePID) {
			t.Errorf("pause is not in the node's %s namespace", kind)
		}
	}
	node, _ := os.Hostname()
	if got := h.exec(id, "c", "hostname"); got != node {
		t.Errorf("hostname %q, want the node's %q", got, node)
	}
	if got := h.exec(id, "c", "sh", "-c", "echo $POD_IP $HOST_IP"); got != h.rt.NodeIP()+" "+h.rt.NodeIP() {
		t.Errorf("POD_IP HOST_IP = %q, want the node's IP twice", got)
	}
	if got := h.exec(id, "c", "cat", "/proc/net/dev"); !strings.Contains(got, testBridge+":") {
		t.Errorf("the container's /proc/net/dev lacks the node's %s:\n%s", testBridge, got)
	}
	hosts := h.exec(id, "c", "cat", "/etc/hosts")
	nodeHosts, _ := os.ReadFile("/etc/hosts")
	if want := "# Kubernetes-managed hosts file (host network).\n" + string(nodeHosts); hosts != strings.TrimSpace(want) {
		t.Errorf("/etc/hosts:\n%s\nwant the node's:\n%s", hosts, want)
	}
	// hostPID: this test process is visible by its PID.
	if got := h.exec(id, "c", "cat", "/proc/"+strconv.Itoa(self)+"/comm"); got == "" {
		t.Errorf("the test process %d is not visible in the container", self)
	}
	if err := h.rt.DeletePod(h.ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	if after := linkNames(t); after != linksBefore {
		t.Errorf("the node's links changed:\nbefore %s\nafter  %s", linksBefore, after)
	}
}

// TestUserNamespaceSandbox: a pod with hostUsers: false runs with its root
// mapped to an unprivileged host range of 65536 IDs, its namespaces owned
// by its user namespace (its root binds port 80), its rootfs and volumes
// idmapped (root reads a root-only host file and writes its emptyDir),
// and the range survives a runtime restart.
func TestUserNamespaceSandbox(t *testing.T) {
	h := newHarness(t)
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("root only"), 0o600); err != nil {
		t.Fatal(err)
	}
	pod := h.pod(fmt.Sprintf(`{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "userns"},
		"spec": {"hostUsers": false, "shareProcessNamespace": true,
		"volumes": [{"name": "data", "emptyDir": {}}, {"name": "secret", "hostPath": {"path": %q, "type": "File"}}],
		"containers": [
			{"name": "web", "image": "busybox", "command": ["sh", "-c", "echo hi > /tmp/index.html && exec httpd -f -p 80 -h /tmp"],
			 "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "secret", "mountPath": "/secret"}]},
			{"name": "side", "image": "busybox", "command": ["sleep", "3600"]}]}}`, secret))
	id := h.start(pod, "")
	st := h.status(id)
	web := h.container(id, "web")
	uidMap, err := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", web.PID))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(uidMap))
	if len(f) != 3 || f[0] != "0" || f[2] != "65536" {
		t.Fatalf("uid_map %q, want 0 HOSTID 65536", uidMap)
	}
	hostID, _ := strconv.Atoi(f[1])
	if hostID < 65536 || hostID%65536 != 0 {
		t.Errorf("host ID %d, want a multiple of 65536 above it", hostID)
	}
	if st.UserNamespace != "0 "+f[1]+" 65536" {
		t.Errorf("sandbox status user namespace %q", st.UserNamespace)
	}
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", web.PID))
	if !strings.Contains(string(status), fmt.Sprintf("\nUid:\t%d\t%d\t%d\t%d\n", hostID, hostID, hostID, hostID)) {
		t.Errorf("the container's root is not host uid %d:\n%s", hostID, status)
	}
	if got := h.exec(id, "web", "id", "-u"); got != "0" {
		t.Errorf("id -u = %q inside, want 0", got)
	}
	if got := h.exec(id, "web", "cat", "/secret"); got != "root only" {
		t.Errorf("root-only host file read as %q", got)
	}
	h.exec(id, "web", "sh", "-c", "echo written > /data/f && echo new > /newfile")
	vol := filepath.Join(h.rt.sandboxDir(id), "volumes", "kubernetes.io~empty-dir", "data", "f")
	var fst unix.Stat_t
	if err := unix.Stat(vol, &fst); err != nil {
		t.Fatal(err)
	} else if fst.Uid != 0 {
		t.Errorf("the container root's file is host uid %d on disk, want 0 (idmapped)", fst.Uid)
	}
	// Port 80: the pod's root owns its network namespace.
	client := &http.Client{Timeout: 5 * time.Second}
	eventually(t, 10*time.Second, func() error {
		resp, err := client.Get("http://" + st.IPs[0] + "/")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if strings.TrimSpace(string(body)) != "hi" {
			return fmt.Errorf("got %q", body)
		}
		return nil
	})
	// shareProcessNamespace: the holder is PID 1 of the pod's PID namespace.
	if got := h.exec(id, "side", "cat", "/proc/1/comm"); got != "pause-holder" {
		t.Errorf("PID 1 of the shared PID namespace is %q, want pause-holder", got)
	}
	if !sameNamespace(t, "net", st.PausePID, web.PID) || !sameNamespace(t, "user", st.HolderPID, web.PID) {
		t.Errorf("container and sandbox namespaces differ")
	}

	// A restart keeps the range: a new runtime on the same data dir
	// records it from disk.
	rt2, err := New(h.ctx, h.cfg, h.rt.log)
	if err != nil {
		t.Fatal(err)
	}
	if rt2.userns.InUse() != 1 {
		t.Errorf("after a restart %d ranges are recorded, want 1", rt2.userns.InUse())
	}
	if err := rt2.userns.Record("another-pod", userns.Mapping{HostID: uint32(hostID), Length: 65536}); err == nil {
		t.Errorf("the restarted runtime would give the pod's range to another pod")
	}

	dir := h.rt.sandboxDir(id)
	holder := pause.Process{PID: st.HolderPID}
	if err := h.rt.DeletePod(h.ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	if mounts, _ := mountinfo.GetMounts(mountinfo.PrefixFilter(dir)); len(mounts) > 0 {
		t.Errorf("mounts left under the sandbox: %v", mounts[0].Mountpoint)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", holder.PID)); err == nil {
		t.Errorf("user namespace holder %d still runs", holder.PID)
	}
	if data, err := os.ReadFile(secret); err != nil || string(data) != "root only" {
		t.Errorf("the hostPath file after teardown: %q, %v", data, err)
	}
	if h.rt.userns.InUse() != 0 {
		t.Errorf("the pod's range is still allocated after its removal")
	}
}
