package apiserver

import (
	"os"
	"testing"
)

// requireRoot skips without root, or fails when PEAPOD_REQUIRE_ROOT=1.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("PEAPOD_REQUIRE_ROOT") == "1" {
			t.Fatal("needs root (PEAPOD_REQUIRE_ROOT=1)")
		}
		t.Skip("needs root")
	}
}
