package userns

import (
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"
)

// fixed returns an intn that always answers v (clamped to n).
func fixed(v int) func(int) int {
	return func(n int) int { return min(v, n-1) }
}

func TestAllocateRandomScan(t *testing.T) {
	a := NewAllocator(fixed(4))
	m, err := a.Allocate("pod-a")
	if err != nil {
		t.Fatal(err)
	}
	// Slot 4 of those from 1: host IDs from 5*65536.
	if m != (Mapping{HostID: 5 * Length, Length: Length}) || m.String() != "0 327680 65536" {
		t.Fatalf("first range %+v (%s)", m, m)
	}
	again, err := a.Allocate("pod-a")
	if err != nil || again != m {
		t.Fatalf("a pod's second Allocate = %+v, %v; want its range %+v", again, err, m)
	}
	// The next pod starting at the same random slot scans on to a free one.
	n, err := a.Allocate("pod-b")
	if err != nil || n.HostID != 6*Length {
		t.Fatalf("second pod = %+v, %v; want host IDs from %d", n, err, 6*Length)
	}
	a.Release("pod-a")
	if got, _ := a.Allocate("pod-c"); got != m {
		t.Fatalf("after a release the freed range %+v is not reused: %+v", m, got)
	}
	if a.InUse() != 2 {
		t.Fatalf("in use %d, want 2", a.InUse())
	}
	if _, err := a.Allocate(""); err == nil {
		t.Fatal("empty pod UID accepted")
	}
}

func TestAllocateNeverMapsBelow65536OrTheLastID(t *testing.T) {
	a := NewAllocator(fixed(1 << 30))
	m, err := a.Allocate("last")
	if err != nil {
		t.Fatal(err)
	}
	if end := uint64(m.HostID) + uint64(m.Length); end > 1<<32-1 {
		t.Fatalf("range %+v reaches (uid_t)-1", m)
	}
	// Wrapping around from the last slot finds the first, above 65535.
	n, err := a.Allocate("wrapped")
	if err != nil || n.HostID != Length {
		t.Fatalf("after the last slot: %+v, %v; want host IDs from %d", n, err, Length)
	}
}

func TestAllocateExhausted(t *testing.T) {
	a := NewAllocator(fixed(0))
	for i := 0; i < slots; i++ {
		a.used[uint32(i+1)] = "x"
	}
	if _, err := a.Allocate("one-too-many"); !errors.Is(err, ErrExhausted) {
		t.Fatalf("err = %v, want ErrExhausted", err)
	}
}

func TestRecord(t *testing.T) {
	a := NewAllocator(fixed(0))
	if err := a.Record("pod-a", Mapping{HostID: 3 * Length, Length: Length}); err != nil {
		t.Fatal(err)
	}
	if err := a.Record("pod-a", Mapping{HostID: 3 * Length, Length: Length}); err != nil {
		t.Fatalf("recording a pod's own range again: %v", err)
	}
	if m, _ := a.Allocate("pod-a"); m.HostID != 3*Length {
		t.Fatalf("a recorded pod gets %+v from Allocate", m)
	}
	for _, tc := range []struct {
		pod  string
		m    Mapping
		want string
	}{
		{"pod-b", Mapping{HostID: 3 * Length, Length: Length}, "belong to pod pod-a"},
		{"pod-a", Mapping{HostID: 4 * Length, Length: Length}, "it already has host IDs from 196608"},
		{"pod-c", Mapping{HostID: 0, Length: Length}, "not a multiple of 65536 at or above it"},
		{"pod-c", Mapping{HostID: Length + 1, Length: Length}, "not a multiple"},
		{"pod-c", Mapping{HostID: 5 * Length, Length: 1000}, "length 1000, want 65536"},
	} {
		if err := a.Record(tc.pod, tc.m); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Record(%s, %+v) = %v, want %q", tc.pod, tc.m, err, tc.want)
		}
	}
}

type fakeInfo struct{ fs.FileInfo }

func TestSupported(t *testing.T) {
	exists := func(string) (os.FileInfo, error) { return fakeInfo{}, nil }
	missing := func(string) (os.FileInfo, error) { return nil, fs.ErrNotExist }
	val := func(v string) func(string) ([]byte, error) {
		return func(string) ([]byte, error) { return []byte(v), nil }
	}
	if err := supported(exists, val("63000\n")); err != nil {
		t.Fatalf("a kernel with user namespaces: %v", err)
	}
	for _, tc := range []struct {
		stat func(string) (os.FileInfo, error)
		read func(string) ([]byte, error)
		want string
	}{
		{missing, val("1"), "the kernel has no user namespaces"},
		{exists, val("0\n"), `user namespaces are disabled (/proc/sys/user/max_user_namespaces is "0")`},
		{exists, func(string) ([]byte, error) { return nil, fs.ErrPermission }, "read /proc/sys/user/max_user_namespaces"},
	} {
		err := supported(tc.stat, tc.read)
		if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("supported = %v, want ErrUnsupported with %q", err, tc.want)
		}
	}
}
