package apiserver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/peapod/peapod/internal/storage"
)

// Allocation errors.
var (
	errAllocated = errors.New("provided IP is already allocated")
	errPortInUse = errors.New("provided port is already allocated")
	errRangeFull = errors.New("range is full")
)

// bitmap marks the used offsets of a range. Pure; not safe for
// concurrent use.
type bitmap struct {
	size int
	bits []byte
}

func newBitmap(size int, data []byte) *bitmap {
	b := &bitmap{size: size, bits: make([]byte, (size+7)/8)}
	copy(b.bits, data)
	return b
}

func (b *bitmap) has(i int) bool { return b.bits[i/8]&(1<<(i%8)) != 0 }
func (b *bitmap) set(i int)      { b.bits[i/8] |= 1 << (i % 8) }
func (b *bitmap) clear(i int)    { b.bits[i/8] &^= 1 << (i % 8) }

// next returns the first free offset in [lo, hi) at or after start,
// wrapping within [lo, hi).
func (b *bitmap) next(start, lo, hi int) (int, bool) {
	if hi <= lo {
		return 0, false
	}
	if start < lo || start >= hi {
		start = lo
	}
	for i := 0; i < hi-lo; i++ {
		off := lo + (start-lo+i)%(hi-lo)
		if !b.has(off) {
			return off, true
		}
	}
	return 0, false
}

// staticBand is the size of the low band of a range that dynamic
// allocation uses last, so fixed addresses (the kubernetes Service's,
// DNS) rarely collide: min(max(16, size/16), 256), as Kubernetes does.
func staticBand(size int) int {
	return min(max(16, size/16), 256, size)
}

// ipRange maps the usable addresses of an IPv4 CIDR (all but the network
// and broadcast addresses) to offsets. Pure.
type ipRange struct {
	cidr *net.IPNet
	base uint32 // the first usable address
	size int
}

func parseIPRange(cidr string) (ipRange, error) {
	_, n, err := net.ParseCIDR(cidr)
	if err != nil || n.IP.To4() == nil {
		return ipRange{}, fmt.Errorf("service CIDR %q: must be an IPv4 CIDR", cidr)
	}
	ones, bits := n.Mask.Size()
	if bits-ones < 2 || bits-ones > 24 {
		return ipRange{}, fmt.Errorf("service CIDR %q: prefix must be between /8 and /30", cidr)
	}
	return ipRange{cidr: n, base: binary.BigEndian.Uint32(n.IP.To4()) + 1, size: 1<<(bits-ones) - 2}, nil
}

func (r ipRange) offset(ip string) (int, bool) {
	p := net.ParseIP(ip).To4()
	if p == nil || !r.cidr.Contains(p) {
		return 0, false
	}
	off := int(binary.BigEndian.Uint32(p)) - int(r.base)
	return off, off >= 0 && off < r.size
}

func (r ipRange) ip(off int) string {
	b := make(net.IP, 4)
	binary.BigEndian.PutUint32(b, r.base+uint32(off))
	return b.String()
}

// portRange is an inclusive range of ports, e.g. 30000-32767.
type portRange struct{ base, size int }

func parsePortRange(s string) (portRange, error) {
	lo, hi, ok := strings.Cut(s, "-")
	a, err1 := strconv.Atoi(lo)
	b, err2 := strconv.Atoi(hi)
	if !ok || err1 != nil || err2 != nil || a < 1 || b > 65535 || b < a {
		return portRange{}, fmt.Errorf("node port range %q: want LOW-HIGH within 1-65535", s)
	}
	return portRange{base: a, size: b - a + 1}, nil
}

func (r portRange) String() string { return fmt.Sprintf("%d-%d", r.base, r.base+r.size-1) }

// rangeAllocator persists a bitmap as a core/v1 RangeAllocation under one
// storage key and changes it with compare-and-swap, so allocations
// survive restarts and concurrent servers never hand out one item twice.
// Safe for concurrent use.
type rangeAllocator struct {
	a     *api
	key   string
	rng   string // RangeAllocation.Range; a change resets the bitmap
	size  int
	mu    sync.Mutex
	randn func(n int) int
	// reserved offsets are skipped by allocateNext: only a request for
	// that very item (allocate) takes one.
	reserved map[int]bool
}

