package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

const (
	annotationRefName        = "org.opencontainers.image.ref.name"
	annotationContainerdName = "io.containerd.image.name"
)

// Import stores every image in the tarball at path: a docker-archive
// (`docker save`, all tags in manifest.json) or an OCI image layout
// (names from the org.opencontainers.image.ref.name annotation, or
// io.containerd.image.name when ref.name is only a tag), either optionally
// gzip-compressed. It returns the stored images. Layers are verified against
// their diffIDs.
func (s *Store) Import(ctx context.Context, path string) ([]*Image, error) {
	tarPath, cleanup, err := s.uncompressed(path)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", path, err)
	}
	defer cleanup()
	files, err := tarNames(tarPath)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", path, err)
	}
	var imgs []*Image
	switch {
	case files["manifest.json"]:
		imgs, err = s.importDocker(ctx, tarPath)
	case files["index.json"] && files["oci-layout"]:
		imgs, err = s.importOCI(ctx, tarPath)
	default:
		err = errors.New("neither a docker-archive (manifest.json) nor an OCI layout (index.json, oci-layout)")
	}
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", path, err)
	}
	s.log.InfoContext(ctx, "imported images", "file", path, "count", len(imgs))
	return imgs, nil
}

// uncompressed returns the path of an uncompressed copy of the tar at path
// (path itself unless it is gzipped) and a func removing any copy.
func (s *Store) uncompressed(path string) (string, func(), error) {
	f, err := os.Open(path)
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	magic, _ := br.Peek(2)
	if !bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		return path, func() {}, nil
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		return "", nil, fmt.Errorf("gunzip: %w", err)
	}
	tmp, err := os.CreateTemp(s.tmp, "import-*.tar")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.Remove(tmp.Name()) }
	_, err = io.Copy(tmp, zr)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		cleanup()
		return "", nil, fmt.Errorf("gunzip: %w", err)
	}
	return tmp.Name(), cleanup, nil
}

// tarNames returns the set of entry names in the tar at path, cleaned.
func tarNames(path string) (map[string]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names := map[string]bool{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read tar: %w", err)
		}
		names[filepath.Clean(strings.TrimPrefix(hdr.Name, "./"))] = true
	}
}

func (s *Store) importDocker(ctx context.Context, tarPath string) ([]*Image, error) {
	opener := func() (io.ReadCloser, error) { return os.Open(tarPath) }
	m, err := tarball.LoadManifest(opener)
	if err != nil {
		return nil, fmt.Errorf("read manifest.json: %w", err)
	}
	var out []*Image
	for _, d := range m {
		var tag *name.Tag
		var names []string
		for _, t := range d.RepoTags {
			nt, err := name.NewTag(t)
			if err != nil {
				return nil, fmt.Errorf("repo tag %q: %w", t, err)
			}
			if tag == nil {
				tag = &nt
			}
			names = append(names, refString(nt))
		}
		if tag == nil && len(m) > 1 {
			s.log.WarnContext(ctx, "skipping untagged image in multi-image archive", "config", d.Config)
			continue
		}
		img, err := tarball.Image(opener, tag)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", d.Config, err)
		}
		stored, err := s.ingest(ctx, img, source{names: names, pinned: true})
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", d.Config, err)
		}
		out = append(out, stored)
	}
	return out, nil
}

func (s *Store) importOCI(ctx context.Context, tarPath string) ([]*Image, error) {
	dir, err := os.MkdirTemp(s.tmp, "oci-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := extractPlain(tarPath, dir); err != nil {
		return nil, err
	}
	ii, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("read OCI layout: %w", err)
	}
	im, err := ii.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("read OCI index: %w", err)
	}
	var out []*Image
	for _, desc := range im.Manifests {
		img, err := platformImage(ii, desc)
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %w", desc.Digest, err)
		}
		manifest, err := img.RawManifest()
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %w", desc.Digest, err)
		}
		src := source{compressed: true, manifest: manifest, pinned: true}
		if n := ociName(desc.Annotations); n != nil {
			src.names = []string{refString(n)}
			src.repoDigest = []string{repoDigest(n, desc.Digest.String())}
		} else {
			s.log.WarnContext(ctx, "OCI manifest has no usable name; importing untagged", "digest", desc.Digest)
		}
		stored, err := s.ingest(ctx, img, src)
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %w", desc.Digest, err)
		}
		out = append(out, stored)
	}
	return out, nil
}

