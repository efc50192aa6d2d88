package scheduler

import (
	"errors"
	"testing"
	"time"
)

func TestCacheAssumeConfirmForget(t *testing.T) {
	c := newCache()
	c.setNode(mkNode("n1", "1", "1Gi"))
	p := mkPod("p", req("600m", ""))
	if n, err := c.scheduleAndAssume(p); err != nil || n != "n1" {
		t.Fatalf("scheduleAndAssume = %q, %v", n, err)
	}
	if !c.isPlaced(p) {
		t.Fatal("assumed pod not placed")
	}
	// The assumption counts: a second pod no longer fits.
	if _, err := c.scheduleAndAssume(mkPod("q", req("600m", ""))); err == nil {
		t.Fatal("second pod fits although the first is assumed")
	}
	c.forget(p)
	if c.isPlaced(p) {
		t.Fatal("forgotten pod still placed")
	}
	// Confirmed pods survive forget (a late bind error) and free their room
	// only when removed.
	bound := mkPod("p", req("600m", ""), on("n1"))
	c.setBoundPod(bound)
	c.forget(bound)
	if !c.isPlaced(bound) {
		t.Fatal("forget dropped a confirmed pod")
	}
	c.setBoundPod(mkPod("p", req("600m", ""), on("n1"), phase("Succeeded")))
	if c.isPlaced(bound) {
		t.Fatal("terminated pod still placed")
	}
}

func TestCacheExpiresUnconfirmedBinds(t *testing.T) {
	c := newCache()
	defer c.stop()
	c.setNode(mkNode("n1", "1", "1Gi"))
	p := mkPod("p", req("600m", ""))
	if _, err := c.scheduleAndAssume(p); err != nil {
		t.Fatal(err)
	}
	expired := make(chan struct{})
	c.finishBinding(p, 20*time.Millisecond, func() { close(expired) })
	select {
	case <-expired:
	case <-time.After(5 * time.Second):
		t.Fatal("assumed pod never expired")
	}
	if c.isPlaced(p) {
		t.Fatal("expired pod still placed")
	}
	// A confirmed pod does not expire.
	q := mkPod("q", req("100m", ""))
	if _, err := c.scheduleAndAssume(q); err != nil {
		t.Fatal(err)
	}
	c.finishBinding(q, 20*time.Millisecond, func() { t.Error("confirmed pod expired") })
	c.setBoundPod(mkPod("q", req("100m", ""), on("n1")))
	time.Sleep(60 * time.Millisecond)
	if !c.isPlaced(q) {
		t.Fatal("confirmed pod dropped")
	}
}

func TestCacheRemovedNodeLeavesSnapshot(t *testing.T) {
	c := newCache()
	c.setNode(mkNode("n1", "1", "1Gi"))
	c.setBoundPod(mkPod("a", on("n1")))
	c.removeNode("n1")
	if _, err := c.scheduleAndAssume(mkPod("p")); !errors.Is(err, ErrNoNodesAvailable) {
		t.Fatalf("err = %v, want ErrNoNodesAvailable", err)
	}
	// The node's pods are still counted when it comes back.
	c.setNode(mkNode("n1", "1", "1Gi", maxPods("1")))
	if _, err := c.scheduleAndAssume(mkPod("p")); err == nil || err.Error() != "0/1 nodes are available: 1 Too many pods."+noVictims {
		t.Fatalf("err = %v", err)
	}
}

func TestQueueParkAfterMoveRetries(t *testing.T) {
	q := newSchedulingQueue(time.Millisecond, 10*time.Millisecond)
	defer q.shutDown()
	q.add("default/a")
	key, cyc, _ := q.pop()
	q.moveAll(false) // the cluster changed while a was being scheduled
	q.park(key, cyc, parked{})
	q.done(key)
	if q.isParked(key) {
		t.Fatal("parked despite a move during its attempt")
	}
	if got, _, _ := q.pop(); got != key {
		t.Fatalf("popped %q", got)
	}
	q.done(key)

	// Without a move it parks, and only a relevant move frees it.
	q.add("default/b")
	key, cyc, _ = q.pop()
	q.park(key, cyc, parked{})
	q.done(key)
	q.moveAll(true)
	if !q.isParked(key) {
		t.Fatal("a bound pod appearing freed a pod whose own selectors count no pods")
	}
	q.moveAll(false)
	if q.isParked(key) {
		t.Fatal("still parked after a move")
	}
}
