package userns

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrUnsupported marks what this kernel cannot do for a pod with
// hostUsers: false; the error's text says what is missing.
var ErrUnsupported = errors.New("user namespaces unsupported")

// Supported reports, wrapping ErrUnsupported, why this kernel cannot give
// pods user namespaces: none compiled in, or none allowed
// (/proc/sys/user/max_user_namespaces is 0). nil means it can; whether the
// filesystems involved take idmapped mounts shows when MountIDMapped runs.
func Supported() error {
	return supported(os.Stat, os.ReadFile)
}

func supported(stat func(string) (os.FileInfo, error), read func(string) ([]byte, error)) error {
	if _, err := stat("/proc/self/ns/user"); err != nil {
		return fmt.Errorf("%w: the kernel has no user namespaces (/proc/self/ns/user: %v)", ErrUnsupported, err)
	}
	b, err := read("/proc/sys/user/max_user_namespaces")
	if err != nil {
		return fmt.Errorf("%w: read /proc/sys/user/max_user_namespaces: %v", ErrUnsupported, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n <= 0 {
		return fmt.Errorf("%w: user namespaces are disabled (/proc/sys/user/max_user_namespaces is %q)", ErrUnsupported, strings.TrimSpace(string(b)))
	}
	return nil
}

// MountIDMapped mounts a clone of the mount tree at src onto dst (which
// must exist, a directory for a directory, a file for anything else),
// idmapped with the user namespace at usernsPath: a file the host's ID k
// owns on disk shows as owned by the ID k maps to in that namespace's
// range, so in the namespace as k, and the namespace's IDs write as the
// host's. With recursive, mounts below src come along (as a bind mount of
// a hostPath volume would bring them), each idmapped. The new mount stacks
// on whatever dst is. A filesystem that cannot be idmapped is an error
// wrapping ErrUnsupported that names it.
func MountIDMapped(src, dst, usernsPath string, recursive bool) error {
	ns, err := unix.Open(usernsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("idmapped mount of %s: open user namespace %s: %w", src, usernsPath, err)
	}
	defer unix.Close(ns)
	openFlags := unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC
	setFlags := unix.AT_EMPTY_PATH
	if recursive {
		openFlags |= unix.AT_RECURSIVE
		setFlags |= unix.AT_RECURSIVE
	}
	tree, err := unix.OpenTree(unix.AT_FDCWD, src, uint(openFlags))
	if err != nil {
		return fmt.Errorf("idmapped mount of %s: clone it: %w", src, err)
	}
	defer unix.Close(tree)
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(ns)}
	if err := unix.MountSetattr(tree, "", uint(setFlags), &attr); err != nil {
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
			var st unix.Statfs_t
			fs := "its filesystem"
			if unix.Statfs(src, &st) == nil {
				fs = fmt.Sprintf("its filesystem (type %#x)", st.Type)
			}
			return fmt.Errorf("%w: idmapped mount of %s: %s cannot be idmapped by this kernel: %v", ErrUnsupported, src, fs, err)
		}
		return fmt.Errorf("idmapped mount of %s: %w", src, err)
	}
	if err := unix.MoveMount(tree, "", unix.AT_FDCWD, dst, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("idmapped mount of %s: attach at %s: %w", src, dst, err)
	}
	return nil
}
