package spec

import (
	"strings"
	"testing"
)

// FuzzParsePasswdAndGroup: any /etc/passwd or /etc/group parses without a
// panic, and every entry's name is in the input.
func FuzzParsePasswdAndGroup(f *testing.F) {
	f.Add([]byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/sbin/nologin\n#x:x:1:1\n"))
	f.Add([]byte("wheel:x:10:root,alice\nbad:x:notanumber:\n:::\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, e := range parsePasswd(b) {
			if !strings.Contains(string(b), e.name+":") {
				t.Fatalf("passwd entry %q not in the input", e.name)
			}
		}
		for _, g := range parseGroup(b) {
			if !strings.Contains(string(b), g.name+":") {
				t.Fatalf("group entry %q not in the input", g.name)
			}
		}
	})
}

// FuzzParseSELinuxContext: a context splits into four parts that join
// back to it, or is refused.
func FuzzParseSELinuxContext(f *testing.F) {
	f.Add("system_u:system_r:container_t:s0:c1,c2")
	f.Add("u:r:t")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseSELinuxContext(s)
		if err != nil {
			return
		}
		if strings.Join(c[:], ":") != s {
			t.Fatalf("%q split into %q", s, c)
		}
	})
}
