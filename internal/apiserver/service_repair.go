package apiserver

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
)

// The allocation bitmaps and the Services are two writes, not one: a
// crash between them leaks an address (marked, held by no Service), and
// a Service written by an older server may hold one the bitmap lacks. The
// repair loop fixes both, as kube-apiserver's ipallocator and portallocator
// repair controllers do, and like them it is safe with several servers:
//
//   - an address a Service holds is marked at once;
//   - an address marked but held by no Service is released only after
//     repairLeakRounds passes (repairInterval apart) have all found it so:
//     another server may have marked it for a Service it is about to
//     create, and releasing it at the first sight would hand it out twice;
//   - each pass reads the bitmap before it lists the Services and writes
//     with compare-and-swap on what it read, so an address marked after the
//     read makes the write fail and the pass start again.
const (
	repairInterval   = 3 * time.Minute
	repairLeakRounds = 3
)

// allocationRepair is the repair state of one bitmap: how many passes in
// a row have found each offset leaked.
type allocationRepair struct {
	alloc *rangeAllocator
	what  string // "ClusterIP" or "NodePort", for logs
	leaks map[int]int
	// used returns the offsets the stored Services hold.
	used func(ctx context.Context) ([]int, error)
}

// repairBitmap is one pass over a bitmap: every offset in used marked, and
// offsets marked but unused kept until they have been found leaked in
// rounds passes in a row (leaks counts them; offsets used again are
// forgotten). It returns the repaired bitmap and the offsets it released.
// Pure; stored is not changed.
func repairBitmap(stored *bitmap, used []int, leaks map[int]int, rounds int) (*bitmap, []int) {
	fresh := newBitmap(stored.size, nil)
	for _, off := range used {
		fresh.set(off)
	}
	var released []int
	for off := 0; off < stored.size; off++ {
		switch {
		case fresh.has(off):
			delete(leaks, off)
		case stored.has(off):
			leaks[off]++
			if leaks[off] < rounds {
				fresh.set(off)
				continue
			}
			delete(leaks, off)
			released = append(released, off)
		default:
			delete(leaks, off)
		}
	}
	return fresh, released
}

// pass runs one repair of the bitmap, retrying when another writer
// changed it meanwhile.
func (r *allocationRepair) pass(ctx context.Context, a *api) error {
	r.alloc.mu.Lock()
	defer r.alloc.mu.Unlock()
	for attempt := 0; attempt < 20; attempt++ {
		stored, rev, err := r.alloc.read(ctx)
		if err != nil {
			return err
		}
		used, err := r.used(ctx) // after the read: see the const block
		if err != nil {
			return err
		}
		leaks := make(map[int]int, len(r.leaks))
		for k, v := range r.leaks {
			leaks[k] = v
		}
		fresh, released := repairBitmap(stored, used, leaks, repairLeakRounds)
		if string(fresh.bits) != string(stored.bits) {
			if err := r.alloc.write(ctx, fresh, rev); casLost(err) {
				continue
			} else if err != nil {
				return err
			}
		}
		r.leaks = leaks
		for _, off := range released {
			a.log.Info("released a leaked service allocation", "kind", r.what, "offset", off)
		}
		return nil
	}
	return fmt.Errorf("repair %s allocations: too many concurrent updates", r.what)
}

// serviceRepairs returns the repair of the ClusterIP and the NodePort
// bitmaps.
func (a *api) serviceRepairs() []*allocationRepair {
	s := a.services
	list := func(ctx context.Context) ([]*corev1.Service, error) {
		res := a.resourceFor("", "v1", "services")
		lr, err := a.listObjects(ctx, res, "", selector{labels: labels.Everything(), fields: fields.Everything()}, 0, "", "", "")
		if err != nil {
			return nil, fmt.Errorf("list services: %w", err)
		}
		out := make([]*corev1.Service, 0, len(lr.items))
		for _, obj := range lr.items {
			out = append(out, obj.(*corev1.Service))
		}
		return out, nil
	}
	ips := &allocationRepair{alloc: s.ipA, what: "ClusterIP", leaks: map[int]int{}, used: func(ctx context.Context) ([]int, error) {
		svcs, err := list(ctx)
		var out []int
		for _, svc := range svcs {
			if off, ok := s.ips.offset(svc.Spec.ClusterIP); ok && needsClusterIP(svc) {
				out = append(out, off)
			}
		}
		return out, err
	}}
	ports := &allocationRepair{alloc: s.portA, what: "NodePort", leaks: map[int]int{}, used: func(ctx context.Context) ([]int, error) {
		svcs, err := list(ctx)
		var out []int
		for _, svc := range svcs {
			for _, p := range svc.Spec.Ports {
				if off := int(p.NodePort) - s.ports.base; p.NodePort != 0 && off >= 0 && off < s.ports.size {
					out = append(out, off)
				}
			}
		}
		return out, err
	}}
	return []*allocationRepair{ips, ports}
}

// repairServiceAllocations runs the first repair pass, at start before
// serving: what Services hold is marked before anything is handed out.
// It returns the repairs for runServiceRepairs to continue.
func (a *api) repairServiceAllocations(ctx context.Context) ([]*allocationRepair, error) {
	if a.services.err != nil {
		return nil, a.services.err
	}
	repairs := a.serviceRepairs()
	for _, r := range repairs {
		if err := r.pass(ctx, a); err != nil {
			return nil, err
		}
	}
	return repairs, nil
}

// runServiceRepairs repeats the repairs every interval until ctx ends.
func (a *api) runServiceRepairs(ctx context.Context, repairs []*allocationRepair, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, r := range repairs {
			if err := r.pass(ctx, a); err != nil && ctx.Err() == nil {
				a.log.Warn("service allocation repair", "kind", r.what, "err", err)
			}
		}
	}
}
