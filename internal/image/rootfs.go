package image

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// RemapOptions shows a rootfs to a pod with its own user namespace, as
// containerd mounts remapped layers: each lower layer through an idmapped
// mount (overlayfs takes idmapped layers; an overlay mount itself cannot
// be idmapped), and the upper dir owned by the pod's root on the host, so
// the image's files are the pod root's and "/" is writable to it.
type RemapOptions struct {
	// IDMap mounts a clone of the tree at src onto the directory dst,
	// idmapped into the pod's user namespace (userns.MountIDMapped).
	IDMap func(src, dst string) error
	// RootUID and RootGID are the host IDs of the pod's root.
	RootUID, RootGID int
}

// PrepareRootfs mounts an overlayfs for a container of img under dir:
// lowerdir is the image's layers (top first), upperdir dir/upper, workdir
// dir/work, mounted at dir/rootfs, which it returns. It records the use in
// the index first, so Remove and Prune leave img alone until ReleaseRootfs.
// With remap (for a pod with its own user namespace; nil otherwise) the
// layers are idmapped first, under dir/idmap while the overlay is mounted
// and detached right after: the overlay keeps them. It is idempotent: if
// dir/rootfs is already mounted it returns it as is. On failure nothing is
// left mounted or recorded.
func (s *Store) PrepareRootfs(ctx context.Context, img *Image, dir string, remap *RemapOptions) (rootfs string, retErr error) {
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
	if strings.ContainsAny(dir, ",:") {
		return "", fmt.Errorf("prepare rootfs %s: path contains ',' or ':', which overlayfs options cannot carry", dir)
	}
	if remap != nil {
		idmapped, err := remapLayers(dir, lowers, upper, remap)
		// The overlay holds the idmapped layers it was given; their mount
		// points go either way.
		defer func() {
			if err := detachAll(filepath.Join(dir, "idmap")); err != nil && retErr == nil {
				retErr = fmt.Errorf("prepare rootfs %s: %w", dir, err)
			}
		}()
		if err != nil {
			return "", fmt.Errorf("prepare rootfs %s: %w", dir, err)
		}
		lowers = idmapped
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", strings.Join(lowers, ":"), upper, work)
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

// remapLayers mounts each lower layer idmapped at dir/idmap/<n> (a tmpfs
// holding the mount points, so one unmount of it detaches them all) and
// gives the upper dir to the pod's root. It returns the idmapped layers'
// paths, in the order of lowers.
func remapLayers(dir string, lowers []string, upper string, remap *RemapOptions) ([]string, error) {
	base := filepath.Join(dir, "idmap")
	if err := os.MkdirAll(base, 0o700); err != nil {
		return nil, err
	}
	if err := unix.Mount("tmpfs", base, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0700"); err != nil {
		return nil, fmt.Errorf("mount %s: %w", base, err)
	}
	out := make([]string, 0, len(lowers))
	for i, l := range lowers {
		dst := filepath.Join(base, strconv.Itoa(i))
		if err := os.Mkdir(dst, 0o700); err != nil {
			return nil, err
		}
		if err := remap.IDMap(l, dst); err != nil {
			return nil, fmt.Errorf("layer %s: %w", l, err)
		}
		out = append(out, dst)
	}
	if err := os.Chown(upper, remap.RootUID, remap.RootGID); err != nil {
		return nil, fmt.Errorf("give upper dir to the pod's root: %w", err)
	}
	return out, nil
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
	if err := detachAll(filepath.Join(dir, "idmap")); err != nil {
		return fmt.Errorf("release rootfs %s: %w", dir, err)
	}
	for _, d := range []string{"rootfs", "upper", "work", "empty", "idmap"} {
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

// detachAll lazily unmounts target with everything below it; a target
// that is missing or not a mount point is success.
func detachAll(target string) error {
	for {
		err := unix.Unmount(target, unix.MNT_DETACH)
		switch {
		case err == nil:
			continue
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil
		default:
			return fmt.Errorf("unmount %s: %w", target, err)
		}
	}
}
