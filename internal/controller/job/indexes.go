package job

import (
	"sort"
	"strconv"
	"strings"
)

// parseIndexes reads a set of completion indexes in the Job API's
// notation ("1,3-5"), keeping those below completions and skipping any
// malformed part, as the Job controller does. Pure.
func parseIndexes(s string, completions int32) map[int32]bool {
	out := map[int32]bool{}
	if s == "" {
		return out
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.ParseInt(lo, 10, 32)
		if err != nil {
			continue
		}
		b := a
		if isRange {
			if b, err = strconv.ParseInt(hi, 10, 32); err != nil {
				continue
			}
		}
		for i := a; i <= b && i < int64(completions); i++ {
			out[int32(i)] = true
		}
	}
	return out
}

// formatIndexes writes a set of indexes in the Job API's notation, each
// run of consecutive indexes as "a-b" ("1,3-5"), as Kubernetes does.
// Pure.
func formatIndexes(set map[int32]bool) string {
	ix := make([]int, 0, len(set))
	for i := range set {
		ix = append(ix, int(i))
	}
	sort.Ints(ix)
	var b strings.Builder
	for i := 0; i < len(ix); {
		j := i
		for j+1 < len(ix) && ix[j+1] == ix[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(ix[i]))
		if j > i {
			b.WriteString("-" + strconv.Itoa(ix[j]))
		}
		i = j + 1
	}
	return b.String()
}
