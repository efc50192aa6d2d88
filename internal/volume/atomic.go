package volume

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The kubelet's AtomicWriter layout (pkg/volume/util/atomic_writer.go):
//
//	<dir>/..2026_11_22_09_53_00.123456789/   the current payload (timestamped)
//	<dir>/..data -> ..2026_11_22_09_53_00.123456789
//	<dir>/<key>  -> ..data/<key>             one per top-level payload path
//
// A new payload is written into a fresh timestamped dir, then ..data is
// swapped to it by renaming a ..data_tmp symlink over it, so a reader
// (through the user-visible symlinks) sees the whole old or the whole new
// payload, never a mix.
const (
	dataDirName    = "..data"
	newDataDirName = "..data_tmp"
)

// fileProjection is one file of a payload.
type fileProjection struct {
	data []byte
	mode int32
}

// validatePayloadPath applies the AtomicWriter's rules to one payload path.
func validatePayloadPath(p string) error {
	switch {
	case p == "":
		return errors.New("invalid path: must not be empty")
	case filepath.IsAbs(p):
		return fmt.Errorf("invalid path %q: must be relative path", p)
	case len(p) > 4096:
		return fmt.Errorf("invalid path %q: must be less than or equal to 4096 characters", p)
	case strings.HasPrefix(p, ".."):
		return fmt.Errorf("invalid path %q: must not start with '..'", p)
	}
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return fmt.Errorf("invalid path %q: must not contain '..'", p)
		}
		if len(c) > 255 {
			return fmt.Errorf("invalid path %q: each path segment must be less than or equal to 255 characters", p)
		}
	}
	return nil
}

// writeAtomic replaces the payload in dir (which must exist) as described
// above. Files get their projection's mode exactly (umask ignored),
// directories inside the payload 0755. Calling it again with a new payload
// swaps it in and removes the old one, and user-visible entries no longer
// in the payload.
func writeAtomic(dir string, payload map[string]fileProjection) (retErr error) {
	top := map[string]bool{}
	for p := range payload {
		if err := validatePayloadPath(p); err != nil {
			return err
		}
		first, _, _ := strings.Cut(filepath.Clean(p), "/")
		top[first] = true
	}
	oldTS, err := os.Readlink(filepath.Join(dir, dataDirName))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read %s link in %s: %w", dataDirName, dir, err)
	}

	tsDir, err := os.MkdirTemp(dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		return fmt.Errorf("create payload dir in %s: %w", dir, err)
	}
	defer func() {
		if retErr != nil {
			os.RemoveAll(tsDir)
		}
	}()
	if err := os.Chmod(tsDir, 0o755); err != nil {
		return fmt.Errorf("chmod %s: %w", tsDir, err)
	}
	for p, f := range payload {
		full := filepath.Join(tsDir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return fmt.Errorf("create payload dir for %s: %w", p, err)
		}
		if err := os.WriteFile(full, f.data, os.FileMode(f.mode)&os.ModePerm); err != nil {
			return fmt.Errorf("write payload file %s: %w", p, err)
		}
		if err := os.Chmod(full, os.FileMode(f.mode)&os.ModePerm); err != nil {
			return fmt.Errorf("chmod payload file %s: %w", p, err)
		}
	}

	tmpLink := filepath.Join(dir, newDataDirName)
	if err := os.Remove(tmpLink); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale %s: %w", tmpLink, err)
	}
	if err := os.Symlink(filepath.Base(tsDir), tmpLink); err != nil {
		return fmt.Errorf("link new payload in %s: %w", dir, err)
	}
	if err := os.Rename(tmpLink, filepath.Join(dir, dataDirName)); err != nil {
		os.Remove(tmpLink)
		return fmt.Errorf("swap payload in %s: %w", dir, err)
	}

	// From here on the new payload is live: errors no longer remove it.
	for name := range top {
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join(dataDirName, name), link); err != nil {
			return fmt.Errorf("create user-visible link %s: %w", link, err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, "..") || top[n] || e.Type()&os.ModeSymlink == 0 {
			continue
		}
		if err := os.Remove(filepath.Join(dir, n)); err != nil {
			return fmt.Errorf("remove stale link %s: %w", n, err)
		}
	}
	if oldTS != "" && oldTS != filepath.Base(tsDir) && strings.HasPrefix(oldTS, "..") && !strings.Contains(oldTS, "/") {
		if err := os.RemoveAll(filepath.Join(dir, oldTS)); err != nil {
			return fmt.Errorf("remove old payload %s: %w", oldTS, err)
		}
	}
	return nil
}
