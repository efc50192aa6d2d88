package main

import (
	"slices"
	"testing"

	"github.com/peapod/peapod/internal/config"
)

func TestKubectlDataDir(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		env      string
		wantDir  string
		wantArgs []string
	}{
		{[]string{"get", "pods"}, "", config.DefaultDataDir, []string{"get", "pods"}},
		{[]string{"get", "pods"}, "/e", "/e", []string{"get", "pods"}},
		{[]string{"--data-dir", "/d", "get", "pods"}, "/e", "/d", []string{"get", "pods"}},
		{[]string{"get", "pods", "--data-dir=/d", "-o", "wide"}, "", "/d", []string{"get", "pods", "-o", "wide"}},
		{[]string{"exec", "p", "--", "ls", "--data-dir", "/x"}, "", config.DefaultDataDir, []string{"exec", "p", "--", "ls", "--data-dir", "/x"}},
	} {
		dir, args := kubectlDataDir(tc.args, tc.env)
		if dir != tc.wantDir || !slices.Equal(args, tc.wantArgs) {
			t.Errorf("kubectlDataDir(%q, %q) = %q, %q; want %q, %q", tc.args, tc.env, dir, args, tc.wantDir, tc.wantArgs)
		}
	}
}
