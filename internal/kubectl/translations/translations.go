// Package translations keeps kubectl's message catalogs out of every peapod
// process but `peapod kubectl`.
//
// Package-level variables of k8s.io/kubectl/pkg/cmd/... call i18n.T during
// their init, which loads and parses the catalog of the user's language
// (a zip built in memory around a 200 KB .po file: 4.4 MB allocated, about
// 1 MB kept) in every process of the one binary, the server and the agent
// included, though only kubectl shows those strings. Importing this
// package from main turns the loading off unless the command is kubectl:
// its init runs before any of kubectl's command packages' (Go initializes
// a package as soon as its imports are, taking import paths in sorted
// order, and github.com/peapod/... sorts before k8s.io/...; it imports only
// kubectl's i18n package). Without a catalog, i18n.T returns the English
// text it is given, which is what kubectl's default catalog holds.
package translations

import (
	"os"
	"strings"

	"k8s.io/kubectl/pkg/util/i18n"
)

func init() {
	if !runsKubectl(os.Args) {
		// The error says translations were loaded already, which the
		// import order rules out.
		_ = i18n.SetLoadTranslationsFunc(func() error { return nil })
	}
}

// runsKubectl tells whether argv is `peapod [flags] kubectl ...`: the
// first argument that is not a flag names the command (the root's only
// flag, -v/--verbose, takes no value). It is pure.
func runsKubectl(argv []string) bool {
	for _, a := range argv[min(1, len(argv)):] {
		if !strings.HasPrefix(a, "-") {
			return a == "kubectl"
		}
	}
	return false
}
