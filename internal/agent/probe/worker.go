package probe

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// worker runs one probe of one container in its own goroutine.
type worker struct {
	m       *Manager
	p       *probed
	kind    Kind
	spec    *corev1.Probe // defaults applied
	ctr     *corev1.Container
	target  Target
	started time.Time
	kick    chan struct{} // manual trigger (readiness), nil otherwise

	last   Result // result of the previous attempt
	streak int    // consecutive attempts with result last
}

// run schedules attempts until ctx is done or the probe is finished
// (startup succeeded, liveness or startup failed).
func (w *worker) run(ctx context.Context) {
	defer w.m.wg.Done()
	defer w.m.live.Add(-1)
	clk := w.m.clock
	period := time.Duration(w.spec.PeriodSeconds) * time.Second
	next := w.started.Add(time.Duration(w.spec.InitialDelaySeconds) * time.Second)
	for {
		if d := next.Sub(clk.Now()); d > 0 {
			t := clk.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C():
			case <-w.kick:
				t.Stop()
				w.m.triggers.Add(-1)
			}
		} else if ctx.Err() != nil {
			return
		}
		start := clk.Now()
		if !w.attempt(ctx) {
			return
		}
		next = start.Add(period)
	}
}

// attempt makes one probe attempt and applies its result, as the kubelet's
// worker.doProbe does. It returns false when the worker should stop.
func (w *worker) attempt(ctx context.Context) bool {
	m := w.m
	if w.kind != Startup && w.p.hasStartup && m.get(w.p, Startup) != Success {
		return true // held back until the container has started
	}
	res, msg, err := Run(ctx, w.spec, w.ctr, w.target)
	if ctx.Err() != nil {
		return false
	}
	if err != nil {
		m.unhealthy(w.update(Unknown, err.Error()))
		return true
	}
	if res == Failure {
		m.unhealthy(w.update(Failure, msg))
	}
	if res == w.last {
		w.streak++
	} else {
		w.last, w.streak = res, 1
	}
	if (res == Failure && w.streak < int(w.spec.FailureThreshold)) ||
		(res == Success && w.streak < int(w.spec.SuccessThreshold)) {
		return true
	}
	if m.set(w.p, w.kind, res) && m.onChange != nil {
		m.onChange(w.update(res, msg))
	}
	switch {
	case res == Failure && (w.kind == Liveness || w.kind == Startup):
		return false // on hold: the agent restarts the container under a new ID
	case res == Success && w.kind == Startup:
		if w.p.readyKick != nil {
			m.triggers.Add(1)
			select {
			case w.p.readyKick <- struct{}{}:
			default:
				m.triggers.Add(-1)
			}
		}
		return false
	}
	return true
}

func (w *worker) update(r Result, msg string) Update {
	return Update{PodUID: w.p.podUID, ContainerName: w.p.name, ContainerID: w.p.id, Kind: w.kind, Result: r, Message: msg}
}

func (m *Manager) unhealthy(u Update) {
	if m.onUnhealthy != nil {
		m.onUnhealthy(u)
	}
}
