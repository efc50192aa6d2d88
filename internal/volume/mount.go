package volume

import (
	"errors"
	"fmt"

	"github.com/moby/sys/mountinfo"

	"golang.org/x/sys/unix"
)

// mountsUnder returns the mount points at or below dir, deepest (latest
// mounted) first, so unmounting in order never hits a busy parent.
func mountsUnder(dir string) ([]string, error) {
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	out := make([]string, 0, len(mounts))
	for i := len(mounts) - 1; i >= 0; i-- {
		out = append(out, mounts[i].Mountpoint)
	}
	return out, nil
}

// unmount unmounts path without following a symlink there. Not mounted or
// not existing counts as success; a busy mount is detached lazily (we are
// tearing down: its users are on their way out).
func unmount(path string) error {
	err := unix.Unmount(path, unix.UMOUNT_NOFOLLOW)
	switch {
	case err == nil, errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
		return nil
	case errors.Is(err, unix.EBUSY):
		if err := unix.Unmount(path, unix.UMOUNT_NOFOLLOW|unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("unmount %s (detach): %w", path, err)
		}
		return nil
	}
	return fmt.Errorf("unmount %s: %w", path, err)
}
