package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
)

// flight is one layer unpack in progress; concurrent callers wait on done.
type flight struct {
	done chan struct{}
	err  error
}

// ensureLayer makes sure the layer with diffID is unpacked, calling open to
// get its (possibly compressed) stream only when it is not. Concurrent calls
// for one diffID unpack it once; the others wait for the first and share its
// result. The layer is unpacked into a temp dir and renamed into place, so a
// crash never leaves a half layer. The stream is verified: its uncompressed
// sha256 must equal diffID, and if digest is not empty its raw sha256 must
// equal digest.
func (s *Store) ensureLayer(ctx context.Context, diffID, digest string, open func() (io.ReadCloser, error)) (unpacked bool, err error) {
	for {
		s.lockIndex()
		if _, err := os.Stat(s.layerDir(diffID)); err == nil {
			s.unlockIndex()
			return false, nil
		}
		f, busy := s.inflight[diffID]
		if !busy {
			f = &flight{done: make(chan struct{})}
			s.inflight[diffID] = f
			s.unlockIndex()
			f.err = s.unpackLayer(ctx, diffID, digest, open)
			s.lockIndex()
			delete(s.inflight, diffID)
			s.unlockIndex()
			close(f.done)
			return f.err == nil, f.err
		}
		s.unlockIndex()
		select {
		case <-f.done:
			if f.err == nil {
				return false, nil
			}
			// The other unpack failed (maybe its context was cancelled):
			// try ourselves.
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

func (s *Store) unpackLayer(ctx context.Context, diffID, digest string, open func() (io.ReadCloser, error)) (retErr error) {
	tmp, err := os.MkdirTemp(s.tmp, "layer-")
	if err != nil {
		return fmt.Errorf("unpack layer %s: %w", diffID, err)
	}
	defer func() {
		if retErr != nil {
			os.RemoveAll(tmp)
		}
	}()
	rc, err := open()
	if err != nil {
		return fmt.Errorf("unpack layer %s: open: %w", diffID, err)
	}
	defer rc.Close()
	raw := sha256.New()
	uncompressed := sha256.New()
	if err := unpackStream(ctx, io.TeeReader(rc, raw), uncompressed, tmp); err != nil {
		// A corrupted blob usually breaks decompression first; read the
		// rest to name the real cause.
		if digest != "" && ctx.Err() == nil {
			io.Copy(raw, rc) //nolint:errcheck // only the hash matters
			if got := "sha256:" + hex.EncodeToString(raw.Sum(nil)); got != digest {
				return fmt.Errorf("unpack layer %s: blob digest mismatch: got %s, want %s (%v)", diffID, got, digest, err)
			}
		}
		return fmt.Errorf("unpack layer %s: %w", diffID, err)
	}
	if err := rc.Close(); err != nil {
		return fmt.Errorf("unpack layer %s: %w", diffID, err)
	}
	if digest != "" {
		if got := "sha256:" + hex.EncodeToString(raw.Sum(nil)); got != digest {
			return fmt.Errorf("unpack layer %s: blob digest mismatch: got %s, want %s", diffID, got, digest)
		}
	}
	if got := "sha256:" + hex.EncodeToString(uncompressed.Sum(nil)); got != diffID {
		return fmt.Errorf("unpack layer %s: diffID mismatch: got %s", diffID, got)
	}
	if err := os.Rename(tmp, s.layerDir(diffID)); err != nil {
		return fmt.Errorf("unpack layer %s: %w", diffID, err)
	}
	s.unpacks.Add(1)
	return nil
}

// unpackStream decompresses r (gzip, zstd or plain tar, by magic number),
// hashes the uncompressed bytes into h, and extracts the tar into dir. It
// reads r to its end so verifying readers see EOF.
func unpackStream(ctx context.Context, r io.Reader, h hash.Hash, dir string) error {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, _ := br.Peek(4)
	var tr io.Reader = br
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("gunzip: %w", err)
		}
		defer zr.Close()
		tr = zr
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br)
		if err != nil {
			return fmt.Errorf("zstd: %w", err)
		}
		defer zr.Close()
		tr = zr
	}
	tr = io.TeeReader(tr, h)
	if err := extractTar(ctx, tar.NewReader(tr), dir); err != nil {
		return err
	}
	// Drain tar padding and any trailing compressed bytes.
	if _, err := io.Copy(io.Discard, tr); err != nil {
		return fmt.Errorf("read layer: %w", err)
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return fmt.Errorf("read layer: %w", err)
	}
	return nil
}

