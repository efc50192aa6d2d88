package probe

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
)

// fakeExec answers exec probes by command name from a script the test
// changes between clock steps, and counts calls.
type fakeExec struct {
	mu    sync.Mutex
	codes map[string]int // exit code per command; -1: cannot run
	calls map[string]int
}

func newFakeExec() *fakeExec { return &fakeExec{codes: map[string]int{}, calls: map[string]int{}} }

func (f *fakeExec) exec(_ context.Context, cmd []string) ([]byte, int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[cmd[0]]++
	code := f.codes[cmd[0]]
	if code < 0 {
		return nil, -1, errors.New("cannot run")
	}
	return []byte(cmd[0] + " says " + map[bool]string{true: "ok", false: "no"}[code == 0]), code, nil
}

func (f *fakeExec) set(codes map[string]int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, v := range codes {
		f.codes[k] = v
	}
}

func (f *fakeExec) snapshot() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for k, v := range f.calls {
		out[k] = v
	}
	return out
}

// recorder collects updates.
type recorder struct {
	mu        sync.Mutex
	updates   []Update
	unhealthy []Update
}

func (r *recorder) onChange(u Update) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.updates = append(r.updates, u)
}

func (r *recorder) onUnhealthy(u Update) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unhealthy = append(r.unhealthy, u)
}

func (r *recorder) changes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, u := range r.updates {
		out = append(out, string(u.Kind)+"="+u.Result.String())
	}
	return out
}

