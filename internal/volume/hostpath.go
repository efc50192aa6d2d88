package volume

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
)

// setupHostPath checks a hostPath volume's type exactly as Kubernetes'
// hostPath plugin (checkTypeInternal) does, creating the path for
// DirectoryOrCreate (0755, with parents) and FileOrCreate (0644; the parent
// must exist), and returns the path itself.
func setupHostPath(hp *corev1.HostPathVolumeSource, fld string) (string, error) {
	if !filepath.IsAbs(hp.Path) {
		return "", fmt.Errorf("%s.hostPath.path: Invalid value: %q: must be an absolute path", fld, hp.Path)
	}
	path := filepath.Clean(hp.Path)
	if hp.Type == nil {
		return path, nil
	}
	if err := CheckHostPathType(path, *hp.Type); err != nil {
		return "", err
	}
	return path, nil
}

// CheckHostPathType applies a hostPath volume type to path, as Kubernetes
// does: "" checks nothing; DirectoryOrCreate creates a missing directory
// (0755, with parents) and then requires a directory; Directory requires
// one; FileOrCreate creates a missing empty file (0644; its parent must
// exist) and then requires a regular file; File, Socket, CharDevice and
// BlockDevice require that kind. Symlinks are followed. Failures read like
// Kubernetes': "hostPath type check failed: /x is not a directory".
func CheckHostPathType(path string, t corev1.HostPathType) error {
	switch t {
	case corev1.HostPathUnset:
		return nil
	case corev1.HostPathDirectoryOrCreate:
		if !exists(path) {
			if err := os.MkdirAll(path, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
				return fmt.Errorf("hostPath type check failed: create directory %s: %w", path, err)
			}
		}
		return checkKind(path, corev1.HostPathDirectory)
	case corev1.HostPathFileOrCreate:
		if !exists(path) {
			f, err := os.OpenFile(path, os.O_CREATE, 0o644)
			if f != nil {
				f.Close()
			}
			if err != nil && !errors.Is(err, os.ErrExist) {
				return fmt.Errorf("hostPath type check failed: create file %s: %w", path, err)
			}
		}
		return checkKind(path, corev1.HostPathFile)
	case corev1.HostPathDirectory, corev1.HostPathFile, corev1.HostPathSocket, corev1.HostPathCharDev, corev1.HostPathBlockDev:
		return checkKind(path, t)
	}
	return fmt.Errorf("hostPath type check failed: %s is an invalid volume type", t)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

var kindNames = map[corev1.HostPathType]string{
	corev1.HostPathDirectory: "a directory",
	corev1.HostPathFile:      "a file",
	corev1.HostPathSocket:    "a socket file",
	corev1.HostPathCharDev:   "a character device",
	corev1.HostPathBlockDev:  "a block device",
}

// checkKind stats path (following symlinks) and requires kind.
func checkKind(path string, kind corev1.HostPathType) error {
	st, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("hostPath type check failed: %s is not %s", path, kindNames[kind])
		}
		return fmt.Errorf("hostPath type check failed: stat %s: %w", path, err)
	}
	var got corev1.HostPathType
	mode := st.Mode()
	switch {
	case mode.IsDir():
		got = corev1.HostPathDirectory
	case mode.IsRegular():
		got = corev1.HostPathFile
	case mode&os.ModeSocket != 0:
		got = corev1.HostPathSocket
	case mode&os.ModeCharDevice != 0:
		got = corev1.HostPathCharDev
	case mode&os.ModeDevice != 0:
		got = corev1.HostPathBlockDev
	}
	if got != kind {
		return fmt.Errorf("hostPath type check failed: %s is not %s", path, kindNames[kind])
	}
	return nil
}