// extractTar writes the entries of tr under dir, translating OCI whiteouts
// into overlayfs ones, preserving mode, ownership, xattrs and mtimes. An entry
// whose path or hardlink target leaves dir, or whose parent path goes
// through a symlink, is an error naming the entry.
func extractTar(ctx context.Context, tr *tar.Reader, dir string) error {
	type dirTime struct {
		path string
		t    time.Time
	}
	var dirs []dirTime
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		rel, err := cleanEntry(hdr.Name)
		if err != nil {
			return err
		}
		if rel == "." {
			if hdr.Typeflag == tar.TypeDir {
				dirs = append(dirs, dirTime{dir, hdr.ModTime})
				if err := applyMeta(dir, hdr); err != nil {
					return err
				}
			}
			continue
		}
		parent, base := path.Split(rel)
		if err := ensureParent(dir, parent); err != nil {
			return fmt.Errorf("tar entry %q: %w", hdr.Name, err)
		}
		target := filepath.Join(dir, rel)
		if base == whiteoutOpaque {
			if err := unix.Lsetxattr(filepath.Join(dir, parent), "trusted.overlay.opaque", []byte("y"), 0); err != nil {
				return fmt.Errorf("tar entry %q: opaque: %w", hdr.Name, err)
			}
			continue
		}
		if strings.HasPrefix(base, whiteoutPrefix) {
			wh := filepath.Join(dir, parent, strings.TrimPrefix(base, whiteoutPrefix))
			if err := os.RemoveAll(wh); err != nil {
				return fmt.Errorf("tar entry %q: %w", hdr.Name, err)
			}
			if err := unix.Mknod(wh, unix.S_IFCHR, 0); err != nil {
				return fmt.Errorf("tar entry %q: whiteout: %w", hdr.Name, err)
			}
			continue
		}
		if hdr.Typeflag != tar.TypeDir {
			if err := os.RemoveAll(target); err != nil {
				return fmt.Errorf("tar entry %q: %w", hdr.Name, err)
			}
		} else if fi, err := os.Lstat(target); err == nil && !fi.IsDir() {
			if err := os.Remove(target); err != nil {
				return fmt.Errorf("tar entry %q: %w", hdr.Name, err)
			}
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.Mkdir(target, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
				return fmt.Errorf("tar entry %q: %w", hdr.Name, err)
			}
			dirs = append(dirs, dirTime{target, hdr.ModTime})
		case tar.TypeReg: // the reader reports old TypeRegA entries as TypeReg
			f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
			if err != nil {
				return fmt.Errorf("tar entry %q: %w", hdr.Name, err)
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("tar entry %q: %w", hdr.Name, err)
			}
		case tar.TypeSymlink:
			if err := os.Symlink(hdr.Linkname, target); err != nil {
				return fmt.Errorf("tar entry %q: %w", hdr.Name, err)
			}
		case tar.TypeLink:
			lrel, err := cleanEntry(hdr.Linkname)
			if err != nil {
				return fmt.Errorf("tar entry %q: hardlink target: %w", hdr.Name, err)
			}
			if err := ensureParent(dir, path.Dir(lrel)); err != nil {
				return fmt.Errorf("tar entry %q: hardlink target: %w", hdr.Name, err)
			}
			if err := os.Link(filepath.Join(dir, lrel), target); err != nil {
				return fmt.Errorf("tar entry %q: %w", hdr.Name, err)
			}
			continue // a hardlink shares the target's metadata
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			mode := uint32(unix.S_IFIFO)
			if hdr.Typeflag == tar.TypeChar {
				mode = unix.S_IFCHR
			} else if hdr.Typeflag == tar.TypeBlock {
				mode = unix.S_IFBLK
			}
			dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
			if err := unix.Mknod(target, mode|0o600, int(dev)); err != nil {
				return fmt.Errorf("tar entry %q: %w", hdr.Name, err)
			}
		default:
			continue // pax globals, GNU sparse and the like carry no file
		}
		if err := applyMeta(target, hdr); err != nil {
			return err
		}
	}
	// Directory mtimes last, deepest first, since creating children changes them.
	for i := len(dirs) - 1; i >= 0; i-- {
		ts := []unix.Timespec{unix.NsecToTimespec(dirs[i].t.UnixNano()), unix.NsecToTimespec(dirs[i].t.UnixNano())}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, dirs[i].path, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("set mtime of %s: %w", dirs[i].path, err)
		}
	}
	return nil
}

// applyMeta sets ownership, xattrs, mode (with setuid/setgid/sticky, after
// chown which clears them) and mtime of target from hdr.
func applyMeta(target string, hdr *tar.Header) error {
	if err := os.Lchown(target, hdr.Uid, hdr.Gid); err != nil {
		return fmt.Errorf("tar entry %q: chown: %w", hdr.Name, err)
	}
	for k, v := range hdr.PAXRecords {
		attr, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok {
			continue
		}
		if err := unix.Lsetxattr(target, attr, []byte(v), 0); err != nil {
			return fmt.Errorf("tar entry %q: xattr %s: %w", hdr.Name, attr, err)
		}
	}
	if hdr.Typeflag != tar.TypeSymlink {
		if err := unix.Chmod(target, uint32(hdr.Mode)&0o7777); err != nil {
			return fmt.Errorf("tar entry %q: chmod: %w", hdr.Name, err)
		}
	}
	if hdr.Typeflag != tar.TypeDir {
		ts := []unix.Timespec{unix.NsecToTimespec(hdr.ModTime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, target, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("tar entry %q: mtime: %w", hdr.Name, err)
		}
	}
	return nil
}

// cleanEntry returns the entry's path relative to the layer root, or an
// error if it would leave the root.
func cleanEntry(name string) (string, error) {
	rel := path.Clean(strings.TrimLeft(name, "/"))
	if rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("tar entry %q escapes the layer root", name)
	}
	return rel, nil
}

// ensureParent makes sure every component of rel (relative, clean) under
// dir is a real directory, creating missing ones; it refuses to go through
// a symlink, which could point outside dir.
func ensureParent(dir, rel string) error {
	rel = strings.Trim(rel, "/")
	if rel == "" || rel == "." {
		return nil
	}
	cur := dir
	for _, c := range strings.Split(rel, "/") {
		cur = filepath.Join(cur, c)
		fi, err := os.Lstat(cur)
		switch {
		case errors.Is(err, os.ErrNotExist):
			if err := os.Mkdir(cur, 0o755); err != nil {
				return err
			}
		case err != nil:
			return err
		case fi.Mode()&os.ModeSymlink != 0:
			return fmt.Errorf("path %s goes through a symlink", strings.TrimPrefix(cur, dir))
		case !fi.IsDir():
			return fmt.Errorf("path %s is not a directory", strings.TrimPrefix(cur, dir))
		}
	}
	return nil
}
