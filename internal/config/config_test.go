package config

import (
	"strings"
	"testing"
)

func TestValidateCgroupParent(t *testing.T) {
	for _, tc := range []struct {
		parent string
		err    string // "" when valid
	}{
		{"peapod", ""},
		{"peapod-cluster/demo/demo-node1", ""},
		{"", "--cgroup-parent \"\": must not be empty"},
		{"/peapod", "no leading /"},
		{"peapod/../x", "clean path"},
		{"peapod/", "clean path"},
		{"../x", "below the cgroup hierarchy's root"},
		{"..", "below the cgroup hierarchy's root"},
	} {
		n := Defaults()
		n.CgroupParent = tc.parent
		err := n.Validate()
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%q: unexpected error %v", tc.parent, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "--cgroup-parent")):
			t.Errorf("%q: error %v, want one naming --cgroup-parent and saying %q", tc.parent, err, tc.err)
		}
	}
}
