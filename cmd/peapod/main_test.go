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
