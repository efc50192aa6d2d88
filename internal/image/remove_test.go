package image

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/peapod/peapod/internal/testutil"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// importTags imports img under every tag in one archive.
func importTags(t *testing.T, s *Store, img v1.Image, tags ...string) *Image {
	t.Helper()
	m := map[name.Tag]v1.Image{}
	for _, tg := range tags {
		nt, err := name.NewTag(tg)
		if err != nil {
			t.Fatal(err)
		}
		m[nt] = img
	}
	p := filepath.Join(tempDir(t), "multi.tar")
	if err := tarball.MultiWriteToFile(p, m); err != nil {
		t.Fatal(err)
	}
	imgs, err := s.Import(t.Context(), p)
	if err != nil || len(imgs) != 1 {
		t.Fatalf("import: %v, %v", imgs, err)
	}
	return imgs[0]
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func TestRemoveUntagsThenCollects(t *testing.T) {
	testutil.RequiresRoot(t)
	s := newStore(t, Options{})
	shared := layerTar(t, tarEntry{name: "shared", data: "s"})
	a := importTags(t, s, imageOf(t, shared, layerTar(t, tarEntry{name: "a", data: "a"})), "example.com/a:1", "example.com/a:2")
	b := importTags(t, s, imageOf(t, shared, layerTar(t, tarEntry{name: "b", data: "b"})), "example.com/b:1")
	if len(a.Names) != 2 || a.Layers[0] != b.Layers[0] {
		t.Fatalf("a %+v b %+v", a, b)
	}
	if err := s.Remove(t.Context(), "example.com/a:1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("example.com/a:1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("untagged name still resolves: %v", err)
	}
	if got, err := s.Get("example.com/a:2"); err != nil || !exists(got.Layers[1]) {
		t.Fatalf("other tag: %v, %v", got, err)
	}
	if err := s.Remove(t.Context(), "example.com/a:2"); err != nil {
		t.Fatal(err)
	}
	if exists(a.Layers[1]) || !exists(a.Layers[0]) {
		t.Fatal("want a's own layer collected and the shared one kept")
	}
	if exists(s.blobPath(a.ID)) || !exists(s.blobPath(b.ID)) {
		t.Fatal("config blobs not collected as expected")
	}
	if err := s.Remove(t.Context(), "example.com/a:2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second remove: %v", err)
	}
}

func TestPruneKeepsUsedImages(t *testing.T) {
	testutil.RequiresRoot(t)
	s := newStore(t, Options{})
	used := importTags(t, s, imageOf(t, layerTar(t, tarEntry{name: "u", data: "u"})), "example.com/used:1")
	unused := importTags(t, s, imageOf(t, layerTar(t, tarEntry{name: "x", data: "x"})), "example.com/unused:1")
	prepare(t, s, used)
	removed, err := s.Prune(t.Context())
	if err != nil || len(removed) != 1 || removed[0] != unused.ID {
		t.Fatalf("Prune = %v, %v; want [%s]", removed, err, unused.ID)
	}
	if exists(unused.Layers[0]) || !exists(used.Layers[0]) {
		t.Fatal("layers not pruned as expected")
	}
	// The use survives a restart of the store.
	s2, err := NewStore(Options{Root: s.root, Logger: s.log})
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Remove(t.Context(), used.ID); !errors.Is(err, ErrInUse) {
		t.Fatalf("remove of used image after reopen: %v", err)
	}
}
