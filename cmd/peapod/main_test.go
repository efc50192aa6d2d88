package main

import (
	"testing"

	"github.com/spf13/cobra"
)

// TestEveryCommandHasItsFlags builds the whole command tree and asks each
// command for its flags, as `peapod CMD --help` does: two pieces that
// register one flag name on one command panic here, not in a user's hands.
func TestEveryCommandHasItsFlags(t *testing.T) {
	var visit func(c *cobra.Command)
	seen := 0
	visit = func(c *cobra.Command) {
		seen++
		c.InitDefaultHelpFlag()
		if c.Flags().Lookup("help") == nil {
			t.Errorf("%s: no --help flag", c.CommandPath())
		}
		// Merging the persistent flags of the parents is where a
		// redefinition between a parent and a child shows.
		_ = c.LocalFlags()
		_ = c.InheritedFlags()
		for _, sub := range c.Commands() {
			visit(sub)
		}
	}
	visit(newRootCommand())
	if seen < 10 {
		t.Errorf("visited %d commands; the tree is missing some", seen)
	}
}

func TestAgentGCPercent(t *testing.T) {
	for _, tc := range []struct {
		flag  int
		given bool
		env   string
		want  int
		err   bool
	}{
		{flag: defaultAgentGCPercent, want: defaultAgentGCPercent},
		{flag: defaultAgentGCPercent, env: "200", want: 0},
		{flag: defaultAgentGCPercent, env: "off", want: 0},
		{flag: 50, given: true, env: "200", want: 50},
		{flag: 50, given: true, want: 50},
		{flag: 0, given: true, err: true},
		{flag: -1, given: true, err: true},
	} {
		got, err := agentGCPercent(tc.flag, tc.given, tc.env)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("agentGCPercent(%d, %v, %q) = %d, %v; want %d (error %v)", tc.flag, tc.given, tc.env, got, err, tc.want, tc.err)
		}
	}
}
