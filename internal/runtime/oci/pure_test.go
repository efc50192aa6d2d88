package oci

import (
	"errors"
	"strings"
	"testing"
)

const (
	miRoot  = "22 1 252:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n"
	miTmpfs = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
	miCPU   = "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
	miMem   = "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
	miSysd  = "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd\n"
	miUni   = "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
	miHuge  = "42 31 0:39 / /sys/fs/cgroup/hugetlb rw,relatime - cgroup cgroup rw,hugetlb\n"
	miV2    = "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
)

func TestCheckHybrid(t *testing.T) {
	tests := []struct {
		name        string
		mountinfo   string
		controllers string
		readable    bool
		wantErr     string // substring; "" = usable
	}{
		{"pure v2", miRoot + miV2, "cpuset cpu io memory pids", true, ""},
		{"pure v1", miRoot + miTmpfs + miCPU + miMem + miSysd, "", false, ""},
		{"hybrid with hugetlb in cgroup2", miRoot + miTmpfs + miCPU + miMem + miSysd + miUni, "hugetlb", true, "mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb"},
		{"hybrid, cgroup2 emptied by v1 hugetlb", miRoot + miTmpfs + miCPU + miMem + miSysd + miUni + miHuge, "", true, ""},
		{"hybrid, empty cgroup2 (systemd default)", miRoot + miTmpfs + miCPU + miMem + miSysd + miUni, "", true, ""},
		{"hybrid with other controllers", miRoot + miTmpfs + miCPU + miSysd + miUni, "memory pids", true, "unified_cgroup_hierarchy"},
		{"hybrid, unreadable, no v1 hugetlb", miRoot + miTmpfs + miCPU + miSysd + miUni, "", false, "hugetlb"},
		{"hybrid, unreadable, v1 hugetlb", miRoot + miTmpfs + miCPU + miSysd + miUni + miHuge, "", false, ""},
		{"empty mountinfo", "", "", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var asked string
			err := checkHybrid(tt.mountinfo, func(mp string) (string, bool) {
				asked = mp
				return tt.controllers, tt.readable
			})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "hybrid mode not supported") {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
			if asked != "/sys/fs/cgroup/unified" {
				t.Errorf("read controllers of %q", asked)
			}
		})
	}
}

func TestLogError(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"runc json", `{"level":"info","msg":"a","time":"t"}` + "\n" + `{"level":"error","msg":"container with id exists: x","time":"t"}` + "\n", "container with id exists: x"},
		{"error then info", `{"level":"error","msg":"boom","time":"t"}` + "\n" + `{"level":"warning","msg":"later","time":"t"}` + "\n", "boom"},
		{"no error level", `{"level":"info","msg":"only info","time":"t"}` + "\n", "only info"},
		{"text", "crun: something failed\n\n", "crun: something failed"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := logError([]byte(tt.in)); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestIsNotFound(t *testing.T) {
	tests := []struct {
		msg  string
		want bool
	}{
		{"container does not exist", true},
		{`time="..." level=error msg="container \"x\" does not exist"`, true},
		{"error opening file `/run/crun/x/status`: No such file or directory", true},
		{"cannot kill a stopped container", false},
		{"open /bundle/config.json: no such file or directory", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := isNotFound(tt.msg); got != tt.want {
			t.Errorf("isNotFound(%q) = %v", tt.msg, got)
		}
	}
	if !errors.Is(errors.Join(ErrNotFound), ErrNotFound) {
		t.Fatal("sentinel")
	}
}

func TestRunArgs(t *testing.T) {
	r := &Runtime{Handler: "runc", Binary: "/usr/sbin/runc", Root: "/d/oci/runc"}
	got := strings.Join(r.RunArgs("c1", "/b", "/b/pid", "/b/log.json"), " ")
	want := "/usr/sbin/runc --root /d/oci/runc --log /b/log.json --log-format json run --detach --pid-file /b/pid --bundle /b c1"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}
