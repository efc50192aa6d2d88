// Package inittext gives back the pages of this process's own binary that
// only its start-up touched.
//
// peapod is one binary of about 130 MB holding the server, the agent,
// kubectl and etcd, and every process of it runs the init functions of all
// of its ~1,450 packages, spread over the whole text. The kernel maps a
// file's pages around each fault (64 KiB of fault-around, or a whole
// large folio of the page cache, up to 2 MiB), so those inits leave most
// of the text and read-only data mapped, and counted in the process's RSS
// (about 45 MiB of a 131 MB binary), though a running agent executes a
// small part of it. Release unmaps them once start-up is over,
// as the kernel frees its own __init sections after boot: the pages stay
// in the page cache (shared with every other peapod process, and
// reclaimable), and what the process executes again is mapped back on
// its next touch.
package inittext

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Release unmaps this process's read-only mappings of its own executable
// (text, read-only data, the symbol and line tables) and returns how many
// bytes of them were resident. Mappings holding private copies of pages
// (relocated data the loader wrote before making it read-only) are left
// alone: dropping them would lose those writes. It is safe to call at any
// time, from any goroutine: the kernel maps back what is executed next.
func Release() (int64, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, fmt.Errorf("find this executable: %w", err)
	}
	data, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return 0, fmt.Errorf("read this process's mappings: %w", err)
	}
	var released int64
	for _, m := range parseSmaps(data) {
		if m.path != exe || m.writable || m.anonKiB != 0 || m.rssKiB == 0 {
			continue
		}
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, unix.MADV_DONTNEED); errno != 0 {
			return released, fmt.Errorf("release mapping %x-%x of %s: %w", m.start, m.end, exe, errno)
		}
		released += m.rssKiB * 1024
	}
	return released, nil
}

// mapping is one entry of /proc/PID/smaps.
type mapping struct {
	start, end uintptr
	writable   bool
	path       string
	// rssKiB and anonKiB are its resident and private anonymous (copied
	// on write) sizes.
	rssKiB, anonKiB int64
}

// parseSmaps reads the mappings of /proc/PID/smaps. It is pure.
func parseSmaps(data []byte) []mapping {
	var out []mapping
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if !strings.HasSuffix(fields[0], ":") {
			// A mapping's header: start-end perms offset dev inode [path].
			lo, hi, ok := strings.Cut(fields[0], "-")
			start, err1 := strconv.ParseUint(lo, 16, 64)
			end, err2 := strconv.ParseUint(hi, 16, 64)
			if !ok || err1 != nil || err2 != nil || len(fields) < 5 {
				continue
			}
			m := mapping{start: uintptr(start), end: uintptr(end), writable: len(fields[1]) > 1 && fields[1][1] == 'w'}
			if len(fields) >= 6 {
				m.path = strings.Join(fields[5:], " ")
			}
			out = append(out, m)
			continue
		}
		if len(out) == 0 || len(fields) < 2 {
			continue
		}
		kib, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			continue
		}
		switch fields[0] {
		case "Rss:":
			out[len(out)-1].rssKiB = kib
		case "Anonymous:":
			out[len(out)-1].anonKiB = kib
		}
	}
	return out
}
