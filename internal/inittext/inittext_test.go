package inittext

import (
	"os"
	"testing"
)

func TestParseSmaps(t *testing.T) {
	const smaps = `00400000-02abf000 r-xp 00000000 fe:00 1234                       /usr/bin/peapod
Size:              39676 kB
Rss:               15548 kB
Anonymous:             0 kB
FilePmdMapped:      6144 kB
05ab9000-05aba000 r--p 056b9000 fe:00 1234                       /usr/bin/peapod
Rss:                   4 kB
Anonymous:             4 kB
05aba000-05bf3000 rw-p 056ba000 fe:00 1234                       /usr/bin/peapod
Rss:                1000 kB
Anonymous:           200 kB
7f0000000000-7f0000001000 rw-p 00000000 00:00 0 
Rss:                   4 kB
Anonymous:             4 kB
7f0000001000-7f0000002000 r--p 00000000 fe:00 99                         /tmp/a file with spaces
Rss:                   4 kB
`
	got := parseSmaps([]byte(smaps))
	want := []mapping{
		{start: 0x400000, end: 0x2abf000, path: "/usr/bin/peapod", rssKiB: 15548},
		{start: 0x5ab9000, end: 0x5aba000, path: "/usr/bin/peapod", rssKiB: 4, anonKiB: 4},
		{start: 0x5aba000, end: 0x5bf3000, writable: true, path: "/usr/bin/peapod", rssKiB: 1000, anonKiB: 200},
		{start: 0x7f0000000000, end: 0x7f0000001000, writable: true, rssKiB: 4, anonKiB: 4},
		{start: 0x7f0000001000, end: 0x7f0000002000, path: "/tmp/a file with spaces", rssKiB: 4},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d mappings, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("mapping %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

// exeRSS is how much of this test binary is resident in this process.
func exeRSS(t *testing.T) int64 {
	t.Helper()
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	var kib int64
	for _, m := range parseSmaps(data) {
		if m.path == exe && !m.writable && m.anonKiB == 0 {
			kib += m.rssKiB
		}
	}
	return kib
}

// TestRelease unmaps this test binary's text and read-only data; the
// process goes on running, mapping back what it executes.
func TestRelease(t *testing.T) {
	before := exeRSS(t)
	released, err := Release()
	if err != nil {
		t.Fatal(err)
	}
	if released <= 0 || released > before*1024 {
		t.Errorf("released %d bytes of %d KiB resident", released, before)
	}
	if after := exeRSS(t); after >= before {
		t.Errorf("resident text %d KiB before Release, %d KiB after", before, after)
	}
	// Everything still works: the kernel maps back what runs.
	if _, err := Release(); err != nil {
		t.Fatal(err)
	}
}
