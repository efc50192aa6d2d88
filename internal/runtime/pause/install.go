package pause

import (
	"bytes"
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
)

//go:embed pause.bin
var binary []byte

// Binary returns the embedded pause executable. The caller must not modify it.
func Binary() []byte { return binary }

// Install writes the embedded pause binary to path with mode 0755, creating
// the parent directory. It rewrites the file only when its content differs,
// and atomically (temp file + rename), so a running pause is never
// disturbed. It is safe to call on every start.
func Install(path string) error {
	if len(binary) == 0 {
		return fmt.Errorf("install pause to %s: embedded binary is empty (run `make pause`)", path)
	}
	if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, binary) {
		if st, err := os.Stat(path); err == nil && st.Mode().Perm() == 0o755 {
			return nil
		}
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("install pause to %s: %w", path, err)
	}
	f, err := os.CreateTemp(dir, ".pause-*")
	if err != nil {
		return fmt.Errorf("install pause to %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if _, err := f.Write(binary); err != nil {
		f.Close()
		return fmt.Errorf("install pause to %s: %w", path, err)
	}
	if err := f.Chmod(0o755); err != nil {
		f.Close()
		return fmt.Errorf("install pause to %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("install pause to %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("install pause to %s: %w", path, err)
	}
	return nil
}
