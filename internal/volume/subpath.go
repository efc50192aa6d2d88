package volume

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// ErrSubPathEscape is wrapped by SubPath when a subPath would leave its volume.
var ErrSubPathEscape = errors.New("subPath escapes the volume")

// SubPath resolves a volumeMount's subPath inside volumePath and returns the
// real host path to bind (symlinks inside the volume resolved). As the
// kubelet does, subPath must be relative without ".." components, symlinks
// may be followed only while they stay inside the volume (an escape,
// including an absolute symlink, wraps ErrSubPathEscape), and missing
// directories are created with the volume root's mode. An empty subPath is
// volumePath itself.
//
// Resolution uses openat2(RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS) from a
// descriptor of the volume root, so the check and the walk cannot be raced
// by swapping a component for a symlink. The returned path can still be
// swapped after SubPath returns by someone writing into the volume: to
// bind it, use BindSubPath, which binds the resolved descriptor itself.
func SubPath(volumePath, subPath string) (string, error) {
	fd, err := openSubPath(volumePath, subPath)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	return fdPath(fd)
}

// ValidateSubPath refuses, with the kubelet's messages, a subPath (or an
// expanded subPathExpr) that is absolute or has a ".." element; the
// latter wraps ErrSubPathEscape. Pure.
func ValidateSubPath(subPath string) error {
	if filepath.IsAbs(subPath) {
		return fmt.Errorf("error SubPath `%s` must not be an absolute path", subPath)
	}
	for _, c := range strings.Split(subPath, "/") {
		if c == ".." {
			return fmt.Errorf("unable to provision SubPath `%s`: must not contain '..': %w", subPath, ErrSubPathEscape)
		}
	}
	return nil
}

// openSubPath is SubPath returning an O_PATH descriptor of the resolved
// file or directory, which the caller closes.
func openSubPath(volumePath, subPath string) (int, error) {
	if err := ValidateSubPath(subPath); err != nil {
		return -1, err
	}
	var comps []string
	for _, c := range strings.Split(subPath, "/") {
		if c != "" && c != "." {
			comps = append(comps, c)
		}
	}
	rootFD, err := unix.Open(volumePath, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open volume %s: %w", volumePath, err)
	}
	defer unix.Close(rootFD)
	if len(comps) == 0 {
		return unix.Openat2(rootFD, ".", &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC})
	}
	var st unix.Stat_t
	if err := unix.Fstat(rootFD, &st); err != nil {
		return -1, fmt.Errorf("stat volume %s: %w", volumePath, err)
	}
	perm := st.Mode & 0o7777

	// Resolve each prefix from the root, creating missing directories.
	parentFD := -1
	defer func() {
		if parentFD >= 0 {
			unix.Close(parentFD)
		}
	}()
	for i := range comps {
		prefix := strings.Join(comps[:i+1], "/")
		fd, err := openBeneath(rootFD, prefix, unix.O_PATH)
		if errors.Is(err, unix.ENOENT) {
			dirFD := rootFD
			if parentFD >= 0 {
				dirFD = parentFD
			}
			fd, err = mkdirBeneath(dirFD, comps[i], perm)
		}
		if err != nil {
			if errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ELOOP) {
				return -1, fmt.Errorf("subPath %q in %s: %w", subPath, volumePath, ErrSubPathEscape)
			}
			return -1, fmt.Errorf("resolve subPath %q in %s: %w", subPath, volumePath, err)
		}
		if parentFD >= 0 {
			unix.Close(parentFD)
		}
		parentFD = fd
	}
	resolved, err := fdPath(parentFD)
	if err != nil {
		return -1, err
	}
	root, err := fdPath(rootFD)
	if err != nil {
		return -1, err
	}
	if resolved != root && !strings.HasPrefix(resolved, strings.TrimSuffix(root, "/")+"/") {
		return -1, fmt.Errorf("subPath %q resolved to %s outside %s: %w", subPath, resolved, root, ErrSubPathEscape)
	}
	fd := parentFD
	parentFD = -1
	return fd, nil
}

// BindSubPath resolves subPath in volumePath as SubPath does and
// bind-mounts what it names at target, as the kubelet's doBindSubPath
// does: the bind's source is the resolved descriptor (/proc/self/fd/N),
// not a path, so nobody writing into the volume can swap a component for a
// symlink between the check and the mount. target is created (a directory
// or an empty file, as the source is; its parent must exist); a mount
// already there is replaced. The bind of a file or directory of a shared
// mount joins its peer group, so mount propagation still works through
// it. Nothing stays mounted on error. Remove binds with TeardownDir.
func BindSubPath(volumePath, subPath, target string) error {
	fd, err := openSubPath(volumePath, subPath)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("stat subPath %q: %w", subPath, err)
	}
	if err := unmountAll(target); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		err = os.MkdirAll(target, 0o750)
	} else {
		var f *os.File
		if f, err = os.OpenFile(target, os.O_CREATE|os.O_RDONLY, 0o640); err == nil {
			f.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("create subPath target %s: %w", target, err)
	}
	src := "/proc/self/fd/" + strconv.Itoa(fd)
	if err := unix.Mount(src, target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind subPath %q at %s: %w", subPath, target, err)
	}
	return nil
}

// unmountAll unmounts target until nothing is mounted there; not mounted
// or not existing is success.
func unmountAll(target string) error {
	for range 100 {
		mounted, err := mountinfo.Mounted(target)
		if errors.Is(err, os.ErrNotExist) || (err == nil && !mounted) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("check mount %s: %w", target, err)
		}
		if err := unmount(target); err != nil {
			return err
		}
	}
	return fmt.Errorf("unmount %s: still mounted", target)
}

func openBeneath(dirFD int, path string, flags uint64) (int, error) {
	for {
		fd, err := unix.Openat2(dirFD, path, &unix.OpenHow{
			Flags:   flags | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
		})
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		return fd, err
	}
}

// mkdirBeneath creates name in dirFD (an existing entry is fine, but a
// symlink there is not followed), sets its mode to perm and returns an
// O_PATH descriptor of it.
func mkdirBeneath(dirFD int, name string, perm uint32) (int, error) {
	if err := unix.Mkdirat(dirFD, name, perm); err != nil && !errors.Is(err, unix.EEXIST) {
		return -1, err
	}
	fd, err := unix.Openat2(dirFD, name, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS,
	})
	if err != nil {
		return -1, err
	}
	defer unix.Close(fd)
	if err := unix.Fchmod(fd, perm); err != nil {
		return -1, err
	}
	return unix.Openat2(fd, ".", &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC})
}

// fdPath is the path the kernel has for an open descriptor.
func fdPath(fd int) (string, error) {
	p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		return "", fmt.Errorf("resolve descriptor path: %w", err)
	}
	return p, nil
}
