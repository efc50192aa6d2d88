package podfiles

import (
	"strings"
	"testing"
)

// FuzzParseResolvConf: any resolv.conf parses without a panic, and what
// it keeps comes from the input.
func FuzzParseResolvConf(f *testing.F) {
	f.Add([]byte("nameserver 10.0.0.1\nnameserver 10.0.0.2\nsearch a.b. c.d\noptions ndots:5 timeout:1\n"))
	f.Add([]byte("# comment\n; other\nsearch .\noptions\nnameserver\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := parseResolvConf(data)
		for _, s := range append(append(c.servers, c.searches...), c.options...) {
			if s == "" || !strings.Contains(string(data), s) {
				t.Fatalf("kept %q, not a word of the input", s)
			}
		}
	})
}
