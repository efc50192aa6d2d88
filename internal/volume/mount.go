package volume

import (
	"errors"
	"fmt"
	"strings"

	"github.com/moby/sys/mountinfo"

	"golang.org/x/sys/unix"
)

// mountInfo is one line of /proc/self/mountinfo.
type mountInfo struct {
	mountPoint string
	fsType     string
	options    string // super options
}

// readMountInfo lists the mounts in /proc/self/mountinfo order (parents
// before children), read by moby's parser as runc and containerd read it.
func readMountInfo() ([]mountInfo, error) {
	mounts, err := mountinfo.GetMounts(nil)
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	out := make([]mountInfo, 0, len(mounts))
	for _, m := range mounts {
		out = append(out, mountInfo{mountPoint: m.Mountpoint, fsType: m.FSType, options: m.VFSOptions})
	}
	return out, nil
}

// mountsUnder returns the mount points at or below dir, deepest (latest
// mounted) first, so unmounting in order never hits a busy parent.
func mountsUnder(dir string) ([]string, error) {
	infos, err := readMountInfo()
	if err != nil {
		return nil, err
	}
	var out []string
	for i := len(infos) - 1; i >= 0; i-- {
		mp := infos[i].mountPoint
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out, nil
}

// findMount returns the topmost mount at exactly path, if any.
func findMount(path string) (mountInfo, bool, error) {
	infos, err := readMountInfo()
	if err != nil {
		return mountInfo{}, false, err
	}
	for i := len(infos) - 1; i >= 0; i-- {
		if infos[i].mountPoint == path {
			return infos[i], true, nil
		}
	}
	return mountInfo{}, false, nil
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
