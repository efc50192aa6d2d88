package spec

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// CurrentCapabilities returns the capability bounding set of the calling
// process, read from /proc/self/status, as names from AllCapabilities. It is
// the one function of this package that does I/O; pass its result as
// Input.HostCapabilities.
func CurrentCapabilities() ([]string, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return nil, fmt.Errorf("read capability bounding set: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		hex, ok := strings.CutPrefix(sc.Text(), "CapBnd:")
		if !ok {
			continue
		}
		mask, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
		if err != nil {
			return nil, fmt.Errorf("parse CapBnd %q: %w", hex, err)
		}
		return capabilitiesFromMask(mask), nil
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read capability bounding set: %w", err)
	}
	return nil, fmt.Errorf("read capability bounding set: no CapBnd line in /proc/self/status")
}

// capabilitiesFromMask names the known capabilities set in mask (bit n is
// capability number n).
func capabilitiesFromMask(mask uint64) []string {
	out := []string{}
	for i, name := range allCapabilities {
		if mask&(1<<uint(i)) != 0 {
			out = append(out, name)
		}
	}
	return out
}
