package storage

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// TestCompactRoundsOfTwoServers plays kube-apiserver's compaction protocol
// for two API servers on one etcd: in each round exactly one compacts,
// always to a revision at least one round old, and never twice to the
// same revision.
func TestCompactRoundsOfTwoServers(t *testing.T) {
	e, _ := startEtcd(t)
	s := e.Store()
	ctx := context.Background()
	put := func(i int) int64 {
		t.Helper()
		rev, err := s.Create(ctx, fmt.Sprintf("/registry/things/%d", i), []byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		return rev
	}
	type server struct{ version, rev int64 }
	a, b := &server{}, &server{}
	round := func(srv *server) bool {
		t.Helper()
		version, rev, compacted, err := compactRound(ctx, s.Client(), srv.version, srv.rev)
		if err != nil {
			t.Fatal(err)
		}
		srv.version, srv.rev = version, rev
		return compacted
	}

	// Round 1: A claims it but compacts nothing (no revision seen yet); B
	// finds the claim and only learns the version.
	first := put(1)
	if round(a) || round(b) {
		t.Fatal("a first round compacted")
	}
	if a.version != 1 || b.version != 1 {
		t.Fatalf("versions after round 1: a %d, b %d; want 1 and 1", a.version, b.version)
	}
	// Round 2, B first this time: B compacts to what it saw in round 1
	// (after the first write); A, a step behind, does nothing.
	second := put(2)
	if !round(b) {
		t.Fatal("round 2: B, first to claim, did not compact")
	}
	if round(a) {
		t.Fatal("round 2: A compacted in a round B had claimed")
	}
	if _, err := s.List(ctx, "/registry/things/", ListOptions{Revision: first - 1}); !errors.Is(err, ErrCompacted) {
		t.Fatalf("history before round 1's revision %d survived: %v", first, err)
	}
	if _, err := s.List(ctx, "/registry/things/", ListOptions{Revision: second}); err != nil {
		t.Fatalf("the last round's writes were compacted away: %v", err)
	}
	// Round 3: A first; it compacts to the revision it saw in round 2.
	put(3)
	if !round(a) || round(b) {
		t.Fatal("round 3: want A alone to compact")
	}
	if _, err := s.List(ctx, "/registry/things/", ListOptions{Revision: second - 1}); !errors.Is(err, ErrCompacted) {
		t.Fatalf("round 3 did not compact up to round 2's revision: %v", err)
	}
}
