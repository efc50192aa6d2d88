package probe

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
)

// Update reports that the result of one probe of one container changed.
type Update struct {
	PodUID        types.UID
	ContainerName string
	ContainerID   string
	Kind          Kind
	Result        Result
	// Message is the output of the attempt that made the result flip.
	Message string
}

// Option configures a Manager.
type Option func(*Manager)

// WithClock makes the Manager schedule probes on clk instead of the real
// clock (tests use k8s.io/utils/clock/testing.FakeClock). Probe timeouts
// (timeoutSeconds) always run on real time.
func WithClock(clk clock.Clock) Option {
	return func(m *Manager) { m.clock = clk }
}

// WithUnhealthy registers fn to be called, from the probe goroutine, after
// every probe attempt that failed (Result Failure, with the kubelet's
// message) or could not be made (Result Unknown, Message the error),
// whether or not the container's result flips: what the kubelet reports as
// "Unhealthy" events ("Liveness probe failed: ...").
func WithUnhealthy(fn func(Update)) Option {
	return func(m *Manager) { m.onUnhealthy = fn }
}

// Manager runs the liveness, readiness and startup probes of the agent's
// containers, one goroutine per probe, and keeps their current results.
// It is safe for concurrent use.
type Manager struct {
	clock       clock.Clock
	onChange    func(Update)
	onUnhealthy func(Update)

	mu         sync.Mutex
	containers map[string]*probed // by container ID
	stopped    bool
	wg         sync.WaitGroup

	// live counts running workers and triggers the readiness triggers not
	// yet consumed; tests compare them with the fake clock's waiters to
	// know when every worker is parked.
	live     atomic.Int64
	triggers atomic.Int64
}

// probed is one container under probe.
type probed struct {
	podUID     types.UID
	name, id   string
	cancel     context.CancelFunc
	hasStartup bool
	results    map[Kind]Result // guarded by Manager.mu
	readyKick  chan struct{}   // readiness worker's manual trigger, nil without one
}

// NewManager returns a Manager that calls onChange (from probe goroutines,
// never with the Manager's lock held) each time a probe's result changes.
// It is not called for the initial results set by AddContainer. onChange
// must not call Stop; it may call every other method.
func NewManager(onChange func(Update), opts ...Option) *Manager {
	m := &Manager{
		clock:      clock.RealClock{},
		onChange:   onChange,
		containers: map[string]*probed{},
	}
	for _, o := range opts {
		o(m)
	}
	return m
}

// AddContainer starts the probe workers, one goroutine per probe kind that
// c has, for the started container containerID of pod podUID, with the
// kubelet's semantics:
//
//   - the first attempt is at started + initialDelaySeconds (at once if
//     that is past), then one every periodSeconds, each bounded by
//     timeoutSeconds; successThreshold / failureThreshold consecutive
//     results flip the result; 0 fields take the defaults (period 10 s,
//     timeout 1 s, thresholds 1 and 3);
//   - readiness starts as Failure, liveness as Success, startup as Unknown;
//   - while a startup probe has not succeeded, liveness and readiness are
//     not run; when it succeeds, readiness is probed at once and the
//     startup probe stops;
//   - when liveness or startup flips to Failure the update is reported once
//     and that probe stops: the agent restarts the container and calls
//     AddContainer again for the new container ID;
//   - attempts that cannot be made (Run returns an error) are discarded.
//
// c and t are copied; started is when the container started running.
// AddContainer on a container ID already added, or after Stop, does
// nothing. A container without probes is recorded (all results Success).
func (m *Manager) AddContainer(podUID types.UID, c *corev1.Container, containerID string, started time.Time, t Target) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped || m.containers[containerID] != nil {
		return
	}
	c = c.DeepCopy()
	ctx, cancel := context.WithCancel(context.Background())
	p := &probed{
		podUID:     podUID,
		name:       c.Name,
		id:         containerID,
		cancel:     cancel,
		hasStartup: c.StartupProbe != nil,
		results:    map[Kind]Result{},
	}
	if c.ReadinessProbe != nil {
		// Made before any worker starts: the startup worker sends on it.
		p.readyKick = make(chan struct{}, 1)
	}
	m.containers[containerID] = p
	for _, k := range []struct {
		kind    Kind
		spec    *corev1.Probe
		initial Result
	}{
		{Startup, c.StartupProbe, Unknown},
		{Liveness, c.LivenessProbe, Success},
		{Readiness, c.ReadinessProbe, Failure},
	} {
		if k.spec == nil {
			continue
		}
		p.results[k.kind] = k.initial
		w := &worker{m: m, p: p, kind: k.kind, spec: withDefaults(k.spec), ctr: c, target: t, started: started}
		if k.kind == Readiness {
			w.kick = p.readyKick
		}
		m.wg.Add(1)
		m.live.Add(1)
		go w.run(ctx)
	}
}

// RemoveContainer stops the probe workers of containerID and forgets its
// results (Result then reports Success). It does not wait for a running
// attempt to return (its context is cancelled); an onChange already in
// flight may still be delivered, so callers match updates by ContainerID.
// Idempotent.
func (m *Manager) RemoveContainer(containerID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p := m.containers[containerID]; p != nil {
		p.cancel()
		delete(m.containers, containerID)
	}
}

// RemovePod does RemoveContainer for every container of podUID. Idempotent.
func (m *Manager) RemovePod(podUID types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, p := range m.containers {
		if p.podUID == podUID {
			p.cancel()
			delete(m.containers, id)
		}
	}
}

// Result returns the current result of probe kind of containerID. A
// container without that probe, or one not (or no longer) added, is
// Success: nothing holds it back.
func (m *Manager) Result(containerID string, kind Kind) Result {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p := m.containers[containerID]; p != nil {
		if r, ok := p.results[kind]; ok {
			return r
		}
	}
	return Success
}

// Stop stops every worker and waits for them to return; later
// AddContainer calls do nothing. It must not be called from onChange.
// Idempotent.
func (m *Manager) Stop() {
	m.mu.Lock()
	m.stopped = true
	for id, p := range m.containers {
		p.cancel()
		delete(m.containers, id)
	}
	m.mu.Unlock()
	m.wg.Wait()
}

// set records result r of kind for p and reports whether it changed; a
// removed container changes nothing.
func (m *Manager) set(p *probed, kind Kind, r Result) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.containers[p.id] != p || p.results[kind] == r {
		return false
	}
	p.results[kind] = r
	return true
}

// get returns the current result of kind for p.
func (m *Manager) get(p *probed, kind Kind) Result {
	m.mu.Lock()
	defer m.mu.Unlock()
	return p.results[kind]
}

// withDefaults returns a copy of p with the API's defaults for 0 fields.
func withDefaults(p *corev1.Probe) *corev1.Probe {
	p = p.DeepCopy()
	if p.PeriodSeconds <= 0 {
		p.PeriodSeconds = DefaultPeriodSeconds
	}
	if p.TimeoutSeconds <= 0 {
		p.TimeoutSeconds = DefaultTimeoutSeconds
	}
	if p.SuccessThreshold <= 0 {
		p.SuccessThreshold = DefaultSuccessThreshold
	}
	if p.FailureThreshold <= 0 {
		p.FailureThreshold = DefaultFailureThreshold
	}
	if p.InitialDelaySeconds < 0 {
		p.InitialDelaySeconds = 0
	}
	return p
}
