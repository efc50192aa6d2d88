package leaderelect

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// fast durations keep the tests short; a wide gap between RenewDeadline
// and LeaseDuration keeps a leader that cannot renew from overlapping
// with the next one even on a loaded machine.
var fast = Durations{LeaseDuration: 3 * time.Second, RenewDeadline: time.Second, RetryPeriod: 100 * time.Millisecond}

// candidate is one server campaigning in a test.
type candidate struct {
	name, identity string
	cancel         context.CancelFunc
	leading        atomic.Bool
	terms          atomic.Int32
	done           chan error
}

// leaders counts the candidates leading at once; overlap records the
// most ever seen.
type leaders struct {
	mu      sync.Mutex
	now     int
	overlap int
}

func (l *leaders) add(d int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.now += d
	l.overlap = max(l.overlap, l.now)
}

func campaign(t *testing.T, client *fake.Clientset, name string, d Durations, count *leaders) *candidate {
	t.Helper()
	id, err := NewIdentity(name)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &candidate{name: name, identity: id, cancel: cancel, done: make(chan error, 1)}
	cfg := Config{Client: client, Name: SchedulerLease, Candidate: name, Identity: id, Durations: d, Logger: quiet}
	go func() {
		c.done <- Run(ctx, cfg, func(ctx context.Context) error {
			count.add(1)
			c.leading.Store(true)
			c.terms.Add(1)
			<-ctx.Done()
			c.leading.Store(false)
			count.add(-1)
			return nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-c.done
	})
	return c
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func holder(t *testing.T, client *fake.Clientset) string {
	t.Helper()
	l, err := client.CoordinationV1().Leases("kube-system").Get(context.Background(), SchedulerLease, metav1.GetOptions{})
	if err != nil {
		return ""
	}
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// TestOneLeaderAndHandOver: of two servers one leads; when it stops, it
// releases the Lease after its component has stopped and the other leads.
func TestOneLeaderAndHandOver(t *testing.T) {
	client := fake.NewClientset()
	var count leaders
	a := campaign(t, client, "server-a", fast, &count)
	b := campaign(t, client, "server-b", fast, &count)
	eventually(t, "a leader", func() bool { return a.leading.Load() || b.leading.Load() })
	first, second := a, b
	if b.leading.Load() {
		first, second = b, a
	}
	if got := holder(t, client); got != first.identity || Candidate(got) != first.name {
		t.Fatalf("Lease holder %q, want %q (candidate %s)", got, first.identity, first.name)
	}
	first.cancel()
	if err := <-first.done; err != nil {
		t.Fatalf("Run after its context ended: %v", err)
	}
	first.done <- nil // for the cleanup
	eventually(t, "the other server to lead", second.leading.Load)
	if got := holder(t, client); got != second.identity {
		t.Fatalf("Lease holder %q after the hand-over, want %q", got, second.identity)
	}
	if count.overlap != 1 {
		t.Fatalf("%d servers led at once", count.overlap)
	}
}

// TestLostLeaseStopsTheComponent: a leader that cannot renew (its API
// writes fail) stops its component before the Lease expires, the other
// server takes over, and the first campaigns again as a follower.
func TestLostLeaseStopsTheComponent(t *testing.T) {
	client := fake.NewClientset()
	var count leaders
	a := campaign(t, client, "server-a", fast, &count)
	eventually(t, "server-a to lead", a.leading.Load)
	var cut atomic.Bool
	client.PrependReactor("update", "leases", func(action k8stesting.Action) (bool, runtime.Object, error) {
		l := action.(k8stesting.UpdateAction).GetObject().(*coordinationv1.Lease)
		if cut.Load() && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity == a.identity {
			return true, nil, errors.New("connection refused")
		}
		return false, nil, nil
	})
	b := campaign(t, client, "server-b", fast, &count)
	cut.Store(true)
	eventually(t, "server-a to stop leading", func() bool { return !a.leading.Load() })
	eventually(t, "server-b to take over", b.leading.Load)
	if count.overlap != 1 {
		t.Fatalf("%d servers led at once", count.overlap)
	}
	select {
	case err := <-a.done:
		t.Fatalf("server-a's Run ended after losing the Lease (%v); it should campaign again", err)
	default:
	}
	if a.terms.Load() != 1 || a.leading.Load() {
		t.Fatalf("server-a: %d terms, leading %v; want it back to following", a.terms.Load(), a.leading.Load())
	}
}

// TestRestartTakesBackItsOwnLease: a server restarted after a crash leads
// at once instead of waiting out a long Lease its earlier run held; a
// Lease another server holds is left alone.
func TestRestartTakesBackItsOwnLease(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	long := Durations{LeaseDuration: time.Hour, RenewDeadline: time.Second, RetryPeriod: 100 * time.Millisecond}
	lease := func(holder string) {
		t.Helper()
		d := int32(3600)
		now := metav1.NewMicroTime(time.Now())
		l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: SchedulerLease},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &d, RenewTime: &now, AcquireTime: &now}}
		_ = client.CoordinationV1().Leases("kube-system").Delete(ctx, SchedulerLease, metav1.DeleteOptions{})
		if _, err := client.CoordinationV1().Leases("kube-system").Create(ctx, l, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	lease("server-b_0123")
	cfg := Config{Client: client, Name: SchedulerLease, Candidate: "server-a", Identity: "server-a_4567", Durations: long, Logger: quiet}
	if err := cfg.defaults(); err != nil {
		t.Fatal(err)
	}
	if err := reclaim(ctx, &cfg, quiet); err != nil || holder(t, client) != "server-b_0123" {
		t.Fatalf("reclaim took another server's Lease: %v, holder %q", err, holder(t, client))
	}
	lease("server-a_89ab")
	var count leaders
	a := campaign(t, client, "server-a", long, &count)
	eventually(t, "the restarted server to lead", a.leading.Load)
	if got := holder(t, client); got != a.identity {
		t.Fatalf("holder %q, want %q", got, a.identity)
	}
}

// TestLeadEndingOnItsOwnEndsRun: a component that fails while leading
// ends Run with its error (the server stops, as with any component), and
// the Lease is released for the other server.
func TestLeadEndingOnItsOwnEndsRun(t *testing.T) {
	client := fake.NewClientset()
	cfg := Config{Client: client, Name: ControllerManagerLease, Candidate: "server-a", Identity: "server-a_1", Durations: fast, Logger: quiet}
	err := Run(context.Background(), cfg, func(context.Context) error { return errors.New("informer sync failed") })
	if err == nil || err.Error() != "informer sync failed" {
		t.Fatalf("Run: %v", err)
	}
	l, err := client.CoordinationV1().Leases("kube-system").Get(context.Background(), ControllerManagerLease, metav1.GetOptions{})
	if err != nil || (l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != "") {
		t.Fatalf("Lease not released: %+v %v", l, err)
	}
}

func TestDurationsValidate(t *testing.T) {
	if err := (Durations{}).WithDefaults().Validate(); err != nil {
		t.Fatalf("Kubernetes' defaults: %v", err)
	}
	for _, tc := range []struct {
		d    Durations
		want string
	}{
		{Durations{LeaseDuration: 10 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: time.Second}, "--leader-elect-lease-duration 10s must be longer than --leader-elect-renew-deadline 10s"},
		{Durations{LeaseDuration: 15 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 2 * time.Second}, "--leader-elect-renew-deadline 2s must be longer than 1.2 × --leader-elect-retry-period 2s"},
		{Durations{LeaseDuration: -1, RenewDeadline: time.Second, RetryPeriod: time.Second}, "must all be positive"},
	} {
		if err := tc.d.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.d, err, tc.want)
		}
	}
	if got := Candidate("peapod-node1_00ff"); got != "peapod-node1" {
		t.Fatalf("Candidate: %q", got)
	}
	if id, _ := NewIdentity("n"); !strings.HasPrefix(id, "n_") || len(id) != len("n_")+16 {
		t.Fatalf("identity %q", id)
	}
}
