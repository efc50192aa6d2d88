package nodeipam

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// ErrFull is returned by AllocateNext when every node range is in use.
var ErrFull = errors.New("no node range is left in the cluster range")

// CIDRSet hands out the node ranges (podCIDRs) of one IPv4 cluster range,
// as kube-controller-manager's cidrset does: ranges of one prefix length,
// indexed from the start of the cluster range, handed out from a rotating
// next candidate, so a released range is handed out again only after every
// range never used. Only the ranges in use are stored, so a large cluster
// range with small node ranges costs nothing up front.
//
// It is pure and not safe for concurrent use; the controller locks it.
type CIDRSet struct {
	cluster  netip.Prefix
	base     uint32 // the cluster range's first address
	hostBits int    // 32 - the node prefix length
	size     uint64 // how many node ranges the cluster range holds
	used     map[uint64]bool
	next     uint64
}

// NewCIDRSet returns an empty set of the /nodeMaskSize ranges of cluster,
// which must be an IPv4 network address with nodeMaskSize no shorter than
// its prefix.
func NewCIDRSet(cluster netip.Prefix, nodeMaskSize int) (*CIDRSet, error) {
	if !cluster.Addr().Is4() || cluster.Masked() != cluster {
		return nil, fmt.Errorf("cluster range %s: want an IPv4 network address", cluster)
	}
	if nodeMaskSize < cluster.Bits() || nodeMaskSize > 32 {
		return nil, fmt.Errorf("node mask size %d: must be between the cluster range's prefix length %d and 32", nodeMaskSize, cluster.Bits())
	}
	return &CIDRSet{
		cluster:  cluster,
		base:     binary.BigEndian.Uint32(cluster.Addr().AsSlice()),
		hostBits: 32 - nodeMaskSize,
		size:     1 << (nodeMaskSize - cluster.Bits()),
		used:     map[uint64]bool{},
	}, nil
}

// Size is how many node ranges the cluster range holds.
func (s *CIDRSet) Size() uint64 { return s.size }

// InUse is how many node ranges are occupied.
func (s *CIDRSet) InUse() int { return len(s.used) }

// AllocateNext occupies and returns the first free range at or after the
// next candidate, wrapping around, and moves the candidate past it.
func (s *CIDRSet) AllocateNext() (netip.Prefix, error) {
	if uint64(len(s.used)) >= s.size {
		return netip.Prefix{}, ErrFull
	}
	for i := uint64(0); i < s.size; i++ {
		c := (s.next + i) % s.size
		if !s.used[c] {
			s.used[c] = true
			s.next = (c + 1) % s.size
			return s.prefix(c), nil
		}
	}
	return netip.Prefix{}, ErrFull // unreachable: len(used) < size
}

// Occupy marks every node range p overlaps as in use; occupying a range
// already in use is fine. p must lie within the cluster range.
func (s *CIDRSet) Occupy(p netip.Prefix) error {
	first, last, err := s.indices(p)
	if err != nil {
		return err
	}
	for i := first; i <= last; i++ {
		s.used[i] = true
	}
	return nil
}

// Release frees every node range p overlaps; releasing a free range is
// fine. The next candidate does not move back: the released ranges come
// round again only after the ones never used.
func (s *CIDRSet) Release(p netip.Prefix) error {
	first, last, err := s.indices(p)
	if err != nil {
		return err
	}
	for i := first; i <= last; i++ {
		delete(s.used, i)
	}
	return nil
}

// ResumeAfterOccupied moves the next candidate past the highest range in
// use. A restarted server calls it once it has occupied the ranges Nodes
// hold: ranges are handed out in ascending order, so the ones above the
// highest in use have never been used, and they come before any range a
// deleted Node gave back before the restart.
func (s *CIDRSet) ResumeAfterOccupied() {
	var highest uint64
	found := false
	for i := range s.used {
		if !found || i > highest {
			highest, found = i, true
		}
	}
	if found {
		s.next = (highest + 1) % s.size
	}
}

// Contains reports whether p lies within the cluster range.
func (s *CIDRSet) Contains(p netip.Prefix) bool {
	return p.Addr().Is4() && p.Bits() >= s.cluster.Bits() && s.cluster.Contains(p.Addr())
}

func (s *CIDRSet) prefix(i uint64) netip.Prefix {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], s.base|uint32(i)<<s.hostBits)
	return netip.PrefixFrom(netip.AddrFrom4(b), 32-s.hostBits)
}

// indices returns the first and last node range index p overlaps.
func (s *CIDRSet) indices(p netip.Prefix) (first, last uint64, err error) {
	if !s.Contains(p) {
		return 0, 0, fmt.Errorf("%s is outside the cluster range %s", p, s.cluster)
	}
	start := binary.BigEndian.Uint32(p.Masked().Addr().AsSlice())
	end := start | uint32(uint64(1)<<(32-p.Bits())-1)
	return uint64((start - s.base) >> s.hostBits), uint64((end - s.base) >> s.hostBits), nil
}
