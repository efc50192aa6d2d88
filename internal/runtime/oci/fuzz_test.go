package oci

import (
	"strings"
	"testing"
)

// FuzzParseCgroupMounts: any mountinfo text parses without a panic, and
// every mount point found is a field of the input.
func FuzzParseCgroupMounts(f *testing.F) {
	f.Add("35 24 0:30 / /sys/fs/cgroup rw,nosuid shared:9 - tmpfs tmpfs ro,mode=755\n" +
		"36 35 0:31 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate\n" +
		"38 35 0:33 / /sys/fs/cgroup/cpu,cpuacct rw shared:12 - cgroup cgroup rw,cpu,cpuacct\n")
	f.Add("1 2 3:4 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n")
	f.Add(" - \n - cgroup\nx - cgroup cgroup\n")
	f.Fuzz(func(t *testing.T, mountinfo string) {
		m := parseCgroupMounts(mountinfo)
		for ctrl, path := range m.v1 {
			if !strings.Contains(mountinfo, path) {
				t.Fatalf("controller %q at %q, not in the input", ctrl, path)
			}
		}
	})
}