// platformImage returns the image desc points to, choosing linux/GOARCH (or
// the only entry) when it is an index.
func platformImage(ii v1.ImageIndex, desc v1.Descriptor) (v1.Image, error) {
	if !desc.MediaType.IsIndex() {
		return ii.Image(desc.Digest)
	}
	child, err := ii.ImageIndex(desc.Digest)
	if err != nil {
		return nil, err
	}
	cm, err := child.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, d := range cm.Manifests {
		if len(cm.Manifests) == 1 || (d.Platform != nil && d.Platform.OS == "linux" && d.Platform.Architecture == runtime.GOARCH) {
			return platformImage(child, d)
		}
	}
	return nil, fmt.Errorf("no linux/%s image in index", runtime.GOARCH)
}

// ociName returns the image name an OCI index entry's annotations give, or
// nil: ref.name if it is a full reference, else containerd's image name.
func ociName(ann map[string]string) name.Reference {
	for _, key := range []string{annotationRefName, annotationContainerdName} {
		v := ann[key]
		if v == "" || (key == annotationRefName && !strings.ContainsAny(v, "/:")) {
			continue // a bare tag such as "latest" names no repository
		}
		if r, err := parseRef(v); err == nil {
			return r
		}
	}
	return nil
}

// extractPlain extracts the directories and regular files of the tar at
// path into dir, refusing entries that escape it.
func extractPlain(path, dir string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		rel, err := cleanEntry(hdr.Name)
		if err != nil {
			return err
		}
		target := filepath.Join(dir, rel)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o700); err != nil {
				return err
			}
		case tar.TypeReg: // the reader reports old TypeRegA entries as TypeReg
			if err := ensureParent(dir, filepath.Dir(rel)); err != nil {
				return fmt.Errorf("tar entry %q: %w", hdr.Name, err)
			}
			out, err := os.OpenFile(target, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("tar entry %q: %w", hdr.Name, err)
			}
		}
	}
}

// ImportDir imports every *.tar, *.tar.gz and *.tgz file in dir, k3s-style
// air-gap loading. A missing dir is fine; a file that fails is logged and
// skipped; a file already imported with the same size and mtime is skipped,
// so calling it at every start is cheap. It returns an error only if dir
// cannot be read or the index cannot be saved.
func (s *Store) ImportDir(ctx context.Context, dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("import dir %s: %w", dir, err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	for _, e := range entries {
		n := e.Name()
		if !strings.HasSuffix(n, ".tar") && !strings.HasSuffix(n, ".tar.gz") && !strings.HasSuffix(n, ".tgz") {
			continue
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("import dir %s: %w", dir, err)
		}
		p, err := filepath.Abs(filepath.Join(dir, n))
		if err != nil {
			return fmt.Errorf("import dir %s: %w", dir, err)
		}
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() {
			s.log.WarnContext(ctx, "skipping image file", "file", p, "err", err)
			continue
		}
		stamp := importedFile{Size: fi.Size(), ModTime: fi.ModTime().UnixNano()}
		s.lockIndex()
		seen := s.idx.Imported[p] == stamp
		s.unlockIndex()
		if seen {
			continue
		}
		if _, err := s.Import(ctx, p); err != nil {
			s.log.WarnContext(ctx, "skipping bad image file", "file", p, "err", err)
			continue
		}
		s.lockIndex()
		s.idx.Imported[p] = stamp
		err = s.saveLocked()
		s.unlockIndex()
		if err != nil {
			return fmt.Errorf("import dir %s: %w", dir, err)
		}
	}
	return nil
}
