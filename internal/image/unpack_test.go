package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/peapod/peapod/internal/testutil"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// extractTo runs extractTar on entries into a fresh dir.
func extractTo(t *testing.T, entries ...tarEntry) (string, error) {
	t.Helper()
	dir := tempDir(t)
	b := layerTar(t, entries...)
	return dir, extractTar(t.Context(), tar.NewReader(strings.NewReader(string(b))), dir)
}

func TestExtractPreservesMetadata(t *testing.T) {
	testutil.RequiresRoot(t)
	dir, err := extractTo(t,
		tarEntry{name: "d/", typ: tar.TypeDir, mode: 0o750, uid: 1000, gid: 1001},
		tarEntry{name: "d/f", data: "hello", mode: 0o4755, uid: 1, gid: 2, xattrs: map[string]string{"user.note": "x", "trusted.t": "y"}},
		tarEntry{name: "d/h", typ: tar.TypeLink, link: "d/f"},
		tarEntry{name: "s", typ: tar.TypeSymlink, link: "/d/f", uid: 5, gid: 6},
		tarEntry{name: "dev/null", typ: tar.TypeChar, major: 1, minor: 3, mode: 0o666},
		tarEntry{name: "fifo", typ: tar.TypeFifo, mode: 0o600},
		tarEntry{name: "/abs/file", data: "abs"}, // absolute names land inside the root
	)
	if err != nil {
		t.Fatal(err)
	}
	stat := func(p string) unix.Stat_t {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dir, p), &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	for _, tc := range []struct {
		path     string
		mode     uint32 // type and permission bits
		uid, gid uint32
	}{
		{"d", unix.S_IFDIR | 0o750, 1000, 1001},
		{"d/f", unix.S_IFREG | 0o4755, 1, 2},
		{"s", unix.S_IFLNK | 0o777, 5, 6},
		{"dev/null", unix.S_IFCHR | 0o666, 0, 0},
		{"fifo", unix.S_IFIFO | 0o600, 0, 0},
		{"abs/file", unix.S_IFREG | 0o644, 0, 0},
	} {
		st := stat(tc.path)
		if st.Mode != tc.mode || st.Uid != tc.uid || st.Gid != tc.gid {
			t.Errorf("%s: mode %o uid %d gid %d, want %o %d %d", tc.path, st.Mode, st.Uid, st.Gid, tc.mode, tc.uid, tc.gid)
		}
		if st.Mtim.Sec != testTime.Unix() {
			t.Errorf("%s: mtime %d, want %d", tc.path, st.Mtim.Sec, testTime.Unix())
		}
	}
	if f, h := stat("d/f"), stat("d/h"); f.Ino != h.Ino {
		t.Error("d/h is not a hardlink of d/f")
	}
	if st := stat("dev/null"); st.Rdev != unix.Mkdev(1, 3) {
		t.Errorf("dev/null rdev %d", st.Rdev)
	}
	if l, _ := os.Readlink(filepath.Join(dir, "s")); l != "/d/f" {
		t.Errorf("symlink target %q", l)
	}
	for attr, want := range map[string]string{"user.note": "x", "trusted.t": "y"} {
		buf := make([]byte, 64)
		n, err := unix.Lgetxattr(filepath.Join(dir, "d/f"), attr, buf)
		if err != nil || string(buf[:n]) != want {
			t.Errorf("xattr %s = %q, %v; want %q", attr, buf[:n], err, want)
		}
	}
}

func TestExtractRefusesEscapes(t *testing.T) {
	testutil.RequiresRoot(t)
	for _, tc := range []struct {
		name    string
		entries []tarEntry
		bad     string // entry name the error must mention
	}{
		{"dotdot", []tarEntry{{name: "../evil", data: "x"}}, "../evil"},
		{"nested dotdot", []tarEntry{{name: "a/../../evil", data: "x"}}, "a/../../evil"},
		{"through absolute symlink", []tarEntry{
			{name: "l", typ: tar.TypeSymlink, link: "/tmp"},
			{name: "l/evil", data: "x"},
		}, "l/evil"},
		{"through relative symlink", []tarEntry{
			{name: "l", typ: tar.TypeSymlink, link: "../.."},
			{name: "l/evil", data: "x"},
		}, "l/evil"},
		{"hardlink out", []tarEntry{{name: "h", typ: tar.TypeLink, link: "../../etc/passwd"}}, `"h"`},
		{"whiteout through symlink", []tarEntry{
			{name: "l", typ: tar.TypeSymlink, link: "/etc"},
			{name: "l/.wh.passwd", typ: tar.TypeReg},
		}, "l/.wh.passwd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			outside := tempDir(t)
			_, err := extractTo(t, tc.entries...)
			if err == nil || !strings.Contains(err.Error(), tc.bad) {
				t.Fatalf("err = %v, want one naming %s", err, tc.bad)
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(outside), "evil")); err == nil {
				t.Fatal("file written outside the layer")
			}
		})
	}
}

func TestExtractWhiteouts(t *testing.T) {
	testutil.RequiresRoot(t)
	dir, err := extractTo(t,
		tarEntry{name: "a/.wh..wh..opq"},
		tarEntry{name: "a/z", data: "z"},
		tarEntry{name: ".wh.f"},
	)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "f"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("f is not a 0/0 char device whiteout: %v mode %o", err, st.Mode)
	}
	buf := make([]byte, 8)
	n, err := unix.Lgetxattr(filepath.Join(dir, "a"), "trusted.overlay.opaque", buf)
	if err != nil || string(buf[:n]) != "y" {
		t.Errorf("a opaque xattr = %q, %v", buf[:n], err)
	}
	for _, p := range []string{".wh.f", "a/.wh..wh..opq"} {
		if _, err := os.Lstat(filepath.Join(dir, p)); err == nil {
			t.Errorf("%s was written literally", p)
		}
	}
}

func TestUnpackStreamCompressions(t *testing.T) {
	testutil.RequiresRoot(t)
	plain := layerTar(t, tarEntry{name: "f", data: "content"})
	var gz, zs bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain)
	zw.Close()
	ze, err := zstd.NewWriter(&zs)
	if err != nil {
		t.Fatal(err)
	}
	ze.Write(plain)
	ze.Close()
	want := sha256.Sum256(plain)
	for name, b := range map[string][]byte{"plain": plain, "gzip": gz.Bytes(), "zstd": zs.Bytes()} {
		t.Run(name, func(t *testing.T) {
			dir := tempDir(t)
			h := sha256.New()
			if err := unpackStream(t.Context(), bytes.NewReader(b), h, dir); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(h.Sum(nil), want[:]) {
				t.Error("uncompressed hash differs")
			}
			if got, err := os.ReadFile(filepath.Join(dir, "f")); err != nil || string(got) != "content" {
				t.Errorf("f = %q, %v", got, err)
			}
		})
	}
}
