package image

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// PrepareRootfs mounts an overlayfs for a container of img under dir:
// lowerdir is the image's layers (top first), upperdir dir/upper, workdir
// dir/work, mounted at dir/rootfs, which it returns. It records the use in
// the index first, so Remove and Prune leave img alone until ReleaseRootfs.
// It is idempotent: if dir/rootfs is already mounted it returns it as is.
// On failure nothing is left mounted or recorded.
func (s *Store) PrepareRootfs(ctx context.Context, img *Image, dir string) (rootfs string, retErr error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("prepare rootfs %s: %w", dir, err)
	}
	rootfs = filepath.Join(dir, "rootfs")
	s.lockIndex()
	rec, ok := s.idx.Images[img.ID]
	if !ok {
		s.unlockIndex()
		return "", fmt.Errorf("prepare rootfs %s: image %s: %w", dir, img.ID, ErrNotFound)
	}
	prev, had := s.idx.Rootfs[dir]
	if had && prev != img.ID {
		s.unlockIndex()
		return "", fmt.Errorf("prepare rootfs %s: already used by image %s", dir, prev)
	}
	var lowers []string
	for i := len(rec.DiffIDs) - 1; i >= 0; i-- {
		lowers = append(lowers, s.layerDir(rec.DiffIDs[i]))
	}
	s.idx.Rootfs[dir] = img.ID
	err = s.saveLocked()
	s.unlockIndex()
	if err != nil {
		return "", fmt.Errorf("prepare rootfs %s: %w", dir, err)
	}
	defer func() {
		if retErr != nil && !had {
			s.dropUse(dir)
		}
	}()

	mounted, err := mountinfo.Mounted(rootfs)
	if errors.Is(err, fs.ErrNotExist) {
		mounted, err = false, nil
	}
	if err != nil {
		return "", fmt.Errorf("prepare rootfs %s: %w", dir, err)
	}
	if mounted {
		return rootfs, nil
	}
	upper, work := filepath.Join(dir, "upper"), filepath.Join(dir, "work")
	if len(lowers) == 0 { // overlayfs needs a lower layer
		lowers = []string{filepath.Join(dir, "empty")}
	}
	for _, d := range append([]string{upper, work, rootfs}, lowers[0]) {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", fmt.Errorf("prepare rootfs %s: %w", dir, err)
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", strings.Join(lowers, ":"), upper, work)
	if strings.ContainsAny(dir, ",:") {
		return "", fmt.Errorf("prepare rootfs %s: path contains ',' or ':', which overlayfs options cannot carry", dir)
	}
	if len(opts) >= os.Getpagesize() {
		return "", fmt.Errorf("prepare rootfs %s: %d layers make overlay options too long (%d bytes)", dir, len(lowers), len(opts))
	}
	if err := unix.Mount("overlay", rootfs, "overlay", 0, opts); err != nil {
		os.RemoveAll(upper)
		os.RemoveAll(work)
		return "", fmt.Errorf("prepare rootfs %s: mount overlay: %w", dir, err)
	}
	s.log.DebugContext(ctx, "prepared rootfs", "dir", dir, "image", img.ID)
	return rootfs, nil
}

// ReleaseRootfs unmounts dir/rootfs, removes dir/rootfs, dir/upper and
// dir/work, and drops the use PrepareRootfs recorded. It is idempotent: a
// dir that is missing, unmounted or unknown is success. It fails, leaving
// everything in place, if the rootfs stays busy.
func (s *Store) ReleaseRootfs(ctx context.Context, dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("release rootfs %s: %w", dir, err)
	}
	rootfs := filepath.Join(dir, "rootfs")
	if err := unmountAll(ctx, rootfs); err != nil {
		return fmt.Errorf("release rootfs %s: %w", dir, err)
	}
	for _, d := range []string{"rootfs", "upper", "work", "empty"} {
		if err := os.RemoveAll(filepath.Join(dir, d)); err != nil {
			return fmt.Errorf("release rootfs %s: %w", dir, err)
		}
	}
	if err := s.dropUse(dir); err != nil {
		return fmt.Errorf("release rootfs %s: %w", dir, err)
	}
	return nil
}

func (s *Store) dropUse(dir string) error {
	s.lockIndex()
	defer s.unlockIndex()
	if _, ok := s.idx.Rootfs[dir]; !ok {
		return nil
	}
	delete(s.idx.Rootfs, dir)
	return s.saveLocked()
}

// unmountAll unmounts every mount stacked on target, retrying briefly while
// it is busy. A target that is missing or not a mount point is success.
func unmountAll(ctx context.Context, target string) error {
	for busy := 0; ; {
		err := unix.Unmount(target, 0)
		switch {
		case err == nil:
			continue
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil
		case errors.Is(err, unix.EBUSY) && busy < 20:
			busy++
			select {
			case <-ctx.Done():
				return fmt.Errorf("unmount %s: %w", target, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		default:
			return fmt.Errorf("unmount %s: %w", target, err)
		}
	}
}
