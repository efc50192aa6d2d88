package nodeipam

import (
	"errors"
	"net/netip"
	"testing"
)

func mustSet(t *testing.T, cluster string, mask int) *CIDRSet {
	t.Helper()
	s, err := NewCIDRSet(netip.MustParsePrefix(cluster), mask)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func allocate(t *testing.T, s *CIDRSet) string {
	t.Helper()
	p, err := s.AllocateNext()
	if err != nil {
		t.Fatalf("AllocateNext: %v", err)
	}
	return p.String()
}

func TestCIDRSetHandsOutRangesInOrder(t *testing.T) {
	s := mustSet(t, "10.42.0.0/16", 24)
	if s.Size() != 256 {
		t.Fatalf("Size = %d, want 256", s.Size())
	}
	for i, want := range []string{"10.42.0.0/24", "10.42.1.0/24", "10.42.2.0/24"} {
		if got := allocate(t, s); got != want {
			t.Errorf("allocation %d = %s, want %s", i, got, want)
		}
	}
	if s.InUse() != 3 {
		t.Errorf("InUse = %d, want 3", s.InUse())
	}
}

func TestCIDRSetReleasedRangesComeAfterNeverUsedOnes(t *testing.T) {
	s := mustSet(t, "10.0.0.0/28", 30) // 4 ranges
	a, b := allocate(t, s), allocate(t, s)
	if err := s.Release(netip.MustParsePrefix(a)); err != nil {
		t.Fatal(err)
	}
	// b's successors were never used: they come first.
	if got := allocate(t, s); got != "10.0.0.8/30" {
		t.Errorf("after releasing %s: got %s, want the never-used 10.0.0.8/30", a, got)
	}
	if got := allocate(t, s); got != "10.0.0.12/30" {
		t.Errorf("got %s, want the never-used 10.0.0.12/30", got)
	}
	// Only now does the candidate wrap round to the released one.
	if got := allocate(t, s); got != a {
		t.Errorf("got %s, want the released %s", got, a)
	}
	if _, err := s.AllocateNext(); !errors.Is(err, ErrFull) {
		t.Errorf("AllocateNext on a full set = %v, want ErrFull", err)
	}
	if err := s.Release(netip.MustParsePrefix(b)); err != nil {
		t.Fatal(err)
	}
	if got := allocate(t, s); got != b {
		t.Errorf("after freeing %s in a full set: got %s", b, got)
	}
}

func TestCIDRSetOccupySkipsHeldRanges(t *testing.T) {
	s := mustSet(t, "10.42.0.0/16", 24)
	for _, p := range []string{"10.42.0.0/24", "10.42.1.0/24"} {
		if err := s.Occupy(netip.MustParsePrefix(p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Occupy(netip.MustParsePrefix("10.42.1.0/24")); err != nil {
		t.Errorf("occupying a held range again: %v", err)
	}
	if s.InUse() != 2 {
		t.Errorf("InUse = %d after occupying twice, want 2", s.InUse())
	}
	if got := allocate(t, s); got != "10.42.2.0/24" {
		t.Errorf("got %s, want 10.42.2.0/24", got)
	}
	// A range larger than a node's occupies every node range it covers,
	// a smaller one the node range holding it.
	if err := s.Occupy(netip.MustParsePrefix("10.42.4.0/23")); err != nil {
		t.Fatal(err)
	}
	if err := s.Occupy(netip.MustParsePrefix("10.42.3.128/25")); err != nil {
		t.Fatal(err)
	}
	if got := allocate(t, s); got != "10.42.6.0/24" {
		t.Errorf("got %s, want 10.42.6.0/24 (3, 4 and 5 are held)", got)
	}
	for _, bad := range []string{"10.43.0.0/24", "10.0.0.0/8", "192.168.0.0/24"} {
		if err := s.Occupy(netip.MustParsePrefix(bad)); err == nil {
			t.Errorf("Occupy(%s) outside 10.42.0.0/16 succeeded", bad)
		}
	}
}

func TestCIDRSetResumeAfterOccupied(t *testing.T) {
	// A restarted server occupies what Nodes hold (0 and 2; 1 was released
	// before the restart), then resumes past the highest: 3 has never been
	// used, 1 has.
	s := mustSet(t, "10.0.0.0/28", 30)
	for _, p := range []string{"10.0.0.0/30", "10.0.0.8/30"} {
		if err := s.Occupy(netip.MustParsePrefix(p)); err != nil {
			t.Fatal(err)
		}
	}
	s.ResumeAfterOccupied()
	if got := allocate(t, s); got != "10.0.0.12/30" {
		t.Errorf("got %s, want the never-used 10.0.0.12/30", got)
	}
	if got := allocate(t, s); got != "10.0.0.4/30" {
		t.Errorf("got %s, want 10.0.0.4/30", got)
	}
	empty := mustSet(t, "10.0.0.0/28", 30)
	empty.ResumeAfterOccupied()
	if got := allocate(t, empty); got != "10.0.0.0/30" {
		t.Errorf("an empty set resumed at %s, want the first range", got)
	}
}

func TestCIDRSetOneRange(t *testing.T) {
	s := mustSet(t, "10.42.0.0/24", 24)
	if got := allocate(t, s); got != "10.42.0.0/24" {
		t.Errorf("got %s", got)
	}
	if _, err := s.AllocateNext(); !errors.Is(err, ErrFull) {
		t.Errorf("second allocation = %v, want ErrFull", err)
	}
}

func TestCIDRSetLargeRangeIsSparse(t *testing.T) {
	// 2^22 node ranges: nothing is stored until used.
	s := mustSet(t, "10.0.0.0/8", 30)
	if s.Size() != 1<<22 {
		t.Fatalf("Size = %d", s.Size())
	}
	if err := s.Occupy(netip.MustParsePrefix("10.255.255.252/30")); err != nil {
		t.Fatal(err)
	}
	s.ResumeAfterOccupied() // wraps round to the first
	if got := allocate(t, s); got != "10.0.0.0/30" {
		t.Errorf("got %s, want 10.0.0.0/30", got)
	}
}

func TestNewCIDRSetRejects(t *testing.T) {
	for _, tc := range []struct {
		cluster string
		mask    int
	}{
		{"10.42.0.0/16", 15},
		{"10.42.0.0/16", 33},
		{"10.42.0.1/16", 24},
		{"fd00::/64", 80},
	} {
		if _, err := NewCIDRSet(netip.MustParsePrefix(tc.cluster), tc.mask); err == nil {
			t.Errorf("NewCIDRSet(%s, %d) succeeded", tc.cluster, tc.mask)
		}
	}
}
