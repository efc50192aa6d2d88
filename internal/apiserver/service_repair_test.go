package apiserver

import (
	"context"
	"slices"
	"testing"

	"github.com/peapod/peapod/internal/storage"
)

func TestRepairBitmap(t *testing.T) {
	stored := newBitmap(8, nil)
	for _, off := range []int{1, 2, 5} {
		stored.set(off)
	}
	leaks := map[int]int{2: 1, 7: 2}
	// 1 and 3 are used (3 was missing from the bitmap); 2 and 5 are leaked.
	fresh, released := repairBitmap(stored, []int{1, 3}, leaks, 3)
	for off := 0; off < 8; off++ {
		want := off == 1 || off == 2 || off == 3 || off == 5
		if fresh.has(off) != want {
			t.Errorf("offset %d marked %v, want %v", off, fresh.has(off), want)
		}
	}
	if len(released) != 0 {
		t.Fatalf("released %v on first sight", released)
	}
	if want := map[int]int{2: 2, 5: 1}; !mapsEqual(leaks, want) {
		t.Fatalf("leak counts %v, want %v (7 no longer marked is forgotten)", leaks, want)
	}
	// Next pass: 2 reaches three sightings and goes; 5 is used again now.
	fresh, released = repairBitmap(fresh, []int{1, 3, 5}, leaks, 3)
	if !slices.Equal(released, []int{2}) || fresh.has(2) || !fresh.has(5) {
		t.Fatalf("released %v, 2 marked %v, 5 marked %v", released, fresh.has(2), fresh.has(5))
	}
	if len(leaks) != 0 {
		t.Fatalf("leaks left %v", leaks)
	}
	if stored.has(3) {
		t.Fatal("repairBitmap changed its input")
	}
}

func mapsEqual(a, b map[int]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestRepairKeepsAnotherServersAllocation: two API servers on one store.
// One has marked a ClusterIP for a Service it has not written yet; the
// other's repair passes keep it marked (so it is never handed out twice)
// until it has been found leaked repairLeakRounds times. An allocation
// made between a pass's read and its write makes the pass start again
// rather than undo it.
func TestRepairKeepsAnotherServersAllocation(t *testing.T) {
	ctx := context.Background()
	mem := storage.NewMemory()
	defer mem.Close()
	one := newAPI(apiOptions{Store: mem})
	two := newAPI(apiOptions{Store: mem})
	if err := one.bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	if err := two.bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	inFlight, err := one.services.ipA.allocateNext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	marked := func(off int) bool {
		t.Helper()
		b, _, err := two.services.ipA.read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return b.has(off)
	}
	repairs := two.serviceRepairs()
	for pass := 1; pass < repairLeakRounds; pass++ {
		if err := repairs[0].pass(ctx, two); err != nil {
			t.Fatal(err)
		}
		if !marked(inFlight) {
			t.Fatalf("pass %d released another server's in-flight allocation", pass)
		}
	}
	if err := repairs[0].pass(ctx, two); err != nil {
		t.Fatal(err)
	}
	if marked(inFlight) {
		t.Fatalf("a leak seen %d passes in a row is still marked", repairLeakRounds)
	}

	// A concurrent allocation between the read and the write: the pass
	// (which has something to write: the kubernetes Service's address,
	// unmarked here) loses its compare-and-swap, starts again and keeps it.
	if err := one.services.ipA.release(ctx, 0); err != nil {
		t.Fatal(err)
	}
	var concurrent int
	allocated := false
	r := repairs[0]
	list := r.used
	r.used = func(ctx context.Context) ([]int, error) {
		if !allocated {
			off, err := one.services.ipA.allocateNext(ctx)
			if err != nil {
				return nil, err
			}
			concurrent, allocated = off, true
		}
		return list(ctx)
	}
	if err := r.pass(ctx, two); err != nil {
		t.Fatal(err)
	}
	if !marked(concurrent) {
		t.Fatal("a pass undid an allocation made while it ran")
	}
	if !marked(0) {
		t.Fatal("the pass did not mark the kubernetes Service's address")
	}
}
