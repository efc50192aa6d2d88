package image

import (
	"archive/tar"
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/moby/sys/mountinfo"

	"github.com/peapod/peapod/hack/mkbusybox/busyboximage"
)

// tempDir is a short temp dir removed when the test ends.
func tempDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "pp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// newStore opens a store in a fresh temp dir; opts.Root is filled in.
func newStore(t *testing.T, opts Options) *Store {
	t.Helper()
	opts.Root = filepath.Join(tempDir(t), "image-store")
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	s, err := NewStore(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { assertNoMounts(t, filepath.Dir(opts.Root)) })
	return s
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// mountsUnder lists mount points at or under dir.
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range mounts {
		out = append(out, m.Mountpoint)
	}
	return out
}

// assertNoMounts fails if anything is mounted under dir, unmounting
// it so later tests and cleanup still work.
func assertNoMounts(t *testing.T, dir string) {
	t.Helper()
	for _, m := range mountsUnder(t, dir) {
		t.Errorf("left mounted: %s", m)
		unmountAll(t.Context(), m)
	}
}

var (
	busyboxOnce sync.Once
	busyboxImg  v1.Image
	busyboxErr  error
)

// busybox returns the image hack/mkbusybox builds, skipping without busybox.
func busybox(t *testing.T) v1.Image {
	t.Helper()
	if _, err := os.Stat(busyboximage.DefaultBusybox); err != nil {
		t.Skip("no /bin/busybox (busybox-static)")
	}
	busyboxOnce.Do(func() { busyboxImg, busyboxErr = busyboximage.Image(busyboximage.DefaultBusybox) })
	if busyboxErr != nil {
		t.Fatal(busyboxErr)
	}
	return busyboxImg
}

// busyboxTar writes the busybox docker-archive into a temp dir.
func busyboxTar(t *testing.T) string {
	t.Helper()
	busybox(t)
	p := filepath.Join(tempDir(t), "busybox.tar")
	if err := busyboximage.WriteFile(busyboximage.DefaultBusybox, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// tarEntry describes one entry of a test layer.
type tarEntry struct {
	name, link, data string
	typ              byte
	mode             int64
	uid, gid         int
	major, minor     int64
	xattrs           map[string]string
}

var testTime = time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)

// layerTar renders entries as an uncompressed tar.
func layerTar(t *testing.T, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: typ, Mode: mode, Uid: e.uid, Gid: e.gid,
			Size: int64(len(e.data)), ModTime: testTime, Devmajor: e.major, Devminor: e.minor, Format: tar.FormatPAX}
		if typ != tar.TypeReg {
			hdr.Size = 0
		}
		for k, v := range e.xattrs {
			if hdr.PAXRecords == nil {
				hdr.PAXRecords = map[string]string{}
			}
			hdr.PAXRecords["SCHILY.xattr."+k] = v
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.data)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// imageOf builds an image whose layers are the given tars, bottom first.
func imageOf(t *testing.T, layers ...[]byte) v1.Image {
	t.Helper()
	img := empty.Image
	for _, l := range layers {
		l := l
		layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(l)), nil })
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, layer); err != nil {
			t.Fatal(err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Cmd = []string{"sh"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// writeArchive writes img as a docker-archive tagged ref and returns its path.
func writeArchive(t *testing.T, ref string, img v1.Image) string {
	t.Helper()
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(tempDir(t), "img.tar")
	if err := tarball.WriteToFile(p, tag, img); err != nil {
		t.Fatal(err)
	}
	return p
}