// waitLive waits until m has n running workers.
func waitLive(t *testing.T, m *Manager, n int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for m.live.Load() != n {
		if time.Now().After(deadline) {
			t.Fatalf("live workers = %d, want %d", m.live.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// settle waits until every worker of m is parked on the fake clock and no
// readiness trigger is pending: all attempts due so far have run and
// their updates have been delivered.
func settle(t *testing.T, m *Manager, clk *clocktesting.FakeClock) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if int64(clk.Waiters()) == m.live.Load() && m.triggers.Load() == 0 {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("workers did not settle: %d waiters, %d live, %d triggers", clk.Waiters(), m.live.Load(), m.triggers.Load())
}

func execProbe(cmd string, delay, period, success, failure int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler:        corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{cmd}}},
		InitialDelaySeconds: delay, PeriodSeconds: period, SuccessThreshold: success, FailureThreshold: failure,
	}
}

// step is one move of the fake clock in a manager scenario.
type step struct {
	set     map[string]int // exit codes from now on
	advance time.Duration
	results map[Kind]Result // expected after the step
	calls   map[string]int  // expected total calls so far
}

func TestManagerScenarios(t *testing.T) {
	const s = time.Second
	cases := []struct {
		name    string
		ctr     corev1.Container
		startAt time.Duration // container started this long before AddContainer
		steps   []step
		changes []string // every onChange, in order
	}{
		{
			name: "readiness initial delay and thresholds",
			ctr:  corev1.Container{Name: "c", ReadinessProbe: execProbe("ready", 5, 10, 2, 3)},
			steps: []step{
				{results: map[Kind]Result{Readiness: Failure, Liveness: Success, Startup: Success}, calls: map[string]int{}},
				{advance: 4 * s, calls: map[string]int{}},
				{advance: 1 * s, calls: map[string]int{"ready": 1}, results: map[Kind]Result{Readiness: Failure}},
				{advance: 9 * s, calls: map[string]int{"ready": 1}},
				{advance: 1 * s, calls: map[string]int{"ready": 2}, results: map[Kind]Result{Readiness: Success}},
				{set: map[string]int{"ready": 1}, advance: 10 * s, calls: map[string]int{"ready": 3}, results: map[Kind]Result{Readiness: Success}},
				{advance: 10 * s, results: map[Kind]Result{Readiness: Success}},
				{advance: 10 * s, calls: map[string]int{"ready": 5}, results: map[Kind]Result{Readiness: Failure}},
				{set: map[string]int{"ready": 0}, advance: 10 * s, results: map[Kind]Result{Readiness: Failure}},
				{advance: 10 * s, calls: map[string]int{"ready": 7}, results: map[Kind]Result{Readiness: Success}},
			},
			changes: []string{"Readiness=Success", "Readiness=Failure", "Readiness=Success"},
		},
		{
			name: "a failure interrupts a success streak",
			ctr:  corev1.Container{Name: "c", ReadinessProbe: execProbe("ready", 0, 1, 3, 3)},
			steps: []step{
				{calls: map[string]int{"ready": 1}},
				{advance: s},
				{set: map[string]int{"ready": 1}, advance: s},
				{set: map[string]int{"ready": 0}, advance: s},
				{advance: s, results: map[Kind]Result{Readiness: Failure}},
				{advance: s, calls: map[string]int{"ready": 6}, results: map[Kind]Result{Readiness: Success}},
			},
			changes: []string{"Readiness=Success"},
		},
		{
			name: "defaults: at once, every 10 s, failure threshold 3",
			ctr:  corev1.Container{Name: "c", LivenessProbe: execProbe("live", 0, 0, 0, 0)},
			steps: []step{
				{set: map[string]int{"live": 1}, calls: map[string]int{"live": 1}, results: map[Kind]Result{Liveness: Success}},
				{advance: 9 * s, calls: map[string]int{"live": 1}},
				{advance: 1 * s, calls: map[string]int{"live": 2}, results: map[Kind]Result{Liveness: Success}},
				{advance: 10 * s, calls: map[string]int{"live": 3}, results: map[Kind]Result{Liveness: Failure}},
				// On hold after the failure: no more attempts for this container ID.
				{advance: 100 * s, calls: map[string]int{"live": 3}, results: map[Kind]Result{Liveness: Failure}},
			},
			changes: []string{"Liveness=Failure"},
		},
		{
			name: "liveness success keeps quiet",
			ctr:  corev1.Container{Name: "c", LivenessProbe: execProbe("live", 0, 1, 1, 1)},
			steps: []step{
				{advance: 5 * s, calls: map[string]int{"live": 6}, results: map[Kind]Result{Liveness: Success}},
			},
		},
		{
			name: "errored attempts are discarded",
			ctr:  corev1.Container{Name: "c", LivenessProbe: execProbe("live", 0, 1, 1, 2)},
			steps: []step{
				{set: map[string]int{"live": 1}},
				{set: map[string]int{"live": -1}, advance: s},
				{advance: s, results: map[Kind]Result{Liveness: Success}},
				{set: map[string]int{"live": 1}, advance: s, calls: map[string]int{"live": 4}, results: map[Kind]Result{Liveness: Failure}},
			},
			changes: []string{"Liveness=Failure"},
		},
		{
			name: "startup holds liveness and readiness, then readiness at once",
			ctr: corev1.Container{Name: "c",
				StartupProbe:   execProbe("start", 0, 2, 1, 10),
				LivenessProbe:  execProbe("live", 0, 5, 1, 1),
				ReadinessProbe: execProbe("ready", 0, 5, 1, 1),
			},
			steps: []step{
				{set: map[string]int{"start": 1}, calls: map[string]int{"start": 1}, results: map[Kind]Result{Startup: Unknown, Liveness: Success, Readiness: Failure}},
				{advance: 10 * s, calls: map[string]int{"start": 6}, results: map[Kind]Result{Startup: Unknown, Readiness: Failure}},
				{set: map[string]int{"start": 0}, advance: 2 * s, calls: map[string]int{"start": 7, "ready": 1}, results: map[Kind]Result{Startup: Success, Readiness: Success, Liveness: Success}},
				// liveness runs on its own tick; the startup probe is done.
				// liveness keeps its own ticks (0, 5, 10, 15...), readiness
				// ticks from the trigger (12, 17...).
				{advance: 3 * s, calls: map[string]int{"start": 7, "ready": 1, "live": 1}},
				{set: map[string]int{"live": 1}, advance: 5 * s, calls: map[string]int{"start": 7, "ready": 2, "live": 2}, results: map[Kind]Result{Liveness: Failure}},
			},
			changes: []string{"Startup=Success", "Readiness=Success", "Liveness=Failure"},
		},
		{
			name: "startup failure threshold",
			ctr: corev1.Container{Name: "c",
				StartupProbe:  execProbe("start", 0, 1, 1, 3),
				LivenessProbe: execProbe("live", 0, 1, 1, 1),
			},
			steps: []step{
				{set: map[string]int{"start": 1}},
				{advance: s, results: map[Kind]Result{Startup: Unknown}},
				{advance: s, results: map[Kind]Result{Startup: Failure, Liveness: Success}},
				{advance: 10 * s, calls: map[string]int{"start": 3}},
			},
			changes: []string{"Startup=Failure"},
		},
		{
			name:    "initial delay already past for an adopted container",
			ctr:     corev1.Container{Name: "c", ReadinessProbe: execProbe("ready", 30, 10, 1, 1)},
			startAt: 100 * s,
			steps: []step{
				{calls: map[string]int{"ready": 1}, results: map[Kind]Result{Readiness: Success}},
			},
			changes: []string{"Readiness=Success"},
		},
		{
			name: "no probes",
			ctr:  corev1.Container{Name: "c"},
			steps: []step{
				{advance: 100 * s, calls: map[string]int{}, results: map[Kind]Result{Readiness: Success, Liveness: Success, Startup: Success}},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clk := clocktesting.NewFakeClock(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
			rec := &recorder{}
			m := NewManager(rec.onChange, WithClock(clk), WithUnhealthy(rec.onUnhealthy))
			t.Cleanup(m.Stop)
			fx := newFakeExec()
			if len(tc.steps) > 0 && tc.steps[0].set != nil {
				fx.set(tc.steps[0].set)
			}
			m.AddContainer("pod-uid", &tc.ctr, "cid", clk.Now().Add(-tc.startAt), Target{PodIP: "127.0.0.1", Exec: fx.exec})
			settle(t, m, clk)
			for i, st := range tc.steps {
				if i > 0 && st.set != nil {
					fx.set(st.set)
				}
				// One second at a time, as real time passes: a fake clock
				// fires each timer once per Step however far it jumps.
				for d := time.Duration(0); d < st.advance; d += time.Second {
					clk.Step(time.Second)
					settle(t, m, clk)
				}
				settle(t, m, clk)
				if st.calls != nil {
					if got := fx.snapshot(); !reflect.DeepEqual(got, st.calls) {
						t.Fatalf("step %d: calls = %v, want %v", i, got, st.calls)
					}
				}
				for k, want := range st.results {
					if got := m.Result("cid", k); got != want {
						t.Fatalf("step %d: %s = %v, want %v", i, k, got, want)
					}
				}
			}
			if got := rec.changes(); !reflect.DeepEqual(got, tc.changes) {
				t.Fatalf("changes = %v, want %v", got, tc.changes)
			}
		})
	}
}

func TestManagerUpdatesAndUnhealthy(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	rec := &recorder{}
	m := NewManager(rec.onChange, WithClock(clk), WithUnhealthy(rec.onUnhealthy))
	t.Cleanup(m.Stop)
	fx := newFakeExec()
	fx.set(map[string]int{"live": 1})
	c := &corev1.Container{Name: "web", LivenessProbe: execProbe("live", 0, 1, 1, 2)}
	m.AddContainer("uid-1", c, "cid-1", clk.Now(), Target{Exec: fx.exec})
	settle(t, m, clk)
	clk.Step(time.Second)
	settle(t, m, clk)
	want := Update{PodUID: "uid-1", ContainerName: "web", ContainerID: "cid-1", Kind: Liveness, Result: Failure, Message: "live says no"}
	if len(rec.updates) != 1 || rec.updates[0] != want {
		t.Fatalf("updates = %+v, want [%+v]", rec.updates, want)
	}
	if len(rec.unhealthy) != 2 || rec.unhealthy[0] != want || rec.unhealthy[1] != want {
		t.Fatalf("unhealthy = %+v, want two of %+v", rec.unhealthy, want)
	}
}

func TestManagerRemoveAndStop(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	rec := &recorder{}
	m := NewManager(rec.onChange, WithClock(clk))
	fx := newFakeExec()
	probes := corev1.Container{Name: "c", LivenessProbe: execProbe("live", 0, 1, 1, 3), ReadinessProbe: execProbe("ready", 0, 1, 1, 3)}
	add := func(uid types.UID, id string) {
		m.AddContainer(uid, &probes, id, clk.Now(), Target{Exec: fx.exec})
	}
	add("p1", "a")
	add("p1", "b")
	add("p2", "c")
	add("p2", "c") // duplicate: no second set of workers
	settle(t, m, clk)
	if got := m.live.Load(); got != 6 {
		t.Fatalf("live workers = %d, want 6", got)
	}
	if got := m.Result("a", Readiness); got != Success {
		t.Fatalf("a readiness = %v, want Success", got)
	}
	fx.set(map[string]int{"ready": 1})
	rec.mu.Lock()
	rec.updates = nil
	rec.mu.Unlock()

	m.RemoveContainer("a")
	m.RemoveContainer("a")
	waitLive(t, m, 4)
	if got := m.Result("a", Readiness); got != Success {
		t.Fatalf("removed container's result = %v, want Success", got)
	}
	m.RemovePod("p1")
	m.RemovePod("p1")
	waitLive(t, m, 2)
	settle(t, m, clk)
	before := fx.snapshot()
	for i := 0; i < 3; i++ {
		clk.Step(time.Second)
		settle(t, m, clk)
	}
	after := fx.snapshot()
	if after["ready"]-before["ready"] != 3 { // only c's readiness probe runs
		t.Fatalf("readiness calls went %d -> %d, want +3", before["ready"], after["ready"])
	}
	if got := m.Result("c", Readiness); got != Failure {
		t.Fatalf("c readiness = %v, want Failure", got)
	}
	m.Stop()
	m.Stop()
	if got := m.live.Load(); got != 0 {
		t.Fatalf("live workers after Stop = %d", got)
	}
	add("p3", "d")
	if got := m.live.Load(); got != 0 {
		t.Fatalf("AddContainer after Stop started %d workers", got)
	}
	for _, u := range rec.updates {
		if u.ContainerID != "c" {
			t.Errorf("update for removed container: %+v", u)
		}
	}
}

// TestManagerRemoveCancelsAttempt shows that RemoveContainer cancels an
// attempt in progress and that Stop waits for it.
func TestManagerRemoveCancelsAttempt(t *testing.T) {
	entered := make(chan struct{})
	rec := &recorder{}
	m := NewManager(rec.onChange)
	exec := func(ctx context.Context, _ []string) ([]byte, int, error) {
		close(entered)
		<-ctx.Done()
		return nil, -1, ctx.Err()
	}
	p := execProbe("hang", 0, 1, 1, 1)
	p.TimeoutSeconds = 60
	m.AddContainer("p", &corev1.Container{Name: "c", LivenessProbe: p}, "id", time.Now(), Target{Exec: exec})
	<-entered
	start := time.Now()
	m.RemoveContainer("id")
	m.Stop()
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Stop after RemoveContainer took %v", d)
	}
	if len(rec.updates) != 0 {
		t.Fatalf("updates after removal: %+v", rec.updates)
	}
}
