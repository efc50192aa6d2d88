package image

import (
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	const dgst = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, tc := range []struct {
		in, want string
		bad      bool
	}{
		{in: "busybox", want: "docker.io/library/busybox:latest"},
		{in: "busybox:1.36", want: "docker.io/library/busybox:1.36"},
		{in: "library/busybox", want: "docker.io/library/busybox:latest"},
		{in: "docker.io/busybox", want: "docker.io/library/busybox:latest"},
		{in: "index.docker.io/library/busybox:1", want: "docker.io/library/busybox:1"},
		{in: "someone/app:v2", want: "docker.io/someone/app:v2"},
		{in: "registry:5000/x/y:tag", want: "registry:5000/x/y:tag"},
		{in: "localhost:5000/x", want: "localhost:5000/x:latest"},
		{in: "quay.io/a/b/c", want: "quay.io/a/b/c:latest"},
		{in: "x@" + dgst, want: "docker.io/library/x@" + dgst},
		{in: "busybox:1.36@" + dgst, want: "docker.io/library/busybox@" + dgst},
		{in: "", bad: true},
		{in: "Busybox", bad: true},
		{in: "busybox:", bad: true},
		{in: " busybox", bad: true},
		{in: "x@sha256:abc", bad: true},
	} {
		got, err := Normalize(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("Normalize(%q) = %q, want error", tc.in, got)
			} else if want := `"` + tc.in + `"`; !strings.Contains(err.Error(), want) {
				t.Errorf("Normalize(%q) error %q does not name the ref", tc.in, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
