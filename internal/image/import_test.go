package image

import (
	"archive/tar"
	"compress/gzip"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/peapod/peapod/internal/testutil"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// tarDir writes dir's files as a (gzipped if gz) tar at out.
func tarDir(t *testing.T, dir, out string, gz bool) {
	t.Helper()
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var w io.Writer = f
	if gz {
		zw := gzip.NewWriter(f)
		defer zw.Close()
		w = zw
	}
	tw := tar.NewWriter(w)
	defer tw.Close()
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		hdr, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		hdr.Name, _ = filepath.Rel(dir, p)
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			_, err = tw.Write(b)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestImportOCILayout(t *testing.T) {
	testutil.RequiresRoot(t)
	bb := busybox(t)
	dir := tempDir(t)
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	small := imageOf(t, layerTar(t, tarEntry{name: "hello", data: "hi"}))
	// containerd style: ref.name is only a tag, the full name is in its own annotation.
	if err := lp.AppendImage(bb, layout.WithAnnotations(map[string]string{
		annotationRefName:        "latest",
		annotationContainerdName: "docker.io/library/busybox:latest",
	})); err != nil {
		t.Fatal(err)
	}
	// ref.name as a full reference.
	if err := lp.AppendImage(small, layout.WithAnnotations(map[string]string{annotationRefName: "registry:5000/team/small:v1"})); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(tempDir(t), "oci.tar.gz")
	tarDir(t, dir, archive, true)

	s := newStore(t, Options{})
	imgs, err := s.Import(t.Context(), archive)
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 2 {
		t.Fatalf("imported %d images", len(imgs))
	}
	for _, ref := range []string{"busybox", "registry:5000/team/small:v1"} {
		if _, err := s.Get(ref); err != nil {
			t.Errorf("Get(%s): %v", ref, err)
		}
	}
	small2, _ := s.Get("registry:5000/team/small:v1")
	if len(small2.RepoDigests) != 1 {
		t.Errorf("repo digests %v", small2.RepoDigests)
	}
	if b, err := os.ReadFile(filepath.Join(small2.Layers[0], "hello")); err != nil || string(b) != "hi" {
		t.Errorf("layer content %q, %v", b, err)
	}
	// Also by ID, bare hex and repo digest.
	for _, ref := range []string{small2.ID, small2.ID[len("sha256:"):], small2.RepoDigests[0]} {
		if got, err := s.Get(ref); err != nil || got.ID != small2.ID {
			t.Errorf("Get(%s) = %v, %v", ref, got, err)
		}
	}
}

func TestImportDockerArchiveAllTags(t *testing.T) {
	testutil.RequiresRoot(t)
	s := newStore(t, Options{})
	img := imageOf(t, layerTar(t, tarEntry{name: "f", data: "1"}))
	p := writeArchive(t, "example.com/a:1", img)
	// gzip the archive to cover compressed imports.
	gz := filepath.Join(tempDir(t), "a.tar.gz")
	in, _ := os.ReadFile(p)
	f, _ := os.Create(gz)
	zw := gzip.NewWriter(f)
	zw.Write(in)
	zw.Close()
	f.Close()
	imgs, err := s.Import(t.Context(), gz)
	if err != nil || len(imgs) != 1 {
		t.Fatalf("Import: %v, %v", imgs, err)
	}
	list, _ := s.List()
	if len(list) != 1 || list[0].Names[0] != "example.com/a:1" {
		t.Fatalf("List: %+v", list)
	}
}

func TestImportDir(t *testing.T) {
	testutil.RequiresRoot(t)
	s := newStore(t, Options{})
	if err := s.ImportDir(t.Context(), "/nonexistent/images"); err != nil {
		t.Fatalf("missing dir: %v", err)
	}
	dir := tempDir(t)
	good := writeArchive(t, "example.com/good:1", imageOf(t, layerTar(t, tarEntry{name: "g", data: "g"})))
	if err := os.Rename(good, filepath.Join(dir, "good.tar")); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "bad.tgz"), []byte("not a tarball"), 0o644)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("ignored"), 0o644)
	if err := s.ImportDir(t.Context(), dir); err != nil {
		t.Fatal(err)
	}
	img, err := s.Get("example.com/good:1")
	if err != nil {
		t.Fatal(err)
	}
	// A second start skips the already-imported file: removing its image
	// and importing the dir again must not bring it back...
	if err := s.Remove(t.Context(), img.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.ImportDir(t.Context(), dir); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("example.com/good:1"); err == nil {
		t.Fatal("unchanged file was imported again")
	}
	// ...until the file changes (mtime), also across a store reopen.
	s2, err := NewStore(Options{Root: s.root, Logger: s.log})
	if err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Hour)
	os.Chtimes(filepath.Join(dir, "good.tar"), future, future)
	if err := s2.ImportDir(t.Context(), dir); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Get("example.com/good:1"); err != nil {
		t.Fatalf("changed file not re-imported: %v", err)
	}
}
