// Package busyboximage builds, reproducibly and offline, a one-layer
// busybox image from a static busybox binary (Debian's busybox-static). It is
// a build and test helper (hack/mkbusybox, image store tests), not part of
// the peapod binary.
package busyboximage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Name is the reference the image is written under.
const Name = "docker.io/library/busybox:latest"

// DefaultBusybox is where Debian's busybox-static installs the binary.
const DefaultBusybox = "/bin/busybox"

// Epoch is the fixed mtime of every entry and the image's creation time.
var Epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// PathEnv is the image's PATH.
const PathEnv = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

const passwd = `root:x:0:0:root:/root:/bin/sh
www-data:x:33:33:www-data:/var/www:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
`

const group = `root:x:0:
www-data:x:33:
nogroup:x:65534:
`

// entry is one file in the layer.
type entry struct {
	name     string // relative, no leading slash
	typ      byte
	mode     int64
	linkname string
	data     []byte
}

// Layer returns the uncompressed layer tar for the busybox binary at bin:
// the binary at bin/busybox, one relative symlink per applet at its
// `busybox --list-full` path, passwd/group, and the usual empty dirs. Every
// entry is owned by 0:0 with mtime Epoch, and entries are sorted, so the
// same binary always gives the same bytes.
func Layer(bin string) ([]byte, error) {
	bb, err := os.ReadFile(bin)
	if err != nil {
		return nil, fmt.Errorf("read busybox: %w", err)
	}
	out, err := exec.Command(bin, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("list busybox applets: %w", err)
	}
	entries := map[string]entry{}
	addDir := func(d string, mode int64) {
		for ; d != "." && d != "/"; d = path.Dir(d) {
			if _, ok := entries[d]; !ok {
				entries[d] = entry{name: d, typ: tar.TypeDir, mode: mode}
			}
			mode = 0o755
		}
	}
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "etc", "dev", "proc", "sys", "root", "home", "var/www"} {
		addDir(d, 0o755)
	}
	entries["root"] = entry{name: "root", typ: tar.TypeDir, mode: 0o700}
	entries["tmp"] = entry{name: "tmp", typ: tar.TypeDir, mode: 0o1777}
	entries["bin/busybox"] = entry{name: "bin/busybox", typ: tar.TypeReg, mode: 0o755, data: bb}
	entries["etc/passwd"] = entry{name: "etc/passwd", typ: tar.TypeReg, mode: 0o644, data: []byte(passwd)}
	entries["etc/group"] = entry{name: "etc/group", typ: tar.TypeReg, mode: 0o644, data: []byte(group)}
	applets := strings.Fields(string(out))
	applets = append(applets, "bin/sh")
	for _, a := range applets {
		a = strings.TrimPrefix(path.Clean("/"+a), "/")
		if _, ok := entries[a]; ok || a == "" {
			continue
		}
		addDir(path.Dir(a), 0o755)
		target := strings.Repeat("../", strings.Count(a, "/")) + "bin/busybox"
		if path.Dir(a) == "bin" {
			target = "busybox"
		}
		entries[a] = entry{name: a, typ: tar.TypeSymlink, mode: 0o777, linkname: target}
	}
	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		e := entries[n]
		hdr := &tar.Header{
			Typeflag: e.typ,
			Name:     e.name,
			Linkname: e.linkname,
			Mode:     e.mode,
			Size:     int64(len(e.data)),
			ModTime:  Epoch,
			Format:   tar.FormatPAX,
		}
		if e.typ == tar.TypeDir {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("write %s: %w", n, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("write %s: %w", n, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Image builds the busybox image (linux/amd64, Cmd ["sh"], PATH set) from
// the binary at bin.
func Image(bin string) (v1.Image, error) {
	layerTar, err := Layer(bin)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return nil, fmt.Errorf("busybox layer: %w", err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, fmt.Errorf("busybox image: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = "amd64", "linux"
	cf.Created = v1.Time{Time: Epoch}
	cf.Config.Cmd = []string{"sh"}
	cf.Config.Env = []string{PathEnv}
	cf.History = []v1.History{{Created: v1.Time{Time: Epoch}, CreatedBy: "peapod hack/mkbusybox"}}
	return mutate.ConfigFile(img, cf)
}

// WriteFile builds the image from bin and writes it as a docker-archive
// tarball tagged Name at out.
func WriteFile(bin, out string) error {
	img, err := Image(bin)
	if err != nil {
		return err
	}
	tag, err := name.NewTag(Name)
	if err != nil {
		return err
	}
	if err := tarball.WriteToFile(out, tag, img); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	return nil
}