// reserve keeps off out of dynamic allocation. Call before use.
func (r *rangeAllocator) reserve(off int) {
	if r.reserved == nil {
		r.reserved = map[int]bool{}
	}
	r.reserved[off] = true
}

func newRangeAllocator(a *api, key, rng string, size int) *rangeAllocator {
	return &rangeAllocator{a: a, key: key, rng: rng, size: size, randn: rand.IntN}
}

// read returns the stored bitmap and its revision (0 when none is
// stored). A bitmap of another range reads as empty.
func (r *rangeAllocator) read(ctx context.Context) (*bitmap, int64, error) {
	kv, err := r.a.store.Get(ctx, r.key)
	if errors.Is(err, storage.ErrNotFound) {
		return newBitmap(r.size, nil), 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read range %s: %w", r.key, err)
	}
	obj, err := r.a.fromStorage(kv.Value, kv.Revision)
	if err != nil {
		return nil, 0, fmt.Errorf("read range %s: %w", r.key, err)
	}
	if ra, ok := obj.(*corev1.RangeAllocation); ok && ra.Range == r.rng {
		return newBitmap(r.size, ra.Data), kv.Revision, nil
	}
	return newBitmap(r.size, nil), kv.Revision, nil
}

// write stores b if the stored bitmap is still at rev (0: none stored);
// storage.ErrConflict or storage.ErrExists (wrapped) when it is not.
func (r *rangeAllocator) write(ctx context.Context, b *bitmap, rev int64) error {
	ra := &corev1.RangeAllocation{ObjectMeta: metav1.ObjectMeta{Name: r.key}, Range: r.rng, Data: b.bits}
	data, err := r.a.toStorage(ra)
	if err != nil {
		return err
	}
	if rev == 0 {
		_, err = r.a.store.Create(ctx, r.key, data)
	} else {
		_, err = r.a.store.Update(ctx, r.key, data, rev)
	}
	if err != nil {
		return fmt.Errorf("write range %s: %w", r.key, err)
	}
	return nil
}

// casLost reports a write that lost a compare-and-swap to another writer.
func casLost(err error) bool {
	return errors.Is(err, storage.ErrConflict) || errors.Is(err, storage.ErrExists)
}

// modify reads the bitmap, applies fn and writes it back, retrying on
// concurrent writes (of this server or another). fn reports whether it
// changed anything.
func (r *rangeAllocator) modify(ctx context.Context, fn func(b *bitmap) (bool, error)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for attempt := 0; attempt < 20; attempt++ {
		b, rev, err := r.read(ctx)
		if err != nil {
			return err
		}
		changed, err := fn(b)
		if err != nil || !changed {
			return err
		}
		if err := r.write(ctx, b, rev); casLost(err) {
			continue
		} else if err != nil {
			return err
		}
		return nil
	}
	return fmt.Errorf("write range %s: too many concurrent updates", r.key)
}

// allocate marks off used; used is returned if it already is.
func (r *rangeAllocator) allocate(ctx context.Context, off int, used error) error {
	return r.modify(ctx, func(b *bitmap) (bool, error) {
		if b.has(off) {
			return false, used
		}
		b.set(off)
		return true, nil
	})
}

// allocateNext picks a free offset at random above the static band,
// falling back to the static band, and marks it used.
func (r *rangeAllocator) allocateNext(ctx context.Context) (int, error) {
	var got int
	err := r.modify(ctx, func(b *bitmap) (bool, error) {
		search := b
		if len(r.reserved) > 0 { // search a copy where reserved items look used
			search = newBitmap(r.size, b.bits)
			for off := range r.reserved {
				search.set(off)
			}
		}
		band := staticBand(r.size)
		off, ok := search.next(band+r.randn(max(r.size-band, 1)), band, r.size)
		if !ok {
			off, ok = search.next(0, 0, band)
		}
		if !ok {
			return false, errRangeFull
		}
		b.set(off)
		got = off
		return true, nil
	})
	return got, err
}

// release frees off; freeing a free offset is a no-op.
func (r *rangeAllocator) release(ctx context.Context, off int) error {
	return r.modify(ctx, func(b *bitmap) (bool, error) {
		if !b.has(off) {
			return false, nil
		}
		b.clear(off)
		return true, nil
	})
}
