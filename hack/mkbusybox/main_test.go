package main

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"

	"github.com/peapod/peapod/hack/mkbusybox/busyboximage"
)

func sum(t *testing.T, p string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestReproducible builds the image twice and expects identical bytes.
func TestReproducible(t *testing.T) {
	if _, err := os.Stat(busyboximage.DefaultBusybox); err != nil {
		t.Skip("no /bin/busybox (busybox-static)")
	}
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a", "busybox.tar"), filepath.Join(dir, "b", "busybox.tar")
	for _, out := range []string{a, b} {
		if err := run(busyboximage.DefaultBusybox, out); err != nil {
			t.Fatal(err)
		}
	}
	if sum(t, a) != sum(t, b) {
		t.Fatal("two builds differ")
	}
}
