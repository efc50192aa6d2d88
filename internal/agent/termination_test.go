package agent

import (
	"fmt"
	"strings"
	"testing"
)

func TestLogTail(t *testing.T) {
	var many strings.Builder
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&many, "2024-01-01T00:00:00.000000000Z stdout F line %d\n", i)
	}
	long := strings.Repeat("x", 3000)
	tests := []struct {
		name, log, want string
	}{
		{"empty", "", ""},
		{"one line", "2024-01-01T00:00:00Z stderr F boom\n", "boom\n"},
		{"both streams", "t stdout F a\nt stderr F b\n", "a\nb\n"},
		{"partial lines joined", "t stdout P ab\nt stdout P cd\nt stdout F ef\n", "abcdef\n"},
		{"empty text", "t stdout F\nt stdout F x\n", "\nx\n"},
		{"last 80 lines", many.String(), func() string {
			var b strings.Builder
			for i := 20; i < 100; i++ {
				fmt.Fprintf(&b, "line %d\n", i)
			}
			return b.String()
		}()},
		{"last 2048 bytes", "t stdout F " + long + "\n", long[len(long)-2047:] + "\n"},
		{"unterminated last line", "t stdout F a\nt stdout P b", "a\nb\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := logTail([]byte(tc.log), fallbackLogLines, fallbackLogBytes); got != tc.want {
				t.Errorf("logTail = %q, want %q", got, tc.want)
			}
		})
	}
}
