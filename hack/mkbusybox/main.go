// Command mkbusybox builds, reproducibly and offline, the image
// docker.io/library/busybox:latest from Debian's static busybox and writes it
// as a docker-archive tarball, for peapod's air-gapped image directory and
// tests. Two runs with the same binary give byte-identical output.
//
//	go run ./hack/mkbusybox -o bin/images/busybox.tar
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/peapod/peapod/hack/mkbusybox/busyboximage"
)

func main() {
	out := flag.String("o", "bin/images/busybox.tar", "output docker-archive tarball")
	bin := flag.String("busybox", busyboximage.DefaultBusybox, "static busybox binary")
	flag.Parse()
	if err := run(*bin, *out); err != nil {
		fmt.Fprintln(os.Stderr, "mkbusybox:", err)
		os.Exit(1)
	}
}

// run writes the image built from bin to out, creating out's directory.
func run(bin, out string) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	return busyboximage.WriteFile(bin, out)
}
