package podfiles

import (
	"fmt"
	"os"
	"path/filepath"
)

// Write writes each file (name relative to dir -> content) into dir with
// mode 0644, atomically: a temporary file in dir is written, synced and
// renamed over the target, so a reader sees the old or the new content,
// never a partial one. dir must exist.
//
// A bind mount of the old file (a running container's /etc/hosts) keeps
// seeing the old inode: Write is meant for creating the files before the
// containers start.
func Write(dir string, files map[string][]byte) error {
	for name, data := range files {
		if err := writeFile(dir, name, data); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(dir, name string, data []byte) (retErr error) {
	target := filepath.Join(dir, name)
	f, err := os.CreateTemp(filepath.Dir(target), "."+filepath.Base(target)+".tmp-")
	if err != nil {
		return fmt.Errorf("write pod file %s: %w", target, err)
	}
	defer func() {
		if retErr != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write pod file %s: %w", target, err)
	}
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("chmod pod file %s: %w", target, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync pod file %s: %w", target, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close pod file %s: %w", target, err)
	}
	if err := os.Rename(f.Name(), target); err != nil {
		return fmt.Errorf("rename pod file %s: %w", target, err)
	}
	return nil
}
