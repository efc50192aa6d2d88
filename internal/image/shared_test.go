package image

import (
	"archive/tar"
	"context"
	"errors"
	"testing"
)

// Two Stores over one root stand for a running server and `peapod image
// import` beside it: each sees what the other wrote, and neither's save
// loses the other's.
func TestStoresSharingARootSeeEachOther(t *testing.T) {
	ctx := context.Background()
	server := newStore(t, Options{})
	cli, err := NewStore(Options{Root: server.root})
	if err != nil {
		t.Fatal(err)
	}
	if server.tmp == cli.tmp {
		t.Fatalf("both stores use scratch dir %s", server.tmp)
	}
	img := imageOf(t, layerTar(t, tarEntry{name: "hello", data: "hi", typ: tar.TypeReg, mode: 0o644}))
	if _, err := cli.Import(ctx, writeArchive(t, "example.com/shared:v1", img)); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Get("example.com/shared:v1"); err != nil {
		t.Fatalf("the server does not see the image the CLI imported: %v", err)
	}
	// A write by the server keeps the CLI's image.
	other := imageOf(t, layerTar(t, tarEntry{name: "other", data: "x", typ: tar.TypeReg, mode: 0o644}))
	if _, err := server.Import(ctx, writeArchive(t, "example.com/other:v1", other)); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"example.com/shared:v1", "example.com/other:v1"} {
		if _, err := cli.Get(ref); err != nil {
			t.Errorf("%s lost: %v", ref, err)
		}
	}
	if err := cli.Remove(ctx, "example.com/shared:v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Get("example.com/shared:v1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the server still sees the image the CLI removed: %v", err)
	}
}
