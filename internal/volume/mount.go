package volume

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// mountInfo is one line of /proc/self/mountinfo.
type mountInfo struct {
	mountPoint string
	fsType     string
	options    string // super options
}

// readMountInfo parses /proc/self/mountinfo in order (parents before
// children).
func readMountInfo() ([]mountInfo, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	defer f.Close()
	var out []mountInfo
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		// id parent major:minor root mountpoint opts [optional...] - fstype source superopts
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if len(fields) < 5 || sep < 0 || len(fields) < sep+3 {
			continue
		}
		mi := mountInfo{mountPoint: unescapeOctal(fields[4]), fsType: fields[sep+1]}
		if len(fields) > sep+3 {
			mi.options = fields[sep+3]
		}
		out = append(out, mi)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	return out, nil
}

// unescapeOctal undoes the kernel's \NNN escaping of spaces, tabs,
// newlines and backslashes in mountinfo paths.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
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
